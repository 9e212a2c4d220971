//! Credential chains: try credentials in order, skip the ones not set up here, stop at the first
//! that reached its endpoint and failed; and the default chain in the Azure SDKs' order.
//!
//! The chain holds no tokens (wrap it in a [`TokenCache`](crate::TokenCache)) and reads only the
//! injected [`Env`].

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;

use crate::cloud::Cloud;
use crate::credential::azure_cli::{AzureCliCredential, AzureCliOptions};
use crate::credential::entra::EntraOptions;
use crate::credential::environment::EnvironmentCredential;
use crate::credential::managed_identity::{
    ManagedIdentityCredential, ManagedIdentityOptions, UserAssignedId,
};
use crate::credential::workload_identity::WorkloadIdentityCredential;
use crate::env::{Env, vars};
use crate::error::{Error, ErrorKind};
use crate::secret::AccessToken;
use crate::source::TokenSource;

/// The credentials the default chain knows, in chain order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// [`EnvironmentCredential`].
    Environment,
    /// [`WorkloadIdentityCredential`].
    WorkloadIdentity,
    /// [`ManagedIdentityCredential`].
    ManagedIdentity,
    /// [`AzureCliCredential`].
    AzureCli,
}

impl CredentialKind {
    /// All kinds, in the default chain's order.
    pub const ALL: [CredentialKind; 4] = [
        CredentialKind::Environment,
        CredentialKind::WorkloadIdentity,
        CredentialKind::ManagedIdentity,
        CredentialKind::AzureCli,
    ];

    /// The credential's name as the Azure SDKs spell it.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Environment => EnvironmentCredential::NAME,
            CredentialKind::WorkloadIdentity => WorkloadIdentityCredential::NAME,
            CredentialKind::ManagedIdentity => ManagedIdentityCredential::NAME,
            CredentialKind::AzureCli => AzureCliCredential::NAME,
        }
    }

    /// Parses an `AZURE_TOKEN_CREDENTIALS` value: `dev`, `prod`, or one credential name
    /// (case-insensitive).
    pub fn parse_selection(value: &str) -> Result<Vec<CredentialKind>, Error> {
        let v = value.trim();
        let lower = v.to_ascii_lowercase();
        match lower.as_str() {
            "dev" => return Ok(vec![CredentialKind::AzureCli]),
            "prod" => {
                return Ok(vec![
                    CredentialKind::Environment,
                    CredentialKind::WorkloadIdentity,
                    CredentialKind::ManagedIdentity,
                ]);
            }
            _ => {}
        }
        if let Some(k) = CredentialKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(v))
        {
            return Ok(vec![k]);
        }
        let unsupported = [
            "azuredeveloperclicredential",
            "azurepowershellcredential",
            "visualstudiocodecredential",
            "visualstudiocredential",
            "interactivebrowsercredential",
            "brokercredential",
        ];
        if unsupported.contains(&lower.as_str()) {
            return Err(Error::config(format!(
                "AZURE_TOKEN_CREDENTIALS={v}: this credential is not supported by pgentra; use dev, prod, EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential or AzureCliCredential"
            )));
        }
        Err(Error::config(format!(
            "AZURE_TOKEN_CREDENTIALS={v:?} is not valid: use dev, prod, EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential or AzureCliCredential"
        )))
    }
}

/// Options of the default chain.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DefaultCredentialOptions {
    /// Cloud, authority host override and HTTP settings for every credential.
    pub entra: EntraOptions,
    /// The managed identity to use; defaults to the client id in `AZURE_CLIENT_ID` (user-assigned),
    /// else the system-assigned identity.
    pub managed_identity: Option<UserAssignedId>,
    /// IMDS base URL; overrides `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
    pub imds_host: Option<String>,
    /// Azure CLI settings (program, timeout, tenant).
    pub cli: AzureCliOptions,
    /// Restricts the chain; overrides `AZURE_TOKEN_CREDENTIALS`.
    pub only: Option<Vec<CredentialKind>>,
}

impl DefaultCredentialOptions {
    /// Sets the Entra options (cloud, authority host, HTTP).
    pub fn with_entra(mut self, entra: EntraOptions) -> Self {
        self.entra = entra;
        self
    }

    /// Sets the cloud.
    pub fn with_cloud(mut self, cloud: Cloud) -> Self {
        self.entra.cloud = cloud;
        self
    }

    /// Selects a user-assigned managed identity.
    pub fn with_managed_identity(mut self, id: UserAssignedId) -> Self {
        self.managed_identity = Some(id);
        self
    }

    /// Sets the IMDS base URL.
    pub fn with_imds_host(mut self, host: impl Into<String>) -> Self {
        self.imds_host = Some(host.into());
        self
    }

    /// Sets the Azure CLI options.
    pub fn with_cli(mut self, cli: AzureCliOptions) -> Self {
        self.cli = cli;
        self
    }

    /// Restricts the chain to these credentials.
    pub fn with_only(mut self, kinds: Vec<CredentialKind>) -> Self {
        self.only = Some(kinds);
        self
    }
}

#[derive(Debug)]
enum Link {
    Ready(Box<dyn TokenSource>),
    /// Not set up here; the chain moves past it.
    Skipped(Error),
    /// Set up but unusable (e.g. unreadable certificate): the chain stops here.
    Broken(Error),
}

const NONE: usize = usize::MAX;

/// Tries sources in order.
///
/// A source failing with [`ErrorKind::Unavailable`] is skipped; any other error stops the chain
/// and is returned as is. When every source is unavailable, the error (kind
/// [`ErrorKind::ChainExhausted`]) lists each one's reason. The first source that succeeds is
/// remembered and used alone afterwards, as Azure.Identity does.
#[derive(Debug)]
pub struct ChainedCredential {
    name: String,
    links: Vec<Link>,
    selected: AtomicUsize,
}

impl ChainedCredential {
    /// A chain of `sources`, tried in order.
    pub fn new(name: impl Into<String>, sources: Vec<Box<dyn TokenSource>>) -> Self {
        ChainedCredential {
            name: name.into(),
            links: sources.into_iter().map(Link::Ready).collect(),
            selected: AtomicUsize::new(NONE),
        }
    }

    /// Names of the credentials that will be tried (skipped ones left out).
    pub fn credential_names(&self) -> Vec<&str> {
        self.links
            .iter()
            .filter_map(|l| match l {
                Link::Ready(s) => Some(s.name()),
                Link::Broken(e) => e.credential(),
                Link::Skipped(_) => None,
            })
            .collect()
    }

    /// Why each skipped credential was skipped.
    pub fn skipped(&self) -> Vec<&Error> {
        self.links
            .iter()
            .filter_map(|l| match l {
                Link::Skipped(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// The credential that served the last token, once one has.
    pub fn selected(&self) -> Option<&str> {
        match self.links.get(self.selected.load(Ordering::Relaxed))? {
            Link::Ready(s) => Some(s.name()),
            _ => None,
        }
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken, Error> {
        let sel = self.selected.load(Ordering::Relaxed);
        if let Some(Link::Ready(s)) = self.links.get(sel) {
            return s.get_token(scope).await;
        }
        let mut causes = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            match link {
                Link::Skipped(e) => causes.push(e.clone()),
                Link::Broken(e) => return Err(e.clone()),
                Link::Ready(s) => match s.get_token(scope).await {
                    Ok(t) => {
                        self.selected.store(i, Ordering::Relaxed);
                        tracing::debug!(chain = %self.name, credential = s.name(), "credential selected");
                        return Ok(t);
                    }
                    Err(e) if e.kind() == ErrorKind::Unavailable => {
                        let e = if e.credential().is_none() {
                            e.with_credential(s.name().to_owned())
                        } else {
                            e
                        };
                        causes.push(e);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Err(Error::new(
            ErrorKind::ChainExhausted,
            "no credential could get a token; each was tried in order:",
        )
        .with_credential(self.name.clone())
        .with_causes(causes))
    }
}

impl TokenSource for ChainedCredential {
    fn name(&self) -> &str {
        &self.name
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(self.fetch(scope))
    }
}

/// The default chain: environment → workload identity → managed identity → Azure CLI, as the
/// Azure SDKs order it, honouring `AZURE_TOKEN_CREDENTIALS` and `AZURE_CLIENT_ID`.
#[derive(Debug)]
pub struct DefaultCredential {
    chain: ChainedCredential,
}

impl DefaultCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "DefaultCredential";

    /// The default chain configured by the process environment.
    pub fn new(options: DefaultCredentialOptions) -> Result<Self, Error> {
        Self::from_env(&Env::from_process(), options)
    }

    /// The default chain configured by `env`. Fails only for an invalid
    /// `AZURE_TOKEN_CREDENTIALS`; credentials that are not set up are skipped when tokens are
    /// requested, and a credential that is set up but unusable stops the chain there.
    pub fn from_env(env: &Env, options: DefaultCredentialOptions) -> Result<Self, Error> {
        let kinds = match (&options.only, env.get(vars::AZURE_TOKEN_CREDENTIALS)) {
            (Some(only), _) => only.clone(),
            (None, Some(v)) => {
                CredentialKind::parse_selection(v).map_err(|e| e.with_credential(Self::NAME))?
            }
            (None, None) => CredentialKind::ALL.to_vec(),
        };
        let pinned = kinds.len() == 1;
        let mut links = Vec::new();
        for kind in kinds {
            let built: Result<Box<dyn TokenSource>, Error> = match kind {
                CredentialKind::Environment => {
                    EnvironmentCredential::from_env(env, options.entra.clone())
                        .map(|c| Box::new(c) as _)
                }
                CredentialKind::WorkloadIdentity => {
                    WorkloadIdentityCredential::from_env(env, options.entra.clone())
                        .map(|c| Box::new(c) as _)
                }
                CredentialKind::ManagedIdentity => {
                    let id = options.managed_identity.clone().or_else(|| {
                        env.get(vars::AZURE_CLIENT_ID)
                            .map(|c| UserAssignedId::ClientId(c.to_owned()))
                    });
                    let mut mi =
                        ManagedIdentityOptions::default().with_http(options.entra.http.clone());
                    mi.user_assigned = id;
                    mi.imds_host = options.imds_host.clone();
                    ManagedIdentityCredential::from_env(env, mi).map(|c| {
                        // A pinned credential reports its own errors; in a chain an absent IMDS
                        // means "not on Azure".
                        Box::new(if pinned { c } else { c.probing() }) as _
                    })
                }
                CredentialKind::AzureCli => {
                    AzureCliCredential::from_env(env, options.cli.clone()).map(|c| Box::new(c) as _)
                }
            };
            links.push(match built {
                Ok(s) => Link::Ready(s),
                Err(e) if e.kind() == ErrorKind::Unavailable && !pinned => Link::Skipped(e),
                Err(e) => Link::Broken(e),
            });
        }
        Ok(DefaultCredential {
            chain: ChainedCredential {
                name: Self::NAME.to_owned(),
                links,
                selected: AtomicUsize::new(NONE),
            },
        })
    }

    /// The underlying chain (names, skipped reasons, selected credential).
    pub fn chain(&self) -> &ChainedCredential {
        &self.chain
    }
}

impl TokenSource for DefaultCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let single = self.chain.links.len() == 1;
            let result = self.chain.fetch(scope).await;
            match result {
                // A single pinned credential's own error is clearer than a one-item list.
                Err(e)
                    if single && e.kind() == ErrorKind::ChainExhausted && e.causes().len() == 1 =>
                {
                    Err(e.causes()[0].clone())
                }
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_values() {
        use CredentialKind::*;
        assert_eq!(
            CredentialKind::parse_selection("dev").unwrap(),
            vec![AzureCli]
        );
        assert_eq!(
            CredentialKind::parse_selection("PROD").unwrap(),
            vec![Environment, WorkloadIdentity, ManagedIdentity]
        );
        assert_eq!(
            CredentialKind::parse_selection("managedidentitycredential").unwrap(),
            vec![ManagedIdentity]
        );
        let e = CredentialKind::parse_selection("AzurePowerShellCredential").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert_eq!(
            CredentialKind::parse_selection("x").unwrap_err().kind(),
            ErrorKind::Config
        );
    }
}
