//! pgentra's PostgreSQL proxy. Gateway mode authenticates clients with Microsoft Entra ID access
//! tokens the way Azure Database for PostgreSQL does, then relays them to any PostgreSQL server.
//! The startup, upstream and splice modules are mode-agnostic so the sidecar can reuse them.
//!
//! Entry points for the CLI: [`GatewayConfig`], [`run`] (or [`BoundGateway`] to learn the bound
//! addresses first) and [`init`] (`pgentra gateway init`).

pub mod cancel;
pub mod config;
pub mod error;
pub mod gateway;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod sidecar;
pub mod splice;
pub mod startup;
pub mod stream;
pub mod tls;
pub mod upstream;

pub use config::{
    AuthConfig, AuthMode, DirectoryEntry, Endpoint, GatewayConfig, PlaintextPolicy, RegistryConfig,
    TlsFiles, UpstreamConfig, UpstreamTls,
};
pub use error::{GatewayError, SessionError, UpstreamError};
pub use gateway::registry::{REGISTRY_SQL, install_registry};
pub use gateway::{BoundGateway, GatewayHandle, InitReport, init, run};
pub use sidecar::{
    BoundSidecar, InstanceConfig, ServeReport, SidecarConfig, SidecarError, SidecarHandle,
};
