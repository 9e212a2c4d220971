//! The environment credential: a service principal described by `AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` or `AZURE_CLIENT_CERTIFICATE_PATH`.
//!
//! Reads an injected [`Env`], never the process environment.

use futures::future::BoxFuture;

use crate::credential::certificate::{CertificateOptions, ClientCertificateCredential};
use crate::credential::client_secret::ClientSecretCredential;
use crate::credential::entra::EntraOptions;
use crate::env::{Env, vars};
use crate::error::Error;
use crate::secret::AccessToken;
use crate::source::TokenSource;

#[derive(Debug)]
enum Inner {
    Secret(ClientSecretCredential),
    Certificate(ClientCertificateCredential),
}

/// A service principal configured through environment variables.
#[derive(Debug)]
pub struct EnvironmentCredential {
    inner: Inner,
}

impl EnvironmentCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "EnvironmentCredential";

    /// Reads the variables from `env`. Missing variables give [`ErrorKind::Unavailable`]
    /// naming them; a present but unusable configuration (unreadable certificate, `http://`
    /// authority, password-protected certificate) gives [`ErrorKind::Config`].
    ///
    /// [`ErrorKind::Unavailable`]: crate::ErrorKind::Unavailable
    /// [`ErrorKind::Config`]: crate::ErrorKind::Config
    pub fn from_env(env: &Env, options: EntraOptions) -> Result<Self, Error> {
        let tenant = env.get(vars::AZURE_TENANT_ID);
        let client = env.get(vars::AZURE_CLIENT_ID);
        let secret = env.get(vars::AZURE_CLIENT_SECRET);
        let cert = env.get(vars::AZURE_CLIENT_CERTIFICATE_PATH);
        let mut missing = Vec::new();
        if tenant.is_none() {
            missing.push(vars::AZURE_TENANT_ID);
        }
        if client.is_none() {
            missing.push(vars::AZURE_CLIENT_ID);
        }
        if secret.is_none() && cert.is_none() {
            missing.push("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH");
        }
        let (Some(tenant), Some(client), true) = (tenant, client, missing.is_empty()) else {
            return Err(Error::unavailable(format!(
                "not configured: {} not set",
                missing.join(", ")
            ))
            .with_credential(Self::NAME));
        };
        let authority = options
            .authority(Some(env))
            .map_err(|e| e.with_credential(Self::NAME))?;
        let options = options.with_authority_host(authority.as_str());
        let rename =
            |e: Error| Error::other(e.kind(), e.message().to_owned()).with_credential(Self::NAME);
        let inner = if let Some(secret) = secret {
            Inner::Secret(
                ClientSecretCredential::new(tenant, client, secret, options).map_err(rename)?,
            )
        } else {
            if env.has(vars::AZURE_CLIENT_CERTIFICATE_PASSWORD) {
                return Err(Error::config(
                    "AZURE_CLIENT_CERTIFICATE_PASSWORD is set, but only unencrypted PEM certificates are supported: convert with `openssl pkcs12 -in cert.pfx -nodes -out cert.pem`",
                )
                .with_credential(Self::NAME));
            }
            let send_chain = env
                .get(vars::AZURE_CLIENT_SEND_CERTIFICATE_CHAIN)
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
            let mut copts = CertificateOptions::default().with_entra(options);
            copts.send_certificate_chain = send_chain;
            let path = cert.unwrap_or_default();
            Inner::Certificate(
                ClientCertificateCredential::from_pem_file(tenant, client, path, copts)
                    .map_err(rename)?,
            )
        };
        Ok(EnvironmentCredential { inner })
    }

    /// True when the credential uses a certificate rather than a secret.
    pub fn uses_certificate(&self) -> bool {
        matches!(self.inner, Inner::Certificate(_))
    }
}

impl TokenSource for EnvironmentCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let result = match &self.inner {
                Inner::Secret(c) => c.get_token(scope).await,
                Inner::Certificate(c) => c.get_token(scope).await,
            };
            result.map_err(|e| {
                let inner_name = e.credential().unwrap_or_default().to_owned();
                let message = format!("{} (via {inner_name})", e.message());
                let mut out = Error::other(e.kind(), message).with_credential(Self::NAME);
                if let Some(s) = e.http_status() {
                    out = out.with_status(s);
                }
                out.with_aadsts(e.aadsts())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn missing_variables_are_named() {
        let env = Env::new().with(vars::AZURE_CLIENT_ID, "c");
        let e = EnvironmentCredential::from_env(&env, EntraOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let text = e.to_string();
        assert!(
            text.contains("AZURE_TENANT_ID") && text.contains("AZURE_CLIENT_SECRET"),
            "{text}"
        );
        assert!(!text.contains("AZURE_CLIENT_ID,"), "{text}");
    }

    #[test]
    fn bad_configuration_is_a_config_error() {
        let base = Env::new()
            .with(vars::AZURE_TENANT_ID, "t")
            .with(vars::AZURE_CLIENT_ID, "c");
        let http_authority = base
            .clone()
            .with(vars::AZURE_CLIENT_SECRET, "s")
            .with(vars::AZURE_AUTHORITY_HOST, "http://login.example.com");
        let e =
            EnvironmentCredential::from_env(&http_authority, EntraOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("https"), "{e}");

        let no_file = base
            .clone()
            .with(vars::AZURE_CLIENT_CERTIFICATE_PATH, "/nonexistent/cert.pem");
        let e = EnvironmentCredential::from_env(&no_file, EntraOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");

        let pfx = no_file.with(vars::AZURE_CLIENT_CERTIFICATE_PASSWORD, "pw");
        let e = EnvironmentCredential::from_env(&pfx, EntraOptions::default()).unwrap_err();
        assert!(e.to_string().contains("PEM"), "{e}");

        let ok = base.with(vars::AZURE_CLIENT_SECRET, "s");
        let c = EnvironmentCredential::from_env(&ok, EntraOptions::default()).unwrap();
        assert!(!c.uses_certificate());
    }
}
