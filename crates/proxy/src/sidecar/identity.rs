//! Who the sidecar logs in as: the PostgreSQL role for a connection (config, the app's `user`,
//! or the token's claims) and the client-safe text for a token that could not be obtained. It
//! reads claims without verifying them (only the server can) and never prints a token.

use pgentra_token::{Claims, ErrorKind};
use pgentra_wire::backend::ErrorFields;
use pgentra_wire::sqlstate;

/// The user name that asks the sidecar to derive the role from the token.
pub const FROM_TOKEN: &str = "*";

/// The role to send upstream. Precedence: the instance's configured `user`, else the app's
/// `user`; either being `*` (or the app's being empty) means the principal name in the token.
pub fn choose_role<'a>(configured: Option<&'a str>, from_app: Option<&'a str>) -> RoleChoice<'a> {
    match configured.or(from_app) {
        Some(name) if name != FROM_TOKEN && !name.is_empty() => RoleChoice::Named(name),
        _ => RoleChoice::FromToken,
    }
}

/// Outcome of [`choose_role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChoice<'a> {
    /// This exact role.
    Named(&'a str),
    /// The token's principal name ([`role_from_claims`]).
    FromToken,
}

/// The role name Azure Database for PostgreSQL gives the token's principal, as far as the
/// claims tell: a managed identity's resource name (last segment of `xms_mirid`: the
/// user-assigned identity's name, or the App Service / VM name for a system-assigned one, the
/// names Azure's docs pass to `pgaadauth_create_principal`), else the user's `upn` /
/// `preferred_username` / `unique_name`, else the application id.
pub fn role_from_claims(claims: &Claims) -> Option<String> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    claims
        .xms_mirid
        .as_deref()
        .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| nonempty(&claims.upn))
        .or_else(|| nonempty(&claims.preferred_username))
        .or_else(|| nonempty(&claims.unique_name))
        .or_else(|| nonempty(&claims.appid))
        .or_else(|| nonempty(&claims.azp))
}

/// A short description of the token's principal for logs and error details (never the token).
pub fn describe_principal(claims: &Claims) -> String {
    let name = claims
        .principal_name()
        .map(str::to_owned)
        .or_else(|| role_from_claims(claims))
        .unwrap_or_else(|| "an unnamed principal".to_owned());
    match &claims.oid {
        Some(oid) => format!("{name} (oid {oid})"),
        None => name,
    }
}

/// What the app is told when no token could be obtained. Network-type failures (the identity
/// endpoint is down, slow or throttling) are connection errors (08001) the app may retry;
/// refusals and configuration problems are authorization errors (28000).
pub fn token_error_fields(err: &pgentra_token::Error) -> ErrorFields {
    let retryable = err.is_retryable()
        || matches!(
            err.kind(),
            ErrorKind::Unreachable
                | ErrorKind::Timeout
                | ErrorKind::Throttled
                | ErrorKind::Upstream
        );
    let code = if retryable {
        sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
    } else {
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION
    };
    let mut f = ErrorFields::fatal(
        code,
        format!("pgentra proxy could not get a Microsoft Entra access token: {err}"),
    );
    f.hint = Some(if retryable {
        "The identity endpoint did not answer; the proxy keeps retrying. Try again shortly."
            .to_owned()
    } else {
        "Check the proxy's identity settings (managed identity, AZURE_* variables).".to_owned()
    });
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(payload: serde_json::Value) -> Claims {
        use base64::Engine as _;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = format!(
            "{}.{}.c2ln",
            e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(payload.to_string())
        );
        Claims::decode(&jwt).unwrap()
    }

    #[test]
    fn role_precedence_is_config_then_app_then_token() {
        use RoleChoice::*;
        let table = [
            (Some("cfg"), Some("app"), Named("cfg")),
            (None, Some("app"), Named("app")),
            (Some("*"), Some("app"), FromToken),
            (None, Some("*"), FromToken),
            (None, Some(""), FromToken),
            (None, None, FromToken),
        ];
        for (cfg, app, want) in table {
            assert_eq!(choose_role(cfg, app), want, "{cfg:?} {app:?}");
        }
    }

    #[test]
    fn role_from_claims_prefers_the_managed_identity_name_then_upn_then_appid() {
        let table = [
            (
                serde_json::json!({"xms_mirid": "/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-uami", "appid": "a"}),
                Some("my-uami"),
            ),
            (
                serde_json::json!({"xms_mirid": "/subscriptions/s/resourcegroups/g/providers/Microsoft.Web/sites/my-app", "appid": "a"}),
                Some("my-app"),
            ),
            (
                serde_json::json!({"upn": "alice@contoso.com", "appid": "a"}),
                Some("alice@contoso.com"),
            ),
            (
                serde_json::json!({"preferred_username": "bob@contoso.com"}),
                Some("bob@contoso.com"),
            ),
            (
                serde_json::json!({"unique_name": "guest#x"}),
                Some("guest#x"),
            ),
            (
                serde_json::json!({"appid": "app-1", "upn": " "}),
                Some("app-1"),
            ),
            (serde_json::json!({"azp": "app-2"}), Some("app-2")),
            (serde_json::json!({"xms_mirid": "", "oid": "o"}), None),
        ];
        for (payload, want) in table {
            assert_eq!(
                role_from_claims(&claims(payload.clone())).as_deref(),
                want,
                "{payload}"
            );
        }
    }

    #[test]
    fn token_errors_map_to_retryable_connection_or_authorization_codes() {
        let down = pgentra_token::Error::other(ErrorKind::Unreachable, "connection refused");
        let f = token_error_fields(&down);
        assert_eq!(f.code, "08001");
        assert!(f.message.contains("connection refused"), "{}", f.message);
        let refused = pgentra_token::Error::other(ErrorKind::Authentication, "AADSTS7000215");
        let f = token_error_fields(&refused);
        assert_eq!(f.code, "28000");
        assert!(f.message.contains("AADSTS7000215"));
    }

    #[test]
    fn principal_description_names_the_principal_and_oid() {
        let c = claims(serde_json::json!({"upn": "alice@contoso.com", "oid": "o-1", "scp": "x"}));
        assert_eq!(describe_principal(&c), "alice@contoso.com (oid o-1)");
    }
}
