//! pgentra-postgres: passwordless PostgreSQL for Rust services on Azure.

pub mod settings;

pub use settings::{
    ClientSecret, ClientType, ConnectionSettings, Identity, SettingsError, SslMode, Variables,
};
