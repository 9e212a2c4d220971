//! A token cache around any [`TokenSource`]: refresh-ahead, single-flight, backoff, metrics.
//!
//! Serves tokens from memory on the hot path (two uncontended read locks and an `Arc` clone);
//! never returns a token that expires within the safety margin, and never replaces a
//! still-valid token with a failure. It knows nothing of PostgreSQL.

mod entry;
mod schedule;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::secret::AccessToken;
use crate::source::TokenSource;
use entry::Entry;

/// Where refreshes happen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshMode {
    /// A background task per scope refreshes ahead of expiry; callers never wait once warm.
    #[default]
    Background,
    /// No background task: the first caller past the refresh point refreshes (others keep
    /// getting the still-valid token). For CPU-throttled hosts (serverless, scale-to-zero),
    /// where background work may not run.
    Lazy,
}

/// Cache settings. Defaults follow the Azure SDKs and the Cloud SQL proxy.
#[derive(Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Background (default) or lazy refresh.
    pub mode: RefreshMode,
    /// A token expiring within this margin is never returned (default 30 s), so a connection
    /// attempt started now still presents a valid token.
    pub expiry_margin: Duration,
    /// Refresh no later than this long before expiry (default 5 min).
    pub refresh_before_expiry: Duration,
    /// Rate limit: no proactive or forced refresh sooner than this after a successful fetch
    /// (default 30 s).
    pub min_refresh_interval: Duration,
    /// First retry delay after a failed refresh (default 2 s), doubled per failure, jittered.
    pub retry_initial: Duration,
    /// Longest retry delay (default 60 s).
    pub retry_max: Duration,
    /// Limit for one fetch from the source (default 60 s).
    pub fetch_timeout: Duration,
    /// The clock tokens are compared against.
    pub clock: Arc<dyn Clock>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            mode: RefreshMode::Background,
            expiry_margin: Duration::from_secs(30),
            refresh_before_expiry: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(30),
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for CacheOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheOptions")
            .field("mode", &self.mode)
            .field("expiry_margin", &self.expiry_margin)
            .field("refresh_before_expiry", &self.refresh_before_expiry)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("clock", &self.clock)
            .finish()
    }
}

impl CacheOptions {
    /// Sets the refresh mode.
    pub fn with_mode(mut self, mode: RefreshMode) -> Self {
        self.mode = mode;
        self
    }

    /// Lazy refresh (no background task).
    pub fn lazy(self) -> Self {
        self.with_mode(RefreshMode::Lazy)
    }

    /// Uses `clock` instead of the system clock (tests, simulations).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the expiry safety margin.
    pub fn with_expiry_margin(mut self, margin: Duration) -> Self {
        self.expiry_margin = margin;
        self
    }

    /// Sets the rate limit between refreshes.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// Sets the retry backoff bounds.
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// Sets the per-fetch timeout.
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }
}

/// Counters of one scope's cache entry, for metrics and health checks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CacheStats {
    /// The scope.
    pub scope: String,
    /// Requests made to the source (successful or not).
    pub fetches: u64,
    /// Failed requests.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Time left on the cached token (`None` when there is none; zero once expired).
    pub expires_in: Option<Duration>,
    /// When the cached token will be refreshed.
    pub refresh_at: Option<SystemTime>,
    /// When the cached token was fetched.
    pub fetched_at: Option<SystemTime>,
    /// The error of the latest attempt, when it failed.
    pub last_error: Option<Error>,
}

impl CacheStats {
    /// Whole seconds until the cached token expires (0 when none or expired), for a gauge.
    pub fn seconds_to_expiry(&self) -> u64 {
        self.expires_in.map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A cache of tokens from one source, keyed by scope.
///
/// Clones share the cache. When the last clone is dropped, the background refresh tasks stop.
/// Needs a Tokio runtime for background refresh; without one it behaves as [`RefreshMode::Lazy`].
#[derive(Clone)]
pub struct TokenCache {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(crate) struct Shared {
    source: Arc<dyn TokenSource>,
    opts: CacheOptions,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        let scopes: Vec<String> = shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("TokenCache")
            .field("source", &shared.source.name())
            .field("mode", &shared.opts.mode)
            .field("scopes", &scopes)
            .finish()
    }
}

impl TokenCache {
    /// A cache around `source` with default options.
    pub fn new(source: impl TokenSource + 'static) -> Self {
        Self::with_options(source, CacheOptions::default())
    }

    /// A cache around `source`.
    pub fn with_options(source: impl TokenSource + 'static, options: CacheOptions) -> Self {
        Self::from_arc(Arc::new(source), options)
    }

    /// A cache around a shared source.
    pub fn from_arc(source: Arc<dyn TokenSource>, options: CacheOptions) -> Self {
        TokenCache {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared {
                    source,
                    opts: options,
                    entries: RwLock::new(HashMap::new()),
                }),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// A token for `scope`: from memory when one is valid beyond the safety margin, otherwise
    /// fetched (concurrent callers share one fetch).
    pub async fn get_token(&self, scope: &str) -> Result<AccessToken, Error> {
        if let Some(t) = self.cached(scope) {
            return Ok(t);
        }
        self.handle
            .shared
            .slow_path(scope, &self.handle.cancel)
            .await
    }

    /// The cached token for `scope` if it can be served without any I/O right now.
    pub fn cached(&self, scope: &str) -> Option<AccessToken> {
        self.handle.shared.fast_path(scope)
    }

    /// Fetches a new token now, e.g. after the server rejected the cached one. Concurrent calls
    /// share one fetch; within [`CacheOptions::min_refresh_interval`] of the last fetch the
    /// current token is returned instead (rate limit). A failure leaves a still-valid cached
    /// token in place.
    pub async fn force_refresh(&self, scope: &str) -> Result<AccessToken, Error> {
        self.handle.shared.force(scope, &self.handle.cancel).await
    }

    /// Counters for `scope`, once it has been requested.
    pub fn stats(&self, scope: &str) -> Option<CacheStats> {
        let shared = &self.handle.shared;
        let entries = shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        entries.get(scope).map(|e| e.stats(shared.opts.clock.now()))
    }

    /// Counters for every scope requested so far.
    pub fn all_stats(&self) -> Vec<CacheStats> {
        let shared = &self.handle.shared;
        let now = shared.opts.clock.now();
        let entries = shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<CacheStats> = entries.values().map(|e| e.stats(now)).collect();
        out.sort_by(|a, b| a.scope.cmp(&b.scope));
        out
    }

    /// The wrapped source's name.
    pub fn source_name(&self) -> &str {
        self.handle.shared.source.name()
    }

    /// The options in force.
    pub fn options(&self) -> &CacheOptions {
        &self.handle.shared.opts
    }
}

impl TokenSource for TokenCache {
    fn name(&self) -> &str {
        self.source_name()
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(TokenCache::get_token(self, scope))
    }
}
