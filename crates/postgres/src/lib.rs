//! pgentra-postgres: passwordless PostgreSQL for Rust services on Azure.

mod connect;
mod credential;
pub mod pool;
pub mod settings;
mod tls;
mod user;

pub use connect::{ConnectError, Connection, Connector, connect};
pub use credential::{token_cache_for, token_source_for};
pub use settings::{
    ClientSecret, ClientType, ConnectionSettings, Identity, SettingsError, SslMode, Variables,
};
pub use tls::{Tls, TlsBuilder, TlsError};
pub use user::{user_name_from_claims, user_name_from_token};

/// The token crate, re-exported so applications need one dependency.
pub use pgentra_token as token;
