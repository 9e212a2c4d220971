//! Interop with the official Azure SDK for Rust (feature `azure-sdk`): any [`TokenSource`] as an
//! `azure_core::credentials::TokenCredential`, and any `TokenCredential` as a [`TokenSource`].
//!
//! Adapters only: no caching or retrying is added here (wrap in a [`TokenCache`](crate::TokenCache)).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::{self as az, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind as AzKind;
use futures::future::BoxFuture;

use crate::error::{Error, ErrorKind};
use crate::secret::AccessToken;
use crate::source::TokenSource;

/// Makes one of our sources usable wherever the Azure SDK wants a `TokenCredential`.
#[derive(Debug)]
pub struct AsTokenCredential<S> {
    source: S,
}

impl<S: TokenSource + 'static> AsTokenCredential<S> {
    /// Wraps `source`; the SDK takes credentials as `Arc<dyn TokenCredential>`.
    pub fn new(source: S) -> Arc<Self> {
        Arc::new(AsTokenCredential { source })
    }

    /// The wrapped source.
    pub fn source(&self) -> &S {
        &self.source
    }
}

#[async_trait::async_trait]
impl<S: TokenSource + 'static> TokenCredential for AsTokenCredential<S> {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<az::AccessToken> {
        let [scope] = scopes else {
            return Err(azure_core::Error::with_message(
                AzKind::Credential,
                format!(
                    "{}: exactly one scope is supported, got {}",
                    self.source.name(),
                    scopes.len()
                ),
            ));
        };
        let token = self
            .source
            .get_token(scope)
            .await
            .map_err(|e| azure_core::Error::new(AzKind::Credential, e))?;
        Ok(az::AccessToken::new(
            az::Secret::new(token.secret().to_owned()),
            azure_core::time::OffsetDateTime::from(token.expires_on()),
        ))
    }
}

/// Makes any Azure SDK `TokenCredential` (e.g. `azure_identity::ManagedIdentityCredential`)
/// usable as our source, so it can sit in a chain or behind a [`TokenCache`](crate::TokenCache).
pub struct FromTokenCredential {
    inner: Arc<dyn TokenCredential>,
    name: String,
}

impl FromTokenCredential {
    /// Wraps `credential`; `name` appears in errors and metrics.
    pub fn new(name: impl Into<String>, credential: Arc<dyn TokenCredential>) -> Self {
        FromTokenCredential {
            inner: credential,
            name: name.into(),
        }
    }
}

impl fmt::Debug for FromTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromTokenCredential")
            .field("name", &self.name)
            .field("inner", &self.inner)
            .finish()
    }
}

fn map_error(e: &azure_core::Error) -> ErrorKind {
    match e.kind() {
        AzKind::Connection | AzKind::Io => ErrorKind::Unreachable,
        AzKind::DataConversion => ErrorKind::InvalidResponse,
        AzKind::HttpResponse { status, .. } => match u16::from(*status) {
            429 => ErrorKind::Throttled,
            500..=599 => ErrorKind::Upstream,
            _ => ErrorKind::Authentication,
        },
        _ => ErrorKind::Authentication,
    }
}

impl TokenSource for FromTokenCredential {
    fn name(&self) -> &str {
        &self.name
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let t = self.inner.get_token(&[scope], None).await.map_err(|e| {
                Error::other(
                    map_error(&e),
                    format!("the Azure SDK credential failed: {e}"),
                )
                .with_credential(self.name.clone())
            })?;
            Ok(AccessToken::new(
                t.token.secret().to_owned(),
                SystemTime::from(t.expires_on),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{StaticToken, from_fn};
    use std::time::Duration;

    #[tokio::test]
    async fn round_trip_through_the_sdk_trait() {
        let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let ours = StaticToken::new(AccessToken::new("tok", exp));
        let sdk: Arc<dyn TokenCredential> = AsTokenCredential::new(ours);
        let t = sdk.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(t.token.secret(), "tok");
        assert_eq!(SystemTime::from(t.expires_on), exp);
        let err = sdk.get_token(&["a", "b"], None).await.unwrap_err();
        assert!(err.to_string().contains("exactly one scope"), "{err}");

        let back = FromTokenCredential::new("sdk", sdk);
        let t = back.get_token("s/.default").await.unwrap();
        assert_eq!(t.secret(), "tok");
        assert_eq!(t.expires_on(), exp);
    }

    #[tokio::test]
    async fn errors_cross_the_boundary_without_tokens() {
        let failing = from_fn("failing", |_s: String| async {
            Err(Error::other(ErrorKind::Throttled, "slow down"))
        });
        let sdk: Arc<dyn TokenCredential> = AsTokenCredential::new(failing);
        let back = FromTokenCredential::new("sdk", sdk);
        let e = back.get_token("s").await.unwrap_err();
        assert_eq!(e.credential(), Some("sdk"));
        assert!(e.to_string().contains("slow down"), "{e}");
    }
}
