//! Gateway configuration: one typed value, deserialised from TOML (or built in code), validated
//! once. The CLI layers flags and environment variables over the same keys; this module reads no
//! file and no environment itself.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The Entra resource Azure Database for PostgreSQL tokens are issued for.
pub const OSSRDBMS_AUDIENCE: &str = "https://ossrdbms-aad.database.windows.net";

/// Everything the gateway needs. Defaults are safe: TLS required, Entra-only authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// TCP listen addresses (`host:port`; port 0 picks a free port).
    pub listen: Vec<String>,
    /// Directory for a unix-domain socket `<dir>/.s.PGSQL.<port>`, like PostgreSQL's
    /// `unix_socket_directories`.
    pub unix_socket_dir: Option<PathBuf>,
    /// Port number in the unix socket's file name; defaults to the first TCP listener's port.
    pub unix_socket_port: Option<u16>,
    /// Server certificate and key for TLS (PEM files).
    pub tls: Option<TlsFiles>,
    /// Which clients may connect without TLS.
    pub plaintext: PlaintextPolicy,
    /// Deadline for the whole startup phase (negotiation, TLS, password), like
    /// PostgreSQL's `authentication_timeout`.
    pub startup_timeout_ms: u64,
    /// Most client connections served at once; more are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// On shutdown, how long running sessions may continue before they are cut.
    pub shutdown_grace_ms: u64,
    /// Address of the HTTP admin endpoint (`/metrics`, `/startup`, `/readiness`, `/liveness`).
    pub admin_listen: Option<String>,
    /// Token validation and role binding.
    pub auth: AuthConfig,
    /// The PostgreSQL server behind the gateway.
    pub upstream: UpstreamConfig,
    /// The principal registry kept inside PostgreSQL.
    pub registry: RegistryConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: vec!["127.0.0.1:5432".to_owned()],
            unix_socket_dir: None,
            unix_socket_port: None,
            tls: None,
            plaintext: PlaintextPolicy::Never,
            startup_timeout_ms: 30_000,
            max_connections: 1000,
            shutdown_grace_ms: 30_000,
            admin_listen: None,
            auth: AuthConfig::default(),
            upstream: UpstreamConfig::default(),
            registry: RegistryConfig::default(),
        }
    }
}

/// PEM files for the TLS server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Who may skip TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaintextPolicy {
    /// Every connection must use TLS (Azure's `require_secure_transport=on`).
    #[default]
    Never,
    /// Unix-socket and loopback TCP clients may skip TLS.
    Loopback,
    /// Anyone may skip TLS. Tokens then cross the network in the clear: tests and benches only.
    Always,
}

/// Which roles may log in with what, like Azure's authentication modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Only roles registered as Entra principals may log in ("Microsoft Entra authentication only").
    #[default]
    EntraOnly,
    /// Registered roles use tokens; other roles' passwords are checked by the upstream server
    /// ("PostgreSQL and Microsoft Entra authentication").
    Mixed,
}

/// Token validation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Authentication mode.
    pub mode: AuthMode,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Tenants whose tokens are accepted (`tid`); issuers `https://sts.windows.net/{tid}/` and
    /// `https://login.microsoftonline.com/{tid}/v2.0` follow from them.
    pub tenants: Vec<String>,
    /// Further accepted issuers, exactly as they appear in `iss`.
    pub extra_issuers: Vec<String>,
    /// JWKS document URL (e.g. `https://login.microsoftonline.com/common/discovery/keys`).
    pub jwks_url: Option<String>,
    /// OIDC discovery document URL; its `jwks_uri` is used when `jwks_url` is not set.
    pub discovery_url: Option<String>,
    /// Extra CA certificate (PEM) trusted when fetching keys, e.g. the emulator's CA.
    pub ca_file: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Least time between two key fetches triggered by unknown `kid`s.
    pub jwks_min_refresh_ms: u64,
    /// Keys older than this are refetched on the next use (kept if the fetch fails).
    pub jwks_max_age_secs: u64,
    /// Validated tokens remembered (keyed by SHA-256 of the token) until they expire.
    pub token_cache_size: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::EntraOnly,
            audiences: vec![OSSRDBMS_AUDIENCE.to_owned()],
            tenants: Vec::new(),
            extra_issuers: Vec::new(),
            jwks_url: None,
            discovery_url: None,
            ca_file: None,
            leeway_secs: 60,
            jwks_min_refresh_ms: 10_000,
            jwks_max_age_secs: 3600,
            token_cache_size: 10_000,
        }
    }
}

/// A PostgreSQL server address: a host name/IP, or a socket directory when `host` starts with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Host name, IP address, or unix socket directory.
    pub host: String,
    /// Port (also names the unix socket file).
    pub port: u16,
}

impl Endpoint {
    /// Whether this is a unix-domain socket.
    pub fn is_unix(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The socket file for a unix endpoint.
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(&self.host).join(format!(".s.PGSQL.{}", self.port))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_unix() {
            write!(f, "{}", self.socket_path().display())
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The PostgreSQL server behind the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Trusted channel used for token-authenticated sessions and for the registry: the server
    /// must let the gateway log in as any registered role without a password (unix socket with
    /// `trust`/`peer` for the gateway's OS user).
    pub trusted: Endpoint,
    /// TLS with a client certificate on the trusted channel, for a server on another host:
    /// `hostssl all all <gateway-ip>/32 trust clientcert=verify-ca` (or `cert` with an ident
    /// map) in its `pg_hba.conf`. TCP endpoints only.
    pub trusted_tls: Option<UpstreamTls>,
    /// Channel where the server checks passwords (mixed mode only), e.g. TCP with `scram-sha-256`.
    pub password: Option<Endpoint>,
    /// Deadline for connecting and logging in upstream.
    pub connect_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            trusted: Endpoint {
                host: "/var/run/postgresql".to_owned(),
                port: 5432,
            },
            trusted_tls: None,
            password: None,
            connect_timeout_ms: 10_000,
        }
    }
}

/// Client-side TLS for the trusted channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificate(s) (PEM) that signed the server's certificate; the server name checked is
    /// the endpoint's host.
    pub ca_file: PathBuf,
    /// The gateway's client certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
}

/// Where the principal registry lives and how it is refreshed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Database holding the `pgaadauth` schema (Azure: `postgres`).
    pub database: String,
    /// Role the gateway uses for its registry connection (over the trusted channel).
    pub admin_user: String,
    /// Periodic reload, a fallback for missed notifications.
    pub reload_interval_secs: u64,
    /// Identity directory used by `pgaadauth_create_principal` to resolve names to object ids
    /// (stands in for Microsoft Graph).
    pub directory: Vec<DirectoryEntry>,
    /// Principals `init` registers as Entra administrators.
    pub admins: Vec<DirectoryEntry>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            database: "postgres".to_owned(),
            admin_user: "postgres".to_owned(),
            reload_interval_secs: 60,
            directory: Vec::new(),
            admins: Vec::new(),
        }
    }
}

/// A directory entry: a user's UPN or a group / service principal display name, and its object id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryEntry {
    /// UPN for users, display name for groups and service principals.
    pub name: String,
    /// Entra object id.
    pub object_id: String,
    /// `user`, `group` or `service`.
    pub object_type: String,
    /// Tenant; defaults to the first configured tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gateway configuration: {0}")]
pub struct ConfigError(pub String);

impl GatewayConfig {
    /// Checks the combinations a typed value cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_owned()));
        if self.listen.is_empty() && self.unix_socket_dir.is_none() {
            return err("no listener: set `listen` or `unix_socket_dir`");
        }
        if self.tls.is_none() && self.plaintext == PlaintextPolicy::Never {
            return err(
                "TLS is required (plaintext = \"never\") but no `tls` certificate is configured",
            );
        }
        if self.auth.tenants.is_empty() {
            return err("`auth.tenants` is empty: no token could be accepted");
        }
        if self.auth.audiences.is_empty() {
            return err("`auth.audiences` is empty: no token could be accepted");
        }
        if self.auth.jwks_url.is_none() && self.auth.discovery_url.is_none() {
            return err("set `auth.jwks_url` or `auth.discovery_url` to find the signing keys");
        }
        if self.auth.mode == AuthMode::Mixed && self.upstream.password.is_none() {
            return err(
                "mixed mode needs `upstream.password`, an endpoint where PostgreSQL checks passwords",
            );
        }
        if self.upstream.trusted_tls.is_some() && self.upstream.trusted.is_unix() {
            return err(
                "`upstream.trusted_tls` needs a TCP `upstream.trusted` endpoint, not a unix socket",
            );
        }
        if self.max_connections == 0 {
            return err("`max_connections` must be at least 1");
        }
        for e in self.registry.directory.iter().chain(&self.registry.admins) {
            if !matches!(e.object_type.as_str(), "user" | "group" | "service") {
                return Err(ConfigError(format!(
                    "directory entry {:?}: object_type must be user, group or service",
                    e.name
                )));
            }
        }
        Ok(())
    }

    /// Accepted issuers: the v1 and v2 issuer of every tenant, plus `extra_issuers`.
    pub fn issuers(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .auth
            .tenants
            .iter()
            .flat_map(|t| {
                [
                    format!("https://sts.windows.net/{t}/"),
                    format!("https://login.microsoftonline.com/{t}/v2.0"),
                ]
            })
            .collect();
        out.extend(self.auth.extra_issuers.iter().cloned());
        out
    }
}
