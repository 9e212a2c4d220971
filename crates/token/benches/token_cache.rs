//! Token cache benchmarks: the cached `get_token` hot path, a cold single flight of 1000
//! callers, and fetch latency against the in-process emulator.
//!
//! Run: `cargo bench -p pgentra-token --bench token_cache`. Prints a Markdown table.

use std::time::{Duration, Instant, SystemTime};

use pgentra_emulator::{Config, Emulator, EndpointKind, RunningEmulator, dev};
use pgentra_token::{
    AccessToken, ClientSecretCredential, EntraOptions, HttpOptions, ManagedIdentityCredential,
    ManagedIdentityOptions, OSSRDBMS_SCOPE, StaticToken, TokenCache, TokenSource,
};

const S: &str = OSSRDBMS_SCOPE;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn row(name: &str, mut samples: Vec<Duration>, extra: &str) {
    samples.sort();
    println!(
        "| {name} | {} | {:?} | {:?} | {:?} | {extra} |",
        samples.len(),
        pct(&samples, 0.50),
        pct(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

async fn hot_path() {
    let token = AccessToken::new(
        "x".repeat(2000),
        SystemTime::now() + Duration::from_secs(3600),
    );
    let cache = TokenCache::new(StaticToken::new(token));
    cache.get_token(S).await.expect("warm");
    // Timer overhead, to read the per-call numbers against.
    let mut overhead = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = Instant::now();
        overhead.push(t.elapsed());
    }
    row("`Instant::now` pair (timer overhead)", overhead, "");

    let n = 1_000_000;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let tok = cache.get_token(S).await.expect("cached");
        samples.push(t.elapsed());
        std::hint::black_box(tok);
    }
    row("cached `get_token` (async, 1 task)", samples, "");

    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let tok = cache.cached(S);
        samples.push(t.elapsed());
        std::hint::black_box(tok);
    }
    row("cached `cached()` (sync)", samples, "");

    // Two threads hammering the same entry: the read locks are shared, not exclusive.
    let per = 500_000;
    let started = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move {
                let mut v = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    std::hint::black_box(c.get_token(S).await.expect("cached"));
                    v.push(t.elapsed());
                }
                v
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    let wall = started.elapsed();
    let rate = (2 * per) as f64 / wall.as_secs_f64();
    row(
        "cached `get_token`, 2 tasks on 2 threads",
        all,
        &format!("{:.1} M calls/s total", rate / 1e6),
    );
}

fn uncached_mi() -> Config {
    let mut c = Config::default();
    c.lifetimes.mi_cache_secs = 0;
    c
}

fn http(emu: &RunningEmulator) -> HttpOptions {
    HttpOptions::default()
        .add_root_pem(emu.ca_cert_pem().as_bytes())
        .expect("CA")
}

async fn single_flight(emu: &RunningEmulator) {
    let rounds = 20;
    let mut samples = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..rounds {
        let cred = ManagedIdentityCredential::app_service(
            &emu.identity_endpoint(),
            emu.identity_header(),
            ManagedIdentityOptions::default().with_http(http(emu)),
        )
        .expect("credential");
        let cache = TokenCache::new(cred);
        emu.clear_requests();
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let c = cache.clone();
            set.spawn(async move { c.get_token(S).await.map(|_| ()) });
        }
        while let Some(r) = set.join_next().await {
            r.expect("task").expect("token");
        }
        samples.push(started.elapsed());
        requests.push(
            emu.requests()
                .iter()
                .filter(|r| r.endpoint == EndpointKind::AppService)
                .count(),
        );
    }
    let max_requests = requests.iter().max().copied().unwrap_or(0);
    row(
        "cold single flight, 1000 callers → all served (App Service MI)",
        samples,
        &format!("requests per round: max {max_requests}"),
    );
}

async fn fetches(emu: &RunningEmulator) {
    let n = 300;
    let app = ManagedIdentityCredential::app_service(
        &emu.identity_endpoint(),
        emu.identity_header(),
        ManagedIdentityOptions::default().with_http(http(emu)),
    )
    .expect("app service");
    let imds = ManagedIdentityCredential::imds(
        ManagedIdentityOptions::default()
            .with_http(http(emu))
            .with_imds_host(emu.imds_host()),
    )
    .expect("imds");
    let sp = ClientSecretCredential::new(
        &emu.tenant_id(),
        dev::SP_CLIENT_ID,
        dev::SP_SECRET,
        EntraOptions::default()
            .with_authority_host(emu.authority_host())
            .with_http(http(emu)),
    )
    .expect("sp");
    let sources: [(&str, &dyn TokenSource); 3] = [
        ("fetch: App Service MI (http, keep-alive)", &app),
        ("fetch: IMDS (http, keep-alive)", &imds),
        ("fetch: client secret, Entra v2 (https, keep-alive)", &sp),
    ];
    for (name, src) in sources {
        src.get_token(S).await.expect("warm connection");
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            std::hint::black_box(src.get_token(S).await.expect("token"));
            samples.push(t.elapsed());
        }
        row(name, samples, "each fetch signs a fresh RS256 token");
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("| measurement | samples | p50 | p99 | max | notes |");
        println!("|---|---|---|---|---|---|");
        hot_path().await;
        let emu = Emulator::builder()
            .config(uncached_mi())
            .start()
            .await
            .expect("emulator");
        single_flight(&emu).await;
        fetches(&emu).await;
    });
}
