//! Test fixture: a throwaway PostgreSQL, the in-process identity emulator, and a gateway in
//! front of the cluster with its registry installed and the dev principals registered.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pgentra_emulator::{Emulator, Principal, RunningEmulator, dev};
use pgentra_proxy::{
    BoundGateway, DirectoryEntry, Endpoint, GatewayConfig, GatewayHandle, PlaintextPolicy, TlsFiles,
};
use pgentra_testkit::{PgCluster, TestCa};
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// Role names registered by the fixture.
pub const SYSTEM_MI_ROLE: &str = "app-system-mi";
pub const USER_MI_ROLE: &str = "app-user-mi";
pub const SP_ROLE: &str = "app-sp";
pub const USER_ROLE: &str = dev::USER_UPN;
pub const GROUP_ROLE: &str = "pg-developers";
pub const MFA_ROLE: &str = "alice-mfa";

pub struct Fixture {
    pub pg: PgCluster,
    pub emu: RunningEmulator,
    pub gateway: Option<SocketAddr>,
    pub unix_socket: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    pub handle: GatewayHandle,
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub config: GatewayConfig,
    pub shutdown: CancellationToken,
    pub served: Option<JoinHandle<Result<(), pgentra_proxy::GatewayError>>>,
    pub _dir: tempfile::TempDir,
}

/// What a config tweak may look at.
pub struct Env<'a> {
    pub pg: &'a PgCluster,
    pub emu: &'a RunningEmulator,
}

pub struct Options {
    pub pg_hba: Vec<String>,
    pub register: bool,
    /// Trusted channel over TCP + TLS with a client certificate instead of the unix socket.
    pub upstream_tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pg_hba: Vec::new(),
            register: true,
            upstream_tls: false,
        }
    }
}

/// Directory entries matching the emulator's dev principals.
pub fn dev_directory() -> Vec<DirectoryEntry> {
    let e = |name: &str, oid: &str, t: &str| DirectoryEntry {
        name: name.to_owned(),
        object_id: oid.to_owned(),
        object_type: t.to_owned(),
        tenant_id: None,
    };
    vec![
        e(dev::USER_UPN, dev::USER_OBJECT_ID, "user"),
        e(dev::MFA_USER_UPN, dev::MFA_USER_OBJECT_ID, "user"),
        e("pgentra-dev-app", dev::SP_OBJECT_ID, "service"),
        e("pgentra-dev-uami", dev::USER_MI_OBJECT_ID, "service"),
        e("pgentra-developers", dev::GROUP_OBJECT_ID, "group"),
        e(
            "duplicate-name",
            "77777777-7777-4777-8777-000000000001",
            "service",
        ),
        e(
            "duplicate-name",
            "77777777-7777-4777-8777-000000000002",
            "service",
        ),
    ]
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::start_with(Options::default(), |_, _| {}).await
    }

    pub async fn start_with(
        opts: Options,
        tweak: impl FnOnce(&mut GatewayConfig, &Env<'_>),
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut hba = opts.pg_hba.clone();
        let mut conf = Vec::new();
        let client_cert = if opts.upstream_tls {
            // The server (running as `postgres`) must read the client CA: a world-readable spot.
            use std::os::unix::fs::PermissionsExt;
            let client_ca = TestCa::new().unwrap();
            let cert = client_ca.issue(&["pgentra-gateway"]).unwrap();
            let pub_dir = dir.path().join("public");
            std::fs::create_dir(&pub_dir).unwrap();
            let ca_file = pub_dir.join("client-ca.pem");
            std::fs::write(&ca_file, client_ca.cert_pem()).unwrap();
            for (p, mode) in [(dir.path(), 0o755), (&pub_dir, 0o755), (&ca_file, 0o644)] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            conf.push(format!("ssl_ca_file = '{}'", ca_file.display()));
            hba.insert(
                0,
                "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca".into(),
            );
            Some(cert)
        } else {
            None
        };
        let tls = opts.upstream_tls;
        let pg = tokio::task::spawn_blocking(move || {
            let mut b = PgCluster::builder().tls(tls);
            for l in hba {
                b = b.hba_line(l);
            }
            for c in conf {
                b = b.conf(c);
            }
            b.start()
        })
        .await
        .unwrap()
        .expect("start PostgreSQL");
        let emu = Emulator::builder().start().await.expect("start emulator");
        let ca = TestCa::new().unwrap();
        let cert = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&cert_file, &cert.cert_pem).unwrap();
        std::fs::write(&key_file, &cert.key_pem).unwrap();
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let sock_dir = dir.path().join("sock");
        std::fs::create_dir(&sock_dir).unwrap();

        let mut config = GatewayConfig {
            listen: vec!["127.0.0.1:0".into()],
            unix_socket_dir: Some(sock_dir),
            tls: Some(TlsFiles {
                cert_file,
                key_file,
            }),
            plaintext: PlaintextPolicy::Never,
            admin_listen: Some("127.0.0.1:0".into()),
            startup_timeout_ms: 10_000,
            shutdown_grace_ms: 2_000,
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
        if let Some(cert) = client_cert {
            let cert_file = dir.path().join("gateway-client.pem");
            let key_file = dir.path().join("gateway-client.key");
            std::fs::write(&cert_file, &cert.cert_pem).unwrap();
            std::fs::write(&key_file, &cert.key_pem).unwrap();
            config.upstream.trusted = Endpoint {
                host: pg.host().to_owned(),
                port: pg.port(),
            };
            config.upstream.trusted_tls = Some(pgentra_proxy::UpstreamTls {
                ca_file: pg.server_ca_path().unwrap().to_path_buf(),
                cert_file,
                key_file,
            });
        }
        config.registry.directory = dev_directory();
        config.registry.reload_interval_secs = 3600;
        tweak(&mut config, &Env { pg: &pg, emu: &emu });

        let report = pgentra_proxy::init(&config).await.expect("gateway init");
        assert_eq!(report.directory_entries, config.registry.directory.len());
        if opts.register {
            let sql = format!(
                "select pgaadauth_create_principal_with_oid('{SYSTEM_MI_ROLE}', '{}', 'service', false, false);
                 select pgaadauth_create_principal_with_oid('{USER_MI_ROLE}', '{}', 'service', false, false);
                 select pgaadauth_create_principal_with_oid('{SP_ROLE}', '{}', 'service', false, false);
                 select pgaadauth_create_principal_with_oid('{USER_ROLE}', '{}', 'user', false, false);
                 select pgaadauth_create_principal_with_oid('{GROUP_ROLE}', '{}', 'group', false, false);
                 select pgaadauth_create_principal_with_oid('{MFA_ROLE}', '{}', 'user', false, true);",
                dev::SYSTEM_MI_OBJECT_ID,
                dev::USER_MI_OBJECT_ID,
                dev::SP_OBJECT_ID,
                dev::USER_OBJECT_ID,
                dev::GROUP_OBJECT_ID,
                dev::USER_OBJECT_ID,
            );
            pg.psql("postgres", &sql).expect("register principals");
        }

        let bound = BoundGateway::bind(config.clone())
            .await
            .expect("bind gateway");
        let gateway = bound.tcp_addrs().first().copied();
        let unix_socket = bound.unix_socket_path();
        let admin = bound.admin_addr();
        let handle = bound.handle();
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(bound.serve(shutdown.clone()));
        tokio::time::timeout(Duration::from_secs(20), handle.wait_ready())
            .await
            .expect("registry loaded");
        Fixture {
            pg,
            emu,
            gateway,
            unix_socket,
            admin,
            handle,
            ca_pem: ca.cert_pem().to_owned(),
            ca_path,
            config,
            shutdown,
            served: Some(served),
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway.expect("TCP listener")
    }

    pub fn token(&self, who: Principal<'_>) -> String {
        self.emu
            .mint_for(who, dev::OSSRDBMS_RESOURCE, Duration::from_secs(3600))
    }

    /// rustls client config trusting the gateway's test CA.
    pub fn tls(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_postgres_rustls::MakeRustlsConnect::new(cfg)
    }

    pub fn pg_config(&self, user: &str, password: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("localhost")
            .port(self.addr().port())
            .user(user)
            .password(password)
            .dbname("postgres")
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect_timeout(Duration::from_secs(10));
        c
    }

    /// Connects through the gateway over TLS.
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = self.pg_config(user, password).connect(self.tls()).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Connects and returns `current_user`.
    pub async fn whoami(
        &self,
        user: &str,
        password: &str,
    ) -> Result<String, tokio_postgres::Error> {
        let c = self.connect(user, password).await?;
        let row = c.query_one("select current_user::text", &[]).await?;
        Ok(row.get(0))
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.served.take() {
            tokio::time::timeout(Duration::from_secs(15), s)
                .await
                .expect("gateway stops")
                .unwrap()
                .unwrap();
        }
    }
}

/// Waits until `query` runs in some backend (so a cancel cannot overtake it).
pub async fn wait_until_running(pg: &PgCluster, query: &str) {
    let sql = format!(
        "select count(*) from pg_stat_activity where query = '{}' and state = 'active'",
        query.replace('\'', "''")
    );
    for _ in 0..200 {
        if pg.psql("postgres", &sql).unwrap().trim() == "1" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{query} never started");
}

/// `(SQLSTATE, message)` of a refused connection.
pub fn db_error(e: &tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(db) => (db.code().code().to_owned(), db.message().to_owned()),
        None => panic!("expected a server error, got: {e}"),
    }
}

pub const INVALID_FORMAT: &str = "The access token has invalid format. Please ensure the token is passed exactly as returned by the authentication endpoint and retry.";

pub fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// The claims of a compact JWS (no verification).
pub fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Signs `claims` with a fresh RSA key the gateway has never seen.
pub fn sign_with_foreign_key(kid: &str, claims: &serde_json::Value) -> String {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::RSA_PKCS1_SHA256;
    let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": kid, "x5t": kid});
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{msg}.{}", b64(&sig))
}

/// An HS256 token whose HMAC key is the issuer's public certificate (PEM), the classic
/// algorithm-confusion forgery.
pub async fn sign_hs256_with_public_key(
    emu: &RunningEmulator,
    claims: &serde_json::Value,
) -> String {
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let jwks: serde_json::Value = http
        .get(emu.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        key["x5c"][0].as_str().unwrap()
    );
    let kid = key["kid"].as_str().unwrap();
    let header = serde_json::json!({"typ": "JWT", "alg": "HS256", "kid": kid});
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&k, msg.as_bytes());
    format!("{msg}.{}", b64(tag.as_ref()))
}
