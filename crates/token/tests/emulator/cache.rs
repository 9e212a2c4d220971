//! The token cache against the emulator: single flight, refresh-ahead on a manual clock, faults
//! while a token is cached, expiry, lazy mode, forced refresh, and shutdown on drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use pgentra_emulator::{EndpointKind, Fault, RunningEmulator};
use pgentra_token::{
    AccessToken, CacheOptions, Clock, Error, ErrorKind, ManagedIdentityCredential, ManualClock,
    OSSRDBMS_SCOPE, TokenCache, from_fn,
};

use crate::common::*;

const S: &str = OSSRDBMS_SCOPE;

fn app_service(emu: &RunningEmulator) -> ManagedIdentityCredential {
    ManagedIdentityCredential::app_service(&emu.identity_endpoint(), emu.identity_header(), mi(emu))
        .unwrap()
}

fn app_service_with_timeout(emu: &RunningEmulator, timeout: Duration) -> ManagedIdentityCredential {
    let mut o = mi(emu);
    o.http = o.http.with_timeout(timeout);
    ManagedIdentityCredential::app_service(&emu.identity_endpoint(), emu.identity_header(), o)
        .unwrap()
}

/// Time from the fetch to the scheduled refresh, per the documented rule.
fn expected_refresh_delay(tok: &AccessToken, fetched_at: SystemTime) -> Duration {
    let remaining = tok.expires_in(fetched_at);
    (remaining / 2).min(remaining.saturating_sub(Duration::from_secs(300)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_callers_make_one_request() {
    let emu = emulator_with(uncached_mi_config()).await;
    let cache = TokenCache::new(app_service(&emu));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let c = cache.clone();
        tasks.spawn(async move { c.get_token(S).await.map(|t| t.secret().to_owned()) });
    }
    let mut secrets = std::collections::HashSet::new();
    while let Some(r) = tasks.join_next().await {
        secrets.insert(r.unwrap().unwrap());
    }
    assert_eq!(secrets.len(), 1, "every caller got the same token");
    assert_eq!(
        count(&emu, EndpointKind::AppService),
        1,
        "{:?}",
        emu.requests()
    );
    let st = cache.stats(S).unwrap();
    assert_eq!((st.fetches, st.failures), (1, 0));
    assert!(st.seconds_to_expiry() > 23 * 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_callers_share_a_failed_fetch() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let src = from_fn("slow-failing", move |_scope: String| {
        let calls = c2.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err::<AccessToken, _>(Error::other(ErrorKind::Upstream, "HTTP 500"))
        }
    });
    let cache = TokenCache::new(src);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let c = cache.clone();
        tasks.spawn(async move { c.get_token(S).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap_err().kind(), ErrorKind::Upstream);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats(S).unwrap().failures, 1);
}

#[tokio::test]
async fn refreshes_in_the_background_at_half_the_remaining_lifetime() {
    let emu = emulator_with(uncached_mi_config()).await;
    let clock = ManualClock::starting_now();
    let cache = TokenCache::with_options(
        app_service(&emu),
        CacheOptions::default().with_clock(clock.clone()),
    );
    let t1 = cache.get_token(S).await.unwrap();
    let st = cache.stats(S).unwrap();
    let fetched_at = st.fetched_at.unwrap();
    let delay = expected_refresh_delay(&t1, fetched_at);
    assert!(
        delay > Duration::from_secs(11 * 3600),
        "24 h token refreshes after ~12 h: {delay:?}"
    );
    assert_eq!(st.refresh_at, Some(fetched_at + delay));

    clock.advance(delay - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(&emu, EndpointKind::AppService), 1, "not due yet");
    assert_eq!(cache.cached(S).unwrap().secret(), t1.secret());

    // The identity endpoint lives in the same (shifted) time.
    emu.clock().set_offset(delay.as_secs() as i64);
    clock.advance(Duration::from_secs(2));
    // `fetches` counts a fetch when it starts; the new token is visible once it has finished.
    eventually("background refresh", || {
        cache.cached(S).is_some_and(|t| t.secret() != t1.secret())
    })
    .await;
    assert_eq!(cache.stats(S).unwrap().fetches, 2);
    let t2 = cache.get_token(S).await.unwrap();
    assert_ne!(t2.secret(), t1.secret());
    assert!(t2.expires_on() > t1.expires_on());
    assert_eq!(count(&emu, EndpointKind::AppService), 2);
}

#[tokio::test]
async fn a_failing_endpoint_never_replaces_a_valid_token_and_recovery_follows() {
    let faults: [(&str, Fault, ErrorKind); 4] = [
        (
            "500",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
            ErrorKind::Upstream,
        ),
        (
            "429",
            Fault::Status {
                status: 429,
                retry_after: Some(1),
            },
            ErrorKind::Throttled,
        ),
        (
            "timeout",
            Fault::Delay(Duration::from_secs(5)),
            ErrorKind::Timeout,
        ),
        ("dropped connection", Fault::Drop, ErrorKind::Unreachable),
    ];
    for (name, fault, kind) in faults {
        let emu = emulator_with(uncached_mi_config()).await;
        let clock = ManualClock::starting_now();
        let opts = CacheOptions::default().with_clock(clock.clone());
        let cache = TokenCache::with_options(
            app_service_with_timeout(&emu, Duration::from_millis(300)),
            opts,
        );
        let t1 = cache.get_token(S).await.unwrap();
        let delay = expected_refresh_delay(&t1, cache.stats(S).unwrap().fetched_at.unwrap());

        emu.faults().inject(EndpointKind::AppService, fault, None);
        clock.advance(delay + Duration::from_secs(1));
        eventually(name, || cache.stats(S).unwrap().failures >= 1).await;
        let st = cache.stats(S).unwrap();
        assert_eq!(
            st.last_error.as_ref().map(Error::kind),
            Some(kind),
            "{name}: {:?}",
            st.last_error
        );
        assert_eq!(st.consecutive_failures, 1, "{name}");
        assert!(st.seconds_to_expiry() > 11 * 3600, "{name}");
        // Still served, from memory.
        assert_eq!(cache.cached(S).unwrap().secret(), t1.secret(), "{name}");
        assert_eq!(
            cache.get_token(S).await.unwrap().secret(),
            t1.secret(),
            "{name}"
        );

        // Backoff: the next attempt comes after the retry delay, not before.
        clock.advance(CacheOptions::default().retry_max);
        eventually(name, || cache.stats(S).unwrap().failures >= 2).await;

        emu.faults().clear();
        clock.advance(CacheOptions::default().retry_max);
        eventually(name, || cache.stats(S).unwrap().consecutive_failures == 0).await;
        let st = cache.stats(S).unwrap();
        assert!(st.last_error.is_none(), "{name}");
        assert_ne!(
            cache.get_token(S).await.unwrap().secret(),
            t1.secret(),
            "{name}: recovered"
        );
    }
}

#[tokio::test]
async fn an_already_expired_token_is_never_returned() {
    let emu = emulator_with(uncached_mi_config()).await;
    let cache = TokenCache::new(app_service(&emu));
    // 24 h token issued 24 h + 2 min ago: expired on arrival.
    emu.clock().set_offset(-(86_400 + 120));
    let e = cache.get_token(S).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Expired, "{e}");
    assert!(e.to_string().contains("clock"), "{e}");
    // Expiring inside the 30 s safety margin counts too.
    emu.clock().set_offset(-(86_400 - 10));
    assert_eq!(
        cache.get_token(S).await.unwrap_err().kind(),
        ErrorKind::Expired
    );
    assert!(cache.cached(S).is_none());
    assert_eq!(cache.stats(S).unwrap().failures, 2);
    emu.clock().set_offset(0);
    assert!(cache.get_token(S).await.is_ok());
}

#[tokio::test]
async fn a_cached_token_near_expiry_is_not_served() {
    let emu = emulator_with(uncached_mi_config()).await;
    let clock = ManualClock::starting_now();
    let cache = TokenCache::with_options(
        app_service(&emu),
        CacheOptions::default().lazy().with_clock(clock.clone()),
    );
    let t1 = cache.get_token(S).await.unwrap();
    emu.faults().inject(
        EndpointKind::AppService,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        None,
    );
    let to_margin = t1.expires_in(clock.now()) - Duration::from_secs(31);
    clock.advance(to_margin);
    assert_eq!(
        cache.get_token(S).await.unwrap().secret(),
        t1.secret(),
        "31 s left: still served"
    );
    clock.advance(Duration::from_secs(2));
    assert!(cache.cached(S).is_none());
    let e = cache.get_token(S).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Upstream,
        "29 s left: never served, fetch attempted: {e}"
    );
    assert!(e.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_mode_refreshes_on_the_callers_path_once() {
    let emu = emulator_with(uncached_mi_config()).await;
    let clock = ManualClock::starting_now();
    let cache = TokenCache::with_options(
        app_service(&emu),
        CacheOptions::default().lazy().with_clock(clock.clone()),
    );
    let t1 = cache.get_token(S).await.unwrap();
    let delay = expected_refresh_delay(&t1, clock.now());
    clock.advance(delay + Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        count(&emu, EndpointKind::AppService),
        1,
        "no background task in lazy mode"
    );

    emu.clock().set_offset(delay.as_secs() as i64);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let c = cache.clone();
        let now = clock.now();
        tasks.spawn(async move { c.get_token(S).await.map(|t| t.expires_in(now)) });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(
            r.unwrap().unwrap() > Duration::from_secs(3600),
            "every caller got a valid token"
        );
    }
    assert_eq!(
        count(&emu, EndpointKind::AppService),
        2,
        "exactly one refresh"
    );
    assert_ne!(cache.get_token(S).await.unwrap().secret(), t1.secret());

    // A failed lazy refresh keeps the valid token.
    let t2 = cache.get_token(S).await.unwrap();
    emu.faults().inject(
        EndpointKind::AppService,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        None,
    );
    clock.advance(expected_refresh_delay(&t2, clock.now()) + Duration::from_secs(1));
    assert_eq!(cache.get_token(S).await.unwrap().secret(), t2.secret());
    assert_eq!(cache.stats(S).unwrap().consecutive_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_refresh_is_single_flight_and_rate_limited() {
    let emu = emulator_with(uncached_mi_config()).await;
    let clock = ManualClock::starting_now();
    let cache = TokenCache::with_options(
        app_service(&emu),
        CacheOptions::default().with_clock(clock.clone()),
    );
    let t1 = cache.get_token(S).await.unwrap();
    let again = cache.force_refresh(S).await.unwrap();
    assert_eq!(
        again.secret(),
        t1.secret(),
        "within 30 s of the fetch: rate-limited"
    );
    assert_eq!(count(&emu, EndpointKind::AppService), 1);

    clock.advance(Duration::from_secs(31));
    emu.clock().set_offset(31);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let c = cache.clone();
        tasks.spawn(async move { c.force_refresh(S).await.map(|t| t.secret().to_owned()) });
    }
    let mut secrets = std::collections::HashSet::new();
    while let Some(r) = tasks.join_next().await {
        secrets.insert(r.unwrap().unwrap());
    }
    assert_eq!(secrets.len(), 1);
    assert!(!secrets.contains(t1.secret()));
    assert_eq!(
        count(&emu, EndpointKind::AppService),
        2,
        "50 forced refreshes, one request"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_background_task() {
    let marker = Arc::new(());
    let m = marker.clone();
    let src = from_fn("marked", move |_scope: String| {
        let _keep = m.clone();
        async move {
            Ok(AccessToken::new(
                "tok",
                SystemTime::now() + Duration::from_secs(3600),
            ))
        }
    });
    let cache = TokenCache::new(src);
    let clone = cache.clone();
    cache.get_token(S).await.unwrap();
    drop(cache);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        Arc::strong_count(&marker) > 1,
        "a clone keeps the cache alive"
    );
    assert_eq!(clone.get_token(S).await.unwrap().secret(), "tok");
    drop(clone);
    eventually("background task released the source", || {
        Arc::strong_count(&marker) == 1
    })
    .await;
}
