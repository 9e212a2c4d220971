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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the identity emulator: Entra token endpoint, OIDC discovery, JWKS, App Service and
    /// IMDS managed-identity endpoints, signing real RS256 tokens.
    Emulator(EmulatorArgs),
    /// Print an access token (default: for Azure Database for PostgreSQL), using the default
    /// credential chain or one credential.
    Token(TokenArgs),
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
pub struct CompletionsArgs {
    /// The shell to print completions for.
    pub shell: clap_complete::Shell,
}
