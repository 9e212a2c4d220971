//! Decoding of a JWT's claims WITHOUT signature verification, for diagnostics and user-name hints.
//!
//! Never use these claims to make an authorization decision: nothing here checks a signature,
//! an issuer or an expiry. That is the gateway's job, with real keys.

use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};

/// Tokens above this size are rejected before decoding (Entra tokens are at most ~8 KB).
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The claims of an Entra access token that matter for databases, decoded without verification.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Claims {
    /// Object id of the principal (what PostgreSQL's security label matches).
    pub oid: Option<String>,
    /// Application (client) id, for app tokens (v1).
    pub appid: Option<String>,
    /// Authorized party (v2 equivalent of `appid`).
    pub azp: Option<String>,
    /// User principal name, for user tokens.
    pub upn: Option<String>,
    /// Preferred user name (v2 user tokens).
    pub preferred_username: Option<String>,
    /// `unique_name` (v1 user tokens, guests).
    pub unique_name: Option<String>,
    /// Audience; the first one when the claim is an array.
    pub aud: Option<String>,
    /// Issuer.
    pub iss: Option<String>,
    /// Tenant id.
    pub tid: Option<String>,
    /// Subject.
    pub sub: Option<String>,
    /// `"app"` for app-only tokens, `"user"` for delegated ones (optional claim).
    pub idtyp: Option<String>,
    /// Delegated scopes, space separated.
    pub scp: Option<String>,
    /// Managed identity's ARM resource id.
    pub xms_mirid: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: Option<i64>,
    /// Not-before, seconds since the epoch.
    pub nbf: Option<i64>,
    /// Issued-at, seconds since the epoch.
    pub iat: Option<i64>,
    /// Group object ids, when the token carries them.
    pub groups: Vec<String>,
    /// Every claim, as decoded.
    pub raw: Map<String, Value>,
}

impl Claims {
    /// Decodes the payload of a compact JWS (`header.payload.signature`) without verifying it.
    pub fn decode(token: &str) -> Result<Claims, Error> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid(format!(
                "the token is {} bytes long, more than the {MAX_TOKEN_LEN} bytes a JWT can sensibly be",
                token.len()
            )));
        }
        let mut parts = token.split('.');
        let (Some(_header), Some(payload), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(
                "the token is not a JWT (expected three dot-separated parts)".into(),
            ));
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| invalid("the token's payload is not base64url".into()))?;
        let raw: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|_| invalid("the token's payload is not a JSON object".into()))?;
        Ok(Claims::from_map(raw))
    }

    fn from_map(raw: Map<String, Value>) -> Claims {
        let s = |k: &str| match raw.get(k) {
            Some(Value::String(v)) => Some(v.clone()),
            _ => None,
        };
        let n = |k: &str| match raw.get(k) {
            Some(Value::Number(v)) => v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)),
            Some(Value::String(v)) => v.trim().parse().ok(),
            _ => None,
        };
        let aud = match raw.get("aud") {
            Some(Value::String(v)) => Some(v.clone()),
            Some(Value::Array(a)) => a.iter().find_map(|v| v.as_str().map(str::to_owned)),
            _ => None,
        };
        let groups = match raw.get("groups") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Claims {
            oid: s("oid"),
            appid: s("appid"),
            azp: s("azp"),
            upn: s("upn"),
            preferred_username: s("preferred_username"),
            unique_name: s("unique_name"),
            aud,
            iss: s("iss"),
            tid: s("tid"),
            sub: s("sub"),
            idtyp: s("idtyp"),
            scp: s("scp"),
            xms_mirid: s("xms_mirid"),
            exp: n("exp"),
            nbf: n("nbf"),
            iat: n("iat"),
            groups,
            raw,
        }
    }

    /// The expiry as an instant.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.exp.map(crate::time_fmt::from_epoch)
    }

    /// True for an app-only token (service principal or managed identity): `idtyp` is `app`,
    /// or the token names no user and carries no delegated scope.
    pub fn is_app(&self) -> bool {
        match self.idtyp.as_deref() {
            Some(t) => t.eq_ignore_ascii_case("app"),
            None => {
                self.scp.is_none()
                    && self.upn.is_none()
                    && self.preferred_username.is_none()
                    && self.unique_name.is_none()
            }
        }
    }

    /// The user's name for user tokens (`upn`, then `preferred_username`, then `unique_name`),
    /// the application id for app tokens (`appid`, then `azp`).
    pub fn principal_name(&self) -> Option<&str> {
        let user = self
            .upn
            .as_deref()
            .or(self.preferred_username.as_deref())
            .or(self.unique_name.as_deref());
        let app = self.appid.as_deref().or(self.azp.as_deref());
        if self.is_app() {
            app.or(user)
        } else {
            user.or(app)
        }
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidToken, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn decodes_app_token() {
        let t = jwt(
            r#"{"aud":"https://ossrdbms-aad.database.windows.net","iss":"https://sts.windows.net/t/","oid":"o1","appid":"a1","tid":"t","exp":1700000000,"idtyp":"app"}"#,
        );
        let c = Claims::decode(&t).unwrap();
        assert_eq!(c.oid.as_deref(), Some("o1"));
        assert_eq!(
            c.aud.as_deref(),
            Some("https://ossrdbms-aad.database.windows.net")
        );
        assert_eq!(c.exp, Some(1_700_000_000));
        assert!(c.is_app());
        assert_eq!(c.principal_name(), Some("a1"));
    }

    #[test]
    fn decodes_user_token_with_array_audience() {
        let t = jwt(
            r#"{"aud":["x","y"],"upn":"alice@contoso.com","scp":"user_impersonation","groups":["g1"],"exp":"12"}"#,
        );
        let c = Claims::decode(&t).unwrap();
        assert_eq!(c.aud.as_deref(), Some("x"));
        assert!(!c.is_app());
        assert_eq!(c.principal_name(), Some("alice@contoso.com"));
        assert_eq!(c.groups, vec!["g1".to_string()]);
        assert_eq!(c.exp, Some(12));
    }

    #[test]
    fn rejects_garbage_with_specific_errors() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &jwt("[1,2]"),
            &"x".repeat(70_000),
        ] {
            let e = Claims::decode(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidToken, "{bad:.20}");
        }
    }
}
