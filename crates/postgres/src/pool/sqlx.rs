//! An sqlx `PgPool` that opens every new connection with the current token. sqlx 0.9 has no
//! per-connection hook, so a refresher task swaps the pool's connect options
//! (`Pool::set_connect_options`) whenever the token cache holds a new token; the pool is lazy, so
//! nothing connects before the first token is in place. Never logs a token.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use pgentra_token::{AccessToken, OSSRDBMS_SCOPE, TokenCache};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use tokio::task::JoinHandle;

use crate::connect::ConnectError;
use crate::settings::{ConnectionSettings, SslMode};
use crate::user::user_name_from_token;

/// How often the refresher looks at the cache at most (a memory read; the cache itself refreshes
/// minutes before expiry, so the pool is never more than this behind it).
const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(15);

/// Options of [`pool`].
#[derive(Debug, Clone)]
pub struct Options {
    pool: PgPoolOptions,
    base: Option<PgConnectOptions>,
    ca_file: Option<PathBuf>,
    check_every: Duration,
    scope: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool: PgPoolOptions::new(),
            base: None,
            ca_file: None,
            check_every: DEFAULT_CHECK_EVERY,
            scope: OSSRDBMS_SCOPE.to_owned(),
        }
    }
}

impl Options {
    /// sqlx pool options (size, timeouts, `max_lifetime`, `after_connect`, …).
    pub fn pool_options(mut self, pool: PgPoolOptions) -> Self {
        self.pool = pool;
        self
    }

    /// Base connect options (statement cache, application name, …); host, port, database,
    /// user, password and sslmode are overwritten from the settings and the token. Without it,
    /// `PgConnectOptions::new_without_pgpass()` is used, which reads `PG*` variables.
    pub fn connect_options(mut self, base: PgConnectOptions) -> Self {
        self.base = Some(base);
        self
    }

    /// A CA file to trust for `verify-ca`/`verify-full` (sqlx otherwise trusts the Mozilla
    /// roots of `webpki-roots`).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// How often the refresher checks the cache for a new token (default 15 s).
    pub fn check_every(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// The token scope (default: Azure Database for PostgreSQL).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }
}

/// A `PgPool` kept supplied with current tokens. Derefs to [`PgPool`]; clones share the pool and
/// the refresher, which stops when the last clone is dropped or the pool is closed. Keep this
/// handle (not only a `PgPool` cloned out of it) for as long as the pool is used.
#[derive(Debug, Clone)]
pub struct EntraPool {
    pool: PgPool,
    refresher: Arc<Refresher>,
    swaps: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Refresher(JoinHandle<()>);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Deref for EntraPool {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl EntraPool {
    /// The sqlx pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many times the refresher has handed the pool a new token (for metrics and tests).
    pub fn token_swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Whether the refresher task is still running.
    pub fn refresher_running(&self) -> bool {
        !self.refresher.0.is_finished()
    }
}

/// Builds a lazy pool for `settings` with the current token from `tokens` (fetched once here, so
/// the first connections already have it) and starts the refresher.
pub async fn pool(
    settings: &ConnectionSettings,
    tokens: TokenCache,
    options: Options,
) -> Result<EntraPool, ConnectError> {
    let mut base = options
        .base
        .clone()
        .unwrap_or_else(PgConnectOptions::new_without_pgpass)
        .host(&settings.host)
        .port(settings.port)
        .database(&settings.database)
        .ssl_mode(match settings.ssl_mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    if let Some(ca) = &options.ca_file {
        base = base.ssl_root_cert(ca);
    }
    let token = tokens
        .get_token(&options.scope)
        .await
        .map_err(ConnectError::Token)?;
    let user = settings.user.clone();
    let first = with_token(&base, user.as_deref(), &token).ok_or(ConnectError::NoUserName)?;
    let pool = options.pool.clone().connect_lazy_with(first);
    let swaps = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(refresh(
        Refresh {
            pool: pool.clone(),
            base,
            user,
            tokens,
            scope: options.scope.clone(),
            check_every: options.check_every,
            swaps: swaps.clone(),
        },
        token,
    ));
    Ok(EntraPool {
        pool,
        refresher: Arc::new(Refresher(task)),
        swaps,
    })
}

fn with_token(
    base: &PgConnectOptions,
    user: Option<&str>,
    token: &AccessToken,
) -> Option<PgConnectOptions> {
    let user = match user {
        Some(u) => u.to_owned(),
        None => user_name_from_token(token)?,
    };
    Some(base.clone().username(&user).password(token.secret()))
}

/// What the refresher task owns.
struct Refresh {
    pool: PgPool,
    base: PgConnectOptions,
    user: Option<String>,
    tokens: TokenCache,
    scope: String,
    check_every: Duration,
    swaps: Arc<AtomicU64>,
}

async fn refresh(r: Refresh, mut current: AccessToken) {
    let Refresh {
        pool,
        base,
        user,
        tokens,
        scope,
        check_every,
        swaps,
    } = r;
    let mut closed = pool.close_event();
    let margin = tokens.options().expiry_margin;
    loop {
        // Wake at the check interval, or earlier when the pool's token nears its expiry.
        let now = tokens.options().clock.now();
        let until_stale = current
            .expires_on()
            .checked_sub(margin)
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or(Duration::ZERO);
        let wait = check_every.min(until_stale.max(Duration::from_millis(200)));
        tokio::select! {
            _ = &mut closed => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match tokens.get_token(&scope).await {
            Ok(t) if t.secret() != current.secret() => match with_token(&base, user.as_deref(), &t)
            {
                Some(opts) => {
                    pool.set_connect_options(opts);
                    swaps.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(expires_in = ?t.expires_on().duration_since(SystemTime::now()).ok(), "sqlx pool now uses a refreshed token");
                    current = t;
                }
                None => tracing::warn!(
                    "the refreshed token has no claim to derive a user name from; keeping the previous one"
                ),
            },
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the token for the sqlx pool; will retry")
            }
        }
    }
}
