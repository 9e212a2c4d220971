//! The command-line grammar. Every flag also reads an env var (`PGENTRA_…`) and a key in the
//! config file (see `config.rs`); this file only declares them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Passwordless PostgreSQL with Microsoft Entra ID tokens.
#[derive(Debug, Parser)]
#[command(name = "pgentra", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file (TOML). Keys are flag names; a command's keys go in a table named after it.
    #[arg(long, global = true, env = "PGENTRA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format for results.
    #[arg(long, global = true, env = "PGENTRA_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// More logging and the full cause chain of errors (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, env = "PGENTRA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    /// Tab-separated values (query results; other commands print a table).
    Tsv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole system on this machine: the identity emulator, a PostgreSQL, the gateway in front
    /// of it, a database and an Entra principal `aad_<connection>` created the way Service
    /// Connector does. Prints the environment a Service Connector snippet needs; stays up until
    /// Ctrl-C.
    Up(UpArgs),
    /// Run the identity emulator: Entra token endpoint, OIDC discovery, JWKS, App Service and
    /// IMDS managed-identity endpoints, signing real RS256 tokens.
    Emulator(EmulatorArgs),
    /// Print an access token (default: for Azure Database for PostgreSQL), using the default
    /// credential chain or one credential.
    Token(TokenArgs),
    /// Entra-token authentication in front of any PostgreSQL, like Azure Database for
    /// PostgreSQL: serves until Ctrl-C/SIGTERM, or `init` installs the principal registry.
    Gateway(GatewayArgs),
    /// Run the seed's whole flow on a fresh local stack and narrate it: tokens for each identity
    /// kind, connect, create a table, grant, validate, and an expired token refused.
    Demo(DemoArgs),
    /// Connect with an Entra token (or PGPASSWORD) and run SQL, like
    /// `az postgres flexible-server execute`.
    Exec(ExecArgs),
    /// Grant a role all privileges on a schema's tables and sequences, then show the seed's
    /// validation query.
    Grant(GrantArgs),
    /// Service Connector's database side: create an Entra principal for an identity, grant it
    /// a database, and emit the variables a client type reads.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Explain why a passwordless connection fails: reads the Service Connector variables,
    /// gets and decodes a token, connects, maps server errors to their fix, checks privileges.
    Doctor(DoctorArgs),
    /// Local sidecar: applications connect with no password; the proxy logs in upstream with a
    /// fresh Entra token. `proxy wait` blocks until a running proxy has started.
    Proxy(ProxyArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Plain-http listener (managed identity, IMDS, discovery, JWKS).
    #[arg(
        long,
        env = "PGENTRA_EMULATOR_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub http_addr: SocketAddr,
    /// TLS listener (the Entra authority; SDKs require https).
    #[arg(
        long,
        env = "PGENTRA_EMULATOR_HTTPS_ADDR",
        default_value = "127.0.0.1:8443"
    )]
    pub https_addr: SocketAddr,
    /// Where the CA, server certificate and signing keys are kept across runs.
    #[arg(
        long,
        env = "PGENTRA_EMULATOR_STATE_DIR",
        default_value = ".state/emulator"
    )]
    pub state_dir: PathBuf,
    /// Identities file (TOML: tenants, managed identities, service principals, users).
    /// Without it the built-in development identities are served.
    #[arg(long, env = "PGENTRA_EMULATOR_IDENTITIES", value_name = "FILE")]
    pub identities: Option<PathBuf>,
    /// The shared secret clients send as X-IDENTITY-HEADER (random when unset).
    #[arg(long, env = "PGENTRA_EMULATOR_IDENTITY_HEADER", hide_env_values = true)]
    pub identity_header: Option<String>,
}

/// Which credential `token` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialChoice {
    /// Environment, workload identity, managed identity, Azure CLI — the first that is available.
    Default,
    Environment,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

/// The Azure cloud whose authority and database scope to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloudChoice {
    Public,
    China,
    UsGov,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The scope to request; default: the Azure Database for PostgreSQL scope of the cloud.
    #[arg(long, env = "PGENTRA_TOKEN_SCOPE")]
    pub scope: Option<String>,
    /// The credential to use.
    #[arg(long, env = "PGENTRA_TOKEN_CREDENTIAL", value_enum, default_value_t = CredentialChoice::Default)]
    pub credential: CredentialChoice,
    /// Client id of a user-assigned managed identity (else AZURE_CLIENT_ID, else system-assigned).
    #[arg(long, env = "PGENTRA_TOKEN_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Extra CA certificate (PEM) to trust for the identity endpoints, e.g. the emulator's.
    #[arg(long, env = "PGENTRA_TOKEN_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Azure cloud.
    #[arg(long, env = "PGENTRA_TOKEN_CLOUD", value_enum, default_value_t = CloudChoice::Public)]
    pub cloud: CloudChoice,
    /// Show the token's claims and expiry instead of the token (never the signature).
    #[arg(long, env = "PGENTRA_TOKEN_DECODE")]
    pub decode: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub opts: GatewayOpts,
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
}

#[derive(Debug, Subcommand)]
pub enum GatewayAction {
    /// Serve client connections (the default).
    Run,
    /// Install the `pgaadauth_*` principal registry into the upstream server, publish the
    /// identity directory and register the configured administrators; then exit.
    Init,
}

/// Gateway settings. The full set lives in a TOML file (`--gateway-config`, keys as in
/// `pgentra_proxy::GatewayConfig`); these flags override the most used ones.
#[derive(Debug, Args)]
pub struct GatewayOpts {
    /// Gateway configuration file (TOML).
    #[arg(
        long,
        global = true,
        env = "PGENTRA_GATEWAY_CONFIG",
        value_name = "FILE"
    )]
    pub gateway_config: Option<PathBuf>,
    /// TCP listen address (repeatable).
    #[arg(
        long,
        global = true,
        env = "PGENTRA_GATEWAY_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<String>,
    /// TLS certificate chain (PEM).
    #[arg(
        long,
        global = true,
        env = "PGENTRA_GATEWAY_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        global = true,
        env = "PGENTRA_GATEWAY_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Entra tenant whose tokens are accepted (repeatable).
    #[arg(
        long,
        global = true,
        env = "PGENTRA_GATEWAY_TENANT",
        value_delimiter = ','
    )]
    pub tenant: Vec<String>,
    /// JWKS URL of the token issuer.
    #[arg(long, global = true, env = "PGENTRA_GATEWAY_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Extra CA (PEM) trusted when fetching signing keys.
    #[arg(long, global = true, env = "PGENTRA_GATEWAY_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Upstream PostgreSQL over a trusted channel: a unix socket directory, or a host.
    #[arg(long, global = true, env = "PGENTRA_GATEWAY_UPSTREAM_HOST")]
    pub upstream_host: Option<String>,
    /// Upstream port (also names the unix socket file).
    #[arg(long, global = true, env = "PGENTRA_GATEWAY_UPSTREAM_PORT")]
    pub upstream_port: Option<u16>,
    /// HTTP address for /metrics, /startup, /readiness, /liveness.
    #[arg(long, global = true, env = "PGENTRA_GATEWAY_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Most client connections at once.
    #[arg(long, global = true, env = "PGENTRA_GATEWAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// The kind of Entra identity an application signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// System-assigned managed identity.
    System,
    /// User-assigned managed identity.
    User,
    /// Service principal with a client secret.
    Sp,
}

fn client_type(s: &str) -> Result<pgentra_postgres::ClientType, String> {
    s.parse()
        .map_err(|e: pgentra_postgres::SettingsError| e.to_string())
}

/// Options of the local stack (`up`, `demo`).
#[derive(Debug, Args)]
pub struct StackArgs {
    /// Where the stack keeps its PostgreSQL cluster, keys and certificates across runs.
    #[arg(long, env = "PGENTRA_UP_STATE_DIR", default_value = ".state/up")]
    pub state_dir: PathBuf,
    /// Delete the state directory first.
    #[arg(long, env = "PGENTRA_UP_FRESH")]
    pub fresh: bool,
    /// The gateway's listen address (what applications connect to).
    #[arg(long, env = "PGENTRA_UP_LISTEN", default_value = "127.0.0.1:5433")]
    pub listen: SocketAddr,
    /// The emulator's plain-http address (managed identity, IMDS).
    #[arg(
        long,
        env = "PGENTRA_UP_EMULATOR_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub emulator_http_addr: SocketAddr,
    /// The emulator's https address (Entra authority).
    #[arg(
        long,
        env = "PGENTRA_UP_EMULATOR_HTTPS_ADDR",
        default_value = "127.0.0.1:8443"
    )]
    pub emulator_https_addr: SocketAddr,
    /// The application database.
    #[arg(long, env = "PGENTRA_UP_DATABASE", default_value = "demo")]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Service Connector client type whose variables to print.
    #[arg(long, env = "PGENTRA_UP_CLIENT_TYPE", default_value = "python", value_parser = client_type)]
    pub client_type: pgentra_postgres::ClientType,
    /// The identity the application signs in with.
    #[arg(long, env = "PGENTRA_UP_AUTH", value_enum, default_value_t = AuthKind::System)]
    pub auth: AuthKind,
    /// Connection name; the database role is `aad_<connection>`.
    #[arg(long, env = "PGENTRA_UP_CONNECTION", default_value = "demo")]
    pub connection: String,
    /// Also write the exports to this file (written last: its presence means the stack is up).
    #[arg(long, env = "PGENTRA_UP_ENV_FILE")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub stack: StackArgs,
}

/// Where and as whom to connect. Without `--host`, the Service Connector variables
/// (`AZURE_POSTGRESQL_*`) in the environment describe the connection and its identity.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Server host, or a unix socket directory.
    #[arg(long, env = "PGENTRA_HOST")]
    pub host: Option<String>,
    /// Server port.
    #[arg(long, env = "PGENTRA_PORT", default_value_t = 5432)]
    pub port: u16,
    /// Database.
    #[arg(
        short = 'd',
        long,
        env = "PGENTRA_DATABASE",
        default_value = "postgres"
    )]
    pub database: String,
    /// Role to log in as; default: derived from the token (upn or appid).
    #[arg(short = 'u', long, env = "PGENTRA_USER")]
    pub user: Option<String>,
    /// TLS mode: disable, prefer, require, verify-ca, verify-full.
    #[arg(long, env = "PGENTRA_SSLMODE", default_value = "require")]
    pub sslmode: String,
    /// Extra CA certificate (PEM) for verifying the server and the identity endpoints.
    #[arg(long, env = "PGENTRA_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// SQL to run.
    #[arg(
        long,
        env = "PGENTRA_EXEC_QUERYTEXT",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub querytext: Option<String>,
    /// File of SQL to run.
    #[arg(long, env = "PGENTRA_EXEC_FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The role to grant to, e.g. `aad_<connection name>`.
    #[arg(long, env = "PGENTRA_GRANT_ROLE")]
    pub role: String,
    /// Schema whose tables and sequences are granted.
    #[arg(long, env = "PGENTRA_GRANT_SCHEMA", default_value = "public")]
    pub schema: String,
    /// Also grant on tables and sequences the connected role creates later.
    #[arg(long, env = "PGENTRA_GRANT_DEFAULT_PRIVILEGES")]
    pub default_privileges: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Create the principal `aad_<name>`, grant it the database, print its variables.
    Create(ConnectionCreateArgs),
}

/// How `connection create` prints the variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// `export K='v'` lines for a POSIX shell.
    Exports,
    /// `K=v` lines for a `.env` file.
    Dotenv,
    /// One JSON object.
    Json,
}

#[derive(Debug, Args)]
pub struct ConnectionCreateArgs {
    /// The administrator's connection (an Entra admin or the database owner). The principal is
    /// created in the `postgres` database, the grants in `-d`.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Connection name; the role is `aad_<name>`.
    #[arg(long, env = "PGENTRA_CONNECTION_NAME")]
    pub name: String,
    /// The identity's object (principal) id.
    #[arg(long, env = "PGENTRA_CONNECTION_OBJECT_ID")]
    pub object_id: String,
    /// `service` for managed identities and service principals, `user` for a user account.
    #[arg(
        long,
        env = "PGENTRA_CONNECTION_OBJECT_TYPE",
        default_value = "service"
    )]
    pub object_type: String,
    /// The kind of identity the application signs in with.
    #[arg(long, env = "PGENTRA_CONNECTION_AUTH", value_enum, default_value_t = AuthKind::System)]
    pub auth: AuthKind,
    /// Client id (user-assigned identity or service principal).
    #[arg(long, env = "PGENTRA_CONNECTION_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Tenant id (service principal).
    #[arg(long, env = "PGENTRA_CONNECTION_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Client secret (service principal).
    #[arg(long, env = "PGENTRA_CONNECTION_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Host the application connects to (default: the administrator's host).
    #[arg(long, env = "PGENTRA_CONNECTION_APP_HOST")]
    pub app_host: Option<String>,
    /// Port the application connects to (default: the administrator's port).
    #[arg(long, env = "PGENTRA_CONNECTION_APP_PORT")]
    pub app_port: Option<u16>,
    /// Service Connector client type whose variables to emit.
    #[arg(long, env = "PGENTRA_CONNECTION_CLIENT_TYPE", default_value = "none", value_parser = client_type)]
    pub client_type: pgentra_postgres::ClientType,
    /// Output format of the variables.
    #[arg(long, env = "PGENTRA_CONNECTION_FORMAT", value_enum, default_value_t = EnvFormat::Exports)]
    pub format: EnvFormat,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check this token (a file holding it) instead of fetching one with the connection's identity.
    #[arg(long, env = "PGENTRA_DOCTOR_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) for the identity endpoints and the server.
    #[arg(long, env = "PGENTRA_DOCTOR_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Schema whose table privileges are checked.
    #[arg(long, env = "PGENTRA_DOCTOR_SCHEMA", default_value = "public")]
    pub schema: String,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub opts: ProxyOpts,
    #[command(subcommand)]
    pub action: Option<ProxyAction>,
}

#[derive(Debug, Subcommand)]
pub enum ProxyAction {
    /// Serve (the default).
    Run,
    /// Wait until the proxy whose admin endpoint is `--admin-listen` reports started; for
    /// container start order.
    Wait {
        /// How long to wait.
        #[arg(long, env = "PGENTRA_PROXY_WAIT_MAX", default_value = "30s", value_parser = duration)]
        max: std::time::Duration,
    },
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms or 2m"))?;
    Ok(match unit {
        "" | "s" => std::time::Duration::from_secs(n),
        "ms" => std::time::Duration::from_millis(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => return Err(format!("{s:?} is not a duration like 30s, 500ms or 2m")),
    })
}

/// Sidecar settings. The full set (including `[[instance]]` tables for several upstream
/// servers) lives in a TOML file whose keys are these flags' names; flags override it.
#[derive(Debug, Args)]
pub struct ProxyOpts {
    /// Proxy configuration file (TOML).
    #[arg(long, global = true, env = "PGENTRA_PROXY_CONFIG", value_name = "FILE")]
    pub proxy_config: Option<PathBuf>,
    /// Listen address for applications (loopback unless --allow-non-loopback).
    #[arg(long, global = true, env = "PGENTRA_PROXY_LISTEN")]
    pub listen: Option<String>,
    /// Also listen on `<dir>/.s.PGSQL.<port>`.
    #[arg(long, global = true, env = "PGENTRA_PROXY_UNIX_SOCKET_DIR")]
    pub unix_socket_dir: Option<PathBuf>,
    /// Allow a non-loopback listen address (anyone reaching it logs in as this identity).
    #[arg(long, global = true, env = "PGENTRA_PROXY_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
    /// Upstream server (Azure Database for PostgreSQL, or a pgentra gateway).
    #[arg(long, global = true, env = "PGENTRA_PROXY_HOST")]
    pub host: Option<String>,
    /// Upstream port.
    #[arg(long, global = true, env = "PGENTRA_PROXY_PORT")]
    pub port: Option<u16>,
    /// Upstream database (default: the one the application asks for).
    #[arg(long, global = true, env = "PGENTRA_PROXY_DATABASE")]
    pub database: Option<String>,
    /// Entra role to log in as (default: the application's user; `*`: from the token).
    #[arg(long, global = true, env = "PGENTRA_PROXY_USER")]
    pub user: Option<String>,
    /// TLS to the upstream: disable, require, verify-ca, verify-full.
    #[arg(long, global = true, env = "PGENTRA_PROXY_SSLMODE")]
    pub sslmode: Option<String>,
    /// Extra CA (PEM) for the upstream server.
    #[arg(long, global = true, env = "PGENTRA_PROXY_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Refresh tokens on demand instead of in the background (CPU-throttled hosts).
    #[arg(long, global = true, env = "PGENTRA_PROXY_LAZY_REFRESH")]
    pub lazy_refresh: bool,
    /// Most application connections at once (0: no limit).
    #[arg(long, global = true, env = "PGENTRA_PROXY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// After SIGTERM, keep accepting connections this long (e.g. 10s).
    #[arg(long, global = true, env = "PGENTRA_PROXY_MIN_SIGTERM_DELAY")]
    pub min_sigterm_delay: Option<String>,
    /// After SIGTERM, cut sessions still open at this point (e.g. 30s).
    #[arg(long, global = true, env = "PGENTRA_PROXY_MAX_SIGTERM_DELAY")]
    pub max_sigterm_delay: Option<String>,
    /// HTTP address for /metrics, /startup, /readiness, /liveness.
    #[arg(long, global = true, env = "PGENTRA_PROXY_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Log in to every instance once at start-up; exit if one fails.
    #[arg(long, global = true, env = "PGENTRA_PROXY_RUN_CONNECTION_TEST")]
    pub run_connection_test: bool,
    /// Client id of a user-assigned managed identity (else AZURE_CLIENT_ID, else system-assigned).
    #[arg(long, global = true, env = "PGENTRA_PROXY_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Extra CA (PEM) trusted for the identity endpoints.
    #[arg(long, global = true, env = "PGENTRA_PROXY_IDENTITY_CA_FILE")]
    pub identity_ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    pub shell: clap_complete::Shell,
}
