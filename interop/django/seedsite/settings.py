"""Settings of a minimal Django project: the Service Connector guide's Django snippet, as written.

The seed says "uncomment the corresponding part of the code snippet according to the
authentication type"; here PGENTRA_INTEROP_AUTH (system | user | sp, set by query.py from its
argument) picks that part instead. Fixes of the seed's obvious slips, and nothing else:
  * `import os` and the credential classes' imports were missing;
  * the system-assigned block names its variable `credential`, the rest of the snippet `cred`;
  * service principal: `disable_instance_discovery=True`, the one documented SDK option needed
    to use an authority other than login.microsoftonline.com;
  * ENGINE `django.db.backends.postgresql_psycopg2` was removed in Django 3.0: it is
    `django.db.backends.postgresql` (which drives psycopg2);
  * PORT: the snippet hard-codes '5432', the only port Azure serves; Service Connector's Django
    variables carry no port, so pgentra adds AZURE_POSTGRESQL_PORT when its gateway listens
    elsewhere, and that is read with '5432' as the default.
"""
import os

from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
import psycopg2  # noqa: F401  (the seed imports it; Django's backend uses it)

auth = os.environ.get('PGENTRA_INTEROP_AUTH', 'system')
if auth == 'system':
    # For system-assigned identity.
    cred = DefaultAzureCredential()
elif auth == 'user':
    # For user-assigned identity.
    managed_identity_client_id = os.getenv('AZURE_POSTGRESQL_CLIENTID')
    cred = ManagedIdentityCredential(client_id=managed_identity_client_id)
elif auth == 'sp':
    # For service principal.
    tenant_id = os.getenv('AZURE_POSTGRESQL_TENANTID')
    client_id = os.getenv('AZURE_POSTGRESQL_CLIENTID')
    client_secret = os.getenv('AZURE_POSTGRESQL_CLIENTSECRET')
    cred = ClientSecretCredential(tenant_id=tenant_id, client_id=client_id, client_secret=client_secret,
                                  disable_instance_discovery=True)
else:
    raise SystemExit(f"unknown authentication type {auth!r}: use system, user or sp")

# Acquire the access token.
accessToken = cred.get_token('https://ossrdbms-aad.database.windows.net/.default')

# In your setting file, eg. settings.py
host = os.getenv('AZURE_POSTGRESQL_HOST')
user = os.getenv('AZURE_POSTGRESQL_USER')
password = accessToken.token # this is accessToken acquired from above step.
database = os.getenv('AZURE_POSTGRESQL_NAME')

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': database,
        'USER': user,
        'PASSWORD': password,
        'HOST': host,
        'PORT': os.getenv('AZURE_POSTGRESQL_PORT', '5432'),  # Port is 5432 by default
        'OPTIONS': {'sslmode': 'require'},
    }
}

# The rest of a minimal project: no apps, no secrets needed to run a query.
INSTALLED_APPS = []
USE_TZ = True
