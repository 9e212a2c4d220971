//! Gateway mode: wiring of listeners, TLS, token validation, the principal registry, the admin
//! endpoint and graceful shutdown. The per-connection logic lives in `session`.

pub mod auth;
pub mod failure;
pub mod jwks;
pub mod registry;
mod session;
pub mod trusted;
pub mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::health::HealthState;
use crate::listener::Listener;
use crate::metrics::Metrics;
use crate::startup::StartupPolicy;
use jwks::{JwksCache, KeySource};
use registry::{LoaderConfig, Registry};
use validate::{Clock, ValidationRules, Validator};

/// State shared by all sessions.
pub(crate) struct Core {
    pub config: GatewayConfig,
    pub policy: StartupPolicy,
    pub validator: Validator,
    pub registry: Arc<Registry>,
    pub cancels: CancelMap,
    pub trusted: trusted::TrustedChannel,
    pub metrics: Arc<Metrics>,
    /// Fires when the drain deadline has passed: sessions still running are cut.
    pub sessions_stop: CancellationToken,
}

/// A gateway whose sockets are bound but which does not serve yet. Lets callers (tests, the CLI)
/// learn the actual addresses before serving.
pub struct BoundGateway {
    core: Arc<Core>,
    listeners: Vec<Listener>,
    admin: Option<tokio::net::TcpListener>,
    health: Arc<HealthState>,
}

impl std::fmt::Debug for BoundGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundGateway")
            .field("tcp", &self.tcp_addrs())
            .field("unix", &self.unix_socket_path())
            .field("admin", &self.admin_addr())
            .finish()
    }
}

/// A cheap handle to a running gateway's state, for tests and the CLI.
#[derive(Clone)]
pub struct GatewayHandle {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("registry_generation", &self.registry.generation())
            .finish()
    }
}

impl GatewayHandle {
    /// Waits until the registry has been loaded at least once (the readiness condition).
    pub async fn wait_ready(&self) {
        self.registry.changed_since(0).await;
    }

    /// Number of registry loads so far.
    pub fn registry_generation(&self) -> u64 {
        self.registry.generation()
    }

    /// Waits for a registry load after `seen`.
    pub async fn registry_changed_since(&self, seen: u64) {
        self.registry.changed_since(seen).await;
    }

    /// Whether `role` is currently registered.
    pub fn is_registered(&self, role: &str) -> bool {
        self.registry.get(role).is_some()
    }

    /// Prometheus text of the metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Failures counted for a reason label (e.g. `expired`).
    pub fn failures_for(&self, reason: &str) -> u64 {
        self.metrics.failures_for(reason)
    }

    /// Whether the readiness probe reports ready.
    pub fn is_ready(&self) -> bool {
        self.health.ready.load(Ordering::Acquire)
    }
}

fn http_client(config: &GatewayConfig) -> Result<reqwest::Client, GatewayError> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("pgentra-gateway/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &config.auth.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| GatewayError::Http(format!("reading {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| GatewayError::Http(format!("{}: {e}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| GatewayError::Http(e.to_string()))
}

impl BoundGateway {
    /// Validates the configuration, loads TLS material and binds every listener.
    pub async fn bind(config: GatewayConfig) -> Result<Self, GatewayError> {
        Self::bind_with_clock(config, validate::system_clock()).await
    }

    /// As [`BoundGateway::bind`] with an injected clock for token time checks.
    pub async fn bind_with_clock(
        config: GatewayConfig,
        clock: Clock,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let source = match (&config.auth.jwks_url, &config.auth.discovery_url) {
            (Some(url), _) => KeySource::Jwks(url.clone()),
            (None, Some(url)) => KeySource::Discovery(url.clone()),
            (None, None) => unreachable!("validate() requires a key source"),
        };
        let keys = Arc::new(JwksCache::new(
            source,
            http_client(&config)?,
            Duration::from_millis(config.auth.jwks_min_refresh_ms),
            Duration::from_secs(config.auth.jwks_max_age_secs),
        ));
        let rules = ValidationRules {
            audiences: config.auth.audiences.iter().cloned().collect(),
            issuers: config.issuers().into_iter().collect(),
            tenants: config.auth.tenants.iter().cloned().collect(),
            leeway: Duration::from_secs(config.auth.leeway_secs),
        };
        let validator = Validator::new(rules, keys, config.auth.token_cache_size, clock);

        let mut listeners = Vec::new();
        for addr in &config.listen {
            listeners.push(Listener::bind_tcp(addr).await?);
        }
        if let Some(dir) = &config.unix_socket_dir {
            let port = config
                .unix_socket_port
                .or_else(|| {
                    listeners
                        .iter()
                        .find_map(|l| l.local_addr())
                        .map(|a| a.port())
                })
                .unwrap_or(5432);
            listeners.push(Listener::bind_unix(dir, port)?);
        }
        let admin =
            match &config.admin_listen {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(
                    |source| GatewayError::Bind {
                        addr: addr.clone(),
                        source,
                    },
                )?),
                None => None,
            };
        let trusted_tls = config
            .upstream
            .trusted_tls
            .as_ref()
            .map(crate::tls::upstream_client)
            .transpose()?;
        let trusted = trusted::TrustedChannel::new(config.upstream.trusted.clone(), trusted_tls);
        let core = Arc::new(Core {
            trusted,
            policy: StartupPolicy {
                tls,
                plaintext: config.plaintext,
            },
            validator,
            registry: Arc::new(Registry::default()),
            cancels: CancelMap::default(),
            metrics: Arc::new(Metrics::default()),
            sessions_stop: CancellationToken::new(),
            config,
        });
        let health = Arc::new(HealthState::default());
        health.started.store(true, Ordering::Release);
        Ok(BoundGateway {
            core,
            listeners,
            admin,
            health,
        })
    }

    /// Bound TCP addresses, in configuration order.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr())
            .collect()
    }

    /// The unix socket file, when configured.
    pub fn unix_socket_path(&self) -> Option<PathBuf> {
        self.listeners
            .iter()
            .find_map(|l| l.socket_path())
            .map(Path::to_path_buf)
    }

    /// The admin HTTP address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle to the gateway's state.
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            registry: self.core.registry.clone(),
            metrics: self.core.metrics.clone(),
            health: self.health.clone(),
        }
    }

    /// Serves until `shutdown` fires, then stops accepting, lets sessions finish for up to
    /// `shutdown_grace_ms`, cuts the rest, and returns.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), GatewayError> {
        let BoundGateway {
            core,
            listeners,
            admin,
            health,
        } = self;
        let background = CancellationToken::new();
        let tracker = TaskTracker::new();

        // Registry loader; readiness follows its first load.
        let loader = LoaderConfig {
            endpoint: core.config.upstream.trusted.clone(),
            tls: core.trusted.tls().cloned(),
            user: core.config.registry.admin_user.clone(),
            database: core.config.registry.database.clone(),
            interval: Duration::from_secs(core.config.registry.reload_interval_secs.max(1)),
            directory: core.config.registry.directory.clone(),
            tenant: core
                .config
                .auth
                .tenants
                .first()
                .cloned()
                .unwrap_or_default(),
        };
        let bg = tokio::spawn(registry::run_loader(
            core.registry.clone(),
            loader,
            background.clone(),
        ));
        {
            let registry = core.registry.clone();
            let health = health.clone();
            let stop = background.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = registry.changed_since(0) => health.ready.store(true, Ordering::Release),
                    _ = stop.cancelled() => {}
                }
            });
        }
        if let Some(admin) = admin {
            let app = crate::health::router(health.clone(), core.metrics.clone());
            let stop = background.clone();
            tokio::spawn(async move {
                let served = axum::serve(admin, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "admin endpoint failed");
                }
            });
        }

        let permits = Arc::new(Semaphore::new(core.config.max_connections));
        let mut accepts = Vec::new();
        for listener in listeners {
            let core = core.clone();
            let tracker = tracker.clone();
            let permits = permits.clone();
            let stop = shutdown.clone();
            accepts.push(tokio::spawn(async move {
                accept_loop(listener, core, tracker, permits, stop).await;
            }));
        }
        tracing::info!("gateway serving");
        shutdown.cancelled().await;

        tracing::info!("shutdown requested: no longer accepting connections");
        health.draining.store(true, Ordering::Release);
        for a in accepts {
            let _ = a.await; // each loop returns promptly once `shutdown` fired; listeners drop here
        }
        tracker.close();
        let grace = Duration::from_millis(core.config.shutdown_grace_ms);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                remaining = tracker.len(),
                "drain deadline passed: closing remaining sessions"
            );
            core.sessions_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        }
        background.cancel();
        let _ = bg.await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

async fn accept_loop(
    listener: Listener,
    core: Arc<Core>,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (io, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        core.metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let permit = permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            core.metrics
                .connections_refused_total
                .fetch_add(1, Ordering::Relaxed);
        }
        tracker.spawn(session::run(core.clone(), io, peer, permit));
    }
}

/// Serves a gateway with `config` until `shutdown` fires (see [`BoundGateway::serve`]).
pub async fn run(config: GatewayConfig, shutdown: CancellationToken) -> Result<(), GatewayError> {
    BoundGateway::bind(config).await?.serve(shutdown).await
}

/// What [`init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Directory entries published.
    pub directory_entries: usize,
    /// Messages returned for the configured administrators (`Created role for "…"`).
    pub admins: Vec<String>,
}

/// `pgentra gateway init`: installs the registry into the registry database over the trusted
/// channel, publishes the directory, and registers the configured Entra administrators.
pub async fn init(config: &GatewayConfig) -> Result<InitReport, GatewayError> {
    let tls = config
        .upstream
        .trusted_tls
        .as_ref()
        .map(crate::tls::upstream_client)
        .transpose()?;
    let mut conn = registry::connect_admin(
        &config.upstream.trusted,
        tls.as_ref(),
        &config.registry.admin_user,
        &config.registry.database,
    )
    .await?;
    registry::install_registry(&conn.client).await?;
    let tenant = config.auth.tenants.first().cloned().unwrap_or_default();
    registry::sync_directory(&mut conn.client, &config.registry.directory, &tenant).await?;
    let mut admins = Vec::new();
    for a in &config.registry.admins {
        let row = conn
            .client
            .query_one(
                "SELECT pgaadauth_create_principal_with_oid($1, $2, $3, true, false)",
                &[&a.name, &a.object_id, &a.object_type],
            )
            .await
            .map_err(|source| registry::RegistryError::Postgres {
                context: "registering an administrator",
                source,
            })?;
        admins.push(row.get(0));
    }
    Ok(InitReport {
        directory_entries: config.registry.directory.len(),
        admins,
    })
}
