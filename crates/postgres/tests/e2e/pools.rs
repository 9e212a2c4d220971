//! Pools against a direct cluster: each fills N connections with one token fetch, and after the
//! token rotates, new connections use the new one.

use std::time::Duration;

use pgentra_postgres::token::{CacheOptions, ManualClock, TokenCache};
use pgentra_postgres::{Connector, SslMode, Tls};

use crate::support::*;

const HOUR: Duration = Duration::from_secs(3600);
const N: usize = 8;

fn connector(pg: &pgentra_testkit::PgCluster, tokens: TokenCache) -> Connector {
    Connector::new(
        &settings_for(pg, Some("app"), SslMode::Disable),
        tokens,
        &Tls::system().unwrap(),
    )
    .unwrap()
}

fn rotating_cache(source: std::sync::Arc<Scripted>, clock: &ManualClock) -> TokenCache {
    TokenCache::from_arc(
        source,
        CacheOptions::default().lazy().with_clock(clock.clone()),
    )
}

/// Moves the token cache's clock past the refresh point of a one-hour token.
fn due(clock: &ManualClock) {
    clock.advance(HOUR - Duration::from_secs(120));
}

#[cfg(feature = "deadpool")]
#[tokio::test]
async fn deadpool_fills_with_one_fetch_and_picks_up_a_rotated_token() {
    use pgentra_postgres::pool::deadpool::{Manager, Recycling, pool};

    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "token-one");
    let clock = ManualClock::starting_now();
    let source = Scripted::new([token("token-one", HOUR)]);
    let p = pool(
        Manager::new(connector(&pg, rotating_cache(source.clone(), &clock)))
            .recycling(Recycling::Verified),
        N,
    )
    .unwrap();
    let held: Vec<_> = futures_join(N, || p.get()).await;
    assert_eq!(held.len(), N);
    for c in &held {
        assert_eq!(whoami(c).await.0, "app");
    }
    assert_eq!(p.status().size, N);
    assert_eq!(source.fetches(), 1, "{N} connections, one token fetch");
    drop(held);

    // Rotation: new token at the source, the server accepts only it, old sessions are ended.
    source.push(token("token-two", 2 * HOUR));
    set_role_password(&pg, "app", "token-two");
    assert_eq!(terminate_sessions(&pg, "app"), N);
    due(&clock);
    let held: Vec<_> = futures_join(N, || p.get()).await;
    for c in &held {
        assert_eq!(whoami(c).await.0, "app");
    }
    assert_eq!(
        source.fetches(),
        2,
        "the refill needed exactly one more fetch"
    );
}

#[cfg(feature = "deadpool")]
#[tokio::test]
async fn deadpool_max_lifetime_replaces_old_connections() {
    use pgentra_postgres::pool::deadpool::{Manager, pool};

    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "token-one");
    let source = Scripted::new([token("token-one", HOUR)]);
    let p = pool(
        Manager::new(connector(&pg, cache(source.clone())))
            .max_lifetime(Duration::from_millis(300)),
        2,
    )
    .unwrap();
    // The backend pid tells whether a checkout got the same connection.
    let first = {
        let c = p.get().await.unwrap();
        c.query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
    };
    let again = {
        let c = p.get().await.unwrap();
        c.query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
    };
    assert_eq!(first, again, "reused while young");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = {
        let c = p.get().await.unwrap();
        c.query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
    };
    assert_ne!(first, later, "replaced after max lifetime");
    assert_eq!(source.fetches(), 1);
}

#[cfg(feature = "bb8")]
#[tokio::test]
async fn bb8_fills_with_one_fetch_and_picks_up_a_rotated_token() {
    use pgentra_postgres::pool::bb8::Manager;

    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "token-one");
    let clock = ManualClock::starting_now();
    let source = Scripted::new([token("token-one", HOUR)]);
    let p = bb8::Pool::builder()
        .max_size(N as u32)
        .test_on_check_out(true)
        .build(Manager::new(connector(
            &pg,
            rotating_cache(source.clone(), &clock),
        )))
        .await
        .unwrap();
    {
        let held: Vec<_> = futures_join(N, || p.get()).await;
        for c in &held {
            assert_eq!(whoami(c).await.0, "app");
        }
        assert_eq!(p.state().connections, N as u32);
    }
    assert_eq!(source.fetches(), 1, "{N} connections, one token fetch");

    source.push(token("token-two", 2 * HOUR));
    set_role_password(&pg, "app", "token-two");
    assert_eq!(terminate_sessions(&pg, "app"), N);
    due(&clock);
    let held: Vec<_> = futures_join(N, || p.get()).await;
    for c in &held {
        assert_eq!(whoami(c).await.0, "app");
    }
    assert_eq!(source.fetches(), 2);
}

#[cfg(feature = "sqlx")]
#[tokio::test]
async fn sqlx_fills_with_one_fetch_and_the_refresher_follows_rotation() {
    use pgentra_postgres::pool::sqlx::{Options, pool};
    use sqlx::postgres::PgPoolOptions;

    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "token-one");
    let clock = ManualClock::starting_now();
    let source = Scripted::new([token("token-one", HOUR)]);
    let tokens = rotating_cache(source.clone(), &clock);
    let p = pool(
        &settings_for(&pg, Some("app"), SslMode::Disable),
        tokens,
        Options::default()
            .pool_options(PgPoolOptions::new().max_connections(N as u32))
            .check_every(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let held: Vec<_> = futures_join(N, || p.acquire()).await;
    for mut c in held {
        let who: String = sqlx::query_scalar("select current_user::text")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(who, "app");
    }
    assert_eq!(p.size(), N as u32);
    assert_eq!(source.fetches(), 1, "{N} connections, one token fetch");

    source.push(token("token-two", 2 * HOUR));
    set_role_password(&pg, "app", "token-two");
    due(&clock);
    // The refresher notices the cache's new token and swaps the pool's connect options.
    wait_until(|| p.token_swaps() == 1).await;
    assert_eq!(source.fetches(), 2);
    assert!(p.refresher_running());
    // Closing the pool stops the refresher.
    p.close().await;
    wait_until(|| !p.refresher_running()).await;
}

#[cfg(feature = "sqlx")]
#[tokio::test]
async fn sqlx_new_connections_after_rotation_use_the_new_token() {
    use pgentra_postgres::pool::sqlx::{Options, pool};
    use sqlx::postgres::PgPoolOptions;

    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "token-one");
    let clock = ManualClock::starting_now();
    let source = Scripted::new([token("token-one", HOUR)]);
    let p = pool(
        &settings_for(&pg, Some("app"), SslMode::Disable),
        rotating_cache(source.clone(), &clock),
        Options::default()
            .pool_options(
                PgPoolOptions::new()
                    .max_connections(N as u32)
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(true),
            )
            .check_every(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    drop(futures_join(N, || p.acquire()).await);
    source.push(token("token-two", 2 * HOUR));
    set_role_password(&pg, "app", "token-two");
    due(&clock);
    wait_until(|| p.token_swaps() == 1).await;
    assert_eq!(terminate_sessions(&pg, "app"), N);
    let held: Vec<_> = futures_join(N, || p.acquire()).await;
    assert_eq!(held.len(), N);
    assert_eq!(source.fetches(), 2);
}

/// Runs `n` copies of `f()` concurrently and unwraps them.
pub async fn futures_join<T, E: std::fmt::Debug, F, Fut>(n: usize, f: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    futures::future::join_all((0..n).map(|_| f()))
        .await
        .into_iter()
        .map(|r| r.expect("pool checkout"))
        .collect()
}

/// Waits (up to 10 s) for a condition that a background task makes true.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}
