//! Connect latency through pgentra-postgres vs tokio-postgres with a plain password, and pool
//! warm-up of 100 connections (token requests per warm-up). Real PostgreSQL (testkit), real
//! tokens from the in-process emulator's managed identity endpoint.
//!
//! `cargo bench -p pgentra-postgres --all-features --bench connect`
//! (`PGENTRA_BENCH_ROUNDS` overrides the number of connects per variant, default 400.)

use std::time::{Duration, Instant};

use pgentra_emulator::{Emulator, EndpointKind, RunningEmulator};
use pgentra_postgres::token::{
    EntraOptions, Env, ManagedIdentityCredential, ManagedIdentityOptions, OSSRDBMS_SCOPE,
    TokenCache, TokenSource,
};
use pgentra_postgres::{
    ClientType, ConnectionSettings, Connector, Identity, SslMode, Tls, token_cache_for,
};
use pgentra_testkit::PgCluster;
use tokio_postgres::NoTls;

const ROLE: &str = "bench_app";
const POOL: usize = 100;
const MICRO: usize = 100_000;
const REPS: usize = 9;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

struct Stack {
    plain: PgCluster,
    tls: PgCluster,
    emu: RunningEmulator,
    token: String,
}

fn env(emu: &RunningEmulator) -> Env {
    Env::new()
        .with("IDENTITY_ENDPOINT", emu.identity_endpoint())
        .with("IDENTITY_HEADER", emu.identity_header())
}

fn settings(pg: &PgCluster, user: Option<&str>, ssl: SslMode) -> ConnectionSettings {
    ConnectionSettings {
        host: pg.host().into(),
        port: pg.port(),
        database: "postgres".into(),
        user: user.map(Into::into),
        ssl_mode: ssl,
        client_type: ClientType::None,
        identity: Identity::SystemAssigned,
    }
}

/// A cold cache over the emulator's App Service managed identity endpoint.
fn cold_cache(emu: &RunningEmulator) -> TokenCache {
    token_cache_for(
        &Identity::SystemAssigned,
        &env(emu),
        EntraOptions::default(),
    )
    .expect("cache")
}

fn mi_requests(emu: &RunningEmulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.endpoint == EndpointKind::AppService)
        .count()
}

async fn setup() -> Stack {
    let start = |tls: bool| {
        PgCluster::builder()
            .tls(tls)
            .hba_line("host all all 127.0.0.1/32 password")
            .conf("max_connections = 300")
            .start()
            .expect("start PostgreSQL")
    };
    let (plain, tls) = tokio::task::spawn_blocking(move || (start(false), start(true)))
        .await
        .expect("join");
    let emu = Emulator::builder().start().await.expect("emulator");
    // The managed identity endpoint caches a token per identity for 5 minutes (as Azure's
    // does), so every cold cache below gets this same token: set it as the role's password.
    let mi =
        ManagedIdentityCredential::from_env(&env(&emu), ManagedIdentityOptions::default()).unwrap();
    let token = mi
        .get_token(OSSRDBMS_SCOPE)
        .await
        .expect("token")
        .secret()
        .to_owned();
    for pg in [&plain, &tls] {
        pg.psql(
            "postgres",
            // md5 storage keeps the server's cleartext-password check cheap (SCRAM storage
            // costs 4096 PBKDF2 rounds per login), so client-side differences stand out.
            &format!(
                "set password_encryption = 'md5';
                 create role {ROLE} login password '{token}';
                 create role \"{}\" login password '{token}';",
                pgentra_emulator::dev::SYSTEM_MI_CLIENT_ID
            ),
        )
        .expect("role");
    }
    emu.clear_requests();
    Stack {
        plain,
        tls,
        emu,
        token,
    }
}

#[derive(Default, Clone)]
struct Samples(Vec<Duration>);

impl Samples {
    fn p(&mut self, q: f64) -> Duration {
        self.0.sort();
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i]
    }
    fn mean(&self) -> Duration {
        self.0.iter().sum::<Duration>() / self.0.len() as u32
    }
}

fn us(d: Duration) -> String {
    format!("{:.0}µs", d.as_secs_f64() * 1e6)
}

async fn run() {
    let rounds: usize = std::env::var("PGENTRA_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let stack = setup().await;
    let token_len = stack.token.len();

    println!(
        "## connect latency ({rounds} sequential connects per variant, interleaved; token {token_len} bytes)\n"
    );
    println!(
        "| server | variant | p50 | p90 | mean | median paired difference vs plain (% of plain p50) |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, pg, ssl) in [
        ("plaintext", &stack.plain, SslMode::Disable),
        ("TLS", &stack.tls, SslMode::Require),
    ] {
        let tokens = cold_cache(&stack.emu);
        let tls = Tls::builder().system_roots(false).build().unwrap();
        let named = Connector::new(&settings(pg, Some(ROLE), ssl), tokens.clone(), &tls).unwrap();
        let derived = Connector::new(&settings(pg, None, ssl), tokens.clone(), &tls).unwrap();
        named.connect().await.expect("warm the cache");
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(pg.host())
            .port(pg.port())
            .dbname("postgres")
            .user(ROLE)
            .password(&stack.token);
        let rustls = tls.make_connect(ssl).unwrap();
        if ssl == SslMode::Require {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let (mut plain, mut ours, mut claims) =
            (Samples::default(), Samples::default(), Samples::default());
        for round in 0..rounds {
            // Rotate the order every round so drift and warm caches favour no variant.
            for k in 0..3 {
                let t = Instant::now();
                let (c, h) = match (round + k) % 3 {
                    0 if ssl == SslMode::Disable => {
                        let (c, conn) = cfg.connect(NoTls).await.expect("plain connect");
                        (c, tokio::spawn(async move { drop(conn.await) }))
                    }
                    0 => {
                        let (c, conn) = cfg
                            .connect(rustls.clone())
                            .await
                            .expect("plain TLS connect");
                        (c, tokio::spawn(async move { drop(conn.await) }))
                    }
                    1 => named.connect().await.expect("pgentra connect"),
                    _ => derived
                        .connect()
                        .await
                        .expect("pgentra connect, user from claims"),
                };
                let took = t.elapsed();
                [&mut plain, &mut ours, &mut claims][(round + k) % 3]
                    .0
                    .push(took);
                drop(c);
                let _ = h.await;
            }
        }
        // Samples were taken round by round, so the i-th samples of two variants are
        // neighbours in time: their difference cancels the drift of a shared, busy machine.
        let paired = |a: &Samples, b: &Samples| {
            let mut d: Vec<f64> =
                a.0.iter()
                    .zip(&b.0)
                    .map(|(x, y)| x.as_secs_f64() - y.as_secs_f64())
                    .collect();
            d.sort_by(f64::total_cmp);
            d[d.len() / 2]
        };
        let deltas = [0.0, paired(&ours, &plain), paired(&claims, &plain)];
        let base = plain.clone().p(0.5).as_secs_f64();
        let label = if ssl == SslMode::Disable {
            "tokio-postgres, plain password (NoTls)"
        } else {
            "tokio-postgres + rustls, plain password"
        };
        for ((variant, s), delta) in [
            (label, &mut plain),
            (
                "pgentra `Connector::connect` (user from settings)",
                &mut ours,
            ),
            (
                "pgentra `Connector::connect` (user from token claims)",
                &mut claims,
            ),
        ]
        .into_iter()
        .zip(deltas)
        {
            println!(
                "| {name} | {variant} | {} | {} | {} | {:+.0}µs ({:+.1}%) |",
                us(s.p(0.5)),
                us(s.p(0.9)),
                us(s.mean()),
                delta * 1e6,
                delta / base * 100.0
            );
        }
        assert_eq!(tokens.stats(OSSRDBMS_SCOPE).unwrap().fetches, 1);
    }

    println!("\n## client-side work per connect (warm cache; {MICRO} iterations)\n");
    println!("| step | mean |");
    println!("|---|---|");
    {
        let tokens = cold_cache(&stack.emu);
        tokens.get_token(OSSRDBMS_SCOPE).await.unwrap();
        let per = |t: Instant| t.elapsed().as_secs_f64() * 1e9 / MICRO as f64;
        let t = Instant::now();
        for _ in 0..MICRO {
            std::hint::black_box(tokens.cached(OSSRDBMS_SCOPE));
        }
        println!(
            "| token from the cache (`TokenCache::cached`) | {:.0}ns |",
            per(t)
        );
        let token = tokens.cached(OSSRDBMS_SCOPE).unwrap();
        let t = Instant::now();
        for _ in 0..MICRO {
            std::hint::black_box(pgentra_postgres::user_name_from_token(&token));
        }
        println!(
            "| role name from the token's claims (only when settings name none) | {:.0}ns |",
            per(t)
        );
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("h").port(5432).dbname("postgres").user(ROLE);
        let t = Instant::now();
        for _ in 0..MICRO {
            let mut c = std::hint::black_box(&cfg).clone();
            c.password(token.secret());
            std::hint::black_box(c);
        }
        println!(
            "| per-connection `tokio_postgres::Config` carrying the token | {:.0}ns |",
            per(t)
        );
    }

    println!(
        "\n## pool warm-up: {POOL} connections held at once, cold token cache, plaintext server ({REPS} repetitions, order rotated)\n"
    );
    println!(
        "| pool | median time to {POOL} connections | min | max | token requests per warm-up |"
    );
    println!("|---|---|---|---|---|");
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); 4];
    let mut requests: Vec<Vec<usize>> = vec![Vec::new(); 4];
    for rep in 0..REPS {
        for k in 0..4 {
            let which = (rep + k) % 4;
            stack.emu.clear_requests();
            let took = warm_up(&stack, which).await;
            times[which].push(took);
            requests[which].push(mi_requests(&stack.emu));
            // Let the previous pool's backends exit before the next one fills.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for (which, name) in [
        "deadpool-postgres, token frozen in its config (baseline)",
        "pgentra deadpool",
        "pgentra bb8",
        "pgentra sqlx",
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = times[which].clone();
        t.sort();
        let reqs = if which == 0 {
            "– (no token source)".to_owned()
        } else {
            let mut r = requests[which].clone();
            r.dedup();
            format!("{r:?}")
        };
        println!(
            "| {name} | {:.0}ms | {:.0}ms | {:.0}ms | {reqs} |",
            t[t.len() / 2].as_secs_f64() * 1e3,
            t[0].as_secs_f64() * 1e3,
            t[t.len() - 1].as_secs_f64() * 1e3
        );
    }
}

/// Fills one pool (0: stock deadpool-postgres, 1: pgentra deadpool, 2: bb8, 3: sqlx) with
/// `POOL` connections at once from a cold token cache. The clock starts once the pool object
/// exists (the credential's HTTP client is built before, as at application start-up), so the
/// time includes the one token fetch and every login.
async fn warm_up(stack: &Stack, which: usize) -> Duration {
    let pg = &stack.plain;
    let tls = Tls::builder().system_roots(false).build().unwrap();
    let s = settings(pg, Some(ROLE), SslMode::Disable);
    let connector = Connector::new(&s, cold_cache(&stack.emu), &tls).unwrap();
    match which {
        0 => {
            let mut cfg = tokio_postgres::Config::new();
            cfg.host(pg.host())
                .port(pg.port())
                .dbname("postgres")
                .user(ROLE)
                .password(&stack.token);
            let mgr = deadpool_postgres::Manager::new(cfg, NoTls);
            let pool = deadpool_postgres::Pool::builder(mgr)
                .max_size(POOL)
                .build()
                .unwrap();
            let t = Instant::now();
            let held = futures::future::join_all((0..POOL).map(|_| pool.get())).await;
            let took = t.elapsed();
            assert!(held.iter().all(Result::is_ok));
            took
        }
        1 => {
            use pgentra_postgres::pool::deadpool::{Manager, pool};
            let pool = pool(Manager::new(connector), POOL).unwrap();
            let t = Instant::now();
            let held = futures::future::join_all((0..POOL).map(|_| pool.get())).await;
            let took = t.elapsed();
            assert!(held.iter().all(Result::is_ok));
            took
        }
        2 => {
            let pool = bb8::Pool::builder()
                .max_size(POOL as u32)
                .build_unchecked(pgentra_postgres::pool::bb8::Manager::new(connector));
            let t = Instant::now();
            let held = futures::future::join_all((0..POOL).map(|_| pool.get())).await;
            let took = t.elapsed();
            assert!(held.iter().all(Result::is_ok));
            took
        }
        _ => {
            use pgentra_postgres::pool::sqlx::{Options, pool};
            // The sqlx pool fetches its first token while being built: start the clock first.
            let tokens = connector.tokens().clone();
            let t = Instant::now();
            let pool = pool(
                &s,
                tokens,
                Options::default().pool_options(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(POOL as u32)
                        .acquire_timeout(Duration::from_secs(60)),
                ),
            )
            .await
            .unwrap();
            let held = futures::future::join_all((0..POOL).map(|_| pool.acquire())).await;
            let took = t.elapsed();
            assert!(held.iter().all(Result::is_ok));
            drop(held);
            pool.close().await;
            took
        }
    }
}
