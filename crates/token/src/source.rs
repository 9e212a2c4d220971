//! The [`TokenSource`] trait every credential, chain and cache implements, plus two trivial
//! sources: a fixed token and a closure.
//!
//! A source fetches; it does not cache. Wrap it in a [`TokenCache`](crate::TokenCache) for that.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;

use crate::error::{Error, ErrorKind};
use crate::secret::AccessToken;

/// Something that can get an access token for a scope.
///
/// Implementations must be cheap to call concurrently and must never put a token or a secret
/// in an error.
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A short name for errors and metrics, e.g. `ManagedIdentityCredential`.
    fn name(&self) -> &str;

    /// Gets a token for one scope, e.g. [`OSSRDBMS_SCOPE`](crate::OSSRDBMS_SCOPE).
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>>;
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        (**self).get_token(scope)
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        (**self).get_token(scope)
    }
}

/// A fixed token, for tests and for applications that obtain tokens themselves.
///
/// Returns the token for every scope until it expires, then an [`ErrorKind::Expired`] error.
#[derive(Clone, Debug)]
pub struct StaticToken {
    token: AccessToken,
}

impl StaticToken {
    /// Serves `token`.
    pub fn new(token: AccessToken) -> Self {
        StaticToken { token }
    }
}

impl TokenSource for StaticToken {
    fn name(&self) -> &str {
        "StaticToken"
    }

    fn get_token<'a>(&'a self, _scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        let result = if self.token.expires_on() <= SystemTime::now() {
            Err(Error::new(
                ErrorKind::Expired,
                format!(
                    "the fixed token expired at {}; supply a new one",
                    crate::time_fmt::rfc3339(self.token.expires_on())
                ),
            )
            .with_credential("StaticToken"))
        } else {
            Ok(self.token.clone())
        };
        Box::pin(std::future::ready(result))
    }
}

/// A source backed by an async closure taking the scope, for bring-your-own token logic.
pub struct FnSource<F> {
    name: String,
    f: F,
}

/// Makes a [`TokenSource`] from a closure `Fn(String) -> impl Future<Output = Result<AccessToken, Error>>`.
pub fn from_fn<F, Fut>(name: impl Into<String>, f: F) -> FnSource<F>
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
{
    FnSource {
        name: name.into(),
        f,
    }
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSource")
            .field("name", &self.name)
            .finish()
    }
}

impl<F, Fut> TokenSource for FnSource<F>
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin((self.f)(scope.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn static_token_serves_until_expiry() {
        let good = StaticToken::new(AccessToken::new(
            "t",
            SystemTime::now() + Duration::from_secs(60),
        ));
        assert_eq!(good.get_token("s").await.unwrap().secret(), "t");
        let old = StaticToken::new(AccessToken::new("t", SystemTime::UNIX_EPOCH));
        let e = old.get_token("s").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Expired);
        assert_eq!(e.credential(), Some("StaticToken"));
    }

    #[tokio::test]
    async fn fn_source_passes_the_scope() {
        let src = from_fn("mine", |scope: String| async move {
            Ok(AccessToken::new(
                scope,
                SystemTime::now() + Duration::from_secs(60),
            ))
        });
        assert_eq!(src.name(), "mine");
        assert_eq!(src.get_token("abc").await.unwrap().secret(), "abc");
    }
}
