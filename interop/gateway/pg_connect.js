// Connects to the pgentra gateway with node-postgres using an Entra token as the password.
// Settings come from PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD (the token); the gateway's CA
// certificate path comes from PGENTRA_GATEWAY_CA. Prints current_user; exits 1 on failure.
'use strict';
const fs = require('fs');
const { Client } = require('pg');

async function main() {
  const client = new Client({
    ssl: { ca: fs.readFileSync(process.env.PGENTRA_GATEWAY_CA, 'utf8'), servername: 'localhost' },
  });
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
