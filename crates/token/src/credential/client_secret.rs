//! Service principal with a client secret (`client_credentials` + `client_secret`).
//!
//! Holds the secret as a [`Secret`]; never prints it.

use futures::future::BoxFuture;

use crate::credential::entra::{ClientAuth, EntraClient, EntraOptions};
use crate::error::Error;
use crate::secret::{AccessToken, Secret};
use crate::source::TokenSource;

/// A service principal authenticating with a client secret.
#[derive(Debug)]
pub struct ClientSecretCredential {
    client: EntraClient,
    secret: Secret,
}

impl ClientSecretCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "ClientSecretCredential";

    /// A credential for `client_id` in `tenant_id`.
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        secret: impl Into<Secret>,
        options: EntraOptions,
    ) -> Result<Self, Error> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(Error::config("the client secret is empty").with_credential(Self::NAME));
        }
        let authority = options
            .authority(None)
            .map_err(|e| e.with_credential(Self::NAME))?;
        Ok(ClientSecretCredential {
            client: EntraClient::new(Self::NAME, &authority, tenant_id, client_id, &options.http)?,
            secret,
        })
    }

    /// The token endpoint this credential posts to.
    pub fn token_endpoint(&self) -> &str {
        &self.client.endpoint
    }
}

impl TokenSource for ClientSecretCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(self.client.token(scope, ClientAuth::Secret(&self.secret)))
    }
}
