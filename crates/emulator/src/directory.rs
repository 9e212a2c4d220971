//! The validated config turned into lookups: tenants by id or domain, identities by any of their
//! ids, service principals with their certificate thumbprints, users by UPN.
//!
//! Reads configured certificate and key files once at start; answers questions, issues nothing.

use std::collections::HashMap;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Value};

use crate::config::{CertificateSource, Config, FederatedCredential, ServicePrincipal, User};
use crate::error::Error;

/// A certificate registered on a service principal.
#[derive(Debug)]
pub(crate) struct RegisteredCert {
    pub(crate) der: Vec<u8>,
    /// base64url SHA-1 thumbprint (`x5t`).
    pub(crate) x5t: String,
    /// base64url SHA-256 thumbprint (`x5t#S256`).
    pub(crate) x5t_s256: String,
}

/// The key a federated issuer signs with.
#[derive(Debug)]
pub(crate) enum IssuerKey {
    /// A certificate (verified with webpki).
    Certificate(Vec<u8>),
    /// A bare public key PEM (verified with jsonwebtoken).
    PublicKeyPem(String),
    /// Keys fetched from a JWKS URL per assertion.
    JwksUrl(String),
}

/// An application that can be issued app-only tokens: a managed identity or a service principal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct App<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) object_id: &'a str,
    pub(crate) tenant: &'a str,
    /// `xms_mirid` for managed identities.
    pub(crate) mirid: Option<&'a str>,
    pub(crate) claims: &'a Map<String, Value>,
    pub(crate) sp: Option<&'a ServicePrincipal>,
}

#[derive(Debug)]
pub(crate) struct Directory {
    pub(crate) config: Config,
    pub(crate) default_tenant: String,
    tenant_names: HashMap<String, String>,
    certs: HashMap<String, Vec<RegisteredCert>>,
    issuer_keys: Vec<IssuerKey>,
}

fn thumbprints(der: &[u8]) -> (String, String) {
    (
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)),
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der)),
    )
}

fn read_text(path: &std::path::Path, client_id: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::Credential {
        client_id: client_id.to_string(),
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

impl Directory {
    pub(crate) fn new(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let default_tenant = config.default_tenant_id().unwrap_or_default().to_string();
        let mut tenant_names = HashMap::new();
        for t in &config.tenants {
            tenant_names.insert(t.id.to_ascii_lowercase(), t.id.clone());
            for d in &t.domains {
                tenant_names.insert(d.to_ascii_lowercase(), t.id.clone());
            }
        }
        let mut certs: HashMap<String, Vec<RegisteredCert>> = HashMap::new();
        for sp in &config.service_principals {
            for source in &sp.certificates {
                let pem = match source {
                    CertificateSource::Pem(p) => p.clone(),
                    CertificateSource::Path(path) => read_text(path, &sp.client_id)?,
                };
                let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
                    Error::Credential {
                        client_id: sp.client_id.clone(),
                        reason: format!("certificate is not PEM: {e}"),
                    }
                })?;
                let der = der.as_ref().to_vec();
                let (x5t, x5t_s256) = thumbprints(&der);
                certs
                    .entry(sp.client_id.to_ascii_lowercase())
                    .or_default()
                    .push(RegisteredCert { der, x5t, x5t_s256 });
            }
        }
        let mut issuer_keys = Vec::new();
        for fic in &config.federated_credentials {
            issuer_keys.push(issuer_key(fic)?);
        }
        Ok(Directory {
            config,
            default_tenant,
            tenant_names,
            certs,
            issuer_keys,
        })
    }

    /// Tenant id for a tenant id or domain (case-insensitive).
    pub(crate) fn tenant_id(&self, name: &str) -> Option<&str> {
        self.tenant_names
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn tenant_or_default<'a>(&'a self, t: &'a Option<String>) -> &'a str {
        t.as_deref().unwrap_or(&self.default_tenant)
    }

    /// All names (id and domains) of a tenant id.
    pub(crate) fn tenant_names(&self, tenant_id: &str) -> Vec<&str> {
        self.config
            .tenants
            .iter()
            .filter(|t| t.id == tenant_id)
            .flat_map(|t| {
                std::iter::once(t.id.as_str()).chain(t.domains.iter().map(String::as_str))
            })
            .collect()
    }

    pub(crate) fn system_identity(&self) -> Option<App<'_>> {
        self.config.system_identity.as_ref().map(|mi| App {
            client_id: &mi.client_id,
            object_id: &mi.object_id,
            tenant: self.tenant_or_default(&mi.tenant),
            mirid: Some(&mi.resource_id),
            claims: &mi.claims,
            sp: None,
        })
    }

    /// A managed identity (system or user-assigned) by client id, object id or ARM id.
    pub(crate) fn identity_by(&self, selector: IdentitySelector<'_>) -> Option<App<'_>> {
        let all = self
            .config
            .system_identity
            .iter()
            .chain(&self.config.user_identities);
        all.into_iter()
            .find(|mi| match selector {
                IdentitySelector::ClientId(id) => mi.client_id.eq_ignore_ascii_case(id),
                IdentitySelector::ObjectId(id) => mi.object_id.eq_ignore_ascii_case(id),
                IdentitySelector::ResourceId(id) => mi
                    .resource_id
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(id.trim_end_matches('/')),
            })
            .map(|mi| App {
                client_id: &mi.client_id,
                object_id: &mi.object_id,
                tenant: self.tenant_or_default(&mi.tenant),
                mirid: Some(&mi.resource_id),
                claims: &mi.claims,
                sp: None,
            })
    }

    /// An application usable with the Entra token endpoint: a service principal, or a
    /// user-assigned identity (which can only present federated assertions).
    pub(crate) fn app(&self, client_id: &str) -> Option<App<'_>> {
        if let Some(sp) = self
            .config
            .service_principals
            .iter()
            .find(|sp| sp.client_id.eq_ignore_ascii_case(client_id))
        {
            return Some(App {
                client_id: &sp.client_id,
                object_id: &sp.object_id,
                tenant: self.tenant_or_default(&sp.tenant),
                mirid: None,
                claims: &sp.claims,
                sp: Some(sp),
            });
        }
        self.config
            .user_identities
            .iter()
            .find(|mi| mi.client_id.eq_ignore_ascii_case(client_id))
            .map(|mi| App {
                client_id: &mi.client_id,
                object_id: &mi.object_id,
                tenant: self.tenant_or_default(&mi.tenant),
                mirid: Some(&mi.resource_id),
                claims: &mi.claims,
                sp: None,
            })
    }

    pub(crate) fn user(&self, upn: &str) -> Option<(&User, &str)> {
        self.config
            .users
            .iter()
            .find(|u| u.upn.eq_ignore_ascii_case(upn))
            .map(|u| (u, self.tenant_or_default(&u.tenant)))
    }

    pub(crate) fn is_public_client(&self, client_id: &str) -> bool {
        self.config
            .public_clients
            .iter()
            .any(|c| c.eq_ignore_ascii_case(client_id))
    }

    pub(crate) fn certs(&self, client_id: &str) -> &[RegisteredCert] {
        self.certs
            .get(&client_id.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Federated credentials of a client, with their issuer keys.
    pub(crate) fn federated(
        &self,
        client_id: &str,
    ) -> impl Iterator<Item = (&FederatedCredential, &IssuerKey)> {
        self.config
            .federated_credentials
            .iter()
            .zip(&self.issuer_keys)
            .filter(move |(f, _)| f.client_id.eq_ignore_ascii_case(client_id))
    }

    /// Whether tokens may be issued for `resource` (trailing slashes ignored).
    pub(crate) fn resource_known(&self, resource: &str) -> bool {
        let wanted = resource.trim_end_matches('/');
        !wanted.is_empty()
            && self
                .config
                .resources
                .iter()
                .any(|r| r == "*" || r.trim_end_matches('/').eq_ignore_ascii_case(wanted))
    }
}

/// How a managed identity is selected by a request.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::enum_variant_names)] // the variants name the three Azure ids
pub(crate) enum IdentitySelector<'a> {
    ClientId(&'a str),
    ObjectId(&'a str),
    ResourceId(&'a str),
}

fn issuer_key(fic: &FederatedCredential) -> Result<IssuerKey, Error> {
    let pem = match (&fic.public_key_pem, &fic.public_key_path, &fic.jwks_url) {
        (Some(pem), _, _) => pem.clone(),
        (None, Some(path), _) => read_text(path, &fic.client_id)?,
        (None, None, Some(url)) => return Ok(IssuerKey::JwksUrl(url.clone())),
        // Config::validate guarantees exactly one source; report rather than assume.
        (None, None, None) => {
            return Err(Error::Credential {
                client_id: fic.client_id.clone(),
                reason: "federated credential has no issuer key".into(),
            });
        }
    };
    if pem.contains("BEGIN CERTIFICATE") {
        let der =
            CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Credential {
                client_id: fic.client_id.clone(),
                reason: format!("issuer certificate is not PEM: {e}"),
            })?;
        return Ok(IssuerKey::Certificate(der.as_ref().to_vec()));
    }
    // Parse now so a bad key fails at start, not at the first assertion.
    let parsed = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .or_else(|_| jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()));
    if parsed.is_err() {
        return Err(Error::Credential {
            client_id: fic.client_id.clone(),
            reason: "issuer public key is neither an RSA nor an EC public key PEM".into(),
        });
    }
    Ok(IssuerKey::PublicKeyPem(pem))
}
