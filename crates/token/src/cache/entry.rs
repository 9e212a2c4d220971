//! One scope's cache entry: the current token, the single-flight lock, the schedule, counters,
//! and the background refresh loop.
//!
//! Only [`Shared::fetch_locked`] calls the source, and only while holding the entry's flight
//! lock; a failure updates the schedule and counters but never the current token.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use tokio::sync::{MutexGuard, Notify};
use tokio_util::sync::CancellationToken;

use super::{CacheStats, RefreshMode, Shared, schedule};
use crate::error::{Error, ErrorKind};
use crate::secret::AccessToken;
use crate::time_fmt::rfc3339;

struct Cached {
    token: AccessToken,
    fetched_at: SystemTime,
    refresh_at: SystemTime,
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    retry_at: Option<SystemTime>,
    last_error: Option<Error>,
}

pub(crate) struct Entry {
    scope: String,
    current: RwLock<Option<Cached>>,
    state: Mutex<State>,
    /// Single flight: only its holder calls the source.
    flight: tokio::sync::Mutex<()>,
    /// Completed attempts; a waiter that sees it change shares that attempt's outcome.
    attempts: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
    /// Tells the background task the schedule changed.
    wake: Notify,
    task_started: AtomicBool,
}

impl Entry {
    fn new(scope: &str) -> Entry {
        Entry {
            scope: scope.to_owned(),
            current: RwLock::new(None),
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            wake: Notify::new(),
            task_started: AtomicBool::new(false),
        }
    }

    /// The cached token if it is valid beyond `margin` at `now`.
    fn usable(&self, shared: &Shared, now: SystemTime) -> Option<AccessToken> {
        let cur = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let c = cur.as_ref()?;
        (!c.token.expires_within(now, shared.opts.expiry_margin)).then(|| c.token.clone())
    }

    /// When the next proactive refresh is due: the refresh point, pushed back by failure
    /// backoff. `None` without a token (the next caller fetches).
    fn next_due(&self) -> Option<SystemTime> {
        let cur = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let refresh_at = cur.as_ref()?.refresh_at;
        drop(cur);
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Some(match state.retry_at {
            Some(r) if r > refresh_at => r,
            _ => refresh_at,
        })
    }

    fn proactive_due(&self, now: SystemTime) -> bool {
        self.next_due().is_some_and(|due| now >= due)
    }

    fn last_error(&self) -> Option<Error> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error
            .clone()
    }

    pub(crate) fn stats(&self, now: SystemTime) -> CacheStats {
        let cur = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        CacheStats {
            scope: self.scope.clone(),
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: state.consecutive_failures,
            expires_in: cur.as_ref().map(|c| c.token.expires_in(now)),
            refresh_at: cur.as_ref().map(|c| c.refresh_at),
            fetched_at: cur.as_ref().map(|c| c.fetched_at),
            last_error: state.last_error.clone(),
        }
    }
}

impl Shared {
    pub(crate) fn fast_path(&self, scope: &str) -> Option<AccessToken> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(scope)?;
        let cur = entry.current.read().unwrap_or_else(PoisonError::into_inner);
        let c = cur.as_ref()?;
        let now = self.opts.clock.now();
        if c.token.expires_within(now, self.opts.expiry_margin) {
            return None;
        }
        // Lazy mode refreshes on the caller's path, so a due token takes the slow path.
        if self.opts.mode == RefreshMode::Lazy && now >= c.refresh_at {
            return None;
        }
        Some(c.token.clone())
    }

    fn entry(&self, scope: &str) -> Arc<Entry> {
        if let Some(e) = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
        {
            return e.clone();
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries
            .entry(scope.to_owned())
            .or_insert_with(|| Arc::new(Entry::new(scope)))
            .clone()
    }

    fn ensure_task(self: &Arc<Self>, entry: &Arc<Entry>, cancel: &CancellationToken) {
        if self.opts.mode != RefreshMode::Background
            || entry.task_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(refresh_loop(self.clone(), entry.clone(), cancel.clone()));
            }
            // No runtime: callers refresh on their path when the token runs low.
            Err(_) => entry.task_started.store(false, Ordering::Release),
        }
    }

    pub(crate) async fn slow_path(
        self: &Arc<Self>,
        scope: &str,
        cancel: &CancellationToken,
    ) -> Result<AccessToken, Error> {
        let entry = self.entry(scope);
        self.ensure_task(&entry, cancel);
        let now = self.opts.clock.now();
        if let Some(tok) = entry.usable(self, now) {
            if self.opts.mode != RefreshMode::Lazy || !entry.proactive_due(now) {
                return Ok(tok);
            }
            // Lazy refresh: whoever gets the flight lock refreshes; everyone else (and the
            // refresher, if it fails) keeps using the still-valid token.
            if let Ok(guard) = entry.flight.try_lock()
                && entry.proactive_due(self.opts.clock.now())
                && let Ok(fresh) = self.fetch_locked(&entry, &guard).await
            {
                return Ok(fresh);
            }
            if let Some(tok) = entry.usable(self, self.opts.clock.now()) {
                return Ok(tok);
            }
        }
        self.fetch_shared(&entry).await
    }

    /// Cold path: one caller fetches, the others wait and share its outcome.
    async fn fetch_shared(&self, entry: &Entry) -> Result<AccessToken, Error> {
        let seen = entry.attempts.load(Ordering::Acquire);
        let guard = entry.flight.lock().await;
        if let Some(tok) = entry.usable(self, self.opts.clock.now()) {
            return Ok(tok);
        }
        if entry.attempts.load(Ordering::Acquire) != seen
            && let Some(err) = entry.last_error()
        {
            return Err(err);
        }
        self.fetch_locked(entry, &guard).await
    }

    pub(crate) async fn force(
        self: &Arc<Self>,
        scope: &str,
        cancel: &CancellationToken,
    ) -> Result<AccessToken, Error> {
        let entry = self.entry(scope);
        self.ensure_task(&entry, cancel);
        let seen = entry.attempts.load(Ordering::Acquire);
        let guard = entry.flight.lock().await;
        let now = self.opts.clock.now();
        if entry.attempts.load(Ordering::Acquire) != seen {
            // Another fetch finished after this call began: its result is at least as fresh.
            if let Some(tok) = entry.usable(self, now) {
                return Ok(tok);
            }
            if let Some(err) = entry.last_error() {
                return Err(err);
            }
        }
        let recent = {
            let cur = entry.current.read().unwrap_or_else(PoisonError::into_inner);
            cur.as_ref().and_then(|c| {
                let young = now
                    .duration_since(c.fetched_at)
                    .map(|age| age < self.opts.min_refresh_interval)
                    .unwrap_or(true);
                (young && !c.token.expires_within(now, self.opts.expiry_margin))
                    .then(|| c.token.clone())
            })
        };
        if let Some(tok) = recent {
            tracing::debug!(
                scope,
                "forced refresh rate-limited; returning the token fetched moments ago"
            );
            return Ok(tok);
        }
        self.fetch_locked(&entry, &guard).await
    }

    /// Calls the source. The guard proves the caller holds the entry's flight lock.
    async fn fetch_locked(
        &self,
        entry: &Entry,
        _flight: &MutexGuard<'_, ()>,
    ) -> Result<AccessToken, Error> {
        entry.fetches.fetch_add(1, Ordering::Relaxed);
        let name = self.source.name();
        let outcome =
            tokio::time::timeout(self.opts.fetch_timeout, self.source.get_token(&entry.scope))
                .await;
        let now = self.opts.clock.now();
        let result = match outcome {
            Ok(r) => r,
            Err(_) => Err(Error::other(
                ErrorKind::Timeout,
                format!("no token within {:?}", self.opts.fetch_timeout),
            )
            .with_credential(name.to_owned())),
        }
        .and_then(|tok| {
            if tok.expires_within(now, self.opts.expiry_margin) {
                Err(Error::other(
                    ErrorKind::Expired,
                    format!(
                        "the token received expires at {}, which is not after now ({}) plus the {:?} safety margin: check the clocks of this host and of the identity endpoint",
                        rfc3339(tok.expires_on()),
                        rfc3339(now),
                        self.opts.expiry_margin
                    ),
                )
                .with_credential(name.to_owned()))
            } else {
                Ok(tok)
            }
        });
        match &result {
            Ok(tok) => {
                let refresh_at = schedule::refresh_at(now, tok, &self.opts);
                *entry
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Cached {
                    token: tok.clone(),
                    fetched_at: now,
                    refresh_at,
                });
                let mut st = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
                *st = State::default();
                tracing::debug!(
                    credential = name,
                    scope = %entry.scope,
                    expires_on = %rfc3339(tok.expires_on()),
                    refresh_at = %rfc3339(refresh_at),
                    "token fetched"
                );
            }
            Err(err) => {
                entry.failures.fetch_add(1, Ordering::Relaxed);
                let mut st = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
                st.consecutive_failures = st.consecutive_failures.saturating_add(1);
                st.retry_at = Some(now + schedule::backoff(st.consecutive_failures, &self.opts));
                st.last_error = Some(err.clone());
                tracing::warn!(
                    credential = name,
                    scope = %entry.scope,
                    failures = st.consecutive_failures,
                    error = %err,
                    "token fetch failed"
                );
            }
        }
        entry.attempts.fetch_add(1, Ordering::AcqRel);
        entry.wake.notify_one();
        result
    }
}

/// Background refresh of one entry; ends when the last cache handle is dropped.
async fn refresh_loop(shared: Arc<Shared>, entry: Arc<Entry>, cancel: CancellationToken) {
    let clock = shared.opts.clock.clone();
    loop {
        let due = entry.next_due();
        let sleep = async {
            match due {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = entry.wake.notified() => continue,
            _ = sleep => {}
        }
        if !entry.proactive_due(clock.now()) {
            continue;
        }
        let guard = tokio::select! {
            _ = cancel.cancelled() => return,
            g = entry.flight.lock() => g,
        };
        if !entry.proactive_due(clock.now()) {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shared.fetch_locked(&entry, &guard) => {}
        }
    }
}
