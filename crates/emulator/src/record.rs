//! The request log: what reached the emulator, with every secret redacted before it is stored.
//!
//! Never stores a header, a body, a client secret, an assertion, a password or a token.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Which emulated endpoint a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointKind {
    /// App Service / Container Apps managed identity (`IDENTITY_ENDPOINT`, `/msi/token`).
    AppService,
    /// IMDS (`/metadata/identity/oauth2/token`).
    Imds,
    /// Entra v2 token endpoint, client credentials.
    TokenV2,
    /// Entra v1 token endpoint (`/{tenant}/oauth2/token`), any grant.
    TokenV1,
    /// OpenID Connect discovery documents (v1 and v2).
    OpenIdConfig,
    /// JWKS documents.
    Jwks,
    /// `/common/discovery/instance`.
    InstanceDiscovery,
    /// Entra v2 token endpoint, password grant (test user tokens).
    UserToken,
    /// Anything else (404s).
    Other,
}

impl EndpointKind {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            EndpointKind::AppService => "app_service",
            EndpointKind::Imds => "imds",
            EndpointKind::TokenV2 => "token_v2",
            EndpointKind::TokenV1 => "token_v1",
            EndpointKind::OpenIdConfig => "openid_config",
            EndpointKind::Jwks => "jwks",
            EndpointKind::InstanceDiscovery => "instance_discovery",
            EndpointKind::UserToken => "user_token",
            EndpointKind::Other => "other",
        }
    }
}

/// One request as the emulator saw it. Secrets are never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// Endpoint it was routed to.
    pub endpoint: EndpointKind,
    /// HTTP method.
    pub method: String,
    /// Path as sent (without the query).
    pub path: String,
    /// Query string with secret-bearing parameters' values replaced by `REDACTED`.
    pub query: String,
    /// Status answered (`0` when the connection was dropped by a fault).
    pub status: u16,
    /// Client id asked for or presented, if any (query or form `client_id`/`clientid`/
    /// `object_id`/`principal_id`/`mi_res_id`/`msi_res_id` value, or the `username` for the
    /// password grant).
    pub client_id: Option<String>,
    /// Resource or scope asked for, if any.
    pub resource: Option<String>,
    /// `grant_type` of token requests.
    pub grant_type: Option<String>,
    /// Emulator time (see [`crate::Clock`]) when the request arrived.
    pub at: SystemTime,
}

/// Names of parameters whose values are secret wherever they appear.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "secret",
    "sig",
];

/// True when a query or form parameter carries a secret.
pub(crate) fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Rebuilds a query string with secret values replaced; malformed pieces are kept verbatim only
/// when they hold no `=` (so they cannot carry a value).
pub(crate) fn redact_query(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => {
                let decoded = url::form_urlencoded::parse(name.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                if is_secret_param(&decoded) {
                    format!("{name}=REDACTED")
                } else {
                    pair.to_string()
                }
            }
            None => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLog {
    entries: Arc<Mutex<VecDeque<RecordedRequest>>>,
    /// Totals per (endpoint, status) for `/metrics`; unlike the log they are never trimmed or
    /// cleared, as Prometheus counters must only grow.
    totals: Arc<Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>>,
}

/// The log keeps at most this many entries (oldest dropped) so a long benchmark cannot grow
/// memory without bound.
const MAX_ENTRIES: usize = 10_000;

impl RequestLog {
    pub(crate) fn push(&self, entry: RecordedRequest) {
        {
            let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
            *totals
                .entry((entry.endpoint.label(), entry.status))
                .or_default() += 1;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(entry);
    }
    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().iter().cloned().collect()
    }
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Prometheus text exposition of the request totals.
    pub(crate) fn render_metrics(&self) -> String {
        let totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP pgentra_emulator_requests_total Requests answered, by endpoint and HTTP status (0: dropped by a fault).\n\
             # TYPE pgentra_emulator_requests_total counter\n",
        );
        for ((endpoint, status), n) in totals.iter() {
            out.push_str(&format!(
                "pgentra_emulator_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RecordedRequest>> {
        // Poison is ignored: a Vec of plain records is consistent after any panic.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_redacted() {
        let q =
            "api-version=1&client_secret=hunter2&Password=x&resource=https%3A%2F%2Fr&sig=abc&flag";
        let r = redact_query(q);
        assert!(
            !r.contains("hunter2") && !r.contains("=x&") && !r.contains("abc"),
            "{r}"
        );
        assert!(r.contains("client_secret=REDACTED"));
        assert!(r.contains("resource=https%3A%2F%2Fr"));
        assert!(r.ends_with("&flag"));
    }
}
