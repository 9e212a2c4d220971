// Gets one token with the unmodified @azure/identity SDK and prints {"token", "expires_on"}.
//
// Usage: node node_token.mjs MODE, MODE one of appservice-system, appservice-user, imds-system,
// imds-user, client-secret. Everything else comes from the environment, as in production:
// IDENTITY_ENDPOINT/IDENTITY_HEADER (App Service), AZURE_POD_IDENTITY_AUTHORITY_HOST (IMDS),
// AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_AUTHORITY_HOST (client secret; TLS
// trust via NODE_EXTRA_CA_CERTS), AZURE_CLIENT_ID (user-assigned identity), PGENTRA_SCOPE.
import { ClientSecretCredential, ManagedIdentityCredential } from "@azure/identity";

const scope = process.env.PGENTRA_SCOPE ?? "https://ossrdbms-aad.database.windows.net/.default";
const mode = process.argv[2];

function credential() {
  switch (mode) {
    case "appservice-system":
    case "imds-system":
      return new ManagedIdentityCredential();
    case "appservice-user":
    case "imds-user":
      return new ManagedIdentityCredential({ clientId: process.env.AZURE_CLIENT_ID });
    case "client-secret":
      // Instance discovery would ask login.microsoftonline.com about the emulator's host.
      return new ClientSecretCredential(
        process.env.AZURE_TENANT_ID,
        process.env.AZURE_CLIENT_ID,
        process.env.AZURE_CLIENT_SECRET,
        { authorityHost: process.env.AZURE_AUTHORITY_HOST, disableInstanceDiscovery: true },
      );
    default:
      console.error(`unknown mode ${JSON.stringify(mode)}`);
      process.exit(2);
  }
}

const token = await credential().getToken(scope);
console.log(
  JSON.stringify({ token: token.token, expires_on: Math.floor(token.expiresOnTimestamp / 1000) }),
);
