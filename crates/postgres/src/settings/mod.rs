//! Service Connector settings: the variables Azure Service Connector sets for a PostgreSQL
//! connection, for every client type, parsed into one typed [`ConnectionSettings`] and rendered
//! back. Pure functions over an injected environment map: no I/O, no tokens, and the process
//! environment is read only by [`ConnectionSettings::from_process_env`].
//!
//! Client types and their variables follow the Service Connector documentation (spec §9.1):
//!
//! | client type | variables |
//! |---|---|
//! | `dotnet` | `AZURE_POSTGRESQL_CONNECTIONSTRING` = `Server=…;Database=…;Port=…;Ssl Mode=…;User Id=…;` |
//! | `java` | `AZURE_POSTGRESQL_CONNECTIONSTRING` = `jdbc:postgresql://host:port/db?sslmode=…&user=…` |
//! | `springboot` | `spring.datasource.azure.passwordless-enabled`, `spring.datasource.url`, `spring.datasource.username`, `spring.cloud.azure.credential.*` |
//! | `python` | `AZURE_POSTGRESQL_CONNECTIONSTRING` = `dbname=… host=… port=… sslmode=… user=…` |
//! | `django` | `AZURE_POSTGRESQL_NAME`, `_HOST`, `_USER` |
//! | `go` | `AZURE_POSTGRESQL_CONNECTIONSTRING` = `host=… dbname=… sslmode=… user=…` |
//! | `nodejs` | `AZURE_POSTGRESQL_HOST`, `_USER`, `_DATABASE`, `_PORT`, `_SSL` |
//! | `php`, `ruby` | `AZURE_POSTGRESQL_CONNECTIONSTRING` = `host=… port=… dbname=… sslmode=… user=…` |
//! | `none` | `AZURE_POSTGRESQL_HOST`, `_USERNAME`, `_DATABASE`, `_PORT`, `_SSL` |
//!
//! plus the identity: no `AZURE_POSTGRESQL_CLIENTID` → system-assigned managed identity;
//! `CLIENTID` alone → user-assigned managed identity; `CLIENTID` + `CLIENTSECRET` + `TENANTID` →
//! service principal (Spring: `spring.cloud.azure.credential.client-id`, `…client-secret`,
//! `…tenant-id`, `…client-managed-identity-enabled`).
//!
//! Two small extensions keep every [`ConnectionSettings`] representable in every client type:
//! `django` takes optional `AZURE_POSTGRESQL_PORT` and `AZURE_POSTGRESQL_SSL` (rendered only when
//! not 5432 / `require`), `go` gets ` port=N` at the end when the port is not 5432, and `_SSL`
//! holds `true` (= `require`), `false` (= `disable`) or another sslmode name.

mod jdbc;
mod libpq;
mod npgsql;
mod types;
mod vars;

use std::collections::BTreeSet;
use std::fmt;

pub use types::{ClientSecret, ClientType, Identity, SslMode};
use vars::{AzVar, Collected, Entry, SpringKey};

/// PostgreSQL's port when none is given.
pub const DEFAULT_PORT: u16 = 5432;

/// The Java class Service Connector's documentation appends to JDBC URLs; accepted and ignored.
const AZURE_JDBC_PLUGIN: &str = "AzurePostgresqlAuthenticationPlugin";

/// A configuration problem, always naming the variable (or property) at fault. Messages never
/// contain a secret or a connection-string value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// None of the variables of any client type is set.
    #[error(
        "no Service Connector PostgreSQL settings found: set AZURE_POSTGRESQL_CONNECTIONSTRING, \
         AZURE_POSTGRESQL_HOST or spring.datasource.url"
    )]
    NotConfigured,
    /// A variable this client type needs is absent.
    #[error("{variable} is missing{}", needed_by.as_ref().map(|n| format!(" (needed with {n})")).unwrap_or_default())]
    Missing {
        /// The absent variable.
        variable: String,
        /// The variable whose presence requires it, if any.
        needed_by: Option<String>,
    },
    /// A variable in Service Connector's namespace that no client type uses.
    #[error("{variable} is not a Service Connector variable for PostgreSQL")]
    Unknown {
        /// The unknown variable.
        variable: String,
    },
    /// A known variable that the client type in use does not set.
    #[error("{variable} is not set by Service Connector for client type `{client_type}`")]
    Unexpected {
        /// The out-of-place variable.
        variable: String,
        /// The client type the other variables were read as.
        client_type: ClientType,
    },
    /// Two variables contradict each other.
    #[error("{variable} contradicts {other}: {reason}")]
    Conflict {
        /// The variable reported as wrong.
        variable: String,
        /// The variable it contradicts.
        other: String,
        /// What contradicts.
        reason: String,
    },
    /// A variable's value cannot be read.
    #[error("{variable} {reason}")]
    Invalid {
        /// The variable.
        variable: String,
        /// What is wrong with it (never its value).
        reason: String,
    },
    /// The connection is configured for a stored password, not Entra ID.
    #[error(
        "{variable} configures password authentication ({what}); pgentra signs in with Entra ID \
         tokens: recreate the connection with a managed identity or service principal"
    )]
    PasswordAuth {
        /// Where the password was found.
        variable: String,
        /// Which part of it.
        what: String,
    },
    /// A client type name that is not one of Service Connector's.
    #[error(
        "unknown client type `{value}` (expected dotnet, java, springboot, python, django, go, \
         nodejs, php, ruby or none)"
    )]
    UnknownClientType {
        /// What was given.
        value: String,
    },
}

impl SettingsError {
    /// The variable the error is about, if it is about one.
    pub fn variable(&self) -> Option<&str> {
        match self {
            SettingsError::Missing { variable, .. }
            | SettingsError::Unknown { variable }
            | SettingsError::Unexpected { variable, .. }
            | SettingsError::Conflict { variable, .. }
            | SettingsError::Invalid { variable, .. }
            | SettingsError::PasswordAuth { variable, .. } => Some(variable),
            SettingsError::NotConfigured | SettingsError::UnknownClientType { .. } => None,
        }
    }
}

/// One PostgreSQL connection as Service Connector describes it, independent of client type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Server host name (or IP address, or a unix socket directory starting with `/`).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// PostgreSQL role; `None` means "derive it from the token's claims" when connecting.
    pub user: Option<String>,
    /// TLS mode.
    pub ssl_mode: SslMode,
    /// The format the variables were read from, and the default format to render.
    pub client_type: ClientType,
    /// The Entra identity to get tokens for.
    pub identity: Identity,
}

impl ConnectionSettings {
    /// Settings for `host`/`database` with Service Connector's defaults: port 5432,
    /// `sslmode=require`, no user, system-assigned managed identity, client type `none`.
    pub fn new(host: impl Into<String>, database: impl Into<String>) -> Self {
        ConnectionSettings {
            host: host.into(),
            port: DEFAULT_PORT,
            database: database.into(),
            user: None,
            ssl_mode: SslMode::Require,
            client_type: ClientType::None,
            identity: Identity::SystemAssigned,
        }
    }

    /// Reads the connection from environment variables, detecting the client type from which
    /// variables are present and the connection string's format. Variables unrelated to the
    /// connection are ignored.
    ///
    /// `php` and `ruby` write identical variables; such a string is reported as `php`. A libpq
    /// string in no documented keyword order is reported as `python`.
    pub fn from_env<I, K, V>(vars: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        parse(None, vars::collect(vars)?)
    }

    /// Reads the connection from environment variables written for `client_type`; any
    /// connection variable that client type does not use is an error.
    pub fn from_env_as<I, K, V>(client_type: ClientType, vars: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        parse(Some(client_type), vars::collect(vars)?)
    }

    /// [`ConnectionSettings::from_env`] over this process's environment. The only function of
    /// this crate that reads it.
    pub fn from_process_env() -> Result<Self, SettingsError> {
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            // Names that are not UTF-8 cannot be Service Connector's; skip them.
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => vars.push((k, v)),
                Err(_) if vars::collect([(k.as_str(), "")]).is_ok_and(|c| c.is_empty()) => {}
                Err(_) => {
                    return Err(SettingsError::Invalid {
                        variable: k,
                        reason: "is not valid UTF-8".into(),
                    });
                }
            }
        }
        Self::from_env(vars)
    }

    /// The variables Service Connector would set for this connection with its own client type.
    pub fn render(&self) -> Variables {
        self.render_as(self.client_type)
    }

    /// The variables Service Connector would set for this connection with `client_type`, in
    /// the documented order.
    pub fn render_as(&self, client_type: ClientType) -> Variables {
        render(self, client_type)
    }
}

impl fmt::Display for ConnectionSettings {
    /// `user@host:port/database (sslmode=…, identity)`; never shows a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(
            f,
            "{}:{}/{} (sslmode={}, {}",
            self.host,
            self.port,
            self.database,
            self.ssl_mode,
            self.identity.kind()
        )?;
        match &self.identity {
            Identity::SystemAssigned => {}
            Identity::UserAssigned { client_id } => write!(f, " {client_id}")?,
            Identity::ServicePrincipal {
                tenant_id,
                client_id,
                ..
            } => write!(f, " {client_id} in tenant {tenant_id}")?,
        }
        f.write_str(")")
    }
}

/// Rendered variables, in order. `Debug` hides secret values; iterate to read them.
#[derive(Clone, PartialEq, Eq)]
pub struct Variables(Vec<(String, String)>);

impl Variables {
    /// `(name, value)` pairs in the documented order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`, if rendered.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a rendered connection).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, for `Command::envs` or printing.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}

impl<'a> IntoIterator for &'a Variables {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in self.iter() {
            if is_secret_variable(k) {
                m.entry(&k, &"<redacted>");
            } else {
                m.entry(&k, &v);
            }
        }
        m.finish()
    }
}

/// Whether a variable's value is a secret that must not be printed or logged.
pub fn is_secret_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("CLIENTSECRET")
        || upper.ends_with("CLIENT-SECRET")
        || upper.ends_with("PASSWORD")
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// The connection fields a format yields, before defaults.
#[derive(Default)]
struct Endpoint {
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
    ssl_mode: Option<SslMode>,
}

impl Collected {
    pub(crate) fn is_empty(&self) -> bool {
        self.azure.is_empty() && self.spring.is_empty()
    }
}

fn parse(
    client_type: Option<ClientType>,
    c: Collected,
) -> Result<ConnectionSettings, SettingsError> {
    // A stored password means this connection is not passwordless at all; say so before
    // anything else, whatever else is wrong.
    if let Some(e) = c.azure.get(&AzVar::Password) {
        return Err(password_auth(&e.name, "a password variable"));
    }
    if let Some(e) = c.spring.get(&SpringKey::Password) {
        return Err(password_auth(&e.name, "a password property"));
    }
    let ct = match client_type {
        Some(ct) => ct,
        None => detect(&c)?,
    };
    check_allowed(ct, &c)?;
    let (ep, identity) = match ct {
        ClientType::SpringBoot => (parse_spring(&c)?, spring_identity(&c)?),
        ClientType::Java => {
            let e = required(&c, AzVar::ConnectionString)?;
            (parse_jdbc(e)?, azure_identity(&c)?)
        }
        ClientType::Dotnet => {
            let e = required(&c, AzVar::ConnectionString)?;
            (parse_npgsql(e)?, azure_identity(&c)?)
        }
        ClientType::Python | ClientType::Go | ClientType::Php | ClientType::Ruby => {
            let e = required(&c, AzVar::ConnectionString)?;
            (parse_libpq(e)?, azure_identity(&c)?)
        }
        ClientType::Django | ClientType::Nodejs | ClientType::None => {
            (parse_separate(ct, &c)?, azure_identity(&c)?)
        }
    };
    let source = |var: AzVar| match ct {
        ClientType::SpringBoot => SpringKey::Url.name().to_owned(),
        _ => c
            .azure
            .get(&var)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| var.name()),
    };
    let host = ep.host.ok_or_else(|| match ct {
        ClientType::Django | ClientType::Nodejs | ClientType::None => SettingsError::Missing {
            variable: AzVar::Host.name(),
            needed_by: None,
        },
        _ => SettingsError::Invalid {
            variable: source(AzVar::ConnectionString),
            reason: "has no host".into(),
        },
    })?;
    let database = ep.database.ok_or_else(|| SettingsError::Invalid {
        variable: source(AzVar::ConnectionString),
        reason: "has no database name".into(),
    })?;
    Ok(ConnectionSettings {
        host,
        port: ep.port.unwrap_or(DEFAULT_PORT),
        database,
        user: ep.user,
        // libpq, Npgsql and pgjdbc all default to `prefer` when no mode is given.
        ssl_mode: ep.ssl_mode.unwrap_or(SslMode::Prefer),
        client_type: ct,
        identity,
    })
}

fn password_auth(variable: &str, what: &str) -> SettingsError {
    SettingsError::PasswordAuth {
        variable: variable.to_owned(),
        what: what.to_owned(),
    }
}

fn required(c: &Collected, var: AzVar) -> Result<&Entry, SettingsError> {
    c.azure.get(&var).ok_or_else(|| SettingsError::Missing {
        variable: var.name(),
        needed_by: None,
    })
}

/// Which client type wrote these variables.
fn detect(c: &Collected) -> Result<ClientType, SettingsError> {
    if let (Some(a), Some(s)) = (c.azure.values().next(), c.spring.values().next()) {
        return Err(SettingsError::Conflict {
            variable: a.name.clone(),
            other: s.name.clone(),
            reason: "Service Connector sets either AZURE_POSTGRESQL_* variables or Spring \
                     properties for a connection, never both"
                .into(),
        });
    }
    if !c.spring.is_empty() {
        return Ok(ClientType::SpringBoot);
    }
    if let Some(e) = c.azure.get(&AzVar::ConnectionString) {
        return Ok(detect_string(&e.value));
    }
    let has = |v: AzVar| c.azure.contains_key(&v);
    if [
        AzVar::Host,
        AzVar::Name,
        AzVar::Database,
        AzVar::User,
        AzVar::Username,
        AzVar::Port,
        AzVar::Ssl,
    ]
    .into_iter()
    .any(has)
    {
        return Ok(if has(AzVar::Name) {
            ClientType::Django
        } else if has(AzVar::Username) {
            ClientType::None
        } else {
            ClientType::Nodejs
        });
    }
    Err(SettingsError::NotConfigured)
}

const LIBPQ_KEYWORDS: [&str; 6] = ["host", "port", "dbname", "user", "sslmode", "password"];

/// Which client type wrote this connection string: a JDBC URL is `java`; a string that reads as
/// libpq keywords (all known, no unquoted `;`) is `python`, `go` or `php` by keyword order;
/// anything else with a `;` is `dotnet`.
fn detect_string(s: &str) -> ClientType {
    if jdbc::is_jdbc(s) {
        return ClientType::Java;
    }
    let libpq_pairs = libpq::split_marking_quotes(s).ok();
    let clean_libpq = libpq_pairs.as_ref().is_some_and(|pairs| {
        pairs.iter().all(|(k, v, quoted)| {
            LIBPQ_KEYWORDS.contains(&k.as_str()) && (*quoted || !v.contains(';'))
        })
    });
    // Without a `;` an Npgsql string holds a single keyword, which is never a usable connection.
    if !clean_libpq && s.contains(';') {
        return ClientType::Dotnet;
    }
    let order: Vec<&str> = libpq_pairs
        .iter()
        .flatten()
        .map(|(k, _, _)| k.as_str())
        .filter(|k| matches!(*k, "host" | "port" | "dbname"))
        .collect();
    match order.as_slice() {
        ["host", "dbname", ..] => ClientType::Go,
        ["host", "port", "dbname", ..] => ClientType::Php,
        _ => ClientType::Python,
    }
}

/// The `AZURE_POSTGRESQL_*` variables each client type may carry.
fn allowed(ct: ClientType) -> BTreeSet<AzVar> {
    let identity = [AzVar::ClientId, AzVar::ClientSecret, AzVar::TenantId];
    let own: &[AzVar] = match ct {
        ClientType::SpringBoot => return BTreeSet::new(),
        ClientType::Dotnet
        | ClientType::Java
        | ClientType::Python
        | ClientType::Go
        | ClientType::Php
        | ClientType::Ruby => &[AzVar::ConnectionString],
        ClientType::Django => &[
            AzVar::Name,
            AzVar::Host,
            AzVar::User,
            AzVar::Port,
            AzVar::Ssl,
        ],
        ClientType::Nodejs => &[
            AzVar::Host,
            AzVar::User,
            AzVar::Database,
            AzVar::Port,
            AzVar::Ssl,
        ],
        ClientType::None => &[
            AzVar::Host,
            AzVar::Username,
            AzVar::Database,
            AzVar::Port,
            AzVar::Ssl,
        ],
    };
    own.iter().copied().chain(identity).collect()
}

fn check_allowed(ct: ClientType, c: &Collected) -> Result<(), SettingsError> {
    let ok = allowed(ct);
    if let Some(e) = c
        .azure
        .iter()
        .find(|(v, _)| !ok.contains(v))
        .map(|(_, e)| e)
    {
        return Err(SettingsError::Unexpected {
            variable: e.name.clone(),
            client_type: ct,
        });
    }
    if let Some(e) = c.spring.values().next()
        && ct != ClientType::SpringBoot
    {
        return Err(SettingsError::Unexpected {
            variable: e.name.clone(),
            client_type: ct,
        });
    }
    Ok(())
}

/// Sets a field once; a keyword given twice (or through two synonyms) is an error.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    variable: &str,
    keyword: &str,
) -> Result<(), SettingsError> {
    if slot.is_some() {
        return Err(SettingsError::Invalid {
            variable: variable.to_owned(),
            reason: format!("sets `{keyword}` twice"),
        });
    }
    *slot = Some(value);
    Ok(())
}

fn invalid(variable: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        variable: variable.to_owned(),
        reason: reason.into(),
    }
}

fn host_value(variable: &str, keyword: &str, v: &str) -> Result<String, SettingsError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(invalid(variable, format!("has an empty `{keyword}`")));
    }
    if v.contains(',') {
        return Err(invalid(
            variable,
            format!("lists several hosts in `{keyword}`; only one is supported"),
        ));
    }
    if v.contains(char::is_whitespace) {
        return Err(invalid(variable, format!("has white space in `{keyword}`")));
    }
    Ok(v.to_owned())
}

fn port_value(variable: &str, keyword: &str, v: &str) -> Result<u16, SettingsError> {
    jdbc::parse_port(v.trim()).ok_or_else(|| {
        invalid(
            variable,
            format!("has `{keyword}` that is not a port number (1-65535)"),
        )
    })
}

fn ssl_value(variable: &str, keyword: &str, v: &str) -> Result<SslMode, SettingsError> {
    SslMode::parse_any(v).ok_or_else(|| {
        invalid(
            variable,
            format!(
                "has unsupported `{keyword}` `{}` (use disable, prefer, require, verify-ca or verify-full)",
                v.trim()
            ),
        )
    })
}

fn nonempty(variable: &str, keyword: &str, v: &str) -> Result<String, SettingsError> {
    if v.trim().is_empty() {
        return Err(invalid(variable, format!("has an empty `{keyword}`")));
    }
    Ok(v.to_owned())
}

fn parse_libpq(e: &Entry) -> Result<Endpoint, SettingsError> {
    let var = e.name.as_str();
    let pairs = libpq::split(&e.value).map_err(|r| invalid(var, r))?;
    if pairs.iter().any(|(k, _)| k == "password") {
        return Err(password_auth(var, "keyword `password`"));
    }
    let mut ep = Endpoint::default();
    for (k, v) in &pairs {
        match k.as_str() {
            "host" => set_once(&mut ep.host, host_value(var, k, v)?, var, k)?,
            "port" => set_once(&mut ep.port, port_value(var, k, v)?, var, k)?,
            "dbname" => set_once(&mut ep.database, nonempty(var, k, v)?, var, k)?,
            "user" => set_once(&mut ep.user, nonempty(var, k, v)?, var, k)?,
            "sslmode" => set_once(&mut ep.ssl_mode, ssl_value(var, k, v)?, var, k)?,
            other => return Err(invalid(var, format!("has unknown keyword `{other}`"))),
        }
    }
    Ok(ep)
}

fn parse_npgsql(e: &Entry) -> Result<Endpoint, SettingsError> {
    let var = e.name.as_str();
    let pairs = npgsql::split(&e.value).map_err(|r| invalid(var, r))?;
    if pairs
        .iter()
        .any(|(k, _)| matches!(k.as_str(), "password" | "psw" | "pwd"))
    {
        return Err(password_auth(var, "keyword `Password`"));
    }
    let mut ep = Endpoint::default();
    for (k, v) in &pairs {
        // Keywords come normalized (lower case, no spaces); Npgsql's synonyms map to one field,
        // so `Server=a;Host=b` is reported as a field set twice.
        match k.as_str() {
            "host" | "server" => {
                set_once(&mut ep.host, host_value(var, "Server", v)?, var, "Server")?
            }
            "port" => set_once(&mut ep.port, port_value(var, "Port", v)?, var, "Port")?,
            "database" | "db" => set_once(
                &mut ep.database,
                nonempty(var, "Database", v)?,
                var,
                "Database",
            )?,
            "username" | "userid" | "user" => {
                set_once(&mut ep.user, nonempty(var, "User Id", v)?, var, "User Id")?
            }
            "sslmode" => set_once(
                &mut ep.ssl_mode,
                ssl_value(var, "Ssl Mode", v)?,
                var,
                "Ssl Mode",
            )?,
            other => return Err(invalid(var, format!("has unknown keyword `{other}`"))),
        }
    }
    Ok(ep)
}

fn parse_jdbc(e: &Entry) -> Result<Endpoint, SettingsError> {
    let var = e.name.as_str();
    let url = jdbc::split(&e.value).map_err(|r| invalid(var, r))?;
    if url.params.iter().any(|(k, _)| k == "password") {
        return Err(password_auth(var, "parameter `password`"));
    }
    let mut ep = Endpoint {
        host: Some(url.host),
        port: url.port,
        database: Some(url.database),
        ..Endpoint::default()
    };
    let mut ssl_flag = None;
    let mut plugin = None;
    for (k, v) in &url.params {
        match k.as_str() {
            "user" => set_once(&mut ep.user, nonempty(var, k, v)?, var, k)?,
            "sslmode" => set_once(&mut ep.ssl_mode, ssl_value(var, k, v)?, var, k)?,
            // pgjdbc: `ssl=true` without `sslmode` means `verify-full`.
            "ssl" => set_once(&mut ssl_flag, bool_value(var, k, v)?, var, k)?,
            "authenticationPluginClassName" => {
                if !v.contains(AZURE_JDBC_PLUGIN) {
                    return Err(invalid(
                        var,
                        format!("names an authentication plugin other than {AZURE_JDBC_PLUGIN}"),
                    ));
                }
                set_once(&mut plugin, (), var, k)?
            }
            other => return Err(invalid(var, format!("has unknown parameter `{other}`"))),
        }
    }
    if ep.ssl_mode.is_none() {
        ep.ssl_mode = ssl_flag.map(|on| {
            if on {
                SslMode::VerifyFull
            } else {
                SslMode::Disable
            }
        });
    }
    Ok(ep)
}

fn bool_value(variable: &str, what: &str, v: &str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            variable,
            format!("has `{what}` that is neither true nor false"),
        )),
    }
}

/// Django, Node.js and "none": one variable per field.
fn parse_separate(ct: ClientType, c: &Collected) -> Result<Endpoint, SettingsError> {
    let get = |v: AzVar| c.azure.get(&v);
    let (db_var, user_var) = match ct {
        ClientType::Django => (AzVar::Name, AzVar::User),
        ClientType::None => (AzVar::Database, AzVar::Username),
        _ => (AzVar::Database, AzVar::User),
    };
    let whole = |e: &Entry, f: fn(&str, &str, &str) -> Result<_, SettingsError>| {
        f(&e.name, "its value", &e.value).map_err(|err| match err {
            // For a variable holding one field, "has an empty `its value`" reads badly.
            SettingsError::Invalid { variable, reason } => SettingsError::Invalid {
                variable,
                reason: reason.replace("has an empty `its value`", "is empty"),
            },
            other => other,
        })
    };
    let mut ep = Endpoint::default();
    if let Some(e) = get(AzVar::Host) {
        ep.host = Some(whole(e, host_value)?);
    }
    let db = get(db_var).ok_or_else(|| SettingsError::Missing {
        variable: db_var.name(),
        needed_by: None,
    })?;
    ep.database = Some(whole(db, nonempty)?);
    if let Some(e) = get(user_var) {
        ep.user = Some(whole(e, nonempty)?);
    }
    // Django's documented settings.py hard-codes port 5432 and sslmode=require; the other two
    // types always carry both variables.
    let needs_port_and_ssl = ct != ClientType::Django;
    match get(AzVar::Port) {
        Some(e) => {
            ep.port = Some(
                port_value(&e.name, "its value", &e.value)
                    .map_err(|_| invalid(&e.name, "is not a port number (1-65535)"))?,
            )
        }
        None if needs_port_and_ssl => {
            return Err(SettingsError::Missing {
                variable: AzVar::Port.name(),
                needed_by: None,
            });
        }
        None => {}
    }
    match get(AzVar::Ssl) {
        Some(e) => ep.ssl_mode = Some(ssl_flag_value(e)?),
        None if needs_port_and_ssl => {
            return Err(SettingsError::Missing {
                variable: AzVar::Ssl.name(),
                needed_by: None,
            });
        }
        None => ep.ssl_mode = Some(SslMode::Require),
    }
    Ok(ep)
}

/// `AZURE_POSTGRESQL_SSL`: `true` = require, `false` = disable, or an sslmode name.
fn ssl_flag_value(e: &Entry) -> Result<SslMode, SettingsError> {
    match e.value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(SslMode::Require),
        "false" => Ok(SslMode::Disable),
        other => SslMode::parse_any(other).ok_or_else(|| {
            invalid(
                &e.name,
                "is neither true, false nor an sslmode (disable, prefer, require, verify-ca, verify-full)",
            )
        }),
    }
}

fn parse_spring(c: &Collected) -> Result<Endpoint, SettingsError> {
    let get = |k: SpringKey| c.spring.get(&k);
    let flag = get(SpringKey::PasswordlessEnabled).ok_or_else(|| SettingsError::Missing {
        variable: SpringKey::PasswordlessEnabled.name().to_owned(),
        needed_by: get(SpringKey::Url).map(|e| e.name.clone()),
    })?;
    if !bool_value(&flag.name, "its value", &flag.value)
        .map_err(|_| invalid(&flag.name, "is neither true nor false"))?
    {
        return Err(invalid(
            &flag.name,
            "is false: the connection is not passwordless",
        ));
    }
    let url = get(SpringKey::Url).ok_or_else(|| SettingsError::Missing {
        variable: SpringKey::Url.name().to_owned(),
        needed_by: None,
    })?;
    let mut ep = parse_jdbc(url)?;
    if let Some(e) = get(SpringKey::Username) {
        let name =
            nonempty(&e.name, "its value", &e.value).map_err(|_| invalid(&e.name, "is empty"))?;
        match &ep.user {
            Some(in_url) if *in_url != name => {
                return Err(SettingsError::Conflict {
                    variable: e.name.clone(),
                    other: url.name.clone(),
                    reason: "the URL's `user` parameter names another role".into(),
                });
            }
            _ => ep.user = Some(name),
        }
    }
    Ok(ep)
}

/// A client or tenant id: not empty, no white space, no characters that would need escaping in
/// a URL path (tenants may be GUIDs or domain names).
fn id_value(e: &Entry) -> Result<String, SettingsError> {
    let v = e.value.trim();
    if v.is_empty() {
        return Err(invalid(&e.name, "is empty"));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(invalid(
            &e.name,
            "is not an id (letters, digits, `-`, `.` and `_` only)",
        ));
    }
    Ok(v.to_owned())
}

fn secret_value(e: &Entry) -> Result<ClientSecret, SettingsError> {
    if e.value.is_empty() {
        return Err(invalid(&e.name, "is empty"));
    }
    Ok(ClientSecret::new(e.value.clone()))
}

/// Service Connector's rule for non-Spring client types.
fn azure_identity(c: &Collected) -> Result<Identity, SettingsError> {
    let get = |v: AzVar| c.azure.get(&v);
    let missing = |v: AzVar, by: &Entry| SettingsError::Missing {
        variable: v.name(),
        needed_by: Some(by.name.clone()),
    };
    match (
        get(AzVar::ClientId),
        get(AzVar::ClientSecret),
        get(AzVar::TenantId),
    ) {
        (None, None, None) => Ok(Identity::SystemAssigned),
        (Some(id), None, None) => Ok(Identity::UserAssigned {
            client_id: id_value(id)?,
        }),
        (Some(id), Some(secret), Some(tenant)) => Ok(Identity::ServicePrincipal {
            tenant_id: id_value(tenant)?,
            client_id: id_value(id)?,
            secret: secret_value(secret)?,
        }),
        (None, Some(by), _) | (None, None, Some(by)) => Err(missing(AzVar::ClientId, by)),
        (Some(_), Some(by), None) => Err(missing(AzVar::TenantId, by)),
        (Some(_), None, Some(by)) => Err(missing(AzVar::ClientSecret, by)),
    }
}

/// Spring Cloud Azure's rule: client id + secret + tenant is a service principal; a client id
/// with managed identity enabled is a user-assigned identity; nothing is system-assigned.
fn spring_identity(c: &Collected) -> Result<Identity, SettingsError> {
    let get = |k: SpringKey| c.spring.get(&k);
    let missing = |k: SpringKey, by: &Entry| SettingsError::Missing {
        variable: k.name().to_owned(),
        needed_by: Some(by.name.clone()),
    };
    let mi = match get(SpringKey::ManagedIdentityEnabled) {
        Some(e) => Some((
            e,
            bool_value(&e.name, "its value", &e.value)
                .map_err(|_| invalid(&e.name, "is neither true nor false"))?,
        )),
        None => None,
    };
    let id = get(SpringKey::ClientId);
    let secret = get(SpringKey::ClientSecret);
    let tenant = get(SpringKey::TenantId);
    match (id, secret, tenant) {
        (None, None, None) => match mi {
            // `managed-identity-enabled=false` with no credential at all leaves nothing to sign in with.
            Some((e, false)) => Err(invalid(
                &e.name,
                "is false but no service principal is configured",
            )),
            _ => Ok(Identity::SystemAssigned),
        },
        (Some(id), None, None) => match mi {
            Some((e, false)) => Err(SettingsError::Conflict {
                variable: e.name.clone(),
                other: id.name.clone(),
                reason: "a client id without a secret is a managed identity".into(),
            }),
            _ => Ok(Identity::UserAssigned {
                client_id: id_value(id)?,
            }),
        },
        (Some(id), Some(secret), Some(tenant)) => match mi {
            Some((e, true)) => Err(SettingsError::Conflict {
                variable: e.name.clone(),
                other: secret.name.clone(),
                reason: "a client secret means a service principal, not a managed identity".into(),
            }),
            _ => Ok(Identity::ServicePrincipal {
                tenant_id: id_value(tenant)?,
                client_id: id_value(id)?,
                secret: secret_value(secret)?,
            }),
        },
        (None, Some(by), _) | (None, None, Some(by)) => Err(missing(SpringKey::ClientId, by)),
        (Some(_), Some(by), None) => Err(missing(SpringKey::TenantId, by)),
        (Some(_), None, Some(by)) => Err(missing(SpringKey::ClientSecret, by)),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn render(s: &ConnectionSettings, ct: ClientType) -> Variables {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut az = |v: AzVar, value: String| out.push((v.name(), value));
    let user = s.user.as_deref();
    match ct {
        ClientType::Dotnet => {
            let mut cs = format!(
                "Server={};Database={};Port={};Ssl Mode={};",
                npgsql::quote(&s.host),
                npgsql::quote(&s.database),
                s.port,
                s.ssl_mode.as_npgsql()
            );
            if let Some(u) = user {
                cs.push_str(&format!("User Id={};", npgsql::quote(u)));
            }
            az(AzVar::ConnectionString, cs);
        }
        ClientType::Java => {
            let mut params = vec![("sslmode", s.ssl_mode.as_libpq())];
            if let Some(u) = user {
                params.push(("user", u));
            }
            az(
                AzVar::ConnectionString,
                jdbc::build(&s.host, s.port, &s.database, &params),
            );
        }
        ClientType::Python => {
            let mut kv = vec![
                ("dbname", s.database.clone()),
                ("host", s.host.clone()),
                ("port", s.port.to_string()),
                ("sslmode", s.ssl_mode.as_libpq().to_owned()),
            ];
            kv.extend(user.map(|u| ("user", u.to_owned())));
            az(AzVar::ConnectionString, libpq_string(&kv));
        }
        ClientType::Go => {
            let mut kv = vec![
                ("host", s.host.clone()),
                ("dbname", s.database.clone()),
                ("sslmode", s.ssl_mode.as_libpq().to_owned()),
            ];
            kv.extend(user.map(|u| ("user", u.to_owned())));
            // The documented Go string has no port; add it last only when it is not the default,
            // which keeps the string recognisable as Go's by its keyword order.
            if s.port != DEFAULT_PORT {
                kv.push(("port", s.port.to_string()));
            }
            az(AzVar::ConnectionString, libpq_string(&kv));
        }
        ClientType::Php | ClientType::Ruby => {
            let mut kv = vec![
                ("host", s.host.clone()),
                ("port", s.port.to_string()),
                ("dbname", s.database.clone()),
                ("sslmode", s.ssl_mode.as_libpq().to_owned()),
            ];
            kv.extend(user.map(|u| ("user", u.to_owned())));
            az(AzVar::ConnectionString, libpq_string(&kv));
        }
        ClientType::Django => {
            az(AzVar::Name, s.database.clone());
            az(AzVar::Host, s.host.clone());
            if let Some(u) = user {
                az(AzVar::User, u.to_owned());
            }
            if s.port != DEFAULT_PORT {
                az(AzVar::Port, s.port.to_string());
            }
            if s.ssl_mode != SslMode::Require {
                az(AzVar::Ssl, ssl_flag(s.ssl_mode).to_owned());
            }
        }
        ClientType::Nodejs | ClientType::None => {
            az(AzVar::Host, s.host.clone());
            if let Some(u) = user {
                let var = if ct == ClientType::None {
                    AzVar::Username
                } else {
                    AzVar::User
                };
                az(var, u.to_owned());
            }
            az(AzVar::Database, s.database.clone());
            az(AzVar::Port, s.port.to_string());
            az(AzVar::Ssl, ssl_flag(s.ssl_mode).to_owned());
        }
        ClientType::SpringBoot => {
            let mut sp = |k: SpringKey, v: String| out.push((k.name().to_owned(), v));
            sp(SpringKey::PasswordlessEnabled, "true".into());
            sp(
                SpringKey::Url,
                jdbc::build(
                    &s.host,
                    s.port,
                    &s.database,
                    &[("sslmode", s.ssl_mode.as_libpq())],
                ),
            );
            if let Some(u) = user {
                sp(SpringKey::Username, u.to_owned());
            }
            match &s.identity {
                Identity::SystemAssigned => {}
                Identity::UserAssigned { client_id } => {
                    sp(SpringKey::ClientId, client_id.clone());
                    sp(SpringKey::ManagedIdentityEnabled, "true".into());
                }
                Identity::ServicePrincipal {
                    tenant_id,
                    client_id,
                    secret,
                } => {
                    sp(SpringKey::ClientId, client_id.clone());
                    sp(SpringKey::ClientSecret, secret.expose_secret().to_owned());
                    sp(SpringKey::TenantId, tenant_id.clone());
                }
            }
            return Variables(out);
        }
    }
    match &s.identity {
        Identity::SystemAssigned => {}
        Identity::UserAssigned { client_id } => {
            out.push((AzVar::ClientId.name(), client_id.clone()))
        }
        Identity::ServicePrincipal {
            tenant_id,
            client_id,
            secret,
        } => {
            out.push((AzVar::ClientId.name(), client_id.clone()));
            out.push((
                AzVar::ClientSecret.name(),
                secret.expose_secret().to_owned(),
            ));
            out.push((AzVar::TenantId.name(), tenant_id.clone()));
        }
    }
    Variables(out)
}

fn libpq_string(kv: &[(&str, String)]) -> String {
    kv.iter()
        .map(|(k, v)| format!("{k}={}", libpq::quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `AZURE_POSTGRESQL_SSL`'s value: Service Connector writes `true`; other modes use their name.
fn ssl_flag(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Require => "true",
        SslMode::Disable => "false",
        other => other.as_libpq(),
    }
}
