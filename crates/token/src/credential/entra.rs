//! The Entra ID v2 token endpoint (client-credentials grant) shared by the service-principal and
//! workload-identity credentials.
//!
//! Sends a secret or a signed assertion to `{authority}/{tenant}/oauth2/v2.0/token`; it never
//! logs either, and builds errors only from the error body.

use std::time::SystemTime;

use reqwest::StatusCode;

use crate::cloud::{AuthorityHost, Cloud, validate_scope, validate_tenant};
use crate::env::{Env, vars};
use crate::error::Error;
use crate::http::{self, HttpOptions, RetryPolicy};
use crate::secret::{AccessToken, Secret};

/// Options shared by credentials that talk to Microsoft Entra ID.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EntraOptions {
    /// The cloud; decides the default authority host.
    pub cloud: Cloud,
    /// Authority host override, e.g. an emulator's `https://localhost:8443`. When unset,
    /// credentials built from an [`Env`] use `AZURE_AUTHORITY_HOST`, then the cloud's host.
    pub authority_host: Option<String>,
    /// HTTP settings (timeouts, retries, extra CA).
    pub http: HttpOptions,
}

impl EntraOptions {
    /// Sets the cloud.
    pub fn with_cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Sets the authority host.
    pub fn with_authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// Sets the HTTP options.
    pub fn with_http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// The option's host, else `AZURE_AUTHORITY_HOST` from `env`, else the cloud's host.
    pub(crate) fn authority(&self, env: Option<&Env>) -> Result<AuthorityHost, Error> {
        if let Some(h) = &self.authority_host {
            return AuthorityHost::parse(h);
        }
        if let Some(h) = env.and_then(|e| e.get(vars::AZURE_AUTHORITY_HOST)) {
            return AuthorityHost::parse(h).map_err(|e| {
                Error::config(format!("{}: {}", vars::AZURE_AUTHORITY_HOST, e.message()))
            });
        }
        Ok(AuthorityHost::of(self.cloud))
    }
}

/// How the client proves who it is.
pub(crate) enum ClientAuth<'a> {
    Secret(&'a Secret),
    Assertion(String),
}

/// A confidential client of one tenant's token endpoint.
#[derive(Debug)]
pub(crate) struct EntraClient {
    pub(crate) name: &'static str,
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    http: reqwest::Client,
    retry: RetryPolicy,
}

fn entra_retry_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 500 | 502 | 503 | 504)
}

impl EntraClient {
    pub(crate) fn new(
        name: &'static str,
        authority: &AuthorityHost,
        tenant_id: &str,
        client_id: &str,
        http: &HttpOptions,
    ) -> Result<EntraClient, Error> {
        validate_tenant(tenant_id).map_err(|e| e.with_credential(name))?;
        if client_id.trim().is_empty() {
            return Err(Error::config("the client id is empty").with_credential(name));
        }
        Ok(EntraClient {
            name,
            endpoint: authority.token_endpoint(tenant_id),
            client_id: client_id.trim().to_owned(),
            http: http
                .client(false, None)
                .map_err(|e| e.with_credential(name))?,
            retry: http.retry,
        })
    }

    pub(crate) async fn token(
        &self,
        scope: &str,
        auth: ClientAuth<'_>,
    ) -> Result<AccessToken, Error> {
        validate_scope(scope).map_err(|e| e.with_credential(self.name))?;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("scope", scope),
        ];
        match &auth {
            ClientAuth::Secret(s) => form.push(("client_secret", s.expose())),
            ClientAuth::Assertion(a) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", a));
            }
        }
        let resp = http::send_with_retry(&self.retry, entra_retry_status, || {
            self.http.post(&self.endpoint).form(&form)
        })
        .await
        .map_err(|e| http::transport_error(e, &self.endpoint).with_credential(self.name))?;
        let status = resp.status();
        let body = http::read_body(resp, &self.endpoint)
            .await
            .map_err(|e| e.with_credential(self.name))?;
        if status.is_success() {
            return http::parse_token(&body, SystemTime::now()).map_err(|e| {
                Error::other(e.kind(), format!("{} from {}", e.message(), self.endpoint))
                    .with_credential(self.name)
            });
        }
        let parsed = http::parse_error_body(&body);
        Err(http::entra_error(status, &parsed, &self.endpoint).with_credential(self.name))
    }
}
