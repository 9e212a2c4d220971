//! Benchmark plumbing for `bench/sidecar.sh` (not a product entry point; that is `pgentra proxy`).
//!
//! * `bench_sidecar serve <listen host:port> <upstream host:port> <role> <token file>`: a sidecar
//!   (plaintext to the upstream: loopback only) whose token is the file's content, served from
//!   the token cache like any other; runs until SIGTERM/SIGINT. Prints `ready <pid>`.
//! * `bench_sidecar hold <host:port> <count> <user> [password]`: opens `count` idle connections
//!   (protocol startup only, no query), prints `ready`, and keeps them until stdin closes.

use std::time::{Duration, SystemTime};

use pgentra_proxy::sidecar::SslMode;
use pgentra_proxy::{BoundSidecar, SidecarConfig};
use pgentra_token::{AccessToken, StaticToken, TokenCache};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]).await,
        Some("hold") => hold(&args[1..]).await,
        _ => {
            eprintln!("usage: bench_sidecar serve <listen> <upstream> <role> <token file>");
            eprintln!("       bench_sidecar hold <host:port> <count> <user> [password]");
            std::process::exit(2);
        }
    }
}

async fn serve(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [listen, upstream, role, token_file] = args else {
        return Err("serve needs <listen> <upstream host:port> <role> <token file>".into());
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let token = std::fs::read_to_string(token_file)?.trim().to_owned();
    let (host, port) = upstream.rsplit_once(':').ok_or("upstream is host:port")?;
    let config = SidecarConfig {
        listen: listen.clone(),
        host: Some(host.to_owned()),
        port: port.parse()?,
        user: Some(role.clone()),
        sslmode: SslMode::Disable,
        max_sigterm_delay: Duration::from_secs(1),
        ..SidecarConfig::default()
    };
    let tokens = TokenCache::with_options(
        StaticToken::new(AccessToken::new(
            token,
            SystemTime::now() + Duration::from_secs(24 * 3600),
        )),
        config.cache_options(),
    );
    let bound = BoundSidecar::bind(config, tokens).await?;
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        trigger.cancel();
    });
    println!("ready {}", std::process::id());
    bound.serve(stop).await?;
    Ok(())
}

async fn hold(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (addr, count, user) = match args {
        [a, c, u, ..] => (a, c.parse::<usize>()?, u),
        _ => return Err("hold needs <host:port> <count> <user> [password]".into()),
    };
    let (host, port) = addr.rsplit_once(':').ok_or("host:port")?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse()?)
        .user(user)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(30));
    if let Some(p) = args.get(3) {
        config.password(p.as_str());
    }
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        clients.push(client);
    }
    println!("ready");
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    drop(clients);
    Ok(())
}
