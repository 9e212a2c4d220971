//! The emulator's controllable clock: wall time shifted by an offset tests can set.
//!
//! Only token times (`iat`/`nbf`/`exp`, `expires_on`) and assertion checks read it; it never
//! sleeps and never changes process time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Handle on the emulator's clock (cheap to clone; all clones share the offset).
///
/// Setting an offset makes the emulator issue tokens as if it were that much later (positive) or
/// earlier (negative): e.g. `set_offset(-7200)` issues tokens that are already expired, and
/// `set_offset(3600)` tokens that are not yet valid for a verifier on the real clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

#[derive(Debug, Default)]
struct ClockInner {
    offset_secs: AtomicI64,
    /// Bumped on every change so caches of issued tokens can tell they are stale.
    generation: AtomicU64,
}

impl Clock {
    /// Shifts the emulator's time by `secs` relative to the wall clock (replaces any earlier
    /// offset).
    pub fn set_offset(&self, secs: i64) {
        self.inner.offset_secs.store(secs, Ordering::SeqCst);
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Moves the emulator's time forward by `secs` (backward when negative).
    pub fn advance(&self, secs: i64) {
        self.inner.offset_secs.fetch_add(secs, Ordering::SeqCst);
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The current offset in seconds.
    pub fn offset(&self) -> i64 {
        self.inner.offset_secs.load(Ordering::SeqCst)
    }

    /// The emulator's current time.
    pub fn now(&self) -> SystemTime {
        let offset = self.offset();
        let magnitude = Duration::from_secs(offset.unsigned_abs());
        let wall = SystemTime::now();
        let shifted = if offset >= 0 {
            wall.checked_add(magnitude)
        } else {
            wall.checked_sub(magnitude)
        };
        shifted.unwrap_or(wall)
    }

    /// The emulator's current time as epoch seconds.
    pub fn now_epoch(&self) -> i64 {
        match self.now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_shifts_now_both_ways() {
        let clock = Clock::default();
        let base = clock.now_epoch();
        clock.set_offset(-7200);
        assert!((clock.now_epoch() - (base - 7200)).abs() <= 2);
        clock.advance(10_000);
        assert!((clock.now_epoch() - (base + 2800)).abs() <= 2);
        assert_eq!(clock.offset(), 2800);
        assert_eq!(clock.generation(), 2);
    }
}
