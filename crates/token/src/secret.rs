//! Secret strings and access tokens: values whose `Debug` and `Display` never show the text.
//!
//! Nothing here does I/O. The only way to read a value is an explicit [`Secret::expose`] or
//! [`AccessToken::secret`] call, so a stray `{:?}` in a log line cannot leak a credential.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::claims::Claims;
use crate::error::Error;

/// A secret string (client secret, identity header, access token text).
///
/// Cloning is cheap (the text is shared). `Debug` prints `Secret(<redacted>)` and `Display`
/// prints `<redacted>`.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret text. Call this only where the value is sent to its one legitimate receiver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// An access token with its expiry.
///
/// Cloning is cheap: the token text is shared, so the cache can hand out copies on its hot path.
#[derive(Clone)]
pub struct AccessToken {
    token: Secret,
    expires_on: SystemTime,
    refresh_on: Option<SystemTime>,
}

impl AccessToken {
    /// A token whose text is `token`, valid until `expires_on`.
    pub fn new(token: impl Into<Secret>, expires_on: SystemTime) -> Self {
        AccessToken {
            token: token.into(),
            expires_on,
            refresh_on: None,
        }
    }

    /// Records the identity provider's own refresh hint (`refresh_in`); the cache refreshes no
    /// later than this.
    pub fn with_refresh_on(mut self, refresh_on: SystemTime) -> Self {
        self.refresh_on = Some(refresh_on);
        self
    }

    /// The token text, e.g. to send as the PostgreSQL password.
    pub fn secret(&self) -> &str {
        self.token.expose()
    }

    /// The token as a [`Secret`].
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// When the token stops being accepted.
    pub fn expires_on(&self) -> SystemTime {
        self.expires_on
    }

    /// The identity provider's refresh hint, when it sent one.
    pub fn refresh_on(&self) -> Option<SystemTime> {
        self.refresh_on
    }

    /// Time left until expiry as seen at `now` (zero once expired).
    pub fn expires_in(&self, now: SystemTime) -> Duration {
        self.expires_on
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// True when the token is expired at `now`, or expires within `margin` of it.
    pub fn expires_within(&self, now: SystemTime, margin: Duration) -> bool {
        match now.checked_add(margin) {
            Some(limit) => self.expires_on <= limit,
            None => true,
        }
    }

    /// Decodes the token's claims WITHOUT verifying its signature, for diagnostics only.
    pub fn claims(&self) -> Result<Claims, Error> {
        Claims::decode(self.secret())
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &self.token)
            .field("expires_on", &crate::time_fmt::rfc3339(self.expires_on))
            .field("refresh_on", &self.refresh_on.map(crate::time_fmt::rfc3339))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2-very-secret");
        let t = AccessToken::new("eyJhbGciOi.payload.sig", SystemTime::UNIX_EPOCH);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("eyJ"), "{dbg}");
        assert!(dbg.contains("1970-01-01T00:00:00Z"), "{dbg}");
    }

    #[test]
    fn expiry_arithmetic() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let t = AccessToken::new("x", now + Duration::from_secs(60));
        assert_eq!(t.expires_in(now), Duration::from_secs(60));
        assert!(!t.expires_within(now, Duration::from_secs(59)));
        assert!(t.expires_within(now, Duration::from_secs(60)));
        assert_eq!(t.expires_in(now + Duration::from_secs(120)), Duration::ZERO);
    }
}
