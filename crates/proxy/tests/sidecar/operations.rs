//! Operations: upstream down, max connections (and readiness at the limit), the SIGTERM delays,
//! health and metrics endpoints, `/quitquitquit`, `wait`, and the start-up connection test.

use std::time::{Duration, Instant};

use pgentra_proxy::sidecar::{self, WaitError};
use pgentra_proxy::{BoundSidecar, SidecarError};
use pgentra_token::OSSRDBMS_SCOPE;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_a_clear_connection_failure() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    let port = closed_port();
    config.port = port;
    let sc = stack.sidecar(config).await;
    let e = sc.whoami(0, "app", "postgres").await.unwrap_err();
    let (code, message, detail) = db_error(&e);
    assert_eq!(code, "08006");
    assert!(
        message.contains(&format!("could not connect to 127.0.0.1:{port}"))
            && message.contains("refused"),
        "{message}"
    );
    assert_eq!(detail, format!("instance \"127.0.0.1:{port}\""));
    assert!(
        eventually(Duration::from_secs(5), || sc
            .handle
            .failures_for(0, "upstream_connect")
            == 1)
        .await,
        "failure counted after the app was told"
    );
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_53300_and_readiness_reports_the_limit() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.max_connections = 2;
    let sc = stack.sidecar(config).await;
    let admin = sc.admin.unwrap();
    assert_eq!(http_get(admin, "/readiness").await.0, 200);
    let a = sc.connect(0, "app", "postgres").await.unwrap();
    let b = sc.connect(0, "app", "postgres").await.unwrap();
    let e = sc.connect(0, "app", "postgres").await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("53300", "sorry, too many clients already")
    );
    let (status, body) = http_get(admin, "/readiness").await;
    assert_eq!(status, 503);
    assert!(body.contains("max connections reached (2)"), "{body}");
    assert!(
        sc.handle
            .metrics_text()
            .contains("pgentra_proxy_connections_refused_total{instance=\"")
    );
    drop(a);
    assert!(
        eventually(Duration::from_secs(5), || sc.handle.active_connections()
            == 1)
        .await,
        "a closed session frees its slot"
    );
    let c = sc.connect(0, "app", "postgres").await.unwrap();
    assert_eq!(
        c.query_one("select 1::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    drop((b, c));
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_accepts_during_the_minimum_delay_then_drains_until_the_maximum() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.min_sigterm_delay = Duration::from_millis(800);
    config.max_sigterm_delay = Duration::from_millis(2500);
    let mut sc = stack.sidecar(config).await;
    let admin = sc.admin.unwrap();
    let long = sc.connect(0, "app", "postgres").await.unwrap();

    let signalled = Instant::now();
    sc.stop.cancel();
    let task = sc.task.take().unwrap();
    // During the minimum delay: new connections are still served; readiness says draining.
    let during = sc.connect(0, "app", "postgres").await.unwrap();
    assert!(signalled.elapsed() < Duration::from_millis(800));
    let (status, body) = http_get(admin, "/readiness").await;
    assert_eq!((status, body.trim()), (503, "draining"));
    drop(during);

    // After it: the listener is closed.
    tokio::time::sleep(
        Duration::from_millis(800).saturating_sub(signalled.elapsed()) + Duration::from_millis(300),
    )
    .await;
    let e = sc.connect(0, "app", "postgres").await.unwrap_err();
    assert!(e.as_db_error().is_none(), "refused at TCP level: {e}");
    // The open session keeps working until the maximum delay…
    assert_eq!(
        long.query_one("select 2::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    // …and is cut then.
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let waited = signalled.elapsed();
    assert_eq!(report.cut_sessions, 1);
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_millis(6000),
        "{waited:?}"
    );
    assert!(long.query_one("select 3::int", &[]).await.is_err());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_returns_as_soon_as_the_last_session_closes() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.max_sigterm_delay = Duration::from_secs(30);
    let mut sc = stack.sidecar(config).await;
    let s = sc.connect(0, "app", "postgres").await.unwrap();
    let signalled = Instant::now();
    sc.stop.cancel();
    let task = sc.task.take().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "waits for the open session");
    drop(s);
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.cut_sessions, 0);
    assert!(signalled.elapsed() < Duration::from_secs(5));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_quitquitquit_and_wait() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.quitquitquit = true;
    let mut sc = stack.sidecar(config).await;
    let admin = sc.admin.unwrap();
    sidecar::wait(&admin.to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    sidecar::wait(&format!("http://{admin}/"), Duration::from_secs(5))
        .await
        .unwrap();
    for path in ["/startup", "/readiness", "/liveness"] {
        assert_eq!(
            http_get(admin, path).await,
            (200, "ok\n".to_owned()),
            "{path}"
        );
    }
    assert_eq!(sc.whoami(0, "app", "postgres").await.unwrap().0, APP_ROLE);
    let (status, text) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    for want in [
        "pgentra_proxy_sessions_total{instance=\"",
        "pgentra_proxy_upstream_connect_seconds_count 1",
        &format!("pgentra_proxy_token_fetches_total{{scope=\"{OSSRDBMS_SCOPE}\"}} 1"),
        &format!("pgentra_proxy_token_fetch_failures_total{{scope=\"{OSSRDBMS_SCOPE}\"}} 0"),
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    let ttl: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "pgentra_proxy_token_seconds_to_expiry{{scope=\"{OSSRDBMS_SCOPE}\"}} "
            ))
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttl > 23 * 3600, "{ttl}");
    let token = sc.tokens.cached(OSSRDBMS_SCOPE).unwrap();
    assert!(!text.contains(token.secret()), "no token in metrics");

    // /quitquitquit starts the same graceful shutdown as a signal.
    let task = sc.task.take().unwrap();
    let (status, _) = http_get(admin, "/quitquitquit").await;
    assert_eq!(status, 200);
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.cut_sessions, 0);

    // `wait` against an address nothing answers gives up with the last error.
    let started = Instant::now();
    let e = sidecar::wait(
        &format!("127.0.0.1:{}", closed_port()),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, WaitError::TimedOut { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_connection_test_logs_in_or_fails_bind() {
    let stack = Stack::start().await;
    // No user configured: the test logs in as the token's principal.
    let mut config = stack.sidecar_config();
    config.run_connection_test = true;
    let bound = BoundSidecar::bind(config.clone(), stack.tokens())
        .await
        .expect("connection test passes");
    let results = bound.run_connection_test().await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].role, APP_ROLE);
    assert!(
        results[0].server_version.as_deref().is_some_and(|v| v
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit()),
        "{results:?}"
    );
    drop(bound);

    config.port = closed_port();
    let e = BoundSidecar::bind(config.clone(), stack.tokens())
        .await
        .unwrap_err();
    match &e {
        SidecarError::ConnectionTest { message, .. } => {
            assert!(message.starts_with("08006"), "{message}")
        }
        other => panic!("{other}"),
    }

    // A role the token does not match fails with the server's own words.
    config.port = stack.gateway.port();
    config.user = Some(UAMI_ROLE.into());
    let e = BoundSidecar::bind(config, stack.tokens())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("oid mismatch"), "{e}");
    stack.stop().await;
}
