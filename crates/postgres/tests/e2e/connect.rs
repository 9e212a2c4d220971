//! `connect`: one current token per connection, user from claims, the retry-once path, never an
//! expired token.

use std::time::Duration;

use pgentra_emulator::Emulator;
use pgentra_postgres::token::{CacheOptions, ManualClock, TokenCache};
use pgentra_postgres::{ConnectError, Connector, SslMode, Tls};
use serde_json::json;

use crate::support::*;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn connections_reuse_the_cached_token_and_derive_the_user_from_claims() {
    let pg = password_cluster(false).await;
    let emu = Emulator::builder().start().await.unwrap();
    let t = jwt(
        &emu,
        json!({"upn": "carol@contoso.com", "oid": "o-carol", "scp": "user_impersonation"}),
        HOUR,
    );
    set_role_password(&pg, "carol@contoso.com", &t);
    let source = Scripted::new([token(&t, HOUR)]);
    let tokens = cache(source.clone());
    let connector = Connector::new(
        &settings_for(&pg, None, SslMode::Disable),
        tokens,
        &Tls::system().unwrap(),
    )
    .unwrap();
    for _ in 0..5 {
        let (client, _task) = connector.connect().await.unwrap();
        assert_eq!(whoami(&client).await, ("carol@contoso.com".into(), false));
    }
    assert_eq!(source.fetches(), 1, "five connections, one token fetch");
}

#[tokio::test]
async fn a_rejected_cached_token_is_refreshed_and_retried_exactly_once() {
    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "right-token");
    let source = Scripted::new([token("stale-token", HOUR), token("right-token", HOUR)]);
    let tokens = cache(source.clone());
    // Warm the cache with the token the server no longer accepts.
    assert_eq!(
        tokens.get_token(SCOPE).await.unwrap().secret(),
        "stale-token"
    );
    let connector = Connector::new(
        &settings_for(&pg, Some("app"), SslMode::Disable),
        tokens.clone(),
        &Tls::system().unwrap(),
    )
    .unwrap();
    let (client, _task) = connector
        .connect()
        .await
        .expect("retry with the refreshed token");
    assert_eq!(whoami(&client).await.0, "app");
    assert_eq!(source.fetches(), 2);
    assert_eq!(tokens.cached(SCOPE).unwrap().secret(), "right-token");

    // When the refreshed token is refused too, the error says a retry happened, and there is
    // no third attempt.
    set_role_password(&pg, "app", "yet-another-token");
    source.push(token("also-wrong", HOUR));
    let err = connector.connect().await.unwrap_err();
    match &err {
        ConnectError::Rejected { user, retried, .. } => {
            assert_eq!(user, "app");
            assert!(retried);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(err.sqlstate().map(|s| s.code()), Some("28P01"));
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(
        msg.contains(
            "role \"app\" (also after a token refresh): FATAL 28P01: password authentication failed"
        ),
        "{msg}"
    );
    assert_eq!(
        source.fetches(),
        3,
        "one refresh per failed connect, not more"
    );
    assert!(
        !format!("{err} {err:?}").contains("also-wrong"),
        "the token is never in an error"
    );
}

#[tokio::test]
async fn a_freshly_fetched_or_rate_limited_token_is_not_retried() {
    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "right-token");
    let settings = settings_for(&pg, Some("app"), SslMode::Disable);
    let tls = Tls::system().unwrap();

    // Cold cache: the token was just fetched, so a refusal is final.
    let source = Scripted::new([token("wrong-token", HOUR), token("right-token", HOUR)]);
    let connector = Connector::new(&settings, cache(source.clone()), &tls).unwrap();
    let err = connector.connect().await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Rejected { retried: false, .. }),
        "{err:?}"
    );
    assert_eq!(source.fetches(), 1);

    // Default cache options rate-limit forced refreshes (30 s): the refresh returns the same
    // token, and connect does not send it twice.
    let source = Scripted::new([token("wrong-token", HOUR), token("right-token", HOUR)]);
    let tokens = TokenCache::from_arc(source.clone(), CacheOptions::default().lazy());
    tokens.get_token(SCOPE).await.unwrap();
    let connector = Connector::new(&settings, tokens, &tls).unwrap();
    let err = connector.connect().await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Rejected { retried: false, .. }),
        "{err:?}"
    );
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn an_expired_token_in_the_cache_is_never_sent() {
    let pg = password_cluster(false).await;
    let emu = Emulator::builder().start().await.unwrap();
    // Two roles, each accepting one token: the role we end up as tells which token was sent.
    let old = jwt(&emu, json!({"appid": "old-app"}), HOUR);
    let new = jwt(&emu, json!({"appid": "new-app"}), HOUR);
    set_role_password(&pg, "old-app", &old);
    set_role_password(&pg, "new-app", &new);
    let clock = ManualClock::starting_now();
    let source = Scripted::new([token(&old, Duration::from_secs(600)), token(&new, HOUR)]);
    let tokens = TokenCache::from_arc(
        source.clone(),
        CacheOptions::default()
            .lazy()
            .with_clock(clock.clone())
            .with_min_refresh_interval(Duration::ZERO),
    );
    assert_eq!(tokens.get_token(SCOPE).await.unwrap().secret(), old);
    // The cached token is now past its expiry (the server does not check: the client must).
    clock.advance(Duration::from_secs(3000));
    let connector = Connector::new(
        &settings_for(&pg, None, SslMode::Disable),
        tokens,
        &Tls::system().unwrap(),
    )
    .unwrap();
    let (client, _task) = connector.connect().await.unwrap();
    assert_eq!(
        whoami(&client).await.0,
        "new-app",
        "the expired token was sent"
    );
    assert_eq!(source.fetches(), 2);

    // A source that only has expired tokens: connect fails before reaching the server.
    let expired = Scripted::new([token(&old, Duration::from_secs(1))]);
    let tokens = TokenCache::from_arc(
        expired.clone(),
        CacheOptions::default()
            .lazy()
            .with_clock(ManualClock::new(std::time::SystemTime::now() + HOUR))
            .with_min_refresh_interval(Duration::ZERO),
    );
    let connector = Connector::new(
        &settings_for(&pg, None, SslMode::Disable),
        tokens,
        &Tls::system().unwrap(),
    )
    .unwrap();
    let err = connector.connect().await.unwrap_err();
    assert!(matches!(err, ConnectError::Token(_)), "{err:?}");
    let backends = pg
        .psql(
            "postgres",
            "select count(*) from pg_stat_activity where usename = 'old-app'",
        )
        .unwrap();
    assert_eq!(backends.trim(), "0");
}

#[tokio::test]
async fn token_rotation_reaches_new_connections() {
    let pg = password_cluster(false).await;
    let clock = ManualClock::starting_now();
    set_role_password(&pg, "app", "token-one");
    let source = Scripted::new([token("token-one", HOUR)]);
    let tokens = TokenCache::from_arc(
        source.clone(),
        CacheOptions::default().lazy().with_clock(clock.clone()),
    );
    let connector = Connector::new(
        &settings_for(&pg, Some("app"), SslMode::Disable),
        tokens,
        &Tls::system().unwrap(),
    )
    .unwrap();
    let (first, _t) = connector.connect().await.unwrap();
    // The identity provider issues a new token and the server accepts only that one; the cache
    // refreshes ahead of expiry (clock within 5 minutes of the old token's end).
    source.push(token("token-two", 2 * HOUR));
    set_role_password(&pg, "app", "token-two");
    clock.advance(HOUR - Duration::from_secs(120));
    let (second, _t) = connector.connect().await.unwrap();
    assert_eq!(whoami(&second).await.0, "app");
    assert_eq!(source.fetches(), 2);
    // The session opened with the old token lives on: the server checks tokens only at login.
    assert_eq!(whoami(&first).await.0, "app");
}

#[tokio::test]
async fn errors_are_specific() {
    let pg = password_cluster(false).await;
    let tls = Tls::system().unwrap();
    // No user in settings and a token without usable claims.
    let source = Scripted::new([token("opaque-not-a-jwt", HOUR)]);
    let err = Connector::new(
        &settings_for(&pg, None, SslMode::Disable),
        cache(source),
        &tls,
    )
    .unwrap()
    .connect()
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::NoUserName), "{err:?}");

    // Nothing listens: a connection error, worth retrying, not an auth failure.
    let mut settings = settings_for(&pg, Some("app"), SslMode::Disable);
    settings.port = pgentra_testkit::free_port();
    let source = Scripted::new([token("t", HOUR)]);
    let err = Connector::new(&settings, cache(source), &tls)
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Postgres(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Connection refused"), "{err}");

    // The token source fails: a token error naming the credential.
    let failing = pgentra_postgres::token::from_fn("Broken", |_scope| async {
        Err(pgentra_postgres::token::Error::unavailable(
            "no identity endpoint here",
        ))
    });
    let tokens = TokenCache::with_options(failing, CacheOptions::default().lazy());
    let err = pgentra_postgres::connect(
        &settings_for(&pg, Some("app"), SslMode::Disable),
        &tokens,
        &tls,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Token(_)), "{err:?}");
    assert!(
        err.to_string().contains("no identity endpoint here"),
        "{err}"
    );
}
