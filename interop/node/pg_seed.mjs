// The Service Connector guide's NodeJS snippet (@azure/identity + pg), run against pgentra.
//
// The seed says "uncomment the corresponding part of the code snippet according to the
// authentication type"; here process.argv[2] (system | user | sp) picks that part instead. Fixes
// of the seed's obvious slips, and nothing else:
//   * it mixes `import` with `require('pg')`, which does not exist in an ES module: pg is imported;
//   * it names the token `accessToken`, then reads `accesstoken.token`;
//   * service principal: the snippet reads the three variables but never builds the credential it
//     imports; ClientSecretCredential is built from them, with `disableInstanceDiscovery: true`,
//     the one documented SDK option needed to use an authority other than
//     login.microsoftonline.com (MSAL would otherwise ask login.microsoftonline.com about the
//     emulator's host);
//   * errors of the async block are not ignored (an unhandled rejection would only warn in old
//     Node versions): they end the process non-zero.
// `ssl: process.env.AZURE_POSTGRESQL_SSL` is kept as written: the string "true" makes pg verify
// the gateway's certificate, trusted through NODE_EXTRA_CA_CERTS.
// Prints current_user.
import { DefaultAzureCredential, ClientSecretCredential } from "@azure/identity";
import pg from "pg";
const { Client } = pg;

const auth = process.argv[2] ?? "system";
let credential;
if (auth === "system") {
    // For system-assigned identity.
    credential = new DefaultAzureCredential();
} else if (auth === "user") {
    // For user-assigned identity.
    const clientId = process.env.AZURE_POSTGRESQL_CLIENTID;
    credential = new DefaultAzureCredential({
        managedIdentityClientId: clientId
    });
} else if (auth === "sp") {
    // For service principal.
    const tenantId = process.env.AZURE_POSTGRESQL_TENANTID;
    const clientId = process.env.AZURE_POSTGRESQL_CLIENTID;
    const clientSecret = process.env.AZURE_POSTGRESQL_CLIENTSECRET;
    credential = new ClientSecretCredential(tenantId, clientId, clientSecret, {
        disableInstanceDiscovery: true
    });
} else {
    console.error(`unknown authentication type ${JSON.stringify(auth)}: use system, user or sp`);
    process.exit(2);
}

// Acquire the access token.
var accessToken = await credential.getToken('https://ossrdbms-aad.database.windows.net/.default');

// Use the token and the connection information from the environment variables added by Service Connector to establish the connection.
(async () => {
const client = new Client({
    host: process.env.AZURE_POSTGRESQL_HOST,
    user: process.env.AZURE_POSTGRESQL_USER,
    password: accessToken.token,
    database: process.env.AZURE_POSTGRESQL_DATABASE,
    port: Number(process.env.AZURE_POSTGRESQL_PORT) ,
    ssl: process.env.AZURE_POSTGRESQL_SSL
});
await client.connect();

const res = await client.query('select current_user');
console.log(res.rows[0].current_user);

await client.end();
})().catch((err) => {
    console.error(`error: ${err.message}`);
    process.exit(1);
});
