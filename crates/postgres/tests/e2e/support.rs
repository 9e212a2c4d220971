//! Fixtures: throwaway PostgreSQL clusters whose roles take a token as their password, token
//! sources that count fetches, and a gateway (with the identity emulator) that verifies real
//! Entra tokens in front of PostgreSQL.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use pgentra_emulator::{Emulator, EndpointKind, RunningEmulator, dev};
use pgentra_postgres::token::{
    AccessToken, CacheOptions, Error as TokenError, OSSRDBMS_SCOPE, TokenCache, TokenSource,
};
use pgentra_postgres::{ConnectionSettings, Identity, SslMode};
use pgentra_proxy::{
    BoundGateway, DirectoryEntry, Endpoint, GatewayConfig, PlaintextPolicy, TlsFiles,
};
use pgentra_testkit::{PgCluster, TestCa};
use tokio_util::sync::CancellationToken;

pub const SCOPE: &str = OSSRDBMS_SCOPE;

/// A cluster on 127.0.0.1 whose TCP logins use cleartext `password` auth, so a role's password
/// can be set to a token.
pub async fn password_cluster(tls: bool) -> PgCluster {
    tokio::task::spawn_blocking(move || {
        PgCluster::builder()
            .tls(tls)
            .hba_line("host all all 127.0.0.1/32 password")
            .start()
    })
    .await
    .expect("join")
    .expect("start PostgreSQL")
}

/// Creates (or alters) a login role whose password is `token`.
pub fn set_role_password(pg: &PgCluster, role: &str, token: &str) {
    // Tokens are base64url and dots: nothing to escape in a SQL literal.
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    );
    let sql = format!(
        "do $$ begin
           if not exists (select 1 from pg_roles where rolname = '{role}') then
             create role \"{role}\" login;
           end if;
         end $$;
         alter role \"{role}\" password '{token}';"
    );
    pg.psql("postgres", &sql).expect("set role password");
}

/// Ends every session of `role` on `pg`.
pub fn terminate_sessions(pg: &PgCluster, role: &str) -> usize {
    let out = pg
        .psql(
            "postgres",
            &format!("select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = '{role}'"),
        )
        .expect("terminate");
    out.trim().parse().expect("a count")
}

/// Settings for a direct connection to `pg` as `user` (None: derive from the token).
pub fn settings_for(pg: &PgCluster, user: Option<&str>, ssl: SslMode) -> ConnectionSettings {
    ConnectionSettings {
        host: pg.host().to_owned(),
        port: pg.port(),
        database: "postgres".into(),
        user: user.map(Into::into),
        ssl_mode: ssl,
        client_type: pgentra_postgres::ClientType::None,
        identity: Identity::SystemAssigned,
    }
}

/// A real RS256 JWT from the emulator's signer with the given claims plus a lifetime.
pub fn jwt(emu: &RunningEmulator, claims: serde_json::Value, lifetime: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut c = claims;
    c["aud"] = dev::OSSRDBMS_RESOURCE.into();
    c["iat"] = now.into();
    c["nbf"] = now.into();
    c["exp"] = (now + lifetime.as_secs()).into();
    emu.mint(c)
}

/// A token source that hands out a script of tokens, one per fetch (repeating the last), and
/// counts fetches.
#[derive(Debug)]
pub struct Scripted {
    script: Mutex<VecDeque<AccessToken>>,
    last: Mutex<Option<AccessToken>>,
    pub fetches: AtomicUsize,
}

impl Scripted {
    pub fn new(tokens: impl IntoIterator<Item = AccessToken>) -> Arc<Self> {
        Arc::new(Scripted {
            script: Mutex::new(tokens.into_iter().collect()),
            last: Mutex::new(None),
            fetches: AtomicUsize::new(0),
        })
    }

    /// Appends tokens to the script ("rotation in the source").
    pub fn push(&self, token: AccessToken) {
        self.script.lock().unwrap().push_back(token);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl TokenSource for Scripted {
    fn name(&self) -> &str {
        "Scripted"
    }

    fn get_token<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        let token = match next {
            Some(t) => {
                *self.last.lock().unwrap() = Some(t.clone());
                t
            }
            None => self.last.lock().unwrap().clone().expect("script not empty"),
        };
        Box::pin(std::future::ready(Ok(token)))
    }
}

/// A token valid for `lifetime` from now.
pub fn token(secret: &str, lifetime: Duration) -> AccessToken {
    AccessToken::new(secret, SystemTime::now() + lifetime)
}

/// A cache without rate limiting of forced refreshes, lazily refreshed.
pub fn cache(source: Arc<Scripted>) -> TokenCache {
    TokenCache::from_arc(
        source,
        CacheOptions::default()
            .lazy()
            .with_min_refresh_interval(Duration::ZERO),
    )
}

/// `select current_user, ssl-in-use` on a client.
pub async fn whoami(client: &tokio_postgres::Client) -> (String, bool) {
    let row = client
        .query_one(
            "select current_user::text, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .expect("query");
    (row.get(0), row.get(1))
}

// ---------------------------------------------------------------------------------------------
// Gateway fixture

/// Role names registered in the gateway's registry: what `user_name_from_token` derives from
/// each dev principal's token, so settings may omit the user.
pub const SYSTEM_MI_ROLE: &str = dev::SYSTEM_MI_CLIENT_ID; // appid
pub const USER_MI_ROLE: &str = "pgentra-dev-uami"; // xms_mirid name
pub const SP_ROLE: &str = dev::SP_CLIENT_ID; // appid
/// A Service Connector style role name (`aad_<connection>`) bound to the system MI.
pub const SC_ROLE: &str = "aad_conn";

pub struct Gateway {
    pub pg: PgCluster,
    pub emu: RunningEmulator,
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    shutdown: CancellationToken,
    served: Option<tokio::task::JoinHandle<Result<(), pgentra_proxy::GatewayError>>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn start() -> Gateway {
        let pg = tokio::task::spawn_blocking(PgCluster::start)
            .await
            .unwrap()
            .expect("start PostgreSQL");
        let emu = Emulator::builder().start().await.expect("start emulator");
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new().unwrap();
        let cert = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&cert_file, &cert.cert_pem).unwrap();
        std::fs::write(&key_file, &cert.key_pem).unwrap();
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let mut config = GatewayConfig {
            listen: vec!["127.0.0.1:0".into()],
            tls: Some(TlsFiles {
                cert_file,
                key_file,
            }),
            plaintext: PlaintextPolicy::Never,
            startup_timeout_ms: 10_000,
            shutdown_grace_ms: 2_000,
            ..GatewayConfig::default()
        };
        config.auth.tenants = vec![emu.tenant_id()];
        config.auth.jwks_url = Some(emu.jwks_url());
        config.auth.ca_file = Some(emu.ca_cert_path());
        config.auth.jwks_min_refresh_ms = 0;
        // Check every token against the current keys, as a server that just rotated would:
        // no remembered validations, keys refetched on each use.
        config.auth.token_cache_size = 0;
        config.auth.jwks_max_age_secs = 0;
        config.upstream.trusted = Endpoint {
            host: pg.socket_dir().display().to_string(),
            port: pg.port(),
        };
        config.registry.directory = vec![DirectoryEntry {
            name: "pgentra-dev-app".into(),
            object_id: dev::SP_OBJECT_ID.into(),
            object_type: "service".into(),
            tenant_id: None,
        }];
        config.registry.reload_interval_secs = 3600;
        pgentra_proxy::init(&config).await.expect("gateway init");
        let sql = format!(
            "select pgaadauth_create_principal_with_oid('{SYSTEM_MI_ROLE}', '{}', 'service', false, false);
             select pgaadauth_create_principal_with_oid('{SC_ROLE}', '{}', 'service', false, false);
             select pgaadauth_create_principal_with_oid('{USER_MI_ROLE}', '{}', 'service', false, false);
             select pgaadauth_create_principal_with_oid('{SP_ROLE}', '{}', 'service', false, false);",
            dev::SYSTEM_MI_OBJECT_ID,
            dev::SYSTEM_MI_OBJECT_ID,
            dev::USER_MI_OBJECT_ID,
            dev::SP_OBJECT_ID,
        );
        pg.psql("postgres", &sql).expect("register principals");
        let bound = BoundGateway::bind(config).await.expect("bind gateway");
        let addr = *bound.tcp_addrs().first().expect("TCP listener");
        let handle = bound.handle();
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(bound.serve(shutdown.clone()));
        tokio::time::timeout(Duration::from_secs(20), handle.wait_ready())
            .await
            .expect("registry loaded");
        Gateway {
            pg,
            emu,
            addr,
            ca_path,
            shutdown,
            served: Some(served),
            _dir: dir,
        }
    }

    /// The environment an App Service with Service Connector would have: the connection's
    /// variables for `client_type` plus the managed identity endpoint (and, for service
    /// principals, the authority host).
    pub fn app_env(&self, settings: &ConnectionSettings) -> Vec<(String, String)> {
        let mut env = settings.render().into_vec();
        env.push(("IDENTITY_ENDPOINT".into(), self.emu.identity_endpoint()));
        env.push(("IDENTITY_HEADER".into(), self.emu.identity_header()));
        env.push(("AZURE_AUTHORITY_HOST".into(), self.emu.authority_host()));
        env.push(("PATH".into(), "/usr/bin:/bin".into()));
        env
    }

    /// Settings for this gateway, as Service Connector would write them.
    pub fn settings(&self, user: Option<&str>, identity: Identity) -> ConnectionSettings {
        ConnectionSettings {
            host: "127.0.0.1".into(),
            port: self.addr.port(),
            database: "postgres".into(),
            user: user.map(Into::into),
            ssl_mode: SslMode::VerifyFull,
            client_type: pgentra_postgres::ClientType::Python,
            identity,
        }
    }

    /// Requests the identity endpoints answered (MI and Entra token endpoints).
    pub fn token_requests(&self) -> usize {
        self.emu
            .requests()
            .iter()
            .filter(|r| {
                matches!(
                    r.endpoint,
                    EndpointKind::AppService
                        | EndpointKind::Imds
                        | EndpointKind::TokenV2
                        | EndpointKind::TokenV1
                )
            })
            .count()
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.served.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), s).await;
        }
    }
}
