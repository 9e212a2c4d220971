//! AKS workload identity: exchanges the projected service-account token
//! (`AZURE_FEDERATED_TOKEN_FILE`) for an Entra token.
//!
//! Re-reads the file on every fetch, because kubelet rotates it; never logs its content.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use crate::credential::entra::{ClientAuth, EntraClient, EntraOptions};
use crate::env::{Env, vars};
use crate::error::{Error, ErrorKind};
use crate::secret::AccessToken;
use crate::source::TokenSource;

/// Largest federated token file accepted (service-account tokens are ~1–2 KB).
const MAX_FILE: u64 = 64 * 1024;

/// Workload identity federation with a token file.
#[derive(Debug)]
pub struct WorkloadIdentityCredential {
    client: EntraClient,
    token_file: PathBuf,
}

impl WorkloadIdentityCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "WorkloadIdentityCredential";

    /// A credential for `client_id` in `tenant_id` presenting the token in `token_file`.
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        token_file: impl Into<PathBuf>,
        options: EntraOptions,
    ) -> Result<Self, Error> {
        let authority = options
            .authority(None)
            .map_err(|e| e.with_credential(Self::NAME))?;
        Ok(WorkloadIdentityCredential {
            client: EntraClient::new(Self::NAME, &authority, tenant_id, client_id, &options.http)?,
            token_file: token_file.into(),
        })
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and
    /// `AZURE_AUTHORITY_HOST`; [`ErrorKind::Unavailable`] naming what is missing.
    pub fn from_env(env: &Env, options: EntraOptions) -> Result<Self, Error> {
        let missing: Vec<&str> = [
            vars::AZURE_FEDERATED_TOKEN_FILE,
            vars::AZURE_TENANT_ID,
            vars::AZURE_CLIENT_ID,
        ]
        .into_iter()
        .filter(|v| !env.has(v))
        .collect();
        if !missing.is_empty() {
            return Err(Error::unavailable(format!(
                "not configured: {} not set (AKS sets them when the pod's service account has the azure.workload.identity/client-id annotation and the pod the azure.workload.identity/use label)",
                missing.join(", ")
            ))
            .with_credential(Self::NAME));
        }
        let authority = options
            .authority(Some(env))
            .map_err(|e| e.with_credential(Self::NAME))?;
        let options = options.with_authority_host(authority.as_str());
        Self::new(
            env.get(vars::AZURE_TENANT_ID).unwrap_or_default(),
            env.get(vars::AZURE_CLIENT_ID).unwrap_or_default(),
            env.get(vars::AZURE_FEDERATED_TOKEN_FILE)
                .unwrap_or_default(),
            options,
        )
    }

    /// The file holding the federated token.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    async fn read_assertion(&self) -> Result<String, Error> {
        let path = &self.token_file;
        let describe = |e: std::io::Error| {
            Error::config(format!(
                "cannot read the federated token file {} ({}): {e}",
                path.display(),
                vars::AZURE_FEDERATED_TOKEN_FILE
            ))
            .with_credential(Self::NAME)
        };
        let meta = tokio::fs::metadata(path).await.map_err(describe)?;
        if meta.len() > MAX_FILE {
            return Err(Error::config(format!(
                "the federated token file {} is {} bytes, too large for a service-account token",
                path.display(),
                meta.len()
            ))
            .with_credential(Self::NAME));
        }
        let text = tokio::fs::read_to_string(path).await.map_err(describe)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::other(
                ErrorKind::Config,
                format!("the federated token file {} is empty", path.display()),
            )
            .with_credential(Self::NAME));
        }
        Ok(text.to_owned())
    }
}

impl TokenSource for WorkloadIdentityCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let assertion = self.read_assertion().await?;
            self.client
                .token(scope, ClientAuth::Assertion(assertion))
                .await
        })
    }
}
