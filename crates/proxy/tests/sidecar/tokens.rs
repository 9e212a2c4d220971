//! Tokens: one identity request per refresh (not per connection), rotation to a new signing
//! key, a token the server refuses replaced once with a fresh one, and an identity endpoint
//! that is down with and without a cached token.

use std::time::{Duration, SystemTime};

use pgentra_emulator::{EndpointKind, Fault};
use pgentra_token::{CacheOptions, ManualClock, OSSRDBMS_SCOPE, TokenCache};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_new_connections_use_the_refreshed_token_and_identity_is_asked_once_per_refresh() {
    let stack = Stack::start().await;
    let clock = ManualClock::starting_now();
    let c2 = clock.clone();
    let tokens = stack.tokens_with(move |o| o.with_clock(c2));
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    let sc = stack.sidecar_with(config, tokens.clone()).await;
    let old_kid = stack.emu.current_kid();
    let first = tokens.cached(OSSRDBMS_SCOPE).expect("warm");
    assert_eq!(kid_of(first.secret()), old_kid);

    for _ in 0..5 {
        assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);
    }
    assert_eq!(stack.identity_requests(), 1, "{:?}", stack.emu.requests());
    // The gateway validated one token once and recognised it four more times.
    assert_eq!(
        (stack.logins("entra"), stack.logins("entra_cached")),
        (1, 4)
    );

    // Rotate the signing key, then move the cache's clock past the refresh point (half of the
    // 24 h lifetime): the background task fetches a token signed with the new key.
    let new_kid = stack.emu.rotate_signing_key();
    assert_ne!(new_kid, old_kid);
    clock.advance(Duration::from_secs(12 * 3600 + 60));
    assert!(
        eventually(Duration::from_secs(10), || tokens
            .cached(OSSRDBMS_SCOPE)
            .is_some_and(|t| kid_of(t.secret()) == new_kid))
        .await,
        "background refresh brought a token signed with the new key"
    );
    assert_eq!(tokens.stats(OSSRDBMS_SCOPE).unwrap().fetches, 2);

    for _ in 0..5 {
        assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);
    }
    assert_eq!(stack.identity_requests(), 2, "one request per refresh");
    assert_eq!(
        (stack.logins("entra"), stack.logins("entra_cached")),
        (2, 8),
        "the first connection after the refresh presented a token the gateway had not seen"
    );
    let text = sc.handle.metrics_text();
    assert!(
        text.contains(&format!(
            "pgentra_proxy_token_fetches_total{{scope=\"{OSSRDBMS_SCOPE}\"}} 2"
        )),
        "{text}"
    );
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_server_refuses_is_replaced_once_with_a_fresh_one() {
    // Every managed-identity request gets a newly minted token (no emulator-side cache).
    let mut emu = pgentra_emulator::Config::default();
    emu.lifetimes.mi_cache_secs = 0;
    let stack = Stack::start_with(emu).await;
    // The identity endpoint's clock runs two days behind, so it issues tokens that expired a
    // day ago; the cache's clock agrees with it, so the cache believes they are fresh — the
    // situation of a token revoked or skewed after it was cached.
    let clock = ManualClock::new(SystemTime::now() - Duration::from_secs(2 * 86_400));
    stack.emu.clock().set_offset(-2 * 86_400);
    let c2 = clock.clone();
    let tokens = stack.tokens_with(move |o| o.with_clock(c2));
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    let sc = stack.sidecar_with(config, tokens).await;
    assert_eq!(stack.identity_requests(), 1);

    // Still behind: the refreshed token is refused too, and the app gets the server's text.
    let e = sc.whoami(0, "app", "postgres").await.unwrap_err();
    let (code, message, detail) = db_error(&e);
    assert_eq!(code, "28000");
    assert!(
        message.contains("The access token has expired"),
        "{message}"
    );
    assert!(
        detail.contains("a freshly fetched token was refused too")
            && detail.contains(&format!("role \"{APP_ROLE}\"")),
        "{detail}"
    );
    assert_eq!(stack.identity_requests(), 2, "exactly one forced refresh");
    assert_eq!(sc.handle.login_retries(0), 1);

    // The identity endpoint's clock is fixed: the cached (expired) token is refused, a fresh
    // one is fetched once, and the app never notices.
    stack.emu.clock().set_offset(0);
    assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);
    assert_eq!(stack.identity_requests(), 3);
    assert_eq!(sc.handle.login_retries(0), 2);
    // And the next connection uses the new token straight away.
    assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);
    assert_eq!(stack.identity_requests(), 3);
    assert_eq!(sc.handle.login_retries(0), 2);
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_endpoint_down_with_a_cached_token_connections_still_succeed() {
    let stack = Stack::start().await;
    let clock = ManualClock::starting_now();
    let c2 = clock.clone();
    let tokens = stack.tokens_with(move |o| {
        o.with_clock(c2)
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
    });
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    let sc = stack.sidecar_with(config, tokens.clone()).await;
    assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);

    stack.emu.faults().inject(
        EndpointKind::AppService,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        None,
    );
    // Past the refresh point: background refreshes fail, the cached token stays in use.
    clock.advance(Duration::from_secs(12 * 3600 + 60));
    assert!(
        eventually(Duration::from_secs(10), || tokens
            .stats(OSSRDBMS_SCOPE)
            .is_some_and(|s| s.failures >= 1))
        .await
    );
    for _ in 0..3 {
        assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);
    }
    let text = sc.handle.metrics_text();
    let failures = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "pgentra_proxy_token_fetch_failures_total{{scope=\"{OSSRDBMS_SCOPE}\"}} "
            ))
        })
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(failures >= 1, "{text}");
    let ttl = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "pgentra_proxy_token_seconds_to_expiry{{scope=\"{OSSRDBMS_SCOPE}\"}} "
            ))
        })
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!((11 * 3600..12 * 3600).contains(&ttl), "{ttl}");
    stack.emu.faults().clear();
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_endpoint_down_without_a_token_the_app_gets_a_clear_error() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());

    // Endpoint answers 500.
    stack.emu.faults().inject(
        EndpointKind::AppService,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        None,
    );
    let sc = stack.sidecar(config.clone()).await;
    let e = sc.whoami(0, "app", "postgres").await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "08001", "{message}");
    assert!(
        message.starts_with("pgentra proxy could not get a Microsoft Entra access token")
            && message.contains("ManagedIdentityCredential")
            && message.contains("500"),
        "{message}"
    );
    assert!(
        eventually(Duration::from_secs(5), || sc
            .handle
            .failures_for(0, "token_unavailable")
            == 1)
        .await,
        "failure counted after the app was told"
    );
    sc.shutdown().await;
    stack.emu.faults().clear();

    // Nothing listens at the identity endpoint.
    let tokens = TokenCache::with_options(
        app_service(&stack.emu, &format!("{}/msi/token", closed_url())),
        CacheOptions::default(),
    );
    let sc = stack.sidecar_with(config, tokens).await;
    let e = sc.whoami(0, "app", "postgres").await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "08001", "{message}");
    assert!(message.contains("ManagedIdentityCredential"), "{message}");
    sc.shutdown().await;
    stack.stop().await;
}
