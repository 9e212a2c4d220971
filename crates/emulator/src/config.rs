//! The emulator's directory: tenants, identities, credentials and token lifetimes, from TOML or a
//! builder API.
//!
//! Parsing and validation only: no file here is read except by [`Config::from_file`], and `Debug`
//! never prints a secret or password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dev;

/// Audience of workload-identity tokens exchanged with Entra.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML text is malformed, has a wrong type or an unknown key (named in the message).
    #[error("invalid emulator config: {0}")]
    Toml(#[from] toml::de::Error),
    /// The config file could not be read.
    #[error("cannot read emulator config {path}: {source}")]
    Read {
        /// File that was read.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The config parses but is inconsistent (duplicate ids, unknown tenant, …).
    #[error("invalid emulator config: {0}")]
    Invalid(String),
}

/// Everything the emulator knows: tenants, principals, known resources and lifetimes.
///
/// `Config::default()` is the development config described by the [`dev`](crate::dev) constants.
/// In TOML every list is optional; unknown keys are rejected with an error naming the key.
///
/// ```toml
/// [[tenants]]
/// id = "11111111-1111-4111-8111-111111111111"
/// domains = ["contoso.onmicrosoft.com"]
///
/// [system_identity]
/// client_id = "22222222-2222-4222-8222-000000000001"
/// object_id = "22222222-2222-4222-8222-000000000002"
/// resource_id = "/subscriptions/…/providers/Microsoft.Web/sites/app"
///
/// [[service_principals]]
/// client_id = "44444444-4444-4444-8444-000000000001"
/// object_id = "44444444-4444-4444-8444-000000000002"
/// secrets = ["s3cret"]
/// certificates = [{ path = "sp-cert.pem" }]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tenant of principals that name none; defaults to the first of `tenants`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_tenant: Option<String>,
    /// Known tenants (at least one).
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// The host's system-assigned managed identity, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identity: Option<ManagedIdentity>,
    /// User-assigned managed identities attached to the host.
    #[serde(default)]
    pub user_identities: Vec<ManagedIdentity>,
    /// App registrations / service principals for the client-credentials grant.
    #[serde(default)]
    pub service_principals: Vec<ServicePrincipal>,
    /// Federated identity credentials (workload identity) of service principals or user-assigned
    /// identities.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
    /// Users for the password grant (test user tokens).
    #[serde(default)]
    pub users: Vec<User>,
    /// Public client ids accepted for the password grant without a secret (default: the Azure
    /// CLI's id, [`dev::PUBLIC_CLIENT_ID`]). Service principals are accepted too, with a secret.
    #[serde(default = "default_public_clients")]
    pub public_clients: Vec<String>,
    /// Resources (audiences) tokens can be issued for; `"*"` accepts any. A trailing slash is
    /// ignored when matching.
    #[serde(default = "default_resources")]
    pub resources: Vec<String>,
    /// Token lifetimes and the managed-identity token cache window.
    #[serde(default)]
    pub lifetimes: Lifetimes,
    /// Extra DNS names for the HTTPS certificate (it always covers localhost, 127.0.0.1 and ::1).
    #[serde(default)]
    pub tls_names: Vec<String>,
}

/// A directory tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Tenant id (GUID).
    pub id: String,
    /// Verified domains usable in place of the id in URLs.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// A managed identity (system- or user-assigned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedIdentity {
    /// Client (application) id: token `appid`, selected by `client_id`.
    pub client_id: String,
    /// Object (principal) id: token `oid`/`sub`, selected by `object_id`/`principal_id`.
    pub object_id: String,
    /// ARM resource id: token `xms_mirid`, selected by `mi_res_id`/`msi_res_id`.
    pub resource_id: String,
    /// Tenant id; default: the config's default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Claims merged over the issued claims (`null` removes a claim).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
}

/// A service principal with client secrets and/or certificates.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePrincipal {
    /// Application (client) id.
    pub client_id: String,
    /// Service principal object id (token `oid`).
    pub object_id: String,
    /// Tenant id; default: the config's default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Display name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Accepted client secrets.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Certificates accepted for `client_assertion` (looked up by `x5t` / `x5t#S256`).
    #[serde(default)]
    pub certificates: Vec<CertificateSource>,
    /// Claims merged over the issued claims (`null` removes a claim).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
}

/// Where a certificate's PEM comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// A PEM file (the first `CERTIFICATE` block is used; a private key in it is ignored).
    Path(PathBuf),
    /// Inline PEM text.
    Pem(String),
}

/// A federated identity credential: which external tokens may stand in for a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    /// Client id of the service principal or user-assigned identity it belongs to.
    pub client_id: String,
    /// Expected `iss` of the presented token (exact match).
    pub issuer: String,
    /// Expected `sub` (exact, case-sensitive match).
    pub subject: String,
    /// Expected `aud`.
    #[serde(default = "default_exchange_audience")]
    pub audience: String,
    /// The issuer's public key or certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A file holding the issuer's public key or certificate, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_path: Option<PathBuf>,
    /// The issuer's JWKS URL (fetched when an assertion arrives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
}

/// A user for the password grant.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// User principal name (`upn`, `unique_name`); matched case-insensitively.
    pub upn: String,
    /// Password for the password grant.
    pub password: String,
    /// Object id (`oid`).
    pub object_id: String,
    /// Tenant id; default: the config's default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `name` claim; default: the UPN's local part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Group object ids (`groups` claim).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Authentication methods (`amr` claim), e.g. `["pwd", "mfa"]`.
    #[serde(default = "default_amr")]
    pub amr: Vec<String>,
    /// Claims merged over the issued claims (`null` removes a claim).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
}

/// Token lifetimes in seconds, and the managed-identity cache window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifetimes {
    /// Managed-identity token lifetime (Azure: about 24 h).
    pub managed_identity_secs: u64,
    /// Service principal tokens live a random time in `[min, max]` (Azure: 60–90 min).
    pub service_principal_min_secs: u64,
    /// See `service_principal_min_secs`.
    pub service_principal_max_secs: u64,
    /// User tokens live a random time in `[min, max]` (Azure: 60–90 min).
    pub user_min_secs: u64,
    /// See `user_min_secs`.
    pub user_max_secs: u64,
    /// Repeat managed-identity requests for the same identity and resource within this window get
    /// the same token, like the real token service. `0` issues a fresh token every time.
    pub mi_cache_secs: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            managed_identity_secs: 24 * 3600,
            service_principal_min_secs: 3600,
            service_principal_max_secs: 5400,
            user_min_secs: 3600,
            user_max_secs: 5400,
            mi_cache_secs: 300,
        }
    }
}

fn default_resources() -> Vec<String> {
    [
        dev::OSSRDBMS_RESOURCE,
        "https://management.azure.com",
        "https://management.core.windows.net",
        "https://vault.azure.net",
        "https://storage.azure.com",
        "https://database.windows.net",
        "https://graph.microsoft.com",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn default_public_clients() -> Vec<String> {
    vec![dev::PUBLIC_CLIENT_ID.to_string()]
}

fn default_exchange_audience() -> String {
    TOKEN_EXCHANGE_AUDIENCE.to_string()
}

fn default_amr() -> Vec<String> {
    vec!["pwd".to_string()]
}

impl Default for Config {
    /// The development config: one tenant, a system- and a user-assigned identity, a service
    /// principal with a secret, and two users (one with MFA). See [`crate::dev`].
    fn default() -> Self {
        Config::empty()
            .with_tenant(Tenant::new(dev::TENANT_ID).domain(dev::TENANT_DOMAIN))
            .with_system_identity(ManagedIdentity::new(
                dev::SYSTEM_MI_CLIENT_ID,
                dev::SYSTEM_MI_OBJECT_ID,
                dev::SYSTEM_MI_RESOURCE_ID,
            ))
            .with_user_identity(ManagedIdentity::new(
                dev::USER_MI_CLIENT_ID,
                dev::USER_MI_OBJECT_ID,
                dev::USER_MI_RESOURCE_ID,
            ))
            .with_service_principal(
                ServicePrincipal::new(dev::SP_CLIENT_ID, dev::SP_OBJECT_ID)
                    .display_name("pgentra-dev-app")
                    .secret(dev::SP_SECRET),
            )
            .with_user(
                User::new(dev::USER_UPN, dev::USER_PASSWORD, dev::USER_OBJECT_ID)
                    .display_name("Alice Developer")
                    .group(dev::GROUP_OBJECT_ID),
            )
            .with_user(
                User::new(
                    dev::MFA_USER_UPN,
                    dev::USER_PASSWORD,
                    dev::MFA_USER_OBJECT_ID,
                )
                .display_name("Bob Admin")
                .group(dev::GROUP_OBJECT_ID)
                .mfa(),
            )
    }
}

impl Config {
    /// A config with no tenants or principals, the default resources and lifetimes.
    pub fn empty() -> Self {
        Config {
            default_tenant: None,
            tenants: Vec::new(),
            system_identity: None,
            user_identities: Vec::new(),
            service_principals: Vec::new(),
            federated_credentials: Vec::new(),
            users: Vec::new(),
            public_clients: default_public_clients(),
            resources: default_resources(),
            lifetimes: Lifetimes::default(),
            tls_names: Vec::new(),
        }
    }

    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Serializes to TOML (secrets included: this is the config itself, not a log line).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Adds a tenant; the first one added is the default tenant.
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenants.push(tenant);
        self
    }
    /// Sets the default tenant id.
    pub fn with_default_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.default_tenant = Some(tenant_id.into());
        self
    }
    /// Sets the system-assigned identity.
    pub fn with_system_identity(mut self, identity: ManagedIdentity) -> Self {
        self.system_identity = Some(identity);
        self
    }
    /// Adds a user-assigned identity.
    pub fn with_user_identity(mut self, identity: ManagedIdentity) -> Self {
        self.user_identities.push(identity);
        self
    }
    /// Adds a service principal.
    pub fn with_service_principal(mut self, sp: ServicePrincipal) -> Self {
        self.service_principals.push(sp);
        self
    }
    /// Adds a federated identity credential.
    pub fn with_federated_credential(mut self, fic: FederatedCredential) -> Self {
        self.federated_credentials.push(fic);
        self
    }
    /// Adds a user.
    pub fn with_user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }
    /// Adds a known resource (audience); `"*"` accepts any resource.
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }
    /// Replaces all lifetimes.
    pub fn with_lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }
    /// Sets the managed-identity token lifetime.
    pub fn with_mi_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetimes.managed_identity_secs = lifetime.as_secs();
        self
    }
    /// Sets the managed-identity cache window (`Duration::ZERO`: a fresh token per request).
    pub fn with_mi_cache(mut self, window: Duration) -> Self {
        self.lifetimes.mi_cache_secs = window.as_secs();
        self
    }
    /// Adds a DNS name to the HTTPS certificate.
    pub fn with_tls_name(mut self, name: impl Into<String>) -> Self {
        self.tls_names.push(name.into());
        self
    }

    /// The default tenant id: `default_tenant`, else the first tenant.
    pub fn default_tenant_id(&self) -> Option<&str> {
        self.default_tenant
            .as_deref()
            .or_else(|| self.tenants.first().map(|t| t.id.as_str()))
    }

    /// Checks internal consistency; [`Config::from_toml_str`] and the emulator call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.tenants.is_empty() {
            return bad("at least one [[tenants]] entry is required".into());
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tenants {
            if t.id.trim().is_empty() {
                return bad("tenant id must not be empty".into());
            }
            for name in std::iter::once(&t.id).chain(&t.domains) {
                let key = name.to_ascii_lowercase();
                if ["common", "organizations", "consumers"].contains(&key.as_str()) {
                    return bad(format!("tenant name '{name}' is reserved"));
                }
                if !names.insert(key) {
                    return bad(format!("tenant id or domain '{name}' appears twice"));
                }
            }
        }
        let tenant_known = |t: &Option<String>| match t {
            None => true,
            Some(t) => self.tenants.iter().any(|x| &x.id == t),
        };
        if let Some(d) = &self.default_tenant
            && !self.tenants.iter().any(|t| &t.id == d)
        {
            return bad(format!("default_tenant '{d}' is not one of [[tenants]]"));
        }
        let mut client_ids = std::collections::HashSet::new();
        let identities = self.system_identity.iter().chain(&self.user_identities);
        for mi in identities {
            if mi.client_id.is_empty() || mi.object_id.is_empty() || mi.resource_id.is_empty() {
                return bad(
                    "managed identity client_id, object_id and resource_id must be set".into(),
                );
            }
            if !tenant_known(&mi.tenant) {
                return bad(format!(
                    "managed identity {} names an unknown tenant",
                    mi.client_id
                ));
            }
            if !client_ids.insert(mi.client_id.to_ascii_lowercase()) {
                return bad(format!("client_id '{}' appears twice", mi.client_id));
            }
        }
        for sp in &self.service_principals {
            if sp.client_id.is_empty() || sp.object_id.is_empty() {
                return bad("service principal client_id and object_id must be set".into());
            }
            if !tenant_known(&sp.tenant) {
                return bad(format!(
                    "service principal {} names an unknown tenant",
                    sp.client_id
                ));
            }
            if !client_ids.insert(sp.client_id.to_ascii_lowercase()) {
                return bad(format!("client_id '{}' appears twice", sp.client_id));
            }
            if sp.secrets.iter().any(String::is_empty) {
                return bad(format!(
                    "service principal {} has an empty secret",
                    sp.client_id
                ));
            }
        }
        for fic in &self.federated_credentials {
            if !client_ids.contains(&fic.client_id.to_ascii_lowercase()) {
                return bad(format!(
                    "federated credential for unknown client_id '{}'",
                    fic.client_id
                ));
            }
            let sources = [
                fic.public_key_pem.is_some(),
                fic.public_key_path.is_some(),
                fic.jwks_url.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return bad(format!(
                    "federated credential for '{}' needs exactly one of public_key_pem, public_key_path, jwks_url",
                    fic.client_id
                ));
            }
        }
        let mut upns = std::collections::HashSet::new();
        for u in &self.users {
            if u.upn.is_empty() || u.object_id.is_empty() {
                return bad("user upn and object_id must be set".into());
            }
            if !tenant_known(&u.tenant) {
                return bad(format!("user {} names an unknown tenant", u.upn));
            }
            if !upns.insert(u.upn.to_ascii_lowercase()) {
                return bad(format!("user '{}' appears twice", u.upn));
            }
        }
        let l = &self.lifetimes;
        if l.managed_identity_secs == 0
            || l.service_principal_min_secs == 0
            || l.user_min_secs == 0
            || l.service_principal_min_secs > l.service_principal_max_secs
            || l.user_min_secs > l.user_max_secs
        {
            return bad("lifetimes must be positive and each min <= max".into());
        }
        Ok(())
    }
}

impl Tenant {
    /// A tenant with no domains.
    pub fn new(id: impl Into<String>) -> Self {
        Tenant {
            id: id.into(),
            domains: Vec::new(),
        }
    }
    /// Adds a verified domain.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domains.push(domain.into());
        self
    }
}

impl ManagedIdentity {
    /// A managed identity in the default tenant.
    pub fn new(
        client_id: impl Into<String>,
        object_id: impl Into<String>,
        resource_id: impl Into<String>,
    ) -> Self {
        ManagedIdentity {
            client_id: client_id.into(),
            object_id: object_id.into(),
            resource_id: resource_id.into(),
            tenant: None,
            claims: Map::new(),
        }
    }
    /// Puts the identity in a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Overrides (or with `Value::Null` removes) a claim in its tokens.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }
}

impl ServicePrincipal {
    /// A service principal with no credentials yet.
    pub fn new(client_id: impl Into<String>, object_id: impl Into<String>) -> Self {
        ServicePrincipal {
            client_id: client_id.into(),
            object_id: object_id.into(),
            tenant: None,
            display_name: None,
            secrets: Vec::new(),
            certificates: Vec::new(),
            claims: Map::new(),
        }
    }
    /// Puts the principal in a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Sets the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
    /// Adds an accepted client secret.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }
    /// Adds a certificate given as PEM text.
    pub fn certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.certificates.push(CertificateSource::Pem(pem.into()));
        self
    }
    /// Adds a certificate read from a PEM file at start.
    pub fn certificate_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.certificates.push(CertificateSource::Path(path.into()));
        self
    }
    /// Overrides (or with `Value::Null` removes) a claim in its tokens.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }
}

impl fmt::Debug for ServicePrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicePrincipal")
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .field("tenant", &self.tenant)
            .field("display_name", &self.display_name)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .field("certificates", &self.certificates.len())
            .field("claims", &self.claims)
            .finish()
    }
}

impl FederatedCredential {
    /// A federated credential with the token-exchange audience and no issuer key yet.
    pub fn new(
        client_id: impl Into<String>,
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        FederatedCredential {
            client_id: client_id.into(),
            issuer: issuer.into(),
            subject: subject.into(),
            audience: default_exchange_audience(),
            public_key_pem: None,
            public_key_path: None,
            jwks_url: None,
        }
    }
    /// Sets the expected audience.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }
    /// Trusts this public key or certificate (PEM) of the issuer.
    pub fn public_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.public_key_pem = Some(pem.into());
        self
    }
    /// Trusts the keys published at this JWKS URL.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }
}

impl User {
    /// A user in the default tenant with `amr: ["pwd"]` and no groups.
    pub fn new(
        upn: impl Into<String>,
        password: impl Into<String>,
        object_id: impl Into<String>,
    ) -> Self {
        User {
            upn: upn.into(),
            password: password.into(),
            object_id: object_id.into(),
            tenant: None,
            display_name: None,
            groups: Vec::new(),
            amr: default_amr(),
            claims: Map::new(),
        }
    }
    /// Puts the user in a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Sets the `name` claim.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
    /// Adds a group membership.
    pub fn group(mut self, group_object_id: impl Into<String>) -> Self {
        self.groups.push(group_object_id.into());
        self
    }
    /// Adds `mfa` to the `amr` claim.
    pub fn mfa(mut self) -> Self {
        if !self.amr.iter().any(|a| a == "mfa") {
            self.amr.push("mfa".to_string());
        }
        self
    }
    /// Overrides (or with `Value::Null` removes) a claim in its tokens.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("upn", &self.upn)
            .field("password", &"<redacted>")
            .field("object_id", &self.object_id)
            .field("tenant", &self.tenant)
            .field("groups", &self.groups)
            .field("amr", &self.amr)
            .field("claims", &self.claims)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_round_trips_through_toml() {
        let config = Config::default();
        config.validate().unwrap();
        let text = config.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), config);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml_str("[[tenants]]\nid = \"t\"\nbogus_key = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus_key"), "{err}");
        let err = Config::from_toml_str("tenants = []\nsurprise = true\n").unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn inconsistencies_are_rejected() {
        assert!(Config::empty().validate().is_err());
        let dup = Config::default()
            .with_service_principal(ServicePrincipal::new(dev::SP_CLIENT_ID, "other"));
        assert!(
            dup.validate()
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        let fic = Config::default().with_federated_credential(FederatedCredential::new(
            "nobody",
            "https://issuer",
            "sub",
        ));
        assert!(fic.validate().is_err());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let text = format!("{:?}", Config::default());
        assert!(!text.contains(dev::SP_SECRET));
        assert!(!text.contains(dev::USER_PASSWORD));
    }
}
