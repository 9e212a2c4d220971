//! The crate's one error type: which credential failed, why, and whether retrying can help.
//!
//! Errors never carry a token or a secret: messages are built from status codes, error codes,
//! identity-provider descriptions and URLs without query strings, never from a success body.

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarsely; pick behaviour on this, show the error's `Display` to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credential is not set up in this environment (a variable is missing, `az` is not
    /// installed, no identity endpoint answers). A chain skips such a credential.
    Unavailable,
    /// The configuration is invalid: a malformed URL, an `http://` authority, an unreadable or
    /// malformed certificate file, an unknown `AZURE_TOKEN_CREDENTIALS` value.
    Config,
    /// The endpoint could not be reached: connection refused, DNS or TLS failure.
    Unreachable,
    /// The endpoint (or the Azure CLI) did not answer in time.
    Timeout,
    /// The identity provider answered and refused: wrong secret, unknown identity, an AADSTS
    /// error, a rejected identity header, `az` reporting a failure.
    Authentication,
    /// The identity provider is throttling requests (HTTP 429).
    Throttled,
    /// The identity provider failed (HTTP 5xx, or 404/410 while IMDS is updating).
    Upstream,
    /// The answer could not be understood (not JSON, no `access_token`, no expiry).
    InvalidResponse,
    /// The token is expired, or expires within the cache's safety margin.
    Expired,
    /// The text is not a decodable JWT.
    InvalidToken,
    /// Every credential of a chain failed; see [`Error::causes`].
    ChainExhausted,
}

impl ErrorKind {
    fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable
                | ErrorKind::Timeout
                | ErrorKind::Throttled
                | ErrorKind::Upstream
        )
    }
}

/// An error from a credential, a chain or the cache.
///
/// Cheap to clone, so a single failed fetch can be handed to every caller that waited on it.
/// `Display` is written for people: it names the credential and says what to do.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    credential: Option<String>,
    message: String,
    aadsts: Option<u32>,
    status: Option<u16>,
    causes: Vec<Error>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                credential: None,
                message: message.into(),
                aadsts: None,
                status: None,
                causes: Vec::new(),
                source: None,
            }),
        }
    }

    /// Modifies the inner value; only used while an error is being built (refcount 1).
    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => {
                let old = &*self.inner;
                let mut copy = Inner {
                    kind: old.kind,
                    credential: old.credential.clone(),
                    message: old.message.clone(),
                    aadsts: old.aadsts,
                    status: old.status,
                    causes: old.causes.clone(),
                    source: None,
                };
                f(&mut copy);
                self.inner = Arc::new(copy);
            }
        }
        self
    }

    pub(crate) fn with_credential(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(|i| i.credential = Some(name))
    }

    pub(crate) fn with_status(self, status: u16) -> Self {
        self.edit(|i| i.status = Some(status))
    }

    pub(crate) fn with_aadsts(self, code: Option<u32>) -> Self {
        self.edit(|i| i.aadsts = code)
    }

    pub(crate) fn with_source(
        self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.edit(|i| i.source = Some(Box::new(source)))
    }

    pub(crate) fn with_causes(self, causes: Vec<Error>) -> Self {
        self.edit(|i| i.causes = causes)
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A "this credential is not set up here" error, for custom sources that want a chain to
    /// skip them.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unavailable, message)
    }

    /// An error of any kind, for custom [`TokenSource`](crate::TokenSource) implementations.
    pub fn other(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::new(kind, message)
    }

    /// The coarse kind.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// True when trying again later can succeed without a configuration change (network
    /// trouble, throttling, 5xx, timeouts). For a chain: when the credential that stopped it
    /// failed in a retryable way.
    pub fn is_retryable(&self) -> bool {
        if self.inner.kind == ErrorKind::ChainExhausted {
            return self
                .inner
                .causes
                .iter()
                .any(|c| c.kind() != ErrorKind::Unavailable && c.is_retryable());
        }
        self.inner.kind.retryable()
    }

    /// The credential that failed (`ManagedIdentityCredential`, `AzureCliCredential`, ...).
    pub fn credential(&self) -> Option<&str> {
        self.inner.credential.as_deref()
    }

    /// The AADSTS error code the identity provider returned, if any.
    pub fn aadsts(&self) -> Option<u32> {
        self.inner.aadsts
    }

    /// The HTTP status of the failing response, if there was one.
    pub fn http_status(&self) -> Option<u16> {
        self.inner.status
    }

    /// For a chain: each credential's own error, in chain order.
    pub fn causes(&self) -> &[Error] {
        &self.inner.causes
    }

    /// The message without the credential prefix.
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.inner.credential {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.inner.message)?;
        for cause in &self.inner.causes {
            write!(f, "\n  - {cause}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("credential", &self.inner.credential)
            .field("message", &self.inner.message)
            .field("aadsts", &self.inner.aadsts)
            .field("status", &self.inner.status)
            .field("causes", &self.inner.causes)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What an AADSTS code means and what to do about it, in words a user can act on.
///
/// Covers the codes a non-interactive database client meets; `None` for others.
pub fn aadsts_meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        7000215 | 70002 => {
            "the client secret is wrong: use the secret's Value (not its Secret ID) from the app registration's Certificates & secrets page"
        }
        7000222 => "the client secret has expired: create a new secret for the app registration",
        700016 => {
            "no application with this client id exists in this tenant: check AZURE_CLIENT_ID and AZURE_TENANT_ID (and the cloud)"
        }
        90002 => {
            "the tenant does not exist: check AZURE_TENANT_ID and that you use the right cloud"
        }
        9001023 => {
            "client credentials need a concrete tenant: set the tenant id instead of 'common' or 'consumers'"
        }
        70011 => {
            "the scope is invalid: for PostgreSQL use https://ossrdbms-aad.database.windows.net/.default"
        }
        500011 | 50001 => {
            "the resource (audience) is unknown in this tenant: check the scope and the cloud (public, China, US Government)"
        }
        900144 | 7000218 => "the request lacked a required parameter (client secret or assertion)",
        700024 => "the client assertion is outside its validity window: check this machine's clock",
        700027 => {
            "the client assertion's signature did not verify: the certificate is not registered on the app, or the key does not match it"
        }
        700021 | 700023 => {
            "the client assertion is invalid: check the certificate registered on the app"
        }
        70021 | 700213 | 700211 | 700212 => {
            "no federated identity credential matches the presented token: compare the issuer, subject (system:serviceaccount:<namespace>:<name>) and audience (api://AzureADTokenExchange) with the federated credential"
        }
        700222 => {
            "the federated token is expired: the projected service-account token file is stale"
        }
        50049 => "the authority host is unknown: check AZURE_AUTHORITY_HOST",
        53003 => "access was blocked by a Conditional Access policy",
        50126 => "invalid user name or password",
        50076 | 50079 => {
            "multi-factor authentication is required: sign in interactively (az login)"
        }
        65001 => "the application lacks consent for the requested resource",
        50034 => "the user does not exist in this tenant",
        50053 => "the account is locked",
        50057 => "the account is disabled",
        7000112 => "the application is disabled",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_credential_and_lists_causes() {
        let a = Error::unavailable("AZURE_CLIENT_ID is not set")
            .with_credential("EnvironmentCredential");
        let b = Error::new(
            ErrorKind::Unreachable,
            "http://127.0.0.1:1/x is unreachable",
        )
        .with_credential("ManagedIdentityCredential");
        let chain = Error::new(ErrorKind::ChainExhausted, "no credential could get a token")
            .with_credential("DefaultCredential")
            .with_causes(vec![a.clone(), b]);
        let text = chain.to_string();
        assert!(
            text.starts_with("DefaultCredential: no credential"),
            "{text}"
        );
        assert!(
            text.contains("\n  - EnvironmentCredential: AZURE_CLIENT_ID is not set"),
            "{text}"
        );
        assert!(chain.is_retryable(), "unreachable cause is retryable");
        assert!(!a.is_retryable());
        assert_eq!(chain.causes().len(), 2);
    }

    #[test]
    fn edit_on_shared_error_copies() {
        let a = Error::config("x");
        let b = a.clone().with_status(400);
        assert_eq!(a.http_status(), None);
        assert_eq!(b.http_status(), Some(400));
    }

    #[test]
    fn aadsts_meanings_cover_common_codes() {
        for code in [7000215, 700016, 90002, 700024, 700027, 70021, 500011] {
            assert!(aadsts_meaning(code).is_some(), "{code}");
        }
        assert!(aadsts_meaning(1).is_none());
    }
}
