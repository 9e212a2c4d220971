//! HTTP plumbing shared by the credentials: client options, bounded retries, and the parsing of
//! token and error responses from Entra, App Service and IMDS.
//!
//! A success body is parsed here and never quoted in an error, since it holds the token.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::{RequestBuilder, Response, StatusCode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind, aadsts_meaning};
use crate::secret::AccessToken;
use crate::time_fmt;

/// Bounded exponential backoff for retrying transient HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// First delay; doubled on each retry.
    pub initial_delay: Duration,
    /// Cap on any single delay, including a server's `Retry-After`.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// `max_retries` retries starting at `initial_delay`, each at most `max_delay`.
    pub fn new(max_retries: u32, initial_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            max_retries,
            initial_delay,
            max_delay,
        }
    }

    /// Delay before retry number `retry` (1-based): the server's `Retry-After` when given, else
    /// exponential backoff with jitter; never above `max_delay`.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_delay);
        }
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(20));
        let capped = exp.min(self.max_delay);
        // Jitter in [50 %, 100 %] spreads retries of many clients hitting one endpoint.
        let factor: f64 = rand::rng().random_range(0.5..=1.0);
        capped.mul_f64(factor)
    }
}

impl Default for RetryPolicy {
    /// 3 retries, 1 s doubling, at most 30 s per delay.
    fn default() -> Self {
        RetryPolicy::new(3, Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// HTTP settings of a credential.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Limit for one whole request (connect, send, read the answer).
    pub timeout: Duration,
    /// Limit for establishing the connection.
    pub connect_timeout: Duration,
    /// Retries on transient statuses. Managed identity over IMDS uses [`HttpOptions::imds_retry`].
    pub retry: RetryPolicy,
    /// Retries for IMDS (404, 410, 429, 5xx, per Azure's IMDS guidance).
    pub imds_retry: RetryPolicy,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            imds_retry: RetryPolicy::new(5, Duration::from_secs(1), Duration::from_secs(60)),
            extra_roots: Vec::new(),
        }
    }
}

impl HttpOptions {
    /// Also trusts the CA certificates in `pem` (e.g. a local emulator's CA), besides the
    /// platform's roots.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::config(format!("invalid CA PEM: {e}")))?;
            self.extra_roots.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(Error::config("the CA PEM holds no CERTIFICATE block"));
        }
        Ok(self)
    }

    /// [`HttpOptions::add_root_pem`] from a file.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| Error::config(format!("cannot read CA file {}: {e}", path.display())))?;
        self.add_root_pem(&pem)
    }

    /// Sets the whole-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy for Entra and App Service requests.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the retry policy for IMDS requests.
    pub fn with_imds_retry(mut self, retry: RetryPolicy) -> Self {
        self.imds_retry = retry;
        self
    }

    /// Builds a client. `direct` skips proxies (identity endpoints are local or link-local).
    pub(crate) fn client(
        &self,
        direct: bool,
        connect_cap: Option<Duration>,
    ) -> Result<reqwest::Client, Error> {
        let connect = match connect_cap {
            Some(cap) => self.connect_timeout.min(cap),
            None => self.connect_timeout,
        };
        let mut b = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(connect)
            // A token endpoint never redirects; following one could send a secret elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pgentra-token/", env!("CARGO_PKG_VERSION")));
        if direct {
            b = b.no_proxy();
        }
        if !self.extra_roots.is_empty() {
            let certs = self
                .extra_roots
                .iter()
                .map(|c| reqwest::Certificate::from_der(c.as_ref()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::config(format!("invalid CA certificate: {e}")).with_source(e)
                })?;
            b = b.tls_certs_merge(certs);
        }
        b.build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")).with_source(e))
    }
}

/// Sends a request, retrying statuses for which `retry_on` is true with `policy`.
/// Transport errors are returned at once: the caller decides what they mean.
pub(crate) async fn send_with_retry(
    policy: &RetryPolicy,
    retry_on: fn(StatusCode) -> bool,
    make: impl Fn() -> RequestBuilder,
) -> Result<Response, reqwest::Error> {
    let mut retry = 0;
    loop {
        let resp = make().send().await?;
        let status = resp.status();
        if !retry_on(status) || retry >= policy.max_retries {
            return Ok(resp);
        }
        retry += 1;
        let delay = policy.delay(retry, retry_after(&resp));
        tracing::debug!(%status, retry, ?delay, "identity endpoint asked for a retry");
        drop(resp);
        tokio::time::sleep(delay).await;
    }
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Describes a transport error as Unreachable or Timeout, naming the URL (without its query).
pub(crate) fn transport_error(err: reqwest::Error, url: &str) -> Error {
    let url = strip_query(url);
    let (kind, what) = if err.is_timeout() {
        (ErrorKind::Timeout, "did not answer in time")
    } else {
        (ErrorKind::Unreachable, "is unreachable")
    };
    let mut detail = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    let msg = if detail.is_empty() {
        format!("{url} {what}")
    } else {
        format!("{url} {what}: {detail}")
    };
    Error::new(kind, msg).with_source(err)
}

pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// A number that may arrive as a JSON number or as a numeric string (IMDS sends strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Int(i64),
    Float(f64),
    Text(String),
}

impl NumOrText {
    fn as_i64(&self) -> Option<i64> {
        match self {
            NumOrText::Int(i) => Some(*i),
            NumOrText::Float(f) => Some(*f as i64),
            NumOrText::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    expires_on: Option<NumOrText>,
    expires_in: Option<NumOrText>,
    refresh_in: Option<NumOrText>,
}

/// Parses a token response: `access_token` plus `expires_on` (epoch, number or string) or
/// `expires_in` (seconds from `now`). Errors never quote the body.
pub(crate) fn parse_token(body: &[u8], now: SystemTime) -> Result<AccessToken, Error> {
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|_| {
        Error::new(
            ErrorKind::InvalidResponse,
            "the token response is not the expected JSON object",
        )
    })?;
    let token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidResponse,
                "the token response has no access_token",
            )
        })?;
    let now_secs = time_fmt::to_epoch(now);
    // Values below 2001-01-01 are relative seconds (MSAL.NET's rule), not instants.
    let expires_on = match parsed.expires_on.as_ref().and_then(NumOrText::as_i64) {
        Some(v) if v >= 978_307_200 => Some(v),
        Some(v) if v > 0 => Some(now_secs + v),
        _ => None,
    }
    .or_else(|| {
        parsed
            .expires_in
            .as_ref()
            .and_then(NumOrText::as_i64)
            .map(|v| now_secs + v)
    })
    .ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidResponse,
            "the token response has neither a numeric expires_on nor expires_in",
        )
    })?;
    let mut tok = AccessToken::new(token, time_fmt::from_epoch(expires_on));
    if let Some(r) = parsed.refresh_in.as_ref().and_then(NumOrText::as_i64)
        && r > 0
    {
        tok = tok.with_refresh_on(time_fmt::from_epoch(now_secs + r));
    }
    Ok(tok)
}

/// What an error body says, from whichever shape the endpoint uses.
#[derive(Debug, Default)]
pub(crate) struct ErrorBody {
    pub error: Option<String>,
    pub description: Option<String>,
    pub aadsts: Option<u32>,
}

/// Reads `{error, error_description, error_codes}` (Entra, IMDS), `{statusCode, message}`
/// (App Service) or `{error: {code, message}}` (Service Fabric style). Non-JSON bodies give a
/// short, token-scrubbed excerpt.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorBody {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return ErrorBody {
            description: (!text.is_empty()).then(|| excerpt(text)),
            ..ErrorBody::default()
        };
    };
    let str_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let mut out = ErrorBody::default();
    match v.get("error") {
        Some(Value::Object(o)) => {
            out.error = str_of(o.get("code"));
            out.description = str_of(o.get("message"));
        }
        other => {
            out.error = str_of(other);
            out.description =
                str_of(v.get("error_description")).or_else(|| str_of(v.get("message")));
        }
    }
    out.aadsts = v
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        })
        .and_then(|c| u32::try_from(c).ok());
    if let Some(d) = &out.description {
        if out.aadsts.is_none() {
            out.aadsts = d
                .strip_prefix("AADSTS")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.trim().parse().ok());
        }
        out.description = Some(excerpt(first_line(d)));
    }
    out
}

/// Entra appends "\r\nTrace ID: …\r\nCorrelation ID: …": keep the first, actionable line.
fn first_line(s: &str) -> &str {
    s.split(['\r', '\n']).next().unwrap_or(s).trim()
}

/// At most 300 characters, with anything that looks like a JWT replaced.
fn excerpt(s: &str) -> String {
    let scrubbed: Vec<String> = s
        .split_whitespace()
        .map(|w| {
            if w.contains("eyJ") && w.matches('.').count() >= 2 {
                "<token redacted>".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let joined = scrubbed.join(" ");
    if joined.chars().count() > 300 {
        let cut: String = joined.chars().take(300).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

/// Builds the error for a failed Entra token request.
pub(crate) fn entra_error(status: StatusCode, body: &ErrorBody, endpoint: &str) -> Error {
    let code = status.as_u16();
    let kind = kind_for_status(status);
    let mut msg = format!(
        "Microsoft Entra ID at {} answered HTTP {code}",
        strip_query(endpoint)
    );
    if let Some(e) = &body.error {
        msg.push_str(&format!(" ({e})"));
    }
    if let Some(d) = &body.description {
        msg.push_str(&format!(": {d}"));
    }
    if let Some(meaning) = body.aadsts.and_then(aadsts_meaning) {
        msg.push_str(&format!(" — {meaning}"));
    }
    Error::new(kind, msg)
        .with_status(code)
        .with_aadsts(body.aadsts)
}

pub(crate) fn kind_for_status(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        429 => ErrorKind::Throttled,
        408 => ErrorKind::Timeout,
        500..=599 => ErrorKind::Upstream,
        400..=499 => ErrorKind::Authentication,
        _ => ErrorKind::InvalidResponse,
    }
}

/// Reads a body with a size cap (token responses are a few KB).
pub(crate) async fn read_body(resp: Response, url: &str) -> Result<Vec<u8>, Error> {
    const MAX: usize = 1024 * 1024;
    let mut resp = resp;
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(e, url))? {
        if out.len() + chunk.len() > MAX {
            return Err(Error::new(
                ErrorKind::InvalidResponse,
                format!("{} sent more than {MAX} bytes", strip_query(url)),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn parses_every_expiry_shape() {
        let cases: [(&str, i64); 5] = [
            (r#"{"access_token":"a","expires_in":3599}"#, 3599),
            (
                r#"{"access_token":"a","expires_in":"86399","expires_on":"1700086399"}"#,
                86399,
            ),
            (r#"{"access_token":"a","expires_on":1700000100}"#, 100),
            (r#"{"access_token":"a","expires_on":"60"}"#, 60),
            (
                r#"{"access_token":"a","expires_on":"nonsense","expires_in":"10"}"#,
                10,
            ),
        ];
        for (body, left) in cases {
            let t = parse_token(body.as_bytes(), now()).unwrap();
            assert_eq!(t.expires_in(now()).as_secs() as i64, left, "{body}");
        }
        let t = parse_token(
            br#"{"access_token":"a","expires_in":7200,"refresh_in":3600}"#,
            now(),
        )
        .unwrap();
        assert_eq!(t.refresh_on(), Some(now() + Duration::from_secs(3600)));
    }

    #[test]
    fn token_errors_never_quote_the_body() {
        for body in [
            r#"{"access_token":"eyJsecret.x.y"}"#,
            r#"{"expires_in":1}"#,
            r#"{"access_token":"","expires_in":1}"#,
            "eyJsecret.x.y",
        ] {
            let e = parse_token(body.as_bytes(), now()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse);
            assert!(!e.to_string().contains("eyJ"), "{e}");
        }
    }

    #[test]
    fn parses_error_shapes() {
        let entra = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y","error_codes":[7000215]}"#;
        let b = parse_error_body(entra);
        assert_eq!(b.error.as_deref(), Some("invalid_client"));
        assert_eq!(
            b.description.as_deref(),
            Some("AADSTS7000215: Invalid client secret provided.")
        );
        assert_eq!(b.aadsts, Some(7000215));
        let e = entra_error(
            StatusCode::UNAUTHORIZED,
            &b,
            "https://login/x/oauth2/v2.0/token?q=1",
        );
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(e.to_string().contains("not its Secret ID"), "{e}");
        assert!(!e.to_string().contains("q=1"));

        let app = br#"{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"c"}"#;
        let b = parse_error_body(app);
        assert_eq!(
            b.description.as_deref(),
            Some("Unable to load the proper Managed Identity.")
        );

        let nested = br#"{"error":{"code":"ManagedIdentityNotFound","message":"nope"}}"#;
        let b = parse_error_body(nested);
        assert_eq!(b.error.as_deref(), Some("ManagedIdentityNotFound"));

        let html = b"<html>bad gateway eyJa.b.c</html>";
        let b = parse_error_body(html);
        assert_eq!(
            b.description.as_deref(),
            Some("<html>bad gateway <token redacted>")
        );

        let from_text = br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        assert_eq!(parse_error_body(from_text).aadsts, Some(90002));
    }

    #[test]
    fn retry_delays_are_bounded() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(350));
        for retry in 1..=10 {
            let d = p.delay(retry, None);
            assert!(d <= Duration::from_millis(350), "{d:?}");
        }
        let d1 = p.delay(1, None);
        assert!(
            d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
            "{d1:?}"
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(100))),
            Duration::from_millis(350)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(10))),
            Duration::from_millis(10)
        );
    }
}
