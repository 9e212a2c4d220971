//! Opening PostgreSQL connections with an Entra ID token as the password: one current token from
//! the cache per physical connection, the role name from settings or claims, TLS per `sslmode`,
//! and one retry with a refreshed token when the server rejects a cached one. Never logs a token.

use std::sync::Arc;
use std::time::SystemTime;

use pgentra_token::{AccessToken, ErrorKind, OSSRDBMS_SCOPE, TokenCache};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::settings::{ConnectionSettings, SslMode};
use crate::tls::{Tls, TlsError};
use crate::user::user_name_from_token;

/// A connection's I/O half, to be polled (spawned) for the [`Client`] to make progress.
pub type Connection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No token could be obtained from the identity provider.
    #[error("could not get an Entra ID token for PostgreSQL: {0}")]
    Token(#[source] pgentra_token::Error),
    /// The settings name no role and the token's claims suggest none.
    #[error(
        "no PostgreSQL user name: the settings name none and the token has no xms_mirid, upn, \
         preferred_username, unique_name or appid claim; set the user (e.g. AZURE_POSTGRESQL_USER)"
    )]
    NoUserName,
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server refused the token (SQLSTATE 28P01 or 28000), also after a refresh when one
    /// was possible.
    #[error("PostgreSQL refused the Entra ID token for role \"{user}\"{}: {}", if *retried { " (also after a token refresh)" } else { "" }, describe(source))]
    Rejected {
        /// The role the login was for.
        user: String,
        /// Whether a second attempt was made with a freshly fetched token.
        retried: bool,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Any other failure: unreachable server, TLS handshake, protocol.
    #[error("could not connect to PostgreSQL: {}", describe(.0))]
    Postgres(#[source] tokio_postgres::Error),
}

impl ConnectError {
    /// The server's SQLSTATE, when the server answered with an error.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            ConnectError::Rejected { source, .. } | ConnectError::Postgres(source) => source.code(),
            _ => None,
        }
    }

    /// Whether trying again later can help: the identity endpoint or the server was
    /// unreachable, slow, throttling or starting up. Certificate, configuration and
    /// authentication failures are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Token(e) => e.is_retryable(),
            ConnectError::Postgres(e) => match e.code() {
                Some(code) => {
                    *code == SqlState::CANNOT_CONNECT_NOW
                        || *code == SqlState::TOO_MANY_CONNECTIONS
                        || code.code().starts_with("08")
                }
                None => {
                    io_cause(e).is_some_and(|io| {
                        use std::io::ErrorKind::*;
                        matches!(
                            io.kind(),
                            ConnectionRefused
                                | ConnectionReset
                                | ConnectionAborted
                                | NotConnected
                                | TimedOut
                                | BrokenPipe
                                | UnexpectedEof
                                | AddrNotAvailable
                                | HostUnreachable
                                | NetworkUnreachable
                        )
                    }) || e.is_closed()
                }
            },
            _ => false,
        }
    }
}

fn io_cause(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// `tokio_postgres::Error`'s `Display` omits the cause ("db error", "error performing TLS
/// handshake"); this adds the server's message or the underlying error. Server messages never
/// echo the password.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

fn is_auth_failure(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    )
}

/// Opens connections for one [`ConnectionSettings`]: cheap to clone, shared by pools.
///
/// Every call to [`Connector::connect`] asks the token cache for the current token (a memory
/// read once warm), so a pool built on it never holds a token past its refresh.
#[derive(Clone, Debug)]
pub struct Connector {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    base: tokio_postgres::Config,
    user: Option<String>,
    tokens: TokenCache,
    scope: String,
    tls: MakeRustlsConnectDebug,
}

/// `MakeRustlsConnect` is not `Debug`.
#[derive(Clone)]
struct MakeRustlsConnectDebug(MakeRustlsConnect);

impl std::fmt::Debug for MakeRustlsConnectDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MakeRustlsConnect")
    }
}

impl Connector {
    /// A connector for `settings`, getting tokens for the Azure Database for PostgreSQL scope
    /// from `tokens` and checking the server certificate as `settings.ssl_mode` says.
    pub fn new(
        settings: &ConnectionSettings,
        tokens: TokenCache,
        tls: &Tls,
    ) -> Result<Self, ConnectError> {
        let mut base = tokio_postgres::Config::new();
        base.host(&settings.host)
            .port(settings.port)
            .dbname(&settings.database)
            .ssl_mode(match settings.ssl_mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(user) = &settings.user {
            base.user(user);
        }
        Ok(Connector {
            inner: Arc::new(Inner {
                base,
                user: settings.user.clone(),
                tokens,
                scope: OSSRDBMS_SCOPE.to_owned(),
                tls: MakeRustlsConnectDebug(tls.make_connect(settings.ssl_mode)?),
            }),
        })
    }

    /// Adjusts the underlying `tokio_postgres::Config` (application name, timeouts, `hostaddr`,
    /// keepalives). Password and user set here are overwritten on every connect.
    pub fn with_config(mut self, f: impl FnOnce(&mut tokio_postgres::Config)) -> Self {
        f(&mut Arc::make_mut(&mut self.inner).base);
        self
    }

    /// Uses another token scope (sovereign clouds use their own resource URI).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).scope = scope.into();
        self
    }

    /// The token cache connections draw from.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// The token scope.
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// Opens a connection and spawns its I/O task on the current Tokio runtime.
    pub async fn connect(&self) -> Result<(Client, JoinHandle<()>), ConnectError> {
        let (client, connection) = self.connect_unspawned().await?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
            }
        });
        Ok((client, task))
    }

    /// Opens a connection; the caller polls the returned [`Connection`].
    pub async fn connect_unspawned(&self) -> Result<(Client, Connection), ConnectError> {
        let (token, from_cache) = self.current_token().await?;
        match self.attempt(&token).await {
            Ok(pair) => Ok(pair),
            Err(Attempt::Pg(e, user)) if from_cache && is_auth_failure(&e) => {
                // The server refused a token we had cached (revoked, rotated keys, clock skew):
                // fetch a new one and try exactly once more.
                let fresh = self
                    .inner
                    .tokens
                    .force_refresh(&self.inner.scope)
                    .await
                    .map_err(ConnectError::Token)?;
                if fresh.secret() == token.secret() {
                    // Rate-limited refresh returned the same token: retrying cannot help.
                    return Err(ConnectError::Rejected {
                        user,
                        retried: false,
                        source: e,
                    });
                }
                tracing::info!(
                    role = %user,
                    "PostgreSQL refused the cached token; retrying once with a refreshed token"
                );
                self.check_not_expired(&fresh)?;
                self.attempt(&fresh).await.map_err(|a| a.into_error(true))
            }
            Err(a) => Err(a.into_error(false)),
        }
    }

    /// The cached token if there is one (and whether it came from the cache), else a fetched
    /// one. Never an expired one.
    async fn current_token(&self) -> Result<(AccessToken, bool), ConnectError> {
        let scope = &self.inner.scope;
        let (token, from_cache) = match self.inner.tokens.cached(scope) {
            Some(t) => (t, true),
            None => (
                self.inner
                    .tokens
                    .get_token(scope)
                    .await
                    .map_err(ConnectError::Token)?,
                false,
            ),
        };
        if self.is_expired(&token) {
            // The cache promises this cannot happen; if it does, ask for a new token rather
            // than send one the server must refuse.
            let fresh = self
                .inner
                .tokens
                .force_refresh(scope)
                .await
                .map_err(ConnectError::Token)?;
            self.check_not_expired(&fresh)?;
            return Ok((fresh, false));
        }
        Ok((token, from_cache))
    }

    fn is_expired(&self, token: &AccessToken) -> bool {
        let now: SystemTime = self.inner.tokens.options().clock.now();
        token.expires_on() <= now
    }

    fn check_not_expired(&self, token: &AccessToken) -> Result<(), ConnectError> {
        if self.is_expired(token) {
            return Err(ConnectError::Token(pgentra_token::Error::other(
                ErrorKind::Expired,
                "the token source returned an expired token; refusing to send it",
            )));
        }
        Ok(())
    }

    async fn attempt(&self, token: &AccessToken) -> Result<(Client, Connection), Attempt> {
        let mut cfg = self.inner.base.clone();
        let user = match &self.inner.user {
            Some(u) => u.clone(),
            None => {
                let u = user_name_from_token(token).ok_or(Attempt::NoUser)?;
                cfg.user(&u);
                u
            }
        };
        cfg.password(token.secret());
        cfg.connect(self.inner.tls.0.clone())
            .await
            .map_err(|e| Attempt::Pg(e, user))
    }
}

enum Attempt {
    NoUser,
    Pg(tokio_postgres::Error, String),
}

impl Attempt {
    fn into_error(self, retried: bool) -> ConnectError {
        match self {
            Attempt::NoUser => ConnectError::NoUserName,
            Attempt::Pg(e, user) if is_auth_failure(&e) => ConnectError::Rejected {
                user,
                retried,
                source: e,
            },
            Attempt::Pg(e, _) => ConnectError::Postgres(e),
        }
    }
}

/// Opens one connection for `settings` with the current token from `tokens`, and spawns its
/// I/O task. For many connections, build a [`Connector`] once (or a pool) instead.
pub async fn connect(
    settings: &ConnectionSettings,
    tokens: &TokenCache,
    tls: &Tls,
) -> Result<(Client, JoinHandle<()>), ConnectError> {
    Connector::new(settings, tokens.clone(), tls)?
        .connect()
        .await
}
