//! Wall-clock time as an injected dependency, so cache tests can move time by hand.
//!
//! Token expiry is wall-clock (`exp` seconds since the epoch), so the cache compares tokens
//! against [`Clock::now`] and waits with [`Clock::sleep_until`]; nothing else reads time.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::watch;

/// A source of wall-clock time that can also wait.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// Resolves once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()>;
}

/// The real clock.
///
/// Sleeps in slices of at most a minute and re-reads the time after each, so a suspended
/// machine or a clock step does not leave a refresh scheduled on a stale timeline.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// Longest single sleep of [`SystemClock`].
const MAX_SLICE: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                let Ok(left) = deadline.duration_since(SystemTime::now()) else {
                    return;
                };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(MAX_SLICE)).await;
            }
        })
    }
}

/// A clock that moves only when told to, for tests and simulations.
///
/// Clones share the same time. Sleepers wake when [`ManualClock::advance`] or
/// [`ManualClock::set`] moves the time past their deadline.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<SystemTime>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        let (tx, _rx) = watch::channel(start);
        ManualClock { now: Arc::new(tx) }
    }

    /// A clock starting at the real current time.
    pub fn starting_now() -> Self {
        ManualClock::new(SystemTime::now())
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|t| *t += by);
    }

    /// Sets the time (it may go backwards, as a real clock can).
    pub fn set(&self, to: SystemTime) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline {
                    return;
                }
                if rx.changed().await.is_err() {
                    // Every handle of the clock is gone: time can never reach the deadline.
                    futures::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
        let sleeper = clock.sleep_until(SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        let task = tokio::spawn(sleeper);
        clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        clock.advance(Duration::from_secs(5));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("sleeper woke")
            .unwrap();
        assert_eq!(
            clock.now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(10)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_sleep_until_past_returns_at_once() {
        SystemClock.sleep_until(SystemTime::UNIX_EPOCH).await;
    }
}
