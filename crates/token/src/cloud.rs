//! Clouds, authority hosts, tenants and scopes: the addresses a credential may send secrets to.
//!
//! Validation only, no I/O. An authority host must be https, except on loopback (emulators).

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::error::Error;

/// Scope of Azure Database for PostgreSQL (and MySQL) in the public cloud.
pub const OSSRDBMS_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";

/// An Azure cloud: decides the default authority host and the database scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cloud {
    /// Azure public cloud.
    #[default]
    Public,
    /// Azure operated by 21Vianet (China).
    China,
    /// Azure US Government.
    UsGovernment,
}

impl Cloud {
    /// The Entra authority host of this cloud.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::UsGovernment => "https://login.microsoftonline.us",
        }
    }

    /// The resource (audience) of Azure Database for PostgreSQL in this cloud.
    pub fn ossrdbms_resource(self) -> &'static str {
        match self {
            Cloud::Public => "https://ossrdbms-aad.database.windows.net",
            Cloud::China => "https://ossrdbms-aad.database.chinacloudapi.cn",
            Cloud::UsGovernment => "https://ossrdbms-aad.database.usgovcloudapi.net",
        }
    }

    /// The scope to request a PostgreSQL token with in this cloud.
    pub fn ossrdbms_scope(self) -> &'static str {
        match self {
            Cloud::Public => OSSRDBMS_SCOPE,
            Cloud::China => "https://ossrdbms-aad.database.chinacloudapi.cn/.default",
            Cloud::UsGovernment => "https://ossrdbms-aad.database.usgovcloudapi.net/.default",
        }
    }

    /// Parses a cloud name: `public`/`AzureCloud`/`AzurePublicCloud`, `china`/`AzureChinaCloud`,
    /// `usgov`/`usgovernment`/`AzureUSGovernment` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Cloud> {
        match name.trim().to_ascii_lowercase().as_str() {
            "public" | "azurecloud" | "azurepubliccloud" => Some(Cloud::Public),
            "china" | "azurechinacloud" => Some(Cloud::China),
            "usgov" | "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => {
                Some(Cloud::UsGovernment)
            }
            _ => None,
        }
    }
}

/// Strips `/.default` from a scope to get the resource a managed identity endpoint wants.
pub fn scope_to_resource(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

/// Checks a scope is a single, plain scope; it ends up in URLs and in `az`'s argument list.
pub(crate) fn validate_scope(scope: &str) -> Result<(), Error> {
    let ok = !scope.is_empty()
        && !scope.starts_with('-')
        && scope.len() <= 1024
        && scope
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "invalid scope {scope:?}: expected one scope such as {OSSRDBMS_SCOPE}"
        )))
    }
}

/// Checks a tenant id (GUID or domain) before it becomes part of a URL path.
pub(crate) fn validate_tenant(tenant: &str) -> Result<(), Error> {
    let ok = !tenant.is_empty()
        && !tenant.starts_with('.')
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "invalid tenant id {tenant:?}: expected a GUID or a domain such as contoso.onmicrosoft.com"
        )))
    }
}

/// A validated authority host such as `https://login.microsoftonline.com`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityHost {
    base: String,
}

impl AuthorityHost {
    /// Parses and validates an authority host. No scheme means https. `http://` is accepted
    /// only for loopback hosts (emulators); anything else must be https, since client secrets
    /// and assertions are sent there.
    pub fn parse(text: &str) -> Result<AuthorityHost, Error> {
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("https://{text}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|e| Error::config(format!("invalid authority host {text:?}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| Error::config(format!("invalid authority host {text:?}: no host")))?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(Error::config(format!(
                "invalid authority host {text:?}: it must not carry a query, a fragment or credentials"
            )));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(Error::config(format!(
                    "the authority host {text:?} must use https: client secrets and assertions are sent there (http is allowed only for loopback emulators)"
                )));
            }
            other => {
                return Err(Error::config(format!(
                    "invalid authority host {text:?}: unsupported scheme {other:?}"
                )));
            }
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(AuthorityHost { base })
    }

    /// The authority host of a cloud.
    pub fn of(cloud: Cloud) -> AuthorityHost {
        AuthorityHost {
            base: cloud.authority_host().to_owned(),
        }
    }

    /// The host as a URL string without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`; the tenant must be validated first.
    pub(crate) fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base)
    }
}

impl fmt::Debug for AuthorityHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityHost({})", self.base)
    }
}

impl fmt::Display for AuthorityHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl Default for AuthorityHost {
    fn default() -> Self {
        AuthorityHost::of(Cloud::Public)
    }
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_host_rules() {
        let cases = [
            (
                "https://login.microsoftonline.com/",
                Some("https://login.microsoftonline.com"),
            ),
            (
                "login.microsoftonline.us",
                Some("https://login.microsoftonline.us"),
            ),
            ("https://localhost:8443", Some("https://localhost:8443")),
            ("http://127.0.0.1:9000/", Some("http://127.0.0.1:9000")),
            ("http://[::1]:9000", Some("http://[::1]:9000")),
            ("http://localhost:1", Some("http://localhost:1")),
            ("http://login.microsoftonline.com", None),
            ("http://10.0.0.1", None),
            ("ftp://x", None),
            ("https://login.microsoftonline.com/?x=1", None),
            ("https://user:pw@host", None),
            ("https://", None),
        ];
        for (input, want) in cases {
            let got = AuthorityHost::parse(input);
            match want {
                Some(w) => assert_eq!(got.unwrap().as_str(), w, "{input}"),
                None => assert_eq!(got.unwrap_err().kind(), crate::ErrorKind::Config, "{input}"),
            }
        }
        let h = AuthorityHost::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            h.token_endpoint("t1"),
            "http://127.0.0.1:9/t1/oauth2/v2.0/token"
        );
    }

    #[test]
    fn clouds_and_scopes() {
        assert_eq!(Cloud::default().ossrdbms_scope(), OSSRDBMS_SCOPE);
        assert_eq!(
            Cloud::China.ossrdbms_scope(),
            "https://ossrdbms-aad.database.chinacloudapi.cn/.default"
        );
        assert_eq!(
            Cloud::UsGovernment.ossrdbms_scope(),
            "https://ossrdbms-aad.database.usgovcloudapi.net/.default"
        );
        assert_eq!(Cloud::from_name("AzureChinaCloud"), Some(Cloud::China));
        assert_eq!(Cloud::from_name("usgov"), Some(Cloud::UsGovernment));
        assert_eq!(Cloud::from_name("mars"), None);
        assert_eq!(
            scope_to_resource(OSSRDBMS_SCOPE),
            "https://ossrdbms-aad.database.windows.net"
        );
        assert_eq!(scope_to_resource("api://x"), "api://x");
    }

    #[test]
    fn scope_and_tenant_validation() {
        assert!(validate_scope(OSSRDBMS_SCOPE).is_ok());
        assert!(validate_scope("--debug").is_err());
        assert!(validate_scope("a b").is_err());
        assert!(validate_scope("").is_err());
        assert!(validate_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47").is_ok());
        assert!(validate_tenant("contoso.onmicrosoft.com").is_ok());
        assert!(validate_tenant("../x").is_err());
        assert!(validate_tenant("a/b").is_err());
        assert!(validate_tenant("..").is_err());
    }
}
