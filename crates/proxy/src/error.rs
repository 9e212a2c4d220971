//! Errors of the proxy. Each one has a client-safe `ErrorResponse` (what the database client
//! sees) kept apart from its `Display` text (what the log gets); neither ever contains a token.

use std::io;

use pgentra_wire::backend::ErrorFields;
use pgentra_wire::{WireError, sqlstate};

use crate::config::ConfigError;

/// Why a client session ended before (or instead of) relaying queries.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] WireError),
    /// Sent unencrypted bytes after `SSLRequest` (CVE-2021-23214 style injection).
    #[error("received unencrypted data after SSL request")]
    DataAfterSslRequest,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// Reading from or writing to the client failed.
    #[error("client I/O error: {0}")]
    Io(#[from] io::Error),
    /// The client hung up before the session started (probes, health checks, cancelled connects).
    #[error("client closed the connection during startup")]
    ClientGone,
    /// The startup phase exceeded `startup_timeout_ms`.
    #[error("startup phase timed out")]
    Timeout,
    /// A plaintext connection where TLS is required.
    #[error("plaintext connection refused (TLS required) for user {user:?}")]
    TlsRequired {
        /// Peer address as text.
        host: String,
        /// Requested user.
        user: String,
        /// Requested database.
        database: String,
    },
    /// The startup packet carried no `user`.
    #[error("no user name in startup packet")]
    NoUser,
    /// Refused by the authentication step; the client text is in `fields`.
    #[error("{reason}: {detail}")]
    Rejected {
        /// What the client is told.
        fields: ErrorFields,
        /// Short machine-readable reason (metrics label).
        reason: &'static str,
        /// Log detail (never a token).
        detail: String,
    },
    /// The upstream server could not be reached or refused the session.
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    /// `max_connections` sessions are already open.
    #[error("too many connections")]
    TooManyConnections,
    /// The gateway is shutting down.
    #[error("shutting down")]
    Shutdown,
}

impl SessionError {
    /// The `ErrorResponse` the client gets, or `None` when the connection is unusable or the
    /// client must not be answered (garbage before TLS).
    pub fn to_client(&self) -> Option<ErrorFields> {
        use SessionError::*;
        Some(match self {
            Protocol(e) => {
                let code = match e {
                    WireError::UnsupportedProtocol { .. } => sqlstate::FEATURE_NOT_SUPPORTED,
                    _ => sqlstate::PROTOCOL_VIOLATION,
                };
                ErrorFields::fatal(code, e.to_string())
            }
            DataAfterSslRequest => {
                ErrorFields::fatal(sqlstate::PROTOCOL_VIOLATION, self.to_string())
            }
            Tls(_) | Io(_) | ClientGone => return None,
            Timeout => ErrorFields::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "canceling authentication due to timeout",
            ),
            TlsRequired {
                host,
                user,
                database,
            } => {
                let mut f = ErrorFields::fatal(
                    sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    format!(
                        "no pg_hba.conf entry for host \"{host}\", user \"{user}\", database \"{database}\", no encryption"
                    ),
                );
                f.hint = Some("This server requires TLS: connect with sslmode=require.".to_owned());
                f
            }
            NoUser => ErrorFields::fatal(
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "no PostgreSQL user name specified in startup packet",
            ),
            Rejected { fields, .. } => fields.clone(),
            Upstream(e) => e.to_client(),
            TooManyConnections => ErrorFields::fatal(
                sqlstate::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            ),
            Shutdown => ErrorFields::fatal(
                sqlstate::CANNOT_CONNECT_NOW,
                "the database system is shutting down",
            ),
        })
    }

    /// Short reason for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        use SessionError::*;
        match self {
            Protocol(_) | DataAfterSslRequest => "protocol_violation",
            Tls(_) => "tls_handshake",
            Io(_) => "client_io",
            ClientGone => "client_gone",
            Timeout => "startup_timeout",
            TlsRequired { .. } => "tls_required",
            NoUser => "no_user",
            Rejected { reason, .. } => reason,
            Upstream(e) => e.reason(),
            TooManyConnections => "too_many_connections",
            Shutdown => "shutdown",
        }
    }
}

/// Failures on the leg to the real PostgreSQL server.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP/unix connect failed.
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// I/O failed during the upstream login.
    #[error("I/O error during upstream login: {0}")]
    Io(#[from] io::Error),
    /// Connect and login exceeded the deadline.
    #[error("upstream login timed out")]
    Timeout,
    /// The server answered the login with an `ErrorResponse`; relayed to the client as is.
    #[error("server refused the session: {} {}", .0.code, .0.message)]
    Server(ErrorFields),
    /// The server asked for a password on the trusted channel, which means the operator's
    /// `pg_hba.conf` does not trust the gateway there.
    #[error("server requested a password on the trusted channel")]
    PasswordRequired,
    /// The server asked for an authentication method the proxy does not implement.
    #[error("unsupported upstream authentication method {0}")]
    UnsupportedAuth(String),
    /// SCRAM exchange failed (bad server proof or malformed messages).
    #[error("SCRAM exchange failed: {0}")]
    Scram(String),
    /// The server broke the protocol.
    #[error("upstream protocol violation: {0}")]
    Protocol(String),
}

impl From<WireError> for UpstreamError {
    fn from(e: WireError) -> Self {
        UpstreamError::Protocol(e.to_string())
    }
}

impl UpstreamError {
    /// The `ErrorResponse` the client gets.
    pub fn to_client(&self) -> ErrorFields {
        match self {
            UpstreamError::Server(fields) => fields.clone(),
            UpstreamError::Connect { .. } | UpstreamError::Io(_) | UpstreamError::Timeout => {
                ErrorFields::fatal(
                    sqlstate::CONNECTION_FAILURE,
                    "could not connect to the database server behind the gateway",
                )
            }
            UpstreamError::PasswordRequired | UpstreamError::UnsupportedAuth(_) => {
                ErrorFields::fatal(
                    sqlstate::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
                    "the database server behind the gateway refused the gateway's login; check the gateway's upstream configuration",
                )
            }
            UpstreamError::Scram(_) | UpstreamError::Protocol(_) => ErrorFields::fatal(
                sqlstate::CONNECTION_FAILURE,
                "protocol error while connecting to the database server behind the gateway",
            ),
        }
    }

    /// Short reason for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } => "upstream_connect",
            UpstreamError::Io(_) => "upstream_io",
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::Server(_) => "upstream_refused",
            UpstreamError::PasswordRequired => "upstream_password_required",
            UpstreamError::UnsupportedAuth(_) => "upstream_auth_unsupported",
            UpstreamError::Scram(_) => "upstream_scram",
            UpstreamError::Protocol(_) => "upstream_protocol",
        }
    }
}

/// Failures of the gateway as a whole (startup, configuration, fatal runtime errors).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS certificate or key could not be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address or path.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// HTTP client for key discovery could not be built.
    #[error("HTTP client setup: {0}")]
    Http(String),
    /// Installing or reading the registry failed.
    #[error("registry: {0}")]
    Registry(#[from] crate::gateway::registry::RegistryError),
}
