// Connects to the pgentra proxy (sidecar) with node-postgres and NO password or token code:
// settings come from PGHOST/PGPORT/PGUSER/PGDATABASE only. Prints current_user; exits 1 on failure.
'use strict';
const { Client } = require('pg');

async function main() {
  const client = new Client();
  await client.connect();
  const res = await client.query('select current_user as who, $1::int + 1 as answer', [41]);
  if (res.rows[0].answer !== 42) throw new Error(`unexpected answer ${res.rows[0].answer}`);
  console.log(res.rows[0].who);
  await client.end();
}

main().catch((e) => {
  console.error(`connect failed: ${e.message}`);
  process.exit(1);
});
