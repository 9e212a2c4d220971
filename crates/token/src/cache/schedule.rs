//! When to refresh and how long to back off: pure functions of times and options.
//!
//! No clock is read and nothing sleeps here, so every rule is unit-tested with plain numbers.

use std::time::{Duration, SystemTime};

use rand::Rng as _;

use super::CacheOptions;
use crate::secret::AccessToken;

/// When a token fetched at `fetched_at` should be refreshed: at half its remaining lifetime or
/// `refresh_before_expiry` before expiry, whichever is sooner, no later than the provider's
/// `refresh_on` hint, and no sooner than `min_refresh_interval` after the fetch.
pub(crate) fn refresh_at(
    fetched_at: SystemTime,
    token: &AccessToken,
    opts: &CacheOptions,
) -> SystemTime {
    let remaining = token.expires_in(fetched_at);
    let half = remaining / 2;
    let before = remaining.saturating_sub(opts.refresh_before_expiry);
    let mut delay = half.min(before);
    if let Some(hint) = token.refresh_on() {
        delay = delay.min(hint.duration_since(fetched_at).unwrap_or(Duration::ZERO));
    }
    fetched_at + delay.max(opts.min_refresh_interval)
}

/// Delay before retry number `failures` (1-based) after failed refreshes: exponential from
/// `retry_initial`, capped at `retry_max`, with jitter in [50 %, 100 %] so many processes
/// sharing an identity endpoint do not retry in step.
pub(crate) fn backoff(failures: u32, opts: &CacheOptions) -> Duration {
    let exp = opts
        .retry_initial
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let capped = exp.min(opts.retry_max);
    capped.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn refresh_point_table() {
        let opts = CacheOptions::default();
        // (lifetime, expected delay): half the lifetime vs 5 min before expiry, whichever is
        // sooner; never sooner than 30 s.
        let cases = [
            (86_400, 43_200), // MI token, 24 h → 12 h
            (3_600, 1_800),   // 1 h → 30 min
            (600, 300),       // 10 min → both give 5 min
            (480, 180),       // 8 min → 5 min before expiry = 3 min
            (200, 30),        // shorter than 5 min → rate limit floor
            (0, 30),
        ];
        for (lifetime, want) in cases {
            let t = AccessToken::new("x", at(1_000 + lifetime));
            assert_eq!(
                refresh_at(at(1_000), &t, &opts),
                at(1_000 + want),
                "lifetime {lifetime}"
            );
        }
        let hinted = AccessToken::new("x", at(1_000 + 86_400)).with_refresh_on(at(1_000 + 3_600));
        assert_eq!(refresh_at(at(1_000), &hinted, &opts), at(1_000 + 3_600));
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let opts = CacheOptions::default();
        for n in 1..=30 {
            let d = backoff(n, &opts);
            let full = opts
                .retry_initial
                .saturating_mul(1 << (n - 1).min(20))
                .min(opts.retry_max);
            assert!(d >= full / 2 && d <= full, "failure {n}: {d:?} vs {full:?}");
        }
        assert!(backoff(30, &opts) <= opts.retry_max);
    }
}
