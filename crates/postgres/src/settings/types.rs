//! The typed values a Service Connector configuration parses into: client type, TLS mode,
//! identity and the client secret. No parsing of variables and no I/O here.

use std::fmt;
use std::str::FromStr;

use super::SettingsError;

/// The `--client-type` of a Service Connector connection: which variables it set, in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientType {
    /// `AZURE_POSTGRESQL_CONNECTIONSTRING` in Npgsql format (`Server=…;Database=…;`).
    Dotnet,
    /// `AZURE_POSTGRESQL_CONNECTIONSTRING` as a JDBC URL with `user=` in the query.
    Java,
    /// `spring.datasource.*` and `spring.cloud.azure.credential.*` properties.
    SpringBoot,
    /// `AZURE_POSTGRESQL_CONNECTIONSTRING` as libpq keywords, `dbname` first.
    Python,
    /// `AZURE_POSTGRESQL_NAME`, `_HOST`, `_USER`.
    Django,
    /// `AZURE_POSTGRESQL_CONNECTIONSTRING` as libpq keywords, `host` then `dbname`, no port.
    Go,
    /// `AZURE_POSTGRESQL_HOST`, `_USER`, `_DATABASE`, `_PORT`, `_SSL`.
    Nodejs,
    /// `AZURE_POSTGRESQL_CONNECTIONSTRING` as libpq keywords, `host port dbname …`.
    Php,
    /// Same variables as [`ClientType::Php`].
    Ruby,
    /// `AZURE_POSTGRESQL_HOST`, `_USERNAME`, `_DATABASE`, `_PORT`, `_SSL`.
    None,
}

impl ClientType {
    /// Every client type, in the order of the Service Connector documentation.
    pub const ALL: [ClientType; 10] = [
        ClientType::Dotnet,
        ClientType::Java,
        ClientType::SpringBoot,
        ClientType::Python,
        ClientType::Django,
        ClientType::Go,
        ClientType::Nodejs,
        ClientType::Php,
        ClientType::Ruby,
        ClientType::None,
    ];

    /// The name `az webapp connection create --client-type` uses, lower-cased.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Dotnet => "dotnet",
            ClientType::Java => "java",
            ClientType::SpringBoot => "springboot",
            ClientType::Python => "python",
            ClientType::Django => "django",
            ClientType::Go => "go",
            ClientType::Nodejs => "nodejs",
            ClientType::Php => "php",
            ClientType::Ruby => "ruby",
            ClientType::None => "none",
        }
    }
}

impl fmt::Display for ClientType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientType {
    type Err = SettingsError;

    /// Case-insensitive; also accepts the CLI's `springBoot`, `spring-boot` and `dotnet-core`-less
    /// spellings (`.net`, `csharp`) that people type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match norm.as_str() {
            "dotnet" | ".net" | "csharp" => ClientType::Dotnet,
            "java" => ClientType::Java,
            "springboot" | "spring" => ClientType::SpringBoot,
            "python" => ClientType::Python,
            "django" => ClientType::Django,
            "go" | "golang" => ClientType::Go,
            "nodejs" | "node" => ClientType::Nodejs,
            "php" => ClientType::Php,
            "ruby" => ClientType::Ruby,
            "none" | "other" => ClientType::None,
            _ => {
                return Err(SettingsError::UnknownClientType {
                    value: s.to_owned(),
                });
            }
        })
    }
}

/// How the connection uses TLS, with libpq's meaning of each mode.
///
/// `allow` is not offered: it tries plaintext first, which would send the token unencrypted to
/// any server that accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS if the server offers it, without certificate checks; plaintext otherwise.
    Prefer,
    /// TLS always; the certificate is not checked (encryption without authentication).
    Require,
    /// TLS always; the certificate chain must lead to a trusted root, any host name.
    VerifyCa,
    /// TLS always; chain and host name are checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`verify-full`).
    pub fn as_libpq(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The Npgsql spelling (`VerifyFull`).
    pub fn as_npgsql(self) -> &'static str {
        match self {
            SslMode::Disable => "Disable",
            SslMode::Prefer => "Prefer",
            SslMode::Require => "Require",
            SslMode::VerifyCa => "VerifyCA",
            SslMode::VerifyFull => "VerifyFull",
        }
    }

    /// Whether the server certificate's chain is checked.
    pub fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// Parses any of the libpq/JDBC (`verify-full`) and Npgsql (`VerifyFull`) spellings.
    /// Returns `None` for `allow` and anything unknown; the caller names the variable.
    pub(crate) fn parse_any(s: &str) -> Option<SslMode> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        match norm.as_str() {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verifyca" => Some(SslMode::VerifyCa),
            "verifyfull" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_libpq())
    }
}

impl FromStr for SslMode {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::parse_any(s).ok_or_else(|| SettingsError::Invalid {
            variable: "sslmode".to_owned(),
            reason: format!(
                "unsupported sslmode `{s}` (use disable, prefer, require, verify-ca or verify-full)"
            ),
        })
    }
}

/// A client secret. `Debug` and `Display` never show it; read it with
/// [`ClientSecret::expose_secret`] only where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret value.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }

    /// The secret itself.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which Entra identity the application signs in with, as Service Connector configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No client id: the resource's system-assigned managed identity.
    SystemAssigned,
    /// A client id alone: a user-assigned managed identity.
    UserAssigned {
        /// The managed identity's client (application) id.
        client_id: String,
    },
    /// Client id, secret and tenant: an application registration (service principal).
    ServicePrincipal {
        /// The directory (tenant) id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        secret: ClientSecret,
    },
}

impl Identity {
    /// A short name for logs and messages: `system-assigned`, `user-assigned`, `service-principal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::SystemAssigned => "system-assigned",
            Identity::UserAssigned { .. } => "user-assigned",
            Identity::ServicePrincipal { .. } => "service-principal",
        }
    }
}
