//! Managed identity: the App Service / Container Apps / Functions endpoint (2019-08-01) and
//! IMDS (2018-02-01), system-assigned or user-assigned by client id, object id or resource id.
//!
//! Talks only to the local identity endpoint, never through a proxy; the identity header is a
//! [`Secret`] and never appears in errors or logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::StatusCode;
use url::Url;

use crate::cloud::{scope_to_resource, validate_scope};
use crate::env::{Env, vars};
use crate::error::{Error, ErrorKind};
use crate::http::{self, HttpOptions, RetryPolicy};
use crate::secret::{AccessToken, Secret};
use crate::source::TokenSource;

/// The default IMDS address.
pub const DEFAULT_IMDS_HOST: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
/// IMDS is link-local: a connection that takes longer than this means there is no IMDS.
const IMDS_CONNECT_CAP: Duration = Duration::from_secs(2);

/// Which user-assigned identity to use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserAssignedId {
    /// By client (application) id.
    ClientId(String),
    /// By object (principal) id.
    ObjectId(String),
    /// By ARM resource id (`/subscriptions/…/userAssignedIdentities/<name>`).
    ResourceId(String),
}

impl UserAssignedId {
    fn describe(&self) -> String {
        match self {
            UserAssignedId::ClientId(v) => format!("user-assigned identity with client id {v}"),
            UserAssignedId::ObjectId(v) => format!("user-assigned identity with object id {v}"),
            UserAssignedId::ResourceId(v) => format!("user-assigned identity {v}"),
        }
    }
}

/// The endpoint flavour a [`ManagedIdentityCredential`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagedIdentitySource {
    /// App Service, Functions, Container Apps (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).
    AppService,
    /// The Instance Metadata Service of VMs, VM scale sets and AKS nodes.
    Imds,
}

/// Options of [`ManagedIdentityCredential`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ManagedIdentityOptions {
    /// A user-assigned identity; `None` means the system-assigned one.
    pub user_assigned: Option<UserAssignedId>,
    /// IMDS base URL; overrides `AZURE_POD_IDENTITY_AUTHORITY_HOST` and the default
    /// `http://169.254.169.254`.
    pub imds_host: Option<String>,
    /// HTTP settings; IMDS uses [`HttpOptions::imds_retry`].
    pub http: HttpOptions,
}

impl ManagedIdentityOptions {
    /// Selects a user-assigned identity.
    pub fn with_user_assigned(mut self, id: UserAssignedId) -> Self {
        self.user_assigned = Some(id);
        self
    }

    /// Sets the IMDS base URL.
    pub fn with_imds_host(mut self, host: impl Into<String>) -> Self {
        self.imds_host = Some(host.into());
        self
    }

    /// Sets the HTTP options.
    pub fn with_http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }
}

/// A managed identity credential.
#[derive(Debug)]
pub struct ManagedIdentityCredential {
    source: ManagedIdentitySource,
    url: Url,
    header: Option<Secret>,
    id: Option<UserAssignedId>,
    http: reqwest::Client,
    retry: RetryPolicy,
    /// In a chain, an IMDS that never answered means "not on Azure": the chain moves on.
    probe: bool,
    reached: AtomicBool,
    /// Set after the first token: from then on the endpoint is known to be a real IMDS.
    succeeded: AtomicBool,
}

fn imds_retry_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 404 | 408 | 410 | 429 | 500..=599)
}

/// While probing, a 404 is not retried: another cloud's metadata service (or anything else at
/// 169.254.169.254) answers 404 for this path, and half a minute of retries would stall the chain.
fn imds_probe_retry_status(s: StatusCode) -> bool {
    s.as_u16() != 404 && imds_retry_status(s)
}

fn app_service_retry_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

impl ManagedIdentityCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "ManagedIdentityCredential";

    /// Picks the endpoint from the environment the way the Azure SDKs do: App Service when
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, otherwise IMDS (at
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set). Service Fabric, Azure Arc, Azure ML and
    /// Cloud Shell are detected and reported as unsupported ([`ErrorKind::Unavailable`]).
    pub fn from_env(env: &Env, options: ManagedIdentityOptions) -> Result<Self, Error> {
        let unsupported = |what: &str| {
            Err(Error::unavailable(format!(
                "{what} managed identity is not supported by pgentra; use a user-assigned identity over IMDS or another credential"
            ))
            .with_credential(Self::NAME))
        };
        let endpoint = env.get(vars::IDENTITY_ENDPOINT);
        let header = env.get(vars::IDENTITY_HEADER);
        match (endpoint, header) {
            (Some(_), Some(_)) if env.has(vars::IDENTITY_SERVER_THUMBPRINT) => {
                unsupported("Service Fabric")
            }
            (Some(endpoint), Some(header)) => Self::app_service(endpoint, header, options),
            _ if env.has(vars::MSI_ENDPOINT) => unsupported("Azure Machine Learning / Cloud Shell"),
            (Some(_), None) if env.has(vars::IMDS_ENDPOINT) => unsupported("Azure Arc"),
            _ => {
                let host = options.imds_host.clone().or_else(|| {
                    env.get(vars::AZURE_POD_IDENTITY_AUTHORITY_HOST)
                        .map(str::to_owned)
                });
                Self::imds(ManagedIdentityOptions {
                    imds_host: host,
                    ..options
                })
            }
        }
    }

    /// The App Service / Container Apps endpoint (`IDENTITY_ENDPOINT`) with its
    /// `IDENTITY_HEADER`.
    pub fn app_service(
        endpoint: &str,
        identity_header: impl Into<Secret>,
        options: ManagedIdentityOptions,
    ) -> Result<Self, Error> {
        let url = parse_endpoint(endpoint, vars::IDENTITY_ENDPOINT)?;
        let header = identity_header.into();
        if header.is_empty() {
            return Err(Error::config("IDENTITY_HEADER is empty").with_credential(Self::NAME));
        }
        Ok(ManagedIdentityCredential {
            source: ManagedIdentitySource::AppService,
            url,
            header: Some(header),
            id: options.user_assigned,
            http: options
                .http
                .client(true, None)
                .map_err(|e| e.with_credential(Self::NAME))?,
            retry: options.http.retry,
            probe: false,
            reached: AtomicBool::new(false),
            succeeded: AtomicBool::new(false),
        })
    }

    /// IMDS at `options.imds_host` (default `http://169.254.169.254`).
    pub fn imds(options: ManagedIdentityOptions) -> Result<Self, Error> {
        let host = options.imds_host.as_deref().unwrap_or(DEFAULT_IMDS_HOST);
        let base = parse_endpoint(host, vars::AZURE_POD_IDENTITY_AUTHORITY_HOST)?;
        let url = Url::parse(&format!(
            "{}{IMDS_PATH}",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| {
            Error::config(format!("invalid IMDS host {host:?}: {e}")).with_credential(Self::NAME)
        })?;
        Ok(ManagedIdentityCredential {
            source: ManagedIdentitySource::Imds,
            url,
            header: None,
            id: options.user_assigned,
            http: options
                .http
                .client(true, Some(IMDS_CONNECT_CAP))
                .map_err(|e| e.with_credential(Self::NAME))?,
            retry: options.http.imds_retry,
            probe: false,
            reached: AtomicBool::new(false),
            succeeded: AtomicBool::new(false),
        })
    }

    /// Marks the credential as part of a chain: an IMDS that has never answered is reported
    /// as [`ErrorKind::Unavailable`] so the chain moves on.
    pub(crate) fn probing(mut self) -> Self {
        self.probe = true;
        self
    }

    /// Which endpoint flavour this credential uses.
    pub fn source(&self) -> ManagedIdentitySource {
        self.source
    }

    /// The token endpoint URL (without query).
    pub fn endpoint(&self) -> &str {
        self.url.as_str()
    }

    /// The selected user-assigned identity, if any.
    pub fn user_assigned(&self) -> Option<&UserAssignedId> {
        self.id.as_ref()
    }

    fn label(&self) -> &'static str {
        match self.source {
            ManagedIdentitySource::AppService => "App Service identity endpoint",
            ManagedIdentitySource::Imds => "IMDS",
        }
    }

    fn request_url(&self, resource: &str) -> Url {
        let mut url = self.url.clone();
        {
            let mut q = url.query_pairs_mut();
            let imds = self.source == ManagedIdentitySource::Imds;
            q.append_pair(
                "api-version",
                if imds { "2018-02-01" } else { "2019-08-01" },
            );
            q.append_pair("resource", resource);
            match &self.id {
                Some(UserAssignedId::ClientId(v)) => {
                    q.append_pair("client_id", v);
                }
                Some(UserAssignedId::ObjectId(v)) => {
                    q.append_pair("object_id", v);
                }
                // The two endpoints spell this parameter differently.
                Some(UserAssignedId::ResourceId(v)) => {
                    q.append_pair(if imds { "msi_res_id" } else { "mi_res_id" }, v);
                }
                None => {}
            }
        }
        url
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken, Error> {
        validate_scope(scope)?;
        let url = self.request_url(scope_to_resource(scope));
        let probing = self.probe
            && self.source == ManagedIdentitySource::Imds
            && !self.succeeded.load(Ordering::Relaxed);
        let retry_on: fn(StatusCode) -> bool = match self.source {
            ManagedIdentitySource::Imds if probing => imds_probe_retry_status,
            ManagedIdentitySource::Imds => imds_retry_status,
            ManagedIdentitySource::AppService => app_service_retry_status,
        };
        let retry = &self.retry;
        let sent = http::send_with_retry(retry, retry_on, || {
            let rb = self.http.get(url.clone());
            match &self.header {
                Some(h) => rb.header("X-IDENTITY-HEADER", h.expose()),
                None => rb.header("Metadata", "true"),
            }
        })
        .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let err = http::transport_error(e, self.url.as_str());
                if probing && !self.reached.load(Ordering::Relaxed) {
                    return Err(Error::unavailable(format!(
                        "no managed identity endpoint found: {} (not running on Azure, or IMDS is blocked; set AZURE_POD_IDENTITY_AUTHORITY_HOST to use another address)",
                        err.message()
                    )));
                }
                return Err(err);
            }
        };
        self.reached.store(true, Ordering::Relaxed);
        let status = resp.status();
        let body = http::read_body(resp, self.url.as_str()).await?;
        if status.is_success() {
            let token = http::parse_token(&body, SystemTime::now()).map_err(|e| {
                Error::other(
                    e.kind(),
                    format!("{} from the {} at {}", e.message(), self.label(), self.url),
                )
            })?;
            self.succeeded.store(true, Ordering::Relaxed);
            return Ok(token);
        }
        if probing && status == StatusCode::NOT_FOUND {
            return Err(Error::unavailable(format!(
                "{} answered 404: not an Azure IMDS, or no identity is assigned to this machine yet",
                self.url
            )));
        }
        Err(self.describe_failure(status, &http::parse_error_body(&body)))
    }

    fn describe_failure(&self, status: StatusCode, body: &http::ErrorBody) -> Error {
        let code = status.as_u16();
        let who = match &self.id {
            Some(id) => id.describe(),
            None => "system-assigned identity".to_owned(),
        };
        let mut msg = format!("the {} at {} answered HTTP {code}", self.label(), self.url);
        if let Some(e) = &body.error {
            msg.push_str(&format!(" ({e})"));
        }
        if let Some(d) = &body.description {
            msg.push_str(&format!(": {d}"));
        }
        let hint = match (self.source, code) {
            (ManagedIdentitySource::AppService, 401 | 403) => {
                " — the endpoint rejected IDENTITY_HEADER: the platform rotates it, so read it from the current environment".to_owned()
            }
            (_, 400 | 404) if self.id.is_some() || code == 400 => format!(
                " — identity not found: check that the {who} is assigned to this resource"
            ),
            (ManagedIdentitySource::Imds, 404 | 410) => {
                " — IMDS is updating or the identity is not assigned yet; retry shortly".to_owned()
            }
            (_, 429) => " — the identity endpoint is throttling; retry later".to_owned(),
            (_, 500..=599) => " — the identity endpoint failed; retry later".to_owned(),
            _ => String::new(),
        };
        msg.push_str(&hint);
        let kind = match code {
            404 | 410 if self.source == ManagedIdentitySource::Imds => ErrorKind::Upstream,
            _ => http::kind_for_status(status),
        };
        Error::new(kind, msg)
            .with_status(code)
            .with_aadsts(body.aadsts)
    }
}

fn parse_endpoint(text: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(text.trim()).map_err(|e| {
        Error::config(format!("{what} is not a valid URL ({text:?}): {e}"))
            .with_credential(ManagedIdentityCredential::NAME)
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(
            Error::config(format!("{what} must be an http(s) URL, got {text:?}"))
                .with_credential(ManagedIdentityCredential::NAME),
        );
    }
    Ok(url)
}

impl TokenSource for ManagedIdentityCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            self.fetch(scope)
                .await
                .map_err(|e| e.with_credential(Self::NAME))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_follows_the_sdks() {
        let app = Env::new()
            .with(vars::IDENTITY_ENDPOINT, "http://127.0.0.1:4141/msi/token")
            .with(vars::IDENTITY_HEADER, "h");
        let c = ManagedIdentityCredential::from_env(&app, Default::default()).unwrap();
        assert_eq!(c.source(), ManagedIdentitySource::AppService);

        let sf = app.clone().with(vars::IDENTITY_SERVER_THUMBPRINT, "ab");
        let e = ManagedIdentityCredential::from_env(&sf, Default::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("Service Fabric"), "{e}");

        let arc = Env::new()
            .with(
                vars::IDENTITY_ENDPOINT,
                "http://localhost:40342/metadata/identity/oauth2/token",
            )
            .with(vars::IMDS_ENDPOINT, "http://localhost:40342");
        let e = ManagedIdentityCredential::from_env(&arc, Default::default()).unwrap_err();
        assert!(e.to_string().contains("Azure Arc"), "{e}");

        let ml = Env::new().with(vars::MSI_ENDPOINT, "http://x");
        assert_eq!(
            ManagedIdentityCredential::from_env(&ml, Default::default())
                .unwrap_err()
                .kind(),
            ErrorKind::Unavailable
        );

        let c = ManagedIdentityCredential::from_env(&Env::new(), Default::default()).unwrap();
        assert_eq!(
            c.endpoint(),
            "http://169.254.169.254/metadata/identity/oauth2/token"
        );

        let pod = Env::new().with(
            vars::AZURE_POD_IDENTITY_AUTHORITY_HOST,
            "http://127.0.0.1:9/",
        );
        let c = ManagedIdentityCredential::from_env(&pod, Default::default()).unwrap();
        assert_eq!(
            c.endpoint(),
            "http://127.0.0.1:9/metadata/identity/oauth2/token"
        );

        let opt = ManagedIdentityOptions::default().with_imds_host("http://127.0.0.1:7");
        let c = ManagedIdentityCredential::from_env(&pod, opt).unwrap();
        assert_eq!(
            c.endpoint(),
            "http://127.0.0.1:7/metadata/identity/oauth2/token"
        );

        let bad = Env::new()
            .with(vars::IDENTITY_ENDPOINT, "not a url")
            .with(vars::IDENTITY_HEADER, "h");
        assert_eq!(
            ManagedIdentityCredential::from_env(&bad, Default::default())
                .unwrap_err()
                .kind(),
            ErrorKind::Config
        );
    }

    #[test]
    fn resource_id_parameter_differs_per_endpoint() {
        let id = UserAssignedId::ResourceId("/subscriptions/s/rg/x".into());
        let opts = ManagedIdentityOptions::default().with_user_assigned(id);
        let app = ManagedIdentityCredential::app_service(
            "http://127.0.0.1:1/msi/token",
            "h",
            opts.clone(),
        )
        .unwrap();
        let q = app.request_url("https://r").query().unwrap().to_owned();
        assert!(
            q.contains("mi_res_id=") && q.contains("api-version=2019-08-01"),
            "{q}"
        );
        let imds =
            ManagedIdentityCredential::imds(opts.with_imds_host("http://127.0.0.1:1")).unwrap();
        let q = imds.request_url("https://r").query().unwrap().to_owned();
        assert!(
            q.contains("msi_res_id=") && q.contains("api-version=2018-02-01"),
            "{q}"
        );
        let c = ManagedIdentityCredential::imds(
            ManagedIdentityOptions::default()
                .with_user_assigned(UserAssignedId::ObjectId("o".into())),
        )
        .unwrap();
        assert!(
            c.request_url("r")
                .query()
                .unwrap()
                .ends_with("&object_id=o")
        );
    }
}
