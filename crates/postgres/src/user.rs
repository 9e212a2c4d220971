//! The PostgreSQL role name to log in as when the settings name none: derived from the access
//! token's claims, the way Microsoft's PostgreSQL auth libraries do. Decodes claims without
//! verifying them (only the server can); never logs the token.

use pgentra_token::{AccessToken, Claims};

/// The ARM path segment of user-assigned identities in an `xms_mirid` claim.
const UAMI_SEGMENT: &str = "providers/microsoft.managedidentity/userassignedidentities";

/// The role name a token implies, or `None` when it carries no usable claim.
///
/// Order, following `azure-postgresql-auth` (Python) and `Microsoft.Azure.PostgreSQL.Auth`
/// (.NET): the name of a user-assigned managed identity (last segment of `xms_mirid`), then
/// `upn`, `preferred_username`, `unique_name` for users, then `appid`/`azp` for applications
/// (Node's `@azure/postgresql-auth` falls back to `appid`).
pub fn user_name_from_token(token: &AccessToken) -> Option<String> {
    let claims = token.claims().ok()?;
    user_name_from_claims(&claims)
}

/// [`user_name_from_token`] over decoded claims.
pub fn user_name_from_claims(claims: &Claims) -> Option<String> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    claims
        .xms_mirid
        .as_deref()
        .and_then(uami_name)
        .or_else(|| nonempty(&claims.upn))
        .or_else(|| nonempty(&claims.preferred_username))
        .or_else(|| nonempty(&claims.unique_name))
        .or_else(|| nonempty(&claims.appid))
        .or_else(|| nonempty(&claims.azp))
}

/// `/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>` → name.
/// A system-assigned identity's `xms_mirid` is its resource's id and yields `None`.
fn uami_name(mirid: &str) -> Option<String> {
    let (path, name) = mirid.rsplit_once('/')?;
    if name.is_empty() || !path.to_ascii_lowercase().ends_with(UAMI_SEGMENT) {
        return None;
    }
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::time::{Duration, SystemTime};

    fn token(payload: serde_json::Value) -> AccessToken {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!(
            "{}.{}.c2ln",
            e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(payload.to_string())
        );
        AccessToken::new(jwt, SystemTime::now() + Duration::from_secs(3600))
    }

    #[test]
    fn claim_precedence() {
        use serde_json::json;
        let cases = [
            (
                json!({"xms_mirid": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-uami", "appid": "a"}),
                Some("my-uami"),
            ),
            (
                json!({"xms_mirid": "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Web/sites/app", "appid": "a"}),
                Some("a"),
            ),
            (
                json!({"upn": "alice@contoso.com", "preferred_username": "p", "appid": "a"}),
                Some("alice@contoso.com"),
            ),
            (
                json!({"preferred_username": "p", "unique_name": "u"}),
                Some("p"),
            ),
            (
                json!({"unique_name": "live.com#bob@example.com"}),
                Some("live.com#bob@example.com"),
            ),
            (json!({"upn": "", "appid": "a"}), Some("a")),
            (json!({"azp": "z"}), Some("z")),
            (json!({"oid": "o"}), None),
            (
                json!({"xms_mirid": "/subscriptions/s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"}),
                None,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(
                user_name_from_token(&token(payload.clone())).as_deref(),
                want,
                "{payload}"
            );
        }
    }

    #[test]
    fn non_jwt_tokens_yield_none() {
        let t = AccessToken::new("not-a-jwt", SystemTime::now() + Duration::from_secs(60));
        assert_eq!(user_name_from_token(&t), None);
    }
}
