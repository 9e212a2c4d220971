//! The local stack behind `pgentra up` and `pgentra demo`: the identity emulator, a PostgreSQL
//! cluster kept in a state directory, and the gateway in front of it, all in this process.
//! Creating Entra principals and rendering the environment for a client also live here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pgentra_emulator::{Emulator, EnvProfile, RunningEmulator, dev};
use pgentra_postgres::{ClientSecret, ClientType, ConnectionSettings, Identity, SslMode};
use pgentra_proxy::{BoundGateway, DirectoryEntry, Endpoint, GatewayConfig, TlsFiles};
use pgentra_testkit::{PgCluster, TestCa};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::{AuthKind, StackArgs};

/// A running local stack. [`Stack::stop`] shuts it down in order; dropping it also stops
/// PostgreSQL.
pub struct Stack {
    pub emulator: RunningEmulator,
    pub pg: PgCluster,
    pub gateway_addr: SocketAddr,
    pub database: String,
    /// CA bundle trusted by clients: the emulator's CA (https authority) and the gateway's CA.
    pub ca_bundle: PathBuf,
    gateway_stop: CancellationToken,
    gateway_task: JoinHandle<anyhow::Result<()>>,
}

/// A passwordless connection as Service Connector creates it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub role: String,
    pub auth: AuthKind,
    pub settings: ConnectionSettings,
}

fn step(msg: &str) {
    eprintln!("· {msg}");
}

impl Stack {
    pub async fn start(args: &StackArgs) -> anyhow::Result<Stack> {
        if args.fresh && args.state_dir.exists() {
            std::fs::remove_dir_all(&args.state_dir)
                .with_context(|| format!("remove {}", args.state_dir.display()))?;
        }
        std::fs::create_dir_all(&args.state_dir)
            .with_context(|| format!("create {}", args.state_dir.display()))?;
        let state = std::fs::canonicalize(&args.state_dir)?;

        step("starting the identity emulator (signing keys are generated on first run)");
        let emulator = Emulator::builder()
            .http_addr(args.emulator_http_addr)
            .https_addr(args.emulator_https_addr)
            .state_dir(state.join("emulator"))
            .start()
            .await
            .context("start the identity emulator")?;

        step("starting PostgreSQL (initdb on first run)");
        let pg_dir = state.join("postgres");
        let pg = tokio::task::spawn_blocking(move || PgCluster::builder().dir(pg_dir).start())
            .await?
            .context("start PostgreSQL")?;

        let (cert, key, gateway_ca) = gateway_certificate(&state.join("gateway"))?;
        let ca_bundle = state.join("ca-bundle.pem");
        std::fs::write(
            &ca_bundle,
            format!(
                "{}{}",
                emulator.ca_cert_pem(),
                std::fs::read_to_string(&gateway_ca)?
            ),
        )?;

        let config = gateway_config(&emulator, &pg, args.listen, cert, key);
        step("installing the pgaadauth principal registry");
        pgentra_proxy::init(&config)
            .await
            .context("install the principal registry")?;
        ensure_database(&pg, &args.database)?;

        step("starting the gateway");
        let bound = BoundGateway::bind(config)
            .await
            .context("start the gateway")?;
        let gateway_addr = *bound
            .tcp_addrs()
            .first()
            .context("the gateway has no TCP listener")?;
        let handle = bound.handle();
        let gateway_stop = CancellationToken::new();
        let stop = gateway_stop.clone();
        let gateway_task =
            tokio::spawn(async move { bound.serve(stop).await.map_err(anyhow::Error::from) });
        handle.wait_ready().await;
        Ok(Stack {
            emulator,
            pg,
            gateway_addr,
            database: args.database.clone(),
            ca_bundle,
            gateway_stop,
            gateway_task,
        })
    }

    /// Creates the role `aad_<name>` for the identity with `pgaadauth_create_principal_with_oid`
    /// and grants it the database, as Service Connector does (§9.2 of the spec).
    pub fn create_connection(&self, name: &str, auth: AuthKind) -> anyhow::Result<Connection> {
        let role = format!("aad_{name}");
        let (object_id, identity) = match auth {
            AuthKind::System => (dev::SYSTEM_MI_OBJECT_ID, Identity::SystemAssigned),
            AuthKind::User => (
                dev::USER_MI_OBJECT_ID,
                Identity::UserAssigned {
                    client_id: dev::USER_MI_CLIENT_ID.to_owned(),
                },
            ),
            AuthKind::Sp => (
                dev::SP_OBJECT_ID,
                Identity::ServicePrincipal {
                    tenant_id: dev::TENANT_ID.to_owned(),
                    client_id: dev::SP_CLIENT_ID.to_owned(),
                    secret: ClientSecret::new(dev::SP_SECRET),
                },
            ),
        };
        let exists = self.pg.psql(
            "postgres",
            &format!("select 1 from pg_roles where rolname = {}", literal(&role)),
        )?;
        if exists.trim().is_empty() {
            self.pg.psql(
                "postgres",
                &format!(
                    "select * from pgaadauth_create_principal_with_oid({}, {}, 'service', false, false)",
                    literal(&role),
                    literal(object_id)
                ),
            )?;
        }
        let ident = identifier(&role);
        let db = identifier(&self.database);
        self.pg.psql(
            &self.database,
            &format!(
                "GRANT ALL PRIVILEGES ON DATABASE {db} TO {ident}; \
                 GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO {ident}; \
                 GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public TO {ident};"
            ),
        )?;
        let mut settings =
            ConnectionSettings::new(self.gateway_addr.ip().to_string(), &self.database);
        settings.port = self.gateway_addr.port();
        settings.user = Some(role.clone());
        settings.ssl_mode = SslMode::Require;
        settings.identity = identity;
        Ok(Connection {
            role,
            auth,
            settings,
        })
    }

    /// Everything a Service Connector snippet of `client_type` needs: the connection's
    /// variables plus where its identity endpoint is, and the CA bundle to trust.
    pub fn exports(&self, conn: &Connection, client_type: ClientType) -> Vec<(String, String)> {
        let mut vars = conn.settings.render_as(client_type).into_vec();
        let em = &self.emulator;
        match conn.auth {
            AuthKind::System | AuthKind::User => {
                vars.extend(em.env_exports(EnvProfile::AppService));
            }
            AuthKind::Sp => {
                vars.push(("AZURE_AUTHORITY_HOST".into(), em.authority_host()));
            }
        }
        let bundle = self.ca_bundle.display().to_string();
        for k in [
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "SSL_CERT_FILE",
            "PGSSLROOTCERT",
        ] {
            vars.push((k.into(), bundle.clone()));
        }
        vars
    }

    pub async fn stop(self) {
        self.gateway_stop.cancel();
        match self.gateway_task.await {
            Ok(Err(e)) => tracing::warn!("gateway stopped with an error: {e:#}"),
            Err(e) => tracing::warn!("gateway task failed: {e}"),
            Ok(Ok(())) => {}
        }
        self.emulator.shutdown().await;
        drop(self.pg);
    }
}

/// The gateway's server certificate from a local CA, reused across runs.
fn gateway_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let (cert, key, ca) = (
        dir.join("server.pem"),
        dir.join("server-key.pem"),
        dir.join("ca.pem"),
    );
    if !(cert.is_file() && key.is_file() && ca.is_file()) {
        std::fs::create_dir_all(dir)?;
        let authority = TestCa::new().context("create the gateway's CA")?;
        let leaf = authority
            .issue(&["localhost", "127.0.0.1"])
            .context("issue the gateway's certificate")?;
        std::fs::write(&ca, authority.cert_pem())?;
        std::fs::write(&cert, &leaf.cert_pem)?;
        write_private(&key, &leaf.key_pem)?;
    }
    Ok((cert, key, ca))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

fn gateway_config(
    em: &RunningEmulator,
    pg: &PgCluster,
    listen: SocketAddr,
    cert_file: PathBuf,
    key_file: PathBuf,
) -> GatewayConfig {
    let mut config = GatewayConfig {
        listen: vec![listen.to_string()],
        tls: Some(TlsFiles {
            cert_file,
            key_file,
        }),
        ..GatewayConfig::default()
    };
    config.auth.tenants = vec![em.tenant_id()];
    // The keys come over https from the emulator, as they would from Entra ID.
    config.auth.jwks_url = Some(em.jwks_url());
    config.auth.ca_file = Some(em.ca_cert_path());
    config.upstream.trusted = Endpoint {
        host: pg.socket_dir().display().to_string(),
        port: pg.port(),
    };
    config.registry.directory = directory();
    config
}

/// The emulator's development identities, so `pgaadauth_create_principal` can resolve names.
fn directory() -> Vec<DirectoryEntry> {
    let entry = |name: &str, oid: &str, kind: &str| DirectoryEntry {
        name: name.to_owned(),
        object_id: oid.to_owned(),
        object_type: kind.to_owned(),
        tenant_id: None,
    };
    vec![
        entry("pgentra-dev-app", dev::SYSTEM_MI_OBJECT_ID, "service"),
        entry("pgentra-dev-uami", dev::USER_MI_OBJECT_ID, "service"),
        entry("pgentra-dev-sp", dev::SP_OBJECT_ID, "service"),
        entry(dev::USER_UPN, dev::USER_OBJECT_ID, "user"),
    ]
}

fn ensure_database(pg: &PgCluster, name: &str) -> anyhow::Result<()> {
    let found = pg.psql(
        "postgres",
        &format!(
            "select 1 from pg_database where datname = {}",
            literal(name)
        ),
    )?;
    if found.trim().is_empty() {
        pg.psql("postgres", &format!("create database {}", identifier(name)))?;
    }
    Ok(())
}

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier, always quoted.
pub fn identifier(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
