//! The public entry points: [`Emulator::builder`] to start, [`RunningEmulator`] to use and
//! control a running emulator (bases, env exports, request log, clock, faults, keys, minting).
//!
//! Starting binds sockets and prepares the state dir; everything else delegates to the modules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::claims::{self, Times};
use crate::clock::Clock;
use crate::config::{Config, User};
use crate::dev;
use crate::directory::{App, Directory, IdentitySelector};
use crate::error::Error;
use crate::faults::Faults;
use crate::keys::{KeyRing, SigningKey};
use crate::record::RecordedRequest;
use crate::server::{State, spawn_listener};

/// The identity emulator. Start one with [`Emulator::builder`].
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the development config, loopback listeners on free ports, a temporary
    /// state dir and a random identity header.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Options for starting an emulator.
#[derive(Debug, Default)]
pub struct Builder {
    config: Option<Config>,
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    identity_header: Option<String>,
}

const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl Builder {
    /// The directory to serve (default: [`Config::default`], the development config).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }
    /// Plain-HTTP listener (managed identity, IMDS and all Entra endpoints); default
    /// `127.0.0.1:0`.
    pub fn http_addr(mut self, addr: SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }
    /// HTTPS listener (the Entra authority SDKs require); default `127.0.0.1:0`.
    pub fn https_addr(mut self, addr: SocketAddr) -> Self {
        self.https_addr = Some(addr);
        self
    }
    /// Where the CA, server certificate and signing key live; reused across runs. Default: a
    /// temporary directory removed when the last handle is dropped.
    pub fn state_dir(mut self, dir: PathBuf) -> Self {
        self.state_dir = Some(dir);
        self
    }
    /// The App Service identity header secret (default: random).
    pub fn identity_header(mut self, value: String) -> Self {
        self.identity_header = Some(value);
        self
    }

    /// Loads or creates the state dir material, binds both listeners and starts serving.
    pub async fn start(self) -> Result<RunningEmulator, Error> {
        let config = self.config.unwrap_or_default();
        let (state_dir, temp) = match self.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("pgentra-emulator-")
                    .tempdir()
                    .map_err(|source| Error::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let dir = Directory::new(config)?;
        // Key generation and certificate issuance take ~0.1 s of CPU: keep them off the runtime.
        let material_dir = state_dir.clone();
        let tls_names = dir.config.tls_names.clone();
        let (key, tls) = tokio::task::spawn_blocking(move || {
            let key = SigningKey::load_or_generate(&material_dir)?;
            let tls = crate::tls::load_or_create(&material_dir, &tls_names)?;
            Ok::<_, Error>((key, tls))
        })
        .await
        .map_err(|e| Error::Key(format!("key setup task failed: {e}")))??;

        let http_addr = self.http_addr.unwrap_or(LOOPBACK_ANY_PORT);
        let https_addr = self.https_addr.unwrap_or(LOOPBACK_ANY_PORT);
        let http = bind(http_addr).await?;
        let https = bind(https_addr).await?;
        let http_local = local_addr(&http, http_addr)?;
        let https_local = local_addr(&https, https_addr)?;
        let http_base = format!("http://{}", display_addr(http_local));
        // The certificate names localhost; SDKs then verify the name they connect to.
        let https_base = format!("https://localhost:{}", https_local.port());

        let identity_header = self
            .identity_header
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let state = Arc::new(State::new(
            dir,
            KeyRing::new(key),
            identity_header,
            http_base.clone(),
            https_base.clone(),
        ));
        let router = crate::routes::router(state.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let tasks = vec![
            spawn_listener(
                http,
                None,
                router.clone(),
                "http",
                http_base,
                shutdown_rx.clone(),
            ),
            spawn_listener(
                https,
                Some(acceptor),
                router,
                "https",
                https_base,
                shutdown_rx,
            ),
        ];
        tracing::info!(http = %http_local, https = %https_local, state_dir = %state_dir.display(), "identity emulator started");
        Ok(RunningEmulator {
            inner: Arc::new(Handle {
                state,
                shutdown,
                tasks: Mutex::new(tasks),
                http_addr: http_local,
                https_addr: https_local,
                ca_pem: tls.ca_pem,
                ca_path: tls.ca_path,
                state_dir,
                _temp: temp,
            }),
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, asked: SocketAddr) -> Result<SocketAddr, Error> {
    let mut local = listener.local_addr().map_err(|source| Error::Bind {
        addr: asked,
        source,
    })?;
    // A wildcard bind is reached through loopback from this machine.
    if local.ip().is_unspecified() {
        local.set_ip(match local.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    Ok(local)
}

fn display_addr(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    }
}

/// Who [`RunningEmulator::mint_for`] issues a token for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    /// The system-assigned managed identity.
    SystemMi,
    /// A user-assigned managed identity, by client id.
    UserMi {
        /// Client id.
        client_id: &'a str,
    },
    /// A service principal, by client (application) id.
    ServicePrincipal {
        /// Client id.
        client_id: &'a str,
    },
    /// A user, by UPN (token as if obtained through the Azure CLI's public client).
    User {
        /// User principal name.
        upn: &'a str,
    },
}

/// Which environment variables [`RunningEmulator::env_exports`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvProfile {
    /// `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (system-assigned managed identity).
    AppService,
    /// [`EnvProfile::AppService`] plus `AZURE_CLIENT_ID` of the first user-assigned identity.
    AppServiceUserAssigned,
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` (IMDS).
    Imds,
    /// `AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` of the
    /// first service principal with a secret, plus [`EnvProfile::TlsTrust`].
    ClientSecret,
    /// `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, `SSL_CERT_FILE` = the emulator CA.
    TlsTrust,
}

struct Handle {
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    state_dir: PathBuf,
    /// Removed after the listeners were told to stop (fields drop after `Drop::drop`).
    _temp: Option<tempfile::TempDir>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A running emulator. Cheap to clone; dropping the last clone stops the listeners.
#[derive(Clone)]
pub struct RunningEmulator {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("http", &self.inner.http_addr)
            .field("https", &self.inner.https_addr)
            .field("state_dir", &self.inner.state_dir)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    fn state(&self) -> &State {
        &self.inner.state
    }

    /// `http://127.0.0.1:PORT`: every endpoint over plain HTTP.
    pub fn http_base(&self) -> String {
        self.state().http_base.clone()
    }
    /// `https://localhost:PORT`: every endpoint over TLS (certificate valid for localhost,
    /// 127.0.0.1 and ::1).
    pub fn https_base(&self) -> String {
        self.state().https_base.clone()
    }
    /// The plain-HTTP listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.inner.http_addr
    }
    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.inner.https_addr
    }
    /// `{http_base}/msi/token`, the value for `IDENTITY_ENDPOINT`.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.state().http_base)
    }
    /// The value for `IDENTITY_HEADER`.
    pub fn identity_header(&self) -> String {
        self.state().identity_header.clone()
    }
    /// The value for `AZURE_POD_IDENTITY_AUTHORITY_HOST` (IMDS base).
    pub fn imds_host(&self) -> String {
        self.http_base()
    }
    /// The value for `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> String {
        self.https_base()
    }
    /// Path of the PEM CA certificate that signed the HTTPS certificate.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.inner.ca_path.clone()
    }
    /// The PEM CA certificate that signed the HTTPS certificate.
    pub fn ca_cert_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }
    /// The state dir (CA, server certificate, signing key).
    pub fn state_dir(&self) -> PathBuf {
        self.inner.state_dir.clone()
    }
    /// The configuration being served.
    pub fn config(&self) -> &Config {
        &self.state().dir.config
    }
    /// The default tenant id.
    pub fn tenant_id(&self) -> String {
        self.state().dir.default_tenant.clone()
    }
    /// The v1 issuer of a tenant: `https://sts.windows.net/{tenant}/`.
    pub fn issuer(&self, tenant: &str) -> String {
        claims::v1_issuer(tenant)
    }
    /// `{https_base}/common/discovery/keys` (the same JWKS is served at `http_base`).
    pub fn jwks_url(&self) -> String {
        format!("{}/common/discovery/keys", self.state().https_base)
    }

    /// Environment variables that point an unmodified SDK at this emulator.
    pub fn env_exports(&self, profile: EnvProfile) -> Vec<(String, String)> {
        let pair = |k: &str, v: String| (k.to_string(), v);
        let tls = || {
            let ca = self.ca_cert_path().display().to_string();
            vec![
                pair("REQUESTS_CA_BUNDLE", ca.clone()),
                pair("NODE_EXTRA_CA_CERTS", ca.clone()),
                pair("SSL_CERT_FILE", ca),
            ]
        };
        match profile {
            EnvProfile::AppService => vec![
                pair("IDENTITY_ENDPOINT", self.identity_endpoint()),
                pair("IDENTITY_HEADER", self.identity_header()),
            ],
            EnvProfile::AppServiceUserAssigned => {
                let mut v = self.env_exports(EnvProfile::AppService);
                if let Some(mi) = self.config().user_identities.first() {
                    v.push(pair("AZURE_CLIENT_ID", mi.client_id.clone()));
                }
                v
            }
            EnvProfile::Imds => vec![pair("AZURE_POD_IDENTITY_AUTHORITY_HOST", self.imds_host())],
            EnvProfile::ClientSecret => {
                let mut v = vec![pair("AZURE_AUTHORITY_HOST", self.authority_host())];
                let sp = self
                    .config()
                    .service_principals
                    .iter()
                    .find(|sp| !sp.secrets.is_empty());
                if let Some(sp) = sp {
                    let tenant = sp.tenant.clone().unwrap_or_else(|| self.tenant_id());
                    v.push(pair("AZURE_TENANT_ID", tenant));
                    v.push(pair("AZURE_CLIENT_ID", sp.client_id.clone()));
                    v.push(pair("AZURE_CLIENT_SECRET", sp.secrets[0].clone()));
                } else {
                    v.push(pair("AZURE_TENANT_ID", self.tenant_id()));
                }
                v.extend(tls());
                v
            }
            EnvProfile::TlsTrust => tls(),
        }
    }

    /// The request log, oldest first. Never contains secrets, assertions or tokens.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().log.snapshot()
    }
    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.state().log.clear();
    }
    /// The emulator's clock (shared handle).
    pub fn clock(&self) -> Clock {
        self.state().clock.clone()
    }
    /// Fault injection rules (shared handle).
    pub fn faults(&self) -> Faults {
        self.state().faults.clone()
    }

    /// Makes a new key current and returns its kid; the previous key stays in the JWKS until
    /// [`RunningEmulator::retire_old_keys`]. Cached managed-identity tokens are dropped.
    pub fn rotate_signing_key(&self) -> String {
        let key = match SigningKey::generate() {
            Ok(k) => k,
            Err(e) => {
                // Generation failing means the crypto library is broken; keep signing with the
                // current key rather than panic in a test helper.
                tracing::error!(error = %e, "cannot generate a new signing key");
                return self.state().keys.current().kid().to_string();
            }
        };
        if let Err(e) = key.save(&self.inner.state_dir) {
            tracing::warn!(error = %e, "new signing key not saved to the state dir");
        }
        self.state().keys.rotate(key)
    }
    /// Unpublishes every signing key but the current one.
    pub fn retire_old_keys(&self) {
        self.state().keys.retire();
    }
    /// The current signing key's kid (also its `x5t`).
    pub fn current_kid(&self) -> String {
        self.state().keys.current().kid().to_string()
    }

    /// Signs arbitrary claims with the current key (header `typ`, `alg` RS256, `kid`, `x5t`).
    pub fn mint(&self, claims: serde_json::Value) -> String {
        self.state().keys.current().sign(&claims)
    }

    /// A token for `who` and `resource`, shaped as the real endpoint would issue it, valid for
    /// `lifetime` from the emulator clock's now. Unknown principals get a token built from the
    /// given id (useful to test rejection of strangers).
    pub fn mint_for(&self, who: Principal<'_>, resource: &str, lifetime: Duration) -> String {
        let state = self.state();
        let now = state.clock.now_epoch();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let times = Times::new(now, lifetime);
        let empty = serde_json::Map::new();
        let stranger = |client_id: &'static str, id: &'static str| App {
            client_id,
            object_id: id,
            tenant: &state.dir.default_tenant,
            mirid: None,
            claims: &empty,
            sp: None,
        };
        let claims = match who {
            Principal::SystemMi => {
                let app = state.dir.system_identity().unwrap_or_else(|| {
                    stranger(dev::SYSTEM_MI_CLIENT_ID, dev::SYSTEM_MI_OBJECT_ID)
                });
                claims::app_claims(&app, resource, "2", times)
            }
            Principal::UserMi { client_id } => {
                match state.dir.identity_by(IdentitySelector::ClientId(client_id)) {
                    Some(app) => claims::app_claims(&app, resource, "2", times),
                    None => claims::app_claims(
                        &unknown_app(state, client_id, &empty),
                        resource,
                        "2",
                        times,
                    ),
                }
            }
            Principal::ServicePrincipal { client_id } => match state.dir.app(client_id) {
                Some(app) => claims::app_claims(&app, resource, "1", times),
                None => {
                    claims::app_claims(&unknown_app(state, client_id, &empty), resource, "1", times)
                }
            },
            Principal::User { upn } => {
                let synthetic;
                let (user, tenant) = match state.dir.user(upn) {
                    Some(found) => found,
                    None => {
                        synthetic = User::new(upn, "", derived_guid(upn));
                        (&synthetic, state.dir.default_tenant.as_str())
                    }
                };
                claims::user_claims(
                    user,
                    tenant,
                    dev::PUBLIC_CLIENT_ID,
                    resource,
                    "user_impersonation",
                    times,
                )
            }
        };
        state.keys.current().sign(&claims)
    }

    /// Stops both listeners and waits for them, even if other clones of this handle exist.
    pub async fn shutdown(self) {
        let _ = self.inner.shutdown.send(true);
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                // Poison is ignored: the Vec of join handles is consistent after any panic.
                .unwrap_or_else(|e| e.into_inner()),
        );
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn unknown_app<'a>(
    state: &'a State,
    client_id: &'a str,
    claims: &'a serde_json::Map<String, serde_json::Value>,
) -> App<'a> {
    App {
        client_id,
        object_id: client_id,
        tenant: &state.dir.default_tenant,
        mirid: None,
        claims,
        sp: None,
    }
}

/// A stable GUID for a name (so a stranger's `oid` is the same in every token).
fn derived_guid(name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}
