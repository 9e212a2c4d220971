//! `pgentra gateway [run|init]`: builds a `GatewayConfig` from the file and flags, then serves or
//! installs the registry.

use std::process::ExitCode;

use anyhow::Context;
use pgentra_proxy::{BoundGateway, Endpoint, GatewayConfig, TlsFiles};
use tokio_util::sync::CancellationToken;

use crate::cli::{GatewayAction, GatewayArgs, GatewayOpts, Global};
use crate::output::print_record;

pub async fn run(global: &Global, args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let config = build_config(&args.opts)?;
    match args.action.unwrap_or(GatewayAction::Run) {
        GatewayAction::Init => {
            let report = pgentra_proxy::init(&config)
                .await
                .context("install the principal registry")?;
            let mut rows = vec![("directory entries", report.directory_entries.to_string())];
            rows.extend(report.admins.into_iter().map(|m| ("admin", m)));
            print_record(global.output, &rows);
            Ok(ExitCode::SUCCESS)
        }
        GatewayAction::Run => {
            let bound = BoundGateway::bind(config)
                .await
                .context("start the gateway")?;
            for addr in bound.tcp_addrs() {
                tracing::info!(%addr, "gateway listening");
            }
            if let Some(path) = bound.unix_socket_path() {
                tracing::info!(path = %path.display(), "gateway listening on unix socket");
            }
            if let Some(addr) = bound.admin_addr() {
                tracing::info!(%addr, "admin endpoint (metrics, health)");
            }
            let shutdown = CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                super::shutdown_signal().await;
                tracing::info!("shutting down: no new connections, draining sessions");
                trigger.cancel();
            });
            bound.serve(shutdown).await.context("gateway")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The file's configuration (or the defaults) with the flags applied on top.
pub fn build_config(opts: &GatewayOpts) -> anyhow::Result<GatewayConfig> {
    let mut config = match &opts.gateway_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read gateway config {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parse gateway config {}", path.display()))?
        }
        None => GatewayConfig::default(),
    };
    if !opts.listen.is_empty() {
        config.listen = opts.listen.clone();
    }
    if let (Some(cert_file), Some(key_file)) = (&opts.tls_cert, &opts.tls_key) {
        config.tls = Some(TlsFiles {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    }
    if !opts.tenant.is_empty() {
        config.auth.tenants = opts.tenant.clone();
    }
    if let Some(url) = &opts.jwks_url {
        config.auth.jwks_url = Some(url.clone());
    }
    if let Some(ca) = &opts.ca_file {
        config.auth.ca_file = Some(ca.clone());
    }
    if opts.upstream_host.is_some() || opts.upstream_port.is_some() {
        let current = config.upstream.trusted.clone();
        config.upstream.trusted = Endpoint {
            host: opts.upstream_host.clone().unwrap_or(current.host),
            port: opts.upstream_port.unwrap_or(current.port),
        };
    }
    if let Some(addr) = &opts.admin_listen {
        config.admin_listen = Some(addr.clone());
    }
    if let Some(n) = opts.max_connections {
        config.max_connections = n;
    }
    config.validate()?;
    Ok(config)
}
