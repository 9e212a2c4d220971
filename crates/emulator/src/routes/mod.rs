//! Request routing: classify a request to an emulated endpoint, apply injected faults, run the
//! handler, record the request (redacted).
//!
//! Handlers live in the submodules; this module never builds a token itself.

mod assertion;
mod discovery;
mod entra;
mod imds;
pub(crate) mod managed_identity;
pub(crate) mod reply;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, Method, Response, header};
use axum::{Extension, Router};
use bytes::Bytes;

use crate::faults::Fault;
use crate::record::{EndpointKind, RecordedRequest, redact_query};
use crate::server::{ConnCtl, State};
use reply::Reply;

/// Largest request body read; Entra requests are a few KB (assertions up to ~8 KB).
const MAX_BODY: usize = 256 * 1024;

/// The axum application: every request goes through [`dispatch`], which routes by hand so the
/// endpoint kind is known before faults apply and paths match with or without trailing slashes.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// Decoded query or form parameters, in order.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn parse(text: &[u8]) -> Self {
        Params(
            url::form_urlencoded::parse(text)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    /// First value of `name` (exact name).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// First non-empty value of `name`.
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
}

/// A request as the handlers see it: parsed, bounded, with the emulator time of arrival.
#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) raw_query: String,
    pub(crate) query: Params,
    pub(crate) form: Params,
    pub(crate) headers: HeaderMap,
    /// `scheme://host[:port]` the client used (from `Host`), for URLs in discovery documents.
    pub(crate) base: String,
    /// Emulator time (epoch seconds) when the request arrived.
    pub(crate) now: i64,
}

impl Req {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name.to_ascii_lowercase())
            .and_then(|v| v.to_str().ok())
    }

    /// The caller's `client-request-id` (header or query, as msal-node sends it) if it is a GUID.
    pub(crate) fn client_request_id(&self) -> Option<String> {
        self.header("client-request-id")
            .or_else(|| self.query.get("client-request-id"))
            .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
            .map(|u| u.to_string())
    }

    pub(crate) fn correlation_id(&self) -> String {
        self.client_request_id()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    AppService,
    Imds,
    Token { tenant: String, v2: bool },
    OpenIdConfig { tenant: String, v2: bool },
    Jwks { tenant: String, v2: bool },
    InstanceDiscovery,
    NotFound,
}

pub(crate) fn classify(path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let tenant = || segments[0].to_string();
    match l.as_slice() {
        ["msi", "token"] => Route::AppService,
        ["metadata", "identity", "oauth2", "token"] => Route::Imds,
        [t, "oauth2", "v2.0", "token"] if !t.is_empty() => Route::Token {
            tenant: tenant(),
            v2: true,
        },
        [t, "oauth2", "token"] if !t.is_empty() => Route::Token {
            tenant: tenant(),
            v2: false,
        },
        [t, "v2.0", ".well-known", "openid-configuration"] if !t.is_empty() => {
            Route::OpenIdConfig {
                tenant: tenant(),
                v2: true,
            }
        }
        [t, ".well-known", "openid-configuration"] if !t.is_empty() => Route::OpenIdConfig {
            tenant: tenant(),
            v2: false,
        },
        ["common" | "organizations", "discovery", "instance"] => Route::InstanceDiscovery,
        [t, "discovery", "keys"] if !t.is_empty() => Route::Jwks {
            tenant: tenant(),
            v2: false,
        },
        [t, "discovery", "v2.0", "keys"] if !t.is_empty() => Route::Jwks {
            tenant: tenant(),
            v2: true,
        },
        _ => Route::NotFound,
    }
}

fn endpoint_kind(route: &Route, form: &Params) -> EndpointKind {
    match route {
        Route::AppService => EndpointKind::AppService,
        Route::Imds => EndpointKind::Imds,
        Route::Token { v2: true, .. } if form.get("grant_type") == Some("password") => {
            EndpointKind::UserToken
        }
        Route::Token { v2: true, .. } => EndpointKind::TokenV2,
        Route::Token { v2: false, .. } => EndpointKind::TokenV1,
        Route::OpenIdConfig { .. } => EndpointKind::OpenIdConfig,
        Route::Jwks { .. } => EndpointKind::Jwks,
        Route::InstanceDiscovery => EndpointKind::InstanceDiscovery,
        Route::NotFound => EndpointKind::Other,
    }
}

/// `scheme://host` for discovery URLs: the `Host` the client used when it is a plain host[:port],
/// else the listener's own base.
fn external_base(headers: &HeaderMap, conn: &ConnCtl) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        });
    match host {
        Some(h) => format!("{}://{h}", conn.scheme),
        None => conn.base.clone(),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(ct) => ct
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded"),
    }
}

async fn dispatch(
    AxumState(state): AxumState<Arc<State>>,
    Extension(conn): Extension<ConnCtl>,
    request: Request,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await;
    let path = parts.uri.path().to_string();
    // Operations endpoints: never faulted, never recorded, so probes do not disturb tests.
    if parts.method == Method::GET {
        match path.as_str() {
            "/healthz" | "/readiness" | "/liveness" => {
                return Response::new(Body::from("ok\n"));
            }
            "/metrics" => {
                let mut r = Response::new(Body::from(state.log.render_metrics()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return r;
            }
            _ => {}
        }
    }
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let route = classify(&path);
    let body_too_large = body.is_err();
    let body: Bytes = body.unwrap_or_default();
    let form = if parts.method == Method::POST && is_form(&parts.headers) {
        Params::parse(&body)
    } else {
        Params::default()
    };
    let req = Req {
        method: parts.method,
        query: Params::parse(raw_query.as_bytes()),
        raw_query,
        path,
        form,
        base: external_base(&parts.headers, &conn),
        headers: parts.headers,
        now: state.clock.now_epoch(),
    };
    let kind = endpoint_kind(&route, &req.form);
    let at = state.clock.now();

    let reply = match state.faults.take(kind) {
        Some(Fault::Drop) => {
            record(&state, &req, kind, 0, at);
            conn.kill.notify_one();
            // The connection task drops the socket; this future is dropped with it.
            std::future::pending::<()>().await;
            unreachable_reply()
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let mut reply = fault_reply(&req, kind, status);
            if let Some(secs) = retry_after {
                reply = reply.header(header::RETRY_AFTER, secs.to_string());
            }
            reply
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            handle(&state, &req, &route, body_too_large).await
        }
        None => handle(&state, &req, &route, body_too_large).await,
    };
    record(&state, &req, kind, reply.status.as_u16(), at);
    tracing::debug!(
        endpoint = ?kind,
        method = %req.method,
        path = %req.path,
        status = reply.status.as_u16(),
        "emulator request"
    );
    reply.into_response()
}

/// Only reached if the connection task failed to drop the request; answer something sane.
fn unreachable_reply() -> Reply {
    reply::imds(500, "unknown", "connection drop failed")
}

async fn handle(state: &State, req: &Req, route: &Route, body_too_large: bool) -> Reply {
    if body_too_large {
        return reply::entra(
            req,
            400,
            "invalid_request",
            900144,
            "The request body is too large.",
        );
    }
    match route {
        Route::AppService => managed_identity::app_service(state, req),
        Route::Imds => imds::token(state, req),
        Route::Token { tenant, v2 } => entra::token(state, req, tenant, *v2).await,
        Route::OpenIdConfig { tenant, v2 } => {
            discovery::openid_configuration(state, req, tenant, *v2)
        }
        Route::Jwks { tenant, v2 } => discovery::jwks(state, req, tenant, *v2),
        Route::InstanceDiscovery => discovery::instance(state, req),
        Route::NotFound => reply::Reply::json(
            404,
            serde_json::json!({"error": "not_found", "error_description": format!("no emulated endpoint at {}", req.path)}),
        ),
    }
}

/// The body an injected status fault answers with, in the endpoint's own error dialect.
fn fault_reply(req: &Req, kind: EndpointKind, status: u16) -> Reply {
    let text = match status {
        429 => "Too many requests (injected fault).",
        _ => "Injected fault.",
    };
    match kind {
        EndpointKind::AppService => reply::app_service(status, text),
        EndpointKind::Imds => reply::imds(
            status,
            if status == 429 {
                "too_many_requests"
            } else {
                "unknown"
            },
            text,
        ),
        _ => {
            let (error, code) = match status {
                429 => ("temporarily_unavailable", 50196),
                s if s >= 500 => ("temporarily_unavailable", 90033),
                _ => ("invalid_request", 90033),
            };
            reply::entra(req, status, error, code, text)
        }
    }
}

fn record(state: &State, req: &Req, kind: EndpointKind, status: u16, at: std::time::SystemTime) {
    let pick = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| req.form.non_empty(n).or_else(|| req.query.non_empty(n)))
            .map(str::to_string)
    };
    state.log.push(RecordedRequest {
        endpoint: kind,
        method: req.method.to_string(),
        path: req.path.clone(),
        query: redact_query(&req.raw_query),
        status,
        client_id: pick(&[
            "client_id",
            "clientid",
            "object_id",
            "principal_id",
            "mi_res_id",
            "msi_res_id",
            "username",
        ]),
        resource: pick(&["resource", "scope"]),
        grant_type: pick(&["grant_type"]),
        at,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_classify_with_and_without_trailing_slash() {
        assert_eq!(classify("/msi/token"), Route::AppService);
        assert_eq!(classify("/MSI/token/"), Route::AppService);
        assert_eq!(classify("/metadata/identity/oauth2/token/"), Route::Imds);
        assert_eq!(
            classify("/Contoso.onmicrosoft.com/oauth2/v2.0/token"),
            Route::Token {
                tenant: "Contoso.onmicrosoft.com".into(),
                v2: true
            }
        );
        assert_eq!(
            classify("/t/oauth2/token"),
            Route::Token {
                tenant: "t".into(),
                v2: false
            }
        );
        assert_eq!(
            classify("/common/discovery/instance"),
            Route::InstanceDiscovery
        );
        assert_eq!(
            classify("/common/discovery/v2.0/keys"),
            Route::Jwks {
                tenant: "common".into(),
                v2: true
            }
        );
        assert_eq!(classify("/"), Route::NotFound);
        assert_eq!(classify("//oauth2/token"), Route::NotFound);
    }
}
