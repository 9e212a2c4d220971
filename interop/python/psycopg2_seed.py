"""The Service Connector guide's Python snippet (azure-identity + psycopg2), run unmodified
against pgentra.

The seed says "uncomment the corresponding part of the code snippet according to the
authentication type"; here argv[1] (system | user | sp) picks that part instead. Fixes of the
seed's obvious slips, and nothing else:
  * `import os` and the credential classes' imports were missing;
  * the system-assigned block names its variable `credential`, the rest of the snippet `cred`;
  * service principal: `disable_instance_discovery=True`, the one documented SDK option needed
    to use an authority other than login.microsoftonline.com (MSAL would otherwise ask
    login.microsoftonline.com about the emulator's host).
Prints current_user; any failure exits non-zero with the exception.
"""
import os
import sys

from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
import psycopg2

auth = sys.argv[1] if len(sys.argv) > 1 else "system"

if auth == "system":
    # For system-assigned identity.
    cred = DefaultAzureCredential()
elif auth == "user":
    # For user-assigned identity.
    managed_identity_client_id = os.getenv('AZURE_POSTGRESQL_CLIENTID')
    cred = ManagedIdentityCredential(client_id=managed_identity_client_id)
elif auth == "sp":
    # For service principal.
    tenant_id = os.getenv('AZURE_POSTGRESQL_TENANTID')
    client_id = os.getenv('AZURE_POSTGRESQL_CLIENTID')
    client_secret = os.getenv('AZURE_POSTGRESQL_CLIENTSECRET')
    cred = ClientSecretCredential(tenant_id=tenant_id, client_id=client_id, client_secret=client_secret,
                                  disable_instance_discovery=True)
else:
    sys.exit(f"unknown authentication type {auth!r}: use system, user or sp")

# Acquire the access token
accessToken = cred.get_token('https://ossrdbms-aad.database.windows.net/.default')

# Combine the token with the connection string from the environment variables added by Service Connector to establish the connection.
conn_string = os.getenv('AZURE_POSTGRESQL_CONNECTIONSTRING')
conn = psycopg2.connect(conn_string + ' password=' + accessToken.token)

cur = conn.cursor()
cur.execute("select current_user")
print(cur.fetchone()[0])
conn.close()
