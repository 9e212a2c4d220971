//! Runs a gateway for benchmarks: starts the identity emulator in-process, installs the registry
//! into the given PostgreSQL, registers a role for the system-assigned managed identity, writes
//! a token for it to a file, then serves plaintext on loopback until SIGTERM or SIGINT.
//! Benchmark plumbing only (plaintext, no TLS); the product entry point is `pgentra gateway`.
//!
//! Usage: `bench_gateway <pg socket dir> <pg port> <listen host:port> <role> <token file>`

use std::time::Duration;

use pgentra_emulator::{Emulator, Principal, dev};
use pgentra_proxy::{BoundGateway, Endpoint, GatewayConfig, PlaintextPolicy};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sock_dir, pg_port, listen, role, token_file] = &args[..] else {
        eprintln!("usage: bench_gateway <pg socket dir> <pg port> <listen> <role> <token file>");
        std::process::exit(2);
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let emu = Emulator::builder().start().await?;
    let mut config = GatewayConfig {
        listen: vec![listen.clone()],
        plaintext: PlaintextPolicy::Always,
        max_connections: 10_000,
        shutdown_grace_ms: 1000,
        ..GatewayConfig::default()
    };
    config.auth.tenants = vec![emu.tenant_id()];
    config.auth.jwks_url = Some(emu.jwks_url());
    config.auth.ca_file = Some(emu.ca_cert_path());
    config.upstream.trusted = Endpoint {
        host: sock_dir.clone(),
        port: pg_port.parse()?,
    };
    pgentra_proxy::init(&config).await?;
    let admin = pgentra_proxy::gateway::registry::connect_admin(
        &config.upstream.trusted,
        None,
        "postgres",
        "postgres",
    )
    .await?;
    let created: String = admin
        .client
        .query_one(
            "select pgaadauth_create_principal_with_oid($1, $2, 'service', false, false)",
            &[role, &dev::SYSTEM_MI_OBJECT_ID],
        )
        .await?
        .get(0);
    eprintln!("{created}");
    let token = emu.mint_for(
        Principal::SystemMi,
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(24 * 3600),
    );
    std::fs::write(token_file, &token)?;

    let bound = BoundGateway::bind(config).await?;
    let handle = bound.handle();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(bound.serve(shutdown.clone()));
    handle.wait_ready().await;
    println!("ready");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = sigterm.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shutdown.cancel();
    served.await??;
    Ok(())
}
