"""Gets one token with the unmodified azure-identity SDK and prints {"token", "expires_on"}.

Usage: python_token.py MODE, MODE one of appservice-system, appservice-user, imds-system,
imds-user, client-secret. Everything else comes from the environment, as in production:
IDENTITY_ENDPOINT/IDENTITY_HEADER (App Service), AZURE_POD_IDENTITY_AUTHORITY_HOST (IMDS),
AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_AUTHORITY_HOST (client secret; TLS trust
via REQUESTS_CA_BUNDLE), AZURE_CLIENT_ID (user-assigned identity), PGENTRA_SCOPE (optional).
"""

import json
import os
import sys

from azure.identity import ClientSecretCredential, ManagedIdentityCredential

SCOPE = os.environ.get("PGENTRA_SCOPE", "https://ossrdbms-aad.database.windows.net/.default")


def credential(mode):
    if mode in ("appservice-system", "imds-system"):
        return ManagedIdentityCredential()
    if mode in ("appservice-user", "imds-user"):
        return ManagedIdentityCredential(client_id=os.environ["AZURE_CLIENT_ID"])
    if mode == "client-secret":
        # Instance discovery would ask login.microsoftonline.com about the emulator's host.
        return ClientSecretCredential(
            os.environ["AZURE_TENANT_ID"],
            os.environ["AZURE_CLIENT_ID"],
            os.environ["AZURE_CLIENT_SECRET"],
            authority=os.environ["AZURE_AUTHORITY_HOST"],
            disable_instance_discovery=True,
        )
    sys.exit(f"unknown mode {mode!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    token = credential(sys.argv[1]).get_token(SCOPE)
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}))


if __name__ == "__main__":
    main()
