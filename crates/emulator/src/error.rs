//! Errors that stop the emulator from starting.
//!
//! Request-level failures are HTTP answers shaped like Azure's (see `routes/reply.rs`), never
//! values of this type.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A state-dir or certificate file could not be read or written.
    #[error("emulator file {path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A listener could not bind.
    #[error("emulator cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The HTTPS certificate could not be created or loaded.
    #[error("emulator TLS setup failed: {0}")]
    Tls(String),
    /// The token signing key could not be created or loaded.
    #[error("emulator signing key: {0}")]
    Key(String),
    /// A configured certificate or issuer key is unusable.
    #[error("emulator credential for {client_id}: {reason}")]
    Credential {
        /// Principal the credential belongs to.
        client_id: String,
        /// What is wrong with it.
        reason: String,
    },
}
