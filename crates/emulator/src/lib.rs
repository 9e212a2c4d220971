//! A local identity emulator for Microsoft Entra ID and Azure managed identity that signs real
//! RS256 tokens, so unmodified Azure SDKs and token verifiers can be tested offline.
//!
//! It serves, over plain HTTP and over HTTPS with a generated CA:
//!
//! * App Service / Container Apps managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`),
//!   api-version 2019-08-01 and the legacy 2017-09-01;
//! * IMDS (`/metadata/identity/oauth2/token`, `Metadata: true`), the target of
//!   `AZURE_POD_IDENTITY_AUTHORITY_HOST`;
//! * Entra v2 and v1 token endpoints: client credentials with a secret, a certificate assertion
//!   (RS256/PS256) or a workload-identity federated token, and the password grant for test user
//!   tokens;
//! * OpenID discovery (v1, v2), JWKS (v1, v2) and instance discovery.
//!
//! Tokens have Entra's v1 shape (`iss = https://sts.windows.net/{tid}/`, `oid`, `appid`,
//! `xms_mirid`, `upn`, `groups`, `amr`, …). Tests can inspect requests (secrets redacted), shift
//! the clock, inject faults and rotate keys.
//!
//! ```no_run
//! use pgentra_emulator::{Emulator, dev};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::builder().start().await?;
//! let url = format!(
//!     "{}?api-version=2019-08-01&resource={}",
//!     emulator.identity_endpoint(),
//!     dev::OSSRDBMS_RESOURCE
//! );
//! // GET `url` with header `X-IDENTITY-HEADER: {emulator.identity_header()}` returns
//! // {"access_token": …, "expires_on": "…", …}; verify it against `emulator.jwks_url()`.
//! emulator.clock().set_offset(-2 * 86_400); // from now on, tokens are already expired
//! # Ok(()) }
//! ```

mod claims;
mod clock;
pub mod config;
pub mod dev;
mod directory;
mod error;
mod faults;
mod handle;
mod keys;
mod record;
mod routes;
mod server;
mod tls;

pub use clock::Clock;
pub use config::{
    CertificateSource, Config, ConfigError, FederatedCredential, Lifetimes, ManagedIdentity,
    ServicePrincipal, Tenant, User,
};
pub use error::Error;
pub use faults::{Fault, Faults};
pub use handle::{Builder, Emulator, EnvProfile, Principal, RunningEmulator};
pub use record::{EndpointKind, RecordedRequest};
