//! Microsoft Entra ID access tokens for databases: credentials, a default chain in the Azure
//! SDKs' order, and a cache that refreshes ahead so a connection never waits for a token.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgentra_token::Error> {
//! use pgentra_token::{DefaultCredential, DefaultCredentialOptions, Env, TokenCache, OSSRDBMS_SCOPE};
//! let credential = DefaultCredential::from_env(&Env::from_process(), DefaultCredentialOptions::default())?;
//! let cache = TokenCache::new(credential);
//! let token = cache.get_token(OSSRDBMS_SCOPE).await?;
//! let password = token.secret(); // the PostgreSQL password for this connection
//! # let _ = password; Ok(()) }
//! ```
//!
//! # What is here
//!
//! * Credentials, each usable alone: [`ManagedIdentityCredential`] (App Service / Container Apps
//!   and IMDS, system- or user-assigned), [`ClientSecretCredential`],
//!   [`ClientCertificateCredential`], [`WorkloadIdentityCredential`], [`AzureCliCredential`],
//!   [`EnvironmentCredential`], and [`StaticToken`] / [`from_fn`] for tokens you bring.
//! * [`DefaultCredential`]: environment → workload identity → managed identity → Azure CLI,
//!   honouring `AZURE_TOKEN_CREDENTIALS` and `AZURE_CLIENT_ID`; [`ChainedCredential`] for your
//!   own order.
//! * [`TokenCache`]: per-scope cache with background (or lazy) refresh-ahead, single-flight,
//!   jittered backoff, [`TokenCache::force_refresh`] and [`CacheStats`].
//! * [`Secret`] and [`AccessToken`], whose `Debug`/`Display` never show the value; [`Claims`]
//!   for unverified diagnostics.
//! * One [`Error`] with [`Error::kind`] and [`Error::is_retryable`].
//! * Feature `azure-sdk`: adapters to and from `azure_core::credentials::TokenCredential`.
//!
//! The environment is always injected as an [`Env`]; only [`Env::from_process`] reads the real
//! one. The crate knows nothing of PostgreSQL beyond the scope constant.

#![warn(missing_docs)]

mod cache;
mod chain;
mod claims;
mod clock;
mod cloud;
mod credential;
mod env;
mod error;
mod http;
mod secret;
mod source;
mod time_fmt;

#[cfg(feature = "azure-sdk")]
pub mod azure_sdk;

pub use cache::{CacheOptions, CacheStats, RefreshMode, TokenCache};
pub use chain::{ChainedCredential, CredentialKind, DefaultCredential, DefaultCredentialOptions};
pub use claims::Claims;
pub use clock::{Clock, ManualClock, SystemClock};
pub use cloud::{AuthorityHost, Cloud, OSSRDBMS_SCOPE, scope_to_resource};
pub use credential::azure_cli::{AzureCliCredential, AzureCliOptions};
pub use credential::certificate::{CertificateOptions, ClientCertificateCredential};
pub use credential::client_secret::ClientSecretCredential;
pub use credential::entra::EntraOptions;
pub use credential::environment::EnvironmentCredential;
pub use credential::managed_identity::{
    DEFAULT_IMDS_HOST, ManagedIdentityCredential, ManagedIdentityOptions, ManagedIdentitySource,
    UserAssignedId,
};
pub use credential::workload_identity::WorkloadIdentityCredential;
pub use env::{Env, vars};
pub use error::{Error, ErrorKind, aadsts_meaning};
pub use http::{HttpOptions, RetryPolicy};
pub use secret::{AccessToken, Secret};
pub use source::{FnSource, StaticToken, TokenSource, from_fn};
