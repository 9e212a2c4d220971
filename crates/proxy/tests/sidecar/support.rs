//! Test fixture: a throwaway PostgreSQL, the in-process identity emulator, the gateway in front
//! of the cluster (TLS required, Entra roles registered), and sidecars in front of the gateway
//! with tokens from the emulator's App Service managed-identity endpoint. All on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pgentra_emulator::{Emulator, EndpointKind, RunningEmulator, dev};
use pgentra_proxy::sidecar::{InstanceAddress, SslMode};
use pgentra_proxy::{
    BoundGateway, BoundSidecar, DirectoryEntry, Endpoint, GatewayConfig, GatewayHandle,
    PlaintextPolicy, ServeReport, SidecarConfig, SidecarError, SidecarHandle, TlsFiles,
};
use pgentra_testkit::{PgCluster, TestCa};
use pgentra_token::{
    CacheOptions, HttpOptions, ManagedIdentityCredential, ManagedIdentityOptions, OSSRDBMS_SCOPE,
    RetryPolicy, TokenCache,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The role Azure gives the dev system-assigned identity: its App Service's name (the last
/// segment of the token's `xms_mirid`).
pub const APP_ROLE: &str = "pgentra-dev-app";
/// The role of the dev user-assigned identity (its name).
pub const UAMI_ROLE: &str = "pgentra-dev-uami";
/// A database the app role may use besides `postgres`.
pub const APP_DB: &str = "appdb";

/// PostgreSQL + emulator + gateway.
pub struct Stack {
    _pg: PgCluster,
    pub emu: RunningEmulator,
    pub gateway: SocketAddr,
    pub gateway_ca: PathBuf,
    pub gateway_handle: GatewayHandle,
    gateway_stop: CancellationToken,
    gateway_task: Option<JoinHandle<Result<(), pgentra_proxy::GatewayError>>>,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(pgentra_emulator::Config::default()).await
    }

    /// As [`Stack::start`] with an emulator configuration.
    pub async fn start_with(emulator: pgentra_emulator::Config) -> Stack {
        let pg = tokio::task::spawn_blocking(PgCluster::start)
            .await
            .unwrap()
            .expect("start PostgreSQL");
        let emu = Emulator::builder()
            .config(emulator)
            .start()
            .await
            .expect("start emulator");
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new().unwrap();
        let leaf = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        let cert_file = dir.path().join("gateway.pem");
        let key_file = dir.path().join("gateway.key");
        let gateway_ca = dir.path().join("gateway-ca.pem");
        std::fs::write(&cert_file, &leaf.cert_pem).unwrap();
        std::fs::write(&key_file, &leaf.key_pem).unwrap();
        std::fs::write(&gateway_ca, ca.cert_pem()).unwrap();

        let mut config = GatewayConfig {
            listen: vec!["127.0.0.1:0".into()],
            tls: Some(TlsFiles {
                cert_file,
                key_file,
            }),
            plaintext: PlaintextPolicy::Never,
            startup_timeout_ms: 10_000,
            shutdown_grace_ms: 1_000,
            ..GatewayConfig::default()
        };
        config.auth.tenants = vec![emu.tenant_id()];
        config.auth.jwks_url = Some(emu.jwks_url());
        config.auth.ca_file = Some(emu.ca_cert_path());
        config.auth.jwks_min_refresh_ms = 0;
        config.upstream.trusted = Endpoint {
            host: pg.socket_dir().display().to_string(),
            port: pg.port(),
        };
        let entry = |name: &str, oid: &str| DirectoryEntry {
            name: name.to_owned(),
            object_id: oid.to_owned(),
            object_type: "service".to_owned(),
            tenant_id: None,
        };
        config.registry.directory = vec![
            entry(APP_ROLE, dev::SYSTEM_MI_OBJECT_ID),
            entry(UAMI_ROLE, dev::USER_MI_OBJECT_ID),
        ];
        config.registry.reload_interval_secs = 3600;
        pgentra_proxy::init(&config).await.expect("gateway init");
        pg.psql(
            "postgres",
            &format!(
                "select pgaadauth_create_principal_with_oid('{APP_ROLE}', '{}', 'service', false, false);
                 select pgaadauth_create_principal_with_oid('{UAMI_ROLE}', '{}', 'service', false, false);",
                dev::SYSTEM_MI_OBJECT_ID,
                dev::USER_MI_OBJECT_ID,
            ),
        )
        .expect("register principals");
        pg.psql("postgres", &format!("create database {APP_DB}"))
            .expect("create database");
        pg.psql(
            "postgres",
            &format!("grant all on database {APP_DB} to \"{APP_ROLE}\""),
        )
        .expect("grant");

        let bound = BoundGateway::bind(config).await.expect("bind gateway");
        let gateway = bound.tcp_addrs()[0];
        let gateway_handle = bound.handle();
        let gateway_stop = CancellationToken::new();
        let gateway_task = tokio::spawn(bound.serve(gateway_stop.clone()));
        tokio::time::timeout(Duration::from_secs(20), gateway_handle.wait_ready())
            .await
            .expect("gateway registry loaded");
        Stack {
            _pg: pg,
            emu,
            gateway,
            gateway_ca,
            gateway_handle,
            gateway_stop,
            gateway_task: Some(gateway_task),
            dir,
        }
    }

    /// A sidecar config pointing at the gateway: verify-full against the gateway's CA,
    /// ephemeral loopback ports, an admin endpoint, short timeouts.
    pub fn sidecar_config(&self) -> SidecarConfig {
        SidecarConfig {
            listen: "127.0.0.1:0".into(),
            host: Some("127.0.0.1".into()),
            port: self.gateway.port(),
            sslmode: SslMode::VerifyFull,
            ca_file: Some(self.gateway_ca.clone()),
            admin_listen: Some("127.0.0.1:0".into()),
            connect_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(10),
            max_sigterm_delay: Duration::from_secs(2),
            ..SidecarConfig::default()
        }
    }

    /// A fresh directory for unix sockets.
    pub fn socket_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A token cache over the emulator's App Service managed-identity endpoint (system-assigned)
    /// that retries quickly and may force a refresh at any time.
    pub fn tokens(&self) -> TokenCache {
        self.tokens_with(|o| o)
    }

    pub fn tokens_with(&self, tweak: impl FnOnce(CacheOptions) -> CacheOptions) -> TokenCache {
        let cred = app_service(&self.emu, &self.emu.identity_endpoint());
        TokenCache::with_options(
            cred,
            tweak(CacheOptions::default().with_min_refresh_interval(Duration::ZERO)),
        )
    }

    /// Requests the emulator has seen on the managed-identity endpoint.
    pub fn identity_requests(&self) -> usize {
        self.emu
            .requests()
            .iter()
            .filter(|r| r.endpoint == EndpointKind::AppService)
            .count()
    }

    pub async fn sidecar(&self, config: SidecarConfig) -> Sidecar {
        self.sidecar_with(config, self.tokens()).await
    }

    pub async fn sidecar_with(&self, config: SidecarConfig, tokens: TokenCache) -> Sidecar {
        let bound = BoundSidecar::bind(config, tokens.clone())
            .await
            .expect("bind sidecar");
        let addrs = bound.addresses().to_vec();
        let admin = bound.admin_addr();
        let handle = bound.handle();
        let stop = CancellationToken::new();
        let task = tokio::spawn(bound.serve(stop.clone()));
        let sc = Sidecar {
            addrs,
            admin,
            handle,
            tokens,
            stop,
            task: Some(task),
        };
        sc.wait_for_token().await;
        sc
    }

    /// Gateway logins counted for `method` (`entra`: a token seen for the first time,
    /// `entra_cached`: a token validated before).
    pub fn logins(&self, method: &str) -> u64 {
        let text = self.gateway_handle.metrics_text();
        let prefix = format!("pgentra_gateway_logins_total{{method=\"{method}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0)
    }

    pub async fn stop(mut self) {
        self.gateway_stop.cancel();
        if let Some(t) = self.gateway_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

pub fn http(emu: &RunningEmulator) -> HttpOptions {
    HttpOptions::default()
        .add_root_pem(emu.ca_cert_pem().as_bytes())
        .unwrap()
        .with_timeout(Duration::from_secs(3))
        .with_retry(RetryPolicy::new(
            1,
            Duration::from_millis(10),
            Duration::from_millis(20),
        ))
}

/// The App Service managed-identity credential at `endpoint` (the emulator's, or a closed port).
pub fn app_service(emu: &RunningEmulator, endpoint: &str) -> ManagedIdentityCredential {
    ManagedIdentityCredential::app_service(
        endpoint,
        emu.identity_header(),
        ManagedIdentityOptions::default().with_http(http(emu)),
    )
    .unwrap()
}

/// A loopback URL nothing listens on.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", closed_port())
}

pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running sidecar.
pub struct Sidecar {
    pub addrs: Vec<InstanceAddress>,
    pub admin: Option<SocketAddr>,
    pub handle: SidecarHandle,
    pub tokens: TokenCache,
    pub stop: CancellationToken,
    pub task: Option<JoinHandle<Result<ServeReport, SidecarError>>>,
}

impl Sidecar {
    pub fn port(&self) -> u16 {
        self.addrs[0].tcp.port()
    }

    pub fn socket_dir(&self, i: usize) -> PathBuf {
        self.addrs[i]
            .unix_socket
            .as_ref()
            .and_then(|p| p.parent())
            .expect("unix socket")
            .to_path_buf()
    }

    /// Waits until the warm-up fetch has finished (successfully or not).
    pub async fn wait_for_token(&self) {
        for _ in 0..200 {
            // A fetch is counted when it starts; wait for its outcome.
            let settled = self.tokens.cached(OSSRDBMS_SCOPE).is_some()
                || self
                    .tokens
                    .stats(OSSRDBMS_SCOPE)
                    .is_some_and(|s| s.consecutive_failures > 0);
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// tokio-postgres config for instance `i`: no password, no TLS.
    pub fn pg_config(&self, i: usize, user: &str, db: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.addrs[i].tcp.port())
            .user(user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        c
    }

    pub async fn connect(
        &self,
        i: usize,
        user: &str,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self
            .pg_config(i, user, db)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// `current_user` and `current_database()` over instance `i`.
    pub async fn whoami(
        &self,
        i: usize,
        user: &str,
        db: &str,
    ) -> Result<(String, String), tokio_postgres::Error> {
        let c = self.connect(i, user, db).await?;
        let row = c
            .query_one("select current_user::text, current_database()::text", &[])
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn shutdown(mut self) -> ServeReport {
        self.stop.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("sidecar stops")
            .unwrap()
            .expect("serve ok")
    }
}

/// `(SQLSTATE, message, detail)` of a refused connection.
pub fn db_error(e: &tokio_postgres::Error) -> (String, String, String) {
    match e.as_db_error() {
        Some(db) => (
            db.code().code().to_owned(),
            db.message().to_owned(),
            db.detail().unwrap_or_default().to_owned(),
        ),
        None => panic!("expected a server error, got: {e}"),
    }
}

/// Runs `psql` against `host` (address or socket directory) with no password.
pub fn psql(host: &str, port: u16, user: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-X", "-w", "-A", "-t", "-h", host, "-p"])
        .arg(port.to_string())
        .args(["-U", user, "-d", "postgres", "-c", sql])
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE")
        .env_remove("PGSERVICE")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql (apt-get install postgresql-client)")
}

pub fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Decodes a JWT header (no verification) to read its `kid`.
pub fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    let v: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// Polls `f` every 20 ms for up to `max`.
pub async fn eventually(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + max;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
