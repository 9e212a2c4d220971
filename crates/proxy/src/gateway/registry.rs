//! The principal registry kept inside PostgreSQL (schema `pgaadauth`, Azure's function names):
//! the install script, the directory sync, and a loader that keeps an in-memory copy current
//! through LISTEN/NOTIFY plus a periodic reload. It never validates tokens.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tokio_util::sync::CancellationToken;

use crate::config::{DirectoryEntry, Endpoint};

/// The install script: schema `pgaadauth`, role `azure_pg_admin`, and the functions
/// `pgaadauth_create_principal_with_oid`, `pgaadauth_create_principal`,
/// `pgaadauth_list_principals`, `pgaadauth_drop_principal`. Idempotent.
pub const REGISTRY_SQL: &str = include_str!("registry.sql");

/// Channel notified by the trigger on `pgaadauth.principals`.
pub const NOTIFY_CHANNEL: &str = "pgaadauth_principals";

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database refused or the connection failed.
    #[error("{context}: {source}")]
    Postgres {
        /// What was being done.
        context: &'static str,
        /// The driver error.
        source: tokio_postgres::Error,
    },
    /// A row that cannot be a principal.
    #[error("invalid registry row for role {0:?}")]
    InvalidRow(String),
}

fn pg(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> RegistryError {
    move |source| RegistryError::Postgres { context, source }
}

/// Kind of Entra principal a role is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    /// A user (delegated tokens, `oid` must match).
    User,
    /// A group (`groups` must contain the object id).
    Group,
    /// A service principal or managed identity (app tokens, `oid` or `appid` must match).
    Service,
}

impl PrincipalType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(PrincipalType::User),
            "group" => Some(PrincipalType::Group),
            "service" => Some(PrincipalType::Service),
            _ => None,
        }
    }
}

/// A registered role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// PostgreSQL role name.
    pub role: String,
    /// Entra object id (lower case).
    pub object_id: String,
    /// Principal kind.
    pub kind: PrincipalType,
    /// Tenant id ("" when unknown).
    pub tenant_id: String,
    /// Member of `azure_pg_admin`.
    pub is_admin: bool,
    /// Login requires `mfa` in `amr`.
    pub is_mfa: bool,
}

/// Installs (or upgrades) the registry objects. Run it in the registry database (`postgres`).
pub async fn install_registry(client: &Client) -> Result<(), RegistryError> {
    client
        .batch_execute(REGISTRY_SQL)
        .await
        .map_err(pg("installing the pgaadauth registry"))
}

/// Replaces the directory table with `entries` and records the default tenant.
pub async fn sync_directory(
    client: &mut Client,
    entries: &[DirectoryEntry],
    default_tenant: &str,
) -> Result<(), RegistryError> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("syncing the identity directory"))?;
    tx.execute(
        "INSERT INTO pgaadauth.settings (key, value) VALUES ('tenant_id', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&default_tenant],
    )
    .await
    .map_err(pg("recording the tenant"))?;
    tx.execute("DELETE FROM pgaadauth.directory", &[])
        .await
        .map_err(pg("syncing the identity directory"))?;
    for e in entries {
        let tenant = e.tenant_id.as_deref().unwrap_or(default_tenant);
        tx.execute(
            "INSERT INTO pgaadauth.directory (display_name, object_id, object_type, tenant_id)
             VALUES ($1, lower($2), $3, $4) ON CONFLICT DO NOTHING",
            &[&e.name, &e.object_id, &e.object_type, &tenant],
        )
        .await
        .map_err(pg("syncing the identity directory"))?;
    }
    tx.commit()
        .await
        .map_err(pg("syncing the identity directory"))
}

/// Reads all registered principals whose role still exists.
pub async fn load(client: &Client) -> Result<HashMap<String, Principal>, RegistryError> {
    let rows = client
        .query(
            "SELECT p.rolname::text, p.object_id, p.principal_type, p.tenant_id, p.is_admin, p.is_mfa
             FROM pgaadauth.principals p JOIN pg_roles r ON r.rolname = p.rolname",
            &[],
        )
        .await
        .map_err(pg("loading the pgaadauth registry (did `pgentra gateway init` run?)"))?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let role: String = row.get(0);
        let kind_text: String = row.get(2);
        let kind = PrincipalType::parse(&kind_text)
            .ok_or_else(|| RegistryError::InvalidRow(role.clone()))?;
        let object_id: String = row.get(1);
        out.insert(
            role.clone(),
            Principal {
                role,
                object_id: object_id.to_ascii_lowercase(),
                kind,
                tenant_id: row.get(3),
                is_admin: row.get(4),
                is_mfa: row.get(5),
            },
        );
    }
    Ok(out)
}

/// A connection to the registry database plus its notification stream.
pub struct AdminConnection {
    /// The client.
    pub client: Client,
    /// One message per received notification; closes when the connection ends.
    pub notifications: mpsc::UnboundedReceiver<()>,
}

impl std::fmt::Debug for AdminConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConnection").finish_non_exhaustive()
    }
}

/// Connects to `database` as `user` over `endpoint` (the trusted channel) without a password,
/// with client TLS when `tls` is given.
pub async fn connect_admin(
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
    user: &str,
    database: &str,
) -> Result<AdminConnection, RegistryError> {
    let mut cfg = tokio_postgres::Config::new();
    if endpoint.is_unix() {
        cfg.host_path(&endpoint.host);
    } else {
        cfg.host(&endpoint.host);
    }
    cfg.port(endpoint.port)
        .user(user)
        .dbname(database)
        .application_name("pgentra-gateway-registry")
        .connect_timeout(Duration::from_secs(10));
    let (tx, rx) = mpsc::unbounded_channel();
    let client = match tls {
        None => {
            let (client, connection) = cfg
                .connect(NoTls)
                .await
                .map_err(pg("connecting to the registry database"))?;
            tokio::spawn(forward_notifications(connection, tx));
            client
        }
        Some(tls) => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, connection) = cfg
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (**tls).clone(),
                ))
                .await
                .map_err(pg("connecting to the registry database"))?;
            tokio::spawn(forward_notifications(connection, tx));
            client
        }
    };
    Ok(AdminConnection {
        client,
        notifications: rx,
    })
}

/// Drives the connection, turning notifications into channel messages, until it ends.
async fn forward_notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    tx: mpsc::UnboundedSender<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(m) = messages.next().await {
        match m {
            Ok(AsyncMessage::Notification(_)) => {
                if tx.send(()).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "registry connection failed");
                break;
            }
        }
    }
}

/// The in-memory registry the sessions consult.
#[derive(Debug)]
pub struct Registry {
    principals: RwLock<Arc<HashMap<String, Principal>>>,
    generation: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            principals: RwLock::new(Arc::new(HashMap::new())),
            generation: watch::channel(0).0,
        }
    }
}

impl Registry {
    /// The principal registered for `role`.
    pub fn get(&self, role: &str) -> Option<Principal> {
        self.principals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(role)
            .cloned()
    }

    /// Replaces the contents (bumps the generation).
    pub fn replace(&self, principals: HashMap<String, Principal>) {
        *self.principals.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(principals);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Number of successful loads so far (0: never loaded).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Number of registered principals.
    pub fn len(&self) -> usize {
        self.principals.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the generation exceeds `seen`.
    pub async fn changed_since(&self, seen: u64) {
        let mut rx = self.generation.subscribe();
        let _ = rx.wait_for(|g| *g > seen).await;
    }
}

/// What the loader needs.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Trusted channel to the server.
    pub endpoint: Endpoint,
    /// Client TLS on that channel.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Registry role.
    pub user: String,
    /// Registry database.
    pub database: String,
    /// Fallback reload period.
    pub interval: Duration,
    /// Directory entries to publish (not published when empty).
    pub directory: Vec<DirectoryEntry>,
    /// Default tenant recorded with the directory.
    pub tenant: String,
}

/// Keeps `registry` current until `stop` fires: reconnects with backoff, reloads on every
/// notification and every `interval`.
pub async fn run_loader(registry: Arc<Registry>, cfg: LoaderConfig, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match connect_admin(&cfg.endpoint, cfg.tls.as_ref(), &cfg.user, &cfg.database).await {
            Ok(mut conn) => {
                backoff = Duration::from_millis(250);
                if let Err(e) = serve_connection(&registry, &cfg, &mut conn, &stop).await {
                    tracing::error!(error = %e, "principal registry unavailable");
                }
            }
            Err(e) => tracing::error!(error = %e, "principal registry unavailable"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn serve_connection(
    registry: &Registry,
    cfg: &LoaderConfig,
    conn: &mut AdminConnection,
    stop: &CancellationToken,
) -> Result<(), RegistryError> {
    if !cfg.directory.is_empty() {
        sync_directory(&mut conn.client, &cfg.directory, &cfg.tenant).await?;
    }
    conn.client
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await
        .map_err(pg("listening for registry changes"))?;
    // Load after LISTEN so no change can slip between the two.
    reload(registry, &conn.client).await?;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            n = conn.notifications.recv() => {
                if n.is_none() {
                    tracing::warn!("registry connection closed; reconnecting");
                    return Ok(());
                }
                // Coalesce a burst of notifications into one reload.
                while conn.notifications.try_recv().is_ok() {}
                reload(registry, &conn.client).await?;
            }
            _ = tick.tick() => reload(registry, &conn.client).await?,
        }
    }
}

async fn reload(registry: &Registry, client: &Client) -> Result<(), RegistryError> {
    let principals = load(client).await?;
    tracing::debug!(principals = principals.len(), "principal registry loaded");
    registry.replace(principals);
    Ok(())
}
