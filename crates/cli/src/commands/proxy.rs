//! `pgentra proxy [run|wait]`: the sidecar. Builds a `SidecarConfig` from the file and flags
//! (the flags are the file's keys), a token cache from the default credential chain, and serves.

use std::process::ExitCode;

use anyhow::Context;
use pgentra_proxy::{BoundSidecar, SidecarConfig};
use pgentra_token::{
    CacheOptions, DefaultCredential, DefaultCredentialOptions, EntraOptions, Env, HttpOptions,
    TokenCache, UserAssignedId,
};
use tokio_util::sync::CancellationToken;

use crate::cli::{ProxyAction, ProxyArgs, ProxyOpts};

pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let config = build_config(&args.opts)?;
    match args.action.unwrap_or(ProxyAction::Run) {
        ProxyAction::Wait { max } => {
            let admin = config
                .admin_listen
                .clone()
                .context("proxy wait needs --admin-listen (the running proxy's admin address)")?;
            pgentra_proxy::sidecar::wait(&admin, max).await?;
            Ok(ExitCode::SUCCESS)
        }
        ProxyAction::Run => serve(config, &args.opts).await,
    }
}

async fn serve(config: SidecarConfig, opts: &ProxyOpts) -> anyhow::Result<ExitCode> {
    let mut http = HttpOptions::default();
    if let Some(ca) = &opts.identity_ca_file {
        http = http
            .add_root_pem_file(ca)
            .with_context(|| format!("read {}", ca.display()))?;
    }
    let mut options =
        DefaultCredentialOptions::default().with_entra(EntraOptions::default().with_http(http));
    if let Some(id) = &opts.client_id {
        options = options.with_managed_identity(UserAssignedId::ClientId(id.clone()));
    }
    let credential = DefaultCredential::from_env(&Env::from_process(), options)
        .context("set up the credential chain")?;
    let cache_options = if config.lazy_refresh {
        CacheOptions::default().lazy()
    } else {
        CacheOptions::default()
    };
    let tokens = TokenCache::with_options(credential, cache_options);
    let run_test = config.run_connection_test;
    let bound = BoundSidecar::bind(config, tokens)
        .await
        .context("start the proxy")?;
    for a in bound.addresses() {
        tracing::info!(instance = %a.name, tcp = %a.tcp, unix = ?a.unix_socket, "listening");
    }
    if run_test {
        for r in bound
            .run_connection_test()
            .await
            .context("start-up connection test")?
        {
            tracing::info!(instance = %r.instance, role = %r.role, "connection test passed");
        }
    }
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("shutdown signal: draining");
        trigger.cancel();
    });
    let report = bound.serve(shutdown).await.context("proxy")?;
    if report.cut_sessions > 0 {
        tracing::warn!(
            cut = report.cut_sessions,
            "sessions cut at the maximum SIGTERM delay"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The file's keys, with each flag given on the command line (or in the environment) replacing
/// its key; then one serde pass validates everything with the same rules as the file.
pub fn build_config(opts: &ProxyOpts) -> anyhow::Result<SidecarConfig> {
    let mut table = match &opts.proxy_config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("read proxy config {}", path.display()))?
            .parse::<toml::Table>()
            .with_context(|| format!("parse proxy config {}", path.display()))?,
        None => toml::Table::new(),
    };
    let mut set = |key: &str, value: toml::Value| {
        table.insert(key.to_owned(), value);
    };
    let path = |p: &std::path::Path| toml::Value::String(p.display().to_string());
    let text = |s: &String| toml::Value::String(s.clone());
    if let Some(v) = &opts.listen {
        set("listen", text(v));
    }
    if let Some(v) = &opts.unix_socket_dir {
        set("unix-socket-dir", path(v));
    }
    if opts.allow_non_loopback {
        set("allow-non-loopback", true.into());
    }
    if let Some(v) = &opts.host {
        set("host", text(v));
    }
    if let Some(v) = opts.port {
        set("port", i64::from(v).into());
    }
    if let Some(v) = &opts.database {
        set("database", text(v));
    }
    if let Some(v) = &opts.user {
        set("user", text(v));
    }
    if let Some(v) = &opts.sslmode {
        set("sslmode", text(v));
    }
    if let Some(v) = &opts.ca_file {
        set("ca-file", path(v));
    }
    if opts.lazy_refresh {
        set("lazy-refresh", true.into());
    }
    if let Some(v) = opts.max_connections {
        set(
            "max-connections",
            i64::try_from(v).unwrap_or(i64::MAX).into(),
        );
    }
    if let Some(v) = &opts.min_sigterm_delay {
        set("min-sigterm-delay", text(v));
    }
    if let Some(v) = &opts.max_sigterm_delay {
        set("max-sigterm-delay", text(v));
    }
    if let Some(v) = &opts.admin_listen {
        set("admin-listen", text(v));
    }
    if opts.run_connection_test {
        set("run-connection-test", true.into());
    }
    let config: SidecarConfig = toml::Value::Table(table)
        .try_into()
        .context("proxy configuration")?;
    Ok(config)
}
