//! Sidecar mode (`pgentra proxy`): apps connect to a local port or unix socket with no password,
//! and the sidecar logs in to the real server with a Microsoft Entra token from the token cache.
//! This module wires listeners, the admin endpoint, the connection test and graceful shutdown;
//! the per-connection logic is in `session`. It never verifies tokens (that is the server's job).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pgentra_proxy::sidecar::{BoundSidecar, SidecarConfig};
//! use pgentra_token::{DefaultCredential, DefaultCredentialOptions, Env, TokenCache};
//! let config = SidecarConfig::from_toml(r#"host = "mydb.postgres.database.azure.com"
//! user = "aad_myapp""#)?;
//! let credential = DefaultCredential::from_env(&Env::from_process(), DefaultCredentialOptions::default())?;
//! let tokens = TokenCache::with_options(credential, config.cache_options());
//! let bound = BoundSidecar::bind(config, tokens).await?;
//! println!("listening on {:?}", bound.addresses());
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let report = bound.serve(shutdown).await?;
//! # let _ = report; Ok(()) }
//! ```

pub mod config;
pub mod dial;
pub mod identity;
pub mod metrics;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::routing::any;
use pgentra_token::TokenCache;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::config::{PlaintextPolicy, TlsFiles};
use crate::health::{AdminSource, HealthState};
use crate::listener::Listener;
use crate::startup::StartupPolicy;
pub use config::{ConfigError, Instance, InstanceConfig, SidecarConfig, SslMode};
use dial::Dialer;
use metrics::SidecarMetrics;

/// Failures of the sidecar as a whole (start-up, configuration, connection test).
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS material could not be loaded or a TLS setting cannot work.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address or path.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// `run-connection-test` failed for an instance.
    #[error("connection test of instance {instance:?} failed: {message}")]
    ConnectionTest {
        /// Instance name.
        instance: String,
        /// What the app would have been told (SQLSTATE and message).
        message: String,
    },
}

impl From<crate::error::GatewayError> for SidecarError {
    fn from(e: crate::error::GatewayError) -> Self {
        match e {
            crate::error::GatewayError::Bind { addr, source } => {
                SidecarError::Bind { addr, source }
            }
            other => SidecarError::Tls(other.to_string()),
        }
    }
}

/// An instance at run time: its settings, how to reach it, and its sessions' cancel keys.
pub(crate) struct InstanceRt {
    pub spec: Instance,
    pub dialer: Dialer,
    pub cancels: CancelMap,
}

/// State shared by all sessions.
pub(crate) struct Core {
    pub instances: Vec<InstanceRt>,
    pub tokens: TokenCache,
    pub policy: StartupPolicy,
    pub client_password: Option<String>,
    pub startup_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_connections: usize,
    pub metrics: Arc<SidecarMetrics>,
    /// Fires when the drain deadline has passed: sessions still running are cut.
    pub sessions_stop: CancellationToken,
}

/// Where one instance listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceAddress {
    /// Instance name.
    pub name: String,
    /// Bound TCP address.
    pub tcp: SocketAddr,
    /// Unix socket file, when configured.
    pub unix_socket: Option<PathBuf>,
}

/// Result of one instance's connection test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionTestResult {
    /// Instance name.
    pub instance: String,
    /// Role the test logged in as.
    pub role: String,
    /// The server's `server_version`, when reported.
    pub server_version: Option<String>,
}

/// How [`BoundSidecar::serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeReport {
    /// Sessions still open at `max-sigterm-delay`, which were cut.
    pub cut_sessions: usize,
}

/// A sidecar whose sockets are bound but which does not serve yet, so callers can learn the
/// actual addresses (port 0) first.
pub struct BoundSidecar {
    core: Arc<Core>,
    listeners: Vec<(usize, Listener)>,
    addresses: Vec<InstanceAddress>,
    admin: Option<tokio::net::TcpListener>,
    health: Arc<HealthState>,
    quitquitquit: bool,
    min_sigterm_delay: Duration,
    max_sigterm_delay: Duration,
}

impl std::fmt::Debug for BoundSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundSidecar")
            .field("addresses", &self.addresses)
            .field("admin", &self.admin_addr())
            .finish()
    }
}

/// A cheap handle to a running sidecar's state, for tests and the CLI.
#[derive(Clone)]
pub struct SidecarHandle {
    metrics: Arc<SidecarMetrics>,
    health: Arc<HealthState>,
    max_connections: usize,
}

impl std::fmt::Debug for SidecarHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidecarHandle")
            .field("active", &self.metrics.active())
            .finish()
    }
}

impl SidecarHandle {
    /// Prometheus text of the metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Client connections open now (all instances).
    pub fn active_connections(&self) -> i64 {
        self.metrics.active()
    }

    /// Failures of instance `i` counted for `reason` (e.g. `upstream_connect`).
    pub fn failures_for(&self, instance: usize, reason: &str) -> u64 {
        self.metrics.instance(instance).failures_for(reason)
    }

    /// Logins of instance `i` retried with a fresh token.
    pub fn login_retries(&self, instance: usize) -> u64 {
        self.metrics
            .instance(instance)
            .auth_retries_total
            .load(Ordering::Relaxed)
    }

    /// What the readiness probe says now.
    pub fn readiness(&self) -> Result<(), String> {
        if self.health.draining.load(Ordering::Acquire) {
            return Err("draining".to_owned());
        }
        readiness(&self.metrics, self.max_connections)
    }
}

/// Ready unless every permitted connection is in use (the Cloud SQL proxy's rule). Neither the
/// database nor the identity endpoint is contacted: a probe that fails on a downstream outage
/// only restarts healthy pods.
fn readiness(metrics: &SidecarMetrics, max_connections: usize) -> Result<(), String> {
    if max_connections > 0 && metrics.active() >= max_connections as i64 {
        return Err(format!("max connections reached ({max_connections})"));
    }
    Ok(())
}

struct Admin {
    metrics: Arc<SidecarMetrics>,
    max_connections: usize,
}

impl AdminSource for Admin {
    fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    fn readiness(&self) -> Result<(), String> {
        readiness(&self.metrics, self.max_connections)
    }
}

impl BoundSidecar {
    /// Validates `config`, loads TLS material, binds every listener and, with
    /// `run-connection-test`, logs in to every instance once.
    pub async fn bind(config: SidecarConfig, tokens: TokenCache) -> Result<Self, SidecarError> {
        let instances = config.instances()?;
        let system = if instances.iter().any(|i| {
            matches!(i.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && !i.upstream.is_unix()
        }) {
            dial::system_roots()
        } else {
            Vec::new()
        };
        let client_tls = match (&config.client_tls_cert, &config.client_tls_key) {
            (Some(cert_file), Some(key_file)) => Some(crate::tls::acceptor(&TlsFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            })?),
            _ => None,
        };
        let plaintext = if config.require_client_tls {
            PlaintextPolicy::Never
        } else {
            PlaintextPolicy::Always
        };
        let mut rts = Vec::with_capacity(instances.len());
        for spec in instances {
            let dialer = Dialer::new(&spec, &system).map_err(SidecarError::Tls)?;
            if spec.sslmode == SslMode::Disable && !spec.upstream.is_unix() {
                tracing::warn!(instance = %spec.name, "sslmode=disable: tokens cross the network unencrypted");
            }
            rts.push(InstanceRt {
                spec,
                dialer,
                cancels: CancelMap::default(),
            });
        }
        if config.allow_non_loopback && config.client_password.is_none() {
            tracing::warn!(
                "non-loopback listeners without client-password: anyone who reaches them logs in as this identity"
            );
        }

        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        for (i, rt) in rts.iter().enumerate() {
            let tcp = Listener::bind_tcp(&rt.spec.listen).await?;
            let addr = tcp.local_addr().ok_or_else(|| SidecarError::Bind {
                addr: rt.spec.listen.clone(),
                source: std::io::Error::other("no local address"),
            })?;
            listeners.push((i, tcp));
            let mut unix_socket = None;
            if let Some(dir) = &rt.spec.unix_socket_dir {
                let l = Listener::bind_unix(dir, addr.port())?;
                unix_socket = l.socket_path().map(|p| p.to_path_buf());
                listeners.push((i, l));
            }
            addresses.push(InstanceAddress {
                name: rt.spec.name.clone(),
                tcp: addr,
                unix_socket,
            });
        }
        let admin =
            match &config.admin_listen {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(
                    |source| SidecarError::Bind {
                        addr: addr.clone(),
                        source,
                    },
                )?),
                None => None,
            };
        let metrics = Arc::new(SidecarMetrics::new(
            rts.iter().map(|r| r.spec.name.clone()).collect(),
            tokens.clone(),
            rts.iter().map(|r| r.spec.scope.clone()).collect(),
        ));
        let core = Arc::new(Core {
            instances: rts,
            tokens,
            policy: StartupPolicy {
                tls: client_tls,
                plaintext,
            },
            client_password: config.client_password.clone(),
            startup_timeout: config.startup_timeout,
            connect_timeout: config.connect_timeout,
            max_connections: config.max_connections,
            metrics,
            sessions_stop: CancellationToken::new(),
        });
        let health = Arc::new(HealthState::default());
        let bound = BoundSidecar {
            core,
            listeners,
            addresses,
            admin,
            health,
            quitquitquit: config.quitquitquit,
            min_sigterm_delay: config.min_sigterm_delay,
            max_sigterm_delay: config.max_sigterm_delay.max(config.min_sigterm_delay),
        };
        if config.run_connection_test {
            for r in bound.run_connection_test().await? {
                tracing::info!(
                    instance = %r.instance, role = %r.role,
                    server_version = r.server_version.as_deref().unwrap_or_default(),
                    "connection test passed"
                );
            }
        }
        bound.health.started.store(true, Ordering::Release);
        bound.health.ready.store(true, Ordering::Release);
        Ok(bound)
    }

    /// Where each instance listens, in configuration order.
    pub fn addresses(&self) -> &[InstanceAddress] {
        &self.addresses
    }

    /// Bound TCP addresses, in configuration order.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.addresses.iter().map(|a| a.tcp).collect()
    }

    /// The admin HTTP address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle to the sidecar's state.
    pub fn handle(&self) -> SidecarHandle {
        SidecarHandle {
            metrics: self.core.metrics.clone(),
            health: self.health.clone(),
            max_connections: self.core.max_connections,
        }
    }

    /// Logs in to every instance once as its configured role (or the token's principal) and
    /// database (or `postgres`), then closes. Errors carry what an app would have been told.
    pub async fn run_connection_test(&self) -> Result<Vec<ConnectionTestResult>, SidecarError> {
        let mut out = Vec::new();
        for (i, rt) in self.core.instances.iter().enumerate() {
            let mut params = vec![("user".to_owned(), "*".to_owned())];
            params.push((
                "database".to_owned(),
                rt.spec
                    .database
                    .clone()
                    .unwrap_or_else(|| "postgres".into()),
            ));
            params.push((
                "application_name".to_owned(),
                "pgentra proxy connection test".to_owned(),
            ));
            let startup = pgentra_wire::Startup {
                version: pgentra_wire::ProtocolVersion::V3_0,
                params,
            };
            match session::connect_upstream(&self.core, rt, i, &startup).await {
                Ok(mut up) => {
                    let mut bye = bytes::BytesMut::new();
                    pgentra_wire::frontend::encode::terminate(&mut bye);
                    use tokio::io::AsyncWriteExt as _;
                    let _ = up.stream.write_all(&bye).await;
                    let _ = up.stream.shutdown().await;
                    let server_version = up.login.preamble.iter().find_map(|f| {
                        let body = &f.body[..];
                        (f.tag == b'S' && body.starts_with(b"server_version\0")).then(|| {
                            String::from_utf8_lossy(&body[15..])
                                .trim_end_matches('\0')
                                .to_owned()
                        })
                    });
                    out.push(ConnectionTestResult {
                        instance: rt.spec.name.clone(),
                        role: up.role,
                        server_version,
                    });
                }
                Err(e) => {
                    let message = match e.to_client() {
                        Some(f) => match f.detail {
                            Some(d) => format!("{} {} ({d})", f.code, f.message),
                            None => format!("{} {}", f.code, f.message),
                        },
                        None => e.to_string(),
                    };
                    return Err(SidecarError::ConnectionTest {
                        instance: rt.spec.name.clone(),
                        message,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Serves until `shutdown` fires, then: keeps accepting for `min-sigterm-delay` (readiness
    /// already reports draining), stops accepting, lets open sessions finish until
    /// `max-sigterm-delay` after the signal, cuts the rest, and returns.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<ServeReport, SidecarError> {
        let BoundSidecar {
            core,
            listeners,
            addresses: _,
            admin,
            health,
            quitquitquit,
            min_sigterm_delay,
            max_sigterm_delay,
        } = self;
        let background = CancellationToken::new();
        let tracker = TaskTracker::new();

        // Warm the cache so the first app connection does not wait for the identity endpoint;
        // in background mode this also starts the refresh-ahead task.
        let mut scopes: Vec<String> = core
            .instances
            .iter()
            .map(|i| i.spec.scope.clone())
            .collect();
        scopes.sort();
        scopes.dedup();
        for scope in scopes {
            let tokens = core.tokens.clone();
            let stop = background.clone();
            tokio::spawn(async move {
                tokio::select! {
                    r = tokens.get_token(&scope) => match r {
                        Ok(t) => tracing::info!(
                            scope = %scope,
                            expires_in_s = t.expires_in(std::time::SystemTime::now()).as_secs(),
                            "access token ready"
                        ),
                        Err(e) => tracing::warn!(scope = %scope, error = %e, "could not get an access token yet; connections will retry"),
                    },
                    _ = stop.cancelled() => {}
                }
            });
        }

        if let Some(admin) = admin {
            let source = Arc::new(Admin {
                metrics: core.metrics.clone(),
                max_connections: core.max_connections,
            });
            let mut app = crate::health::router_with(health.clone(), source);
            if quitquitquit {
                let trigger = shutdown.clone();
                app = app.route(
                    "/quitquitquit",
                    any(move || {
                        let trigger = trigger.clone();
                        async move {
                            tracing::info!("shutdown requested over /quitquitquit");
                            trigger.cancel();
                            "shutting down\n"
                        }
                    }),
                );
            }
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

        let permits =
            (core.max_connections > 0).then(|| Arc::new(Semaphore::new(core.max_connections)));
        let accept_stop = CancellationToken::new();
        let mut accepts = Vec::new();
        for (idx, listener) in listeners {
            accepts.push(tokio::spawn(accept_loop(
                listener,
                idx,
                core.clone(),
                tracker.clone(),
                permits.clone(),
                accept_stop.clone(),
            )));
        }
        tracing::info!(instances = core.instances.len(), "proxy serving");
        shutdown.cancelled().await;

        let signalled = tokio::time::Instant::now();
        health.draining.store(true, Ordering::Release);
        if !min_sigterm_delay.is_zero() {
            tracing::info!(
                delay_ms = min_sigterm_delay.as_millis() as u64,
                "shutdown requested: still accepting new connections for min-sigterm-delay"
            );
            tokio::time::sleep(min_sigterm_delay).await;
        }
        tracing::info!(
            open = tracker.len(),
            "no longer accepting connections; draining"
        );
        accept_stop.cancel();
        for a in accepts {
            let _ = a.await; // listeners (and unix socket files) are dropped here
        }
        tracker.close();
        let mut cut_sessions = 0;
        if tokio::time::timeout_at(signalled + max_sigterm_delay, tracker.wait())
            .await
            .is_err()
        {
            cut_sessions = tracker.len();
            tracing::warn!(
                remaining = cut_sessions,
                "max-sigterm-delay passed: closing remaining sessions"
            );
            core.sessions_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        }
        background.cancel();
        tracing::info!("proxy stopped");
        Ok(ServeReport { cut_sessions })
    }
}

async fn accept_loop(
    listener: Listener,
    idx: usize,
    core: Arc<Core>,
    tracker: TaskTracker,
    permits: Option<Arc<Semaphore>>,
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
        let m = core.metrics.instance(idx);
        m.connections_total.fetch_add(1, Ordering::Relaxed);
        let permit = match &permits {
            None => None,
            Some(p) => match p.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    m.connections_refused_total.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(instance = %core.instances[idx].spec.name, "max-connections reached: connection refused");
                    tracker.spawn(session::refuse_too_many(io));
                    continue;
                }
            },
        };
        tracker.spawn(session::run(core.clone(), idx, io, peer, permit));
    }
}

/// Binds and serves `config` until `shutdown` fires (see [`BoundSidecar::serve`]).
pub async fn run(
    config: SidecarConfig,
    tokens: TokenCache,
    shutdown: CancellationToken,
) -> Result<ServeReport, SidecarError> {
    BoundSidecar::bind(config, tokens)
        .await?
        .serve(shutdown)
        .await
}

/// Why [`wait`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The admin address is not usable.
    #[error("invalid admin address {0:?}")]
    Address(String),
    /// The probe did not answer 200 in time.
    #[error("the proxy at {url} did not report started within {waited:?}: {last}")]
    TimedOut {
        /// Probe URL.
        url: String,
        /// How long we waited.
        waited: Duration,
        /// The last answer or error.
        last: String,
    },
}

/// `pgentra proxy wait`: polls the `/startup` probe at `admin` (`host:port` or an `http://`
/// URL) until it answers 200 or `max` passes; for container start order.
pub async fn wait(admin: &str, max: Duration) -> Result<(), WaitError> {
    let base = if admin.starts_with("http://") || admin.starts_with("https://") {
        admin.trim_end_matches('/').to_owned()
    } else {
        format!("http://{admin}")
    };
    let url = format!("{base}/startup");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| WaitError::Address(format!("{admin}: {e}")))?;
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let last = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) if e.is_builder() => return Err(WaitError::Address(admin.to_owned())),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(WaitError::TimedOut {
                url,
                waited: max,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
