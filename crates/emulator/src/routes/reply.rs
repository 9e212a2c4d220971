//! HTTP answers in the three error dialects the emulator speaks: Entra (AADSTS codes), App
//! Service (`statusCode`/`message`/`correlationId`) and IMDS (`error`/`error_description`).
//!
//! Builds responses only; never includes a secret from the request in a message.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::Req;

/// A response in the making.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
            headers: Vec::new(),
        }
    }

    pub(crate) fn ok(body: Value) -> Self {
        Self::json(200, body)
    }

    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (name, value) in self.headers {
            // Values are built by the emulator from sanitized parts; skip any that are not valid.
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// Entra's error timestamp format: `2024-01-01 12:00:00Z`.
fn entra_timestamp(epoch: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// An Entra error: `error`, `error_description` ("AADSTSnnn: text\r\nTrace ID…"), `error_codes`,
/// `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
pub(crate) fn entra(req: &Req, status: u16, error: &str, code: u32, text: &str) -> Reply {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = req.correlation_id();
    let timestamp = entra_timestamp(req.now);
    let description = format!(
        "AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
    );
    let mut reply = Reply::json(
        status,
        json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
    .header(header::CACHE_CONTROL, "no-store, no-cache")
    .header(header::PRAGMA, "no-cache")
    .header(HeaderName::from_static("x-ms-request-id"), trace_id);
    if req.client_request_id().is_some() {
        reply = reply.header(HeaderName::from_static("client-request-id"), correlation_id);
    }
    reply
}

/// The `AADSTS90002` unknown-tenant error.
pub(crate) fn unknown_tenant(req: &Req, tenant: &str) -> Reply {
    entra(
        req,
        400,
        "invalid_tenant",
        90002,
        &format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

/// The `AADSTS500011` unknown-resource text.
pub(crate) fn unknown_resource_text(resource: &str, tenant: &str) -> String {
    format!(
        "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
    )
}

/// An App Service managed-identity error: `{statusCode, message, correlationId}`.
pub(crate) fn app_service(status: u16, message: &str) -> Reply {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    Reply::json(
        status,
        json!({"statusCode": status, "message": message, "correlationId": correlation_id}),
    )
    .header(HeaderName::from_static("x-correlation-id"), correlation_id)
}

/// An IMDS error: `{error, error_description}`.
pub(crate) fn imds(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": error, "error_description": description}),
    )
}
