//! Why an Entra login was refused: one variant per cause, each with the exact text Azure Database
//! for PostgreSQL sends (client side) and a reason for logs and metrics. Never holds a token.

use pgentra_wire::backend::ErrorFields;
use pgentra_wire::sqlstate::{INVALID_AUTHORIZATION_SPECIFICATION, INVALID_PASSWORD};

use crate::error::SessionError;

/// A refused login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Not a compact JWS, or unparsable header/claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` other than RS256 (including `none` and HS*).
    #[error("algorithm {0:?} not allowed")]
    Algorithm(String),
    /// No key with this `kid` in the issuer's key set, even after a refresh.
    #[error("unknown signing key id {0:?}")]
    UnknownKid(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The signing keys could not be fetched at all.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// `aud` is not an accepted audience.
    #[error("audience {0:?} not accepted")]
    Audience(String),
    /// `exp` is past (beyond the leeway) or missing.
    #[error("token expired at {0}")]
    Expired(i64),
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid before {0}")]
    NotYetValid(i64),
    /// `iss` is not an accepted issuer.
    #[error("issuer {0:?} not accepted")]
    Issuer(String),
    /// `tid` is not a configured tenant.
    #[error("tenant {0:?} not accepted")]
    Tenant(String),
    /// No `oid` claim.
    #[error("token has no oid claim")]
    MissingOid,
    /// Service role, app token whose `oid` and `appid` both differ from the registered object id.
    #[error("service principal oid mismatch")]
    ServiceOidMismatch {
        /// Registered object id.
        label_oid: String,
        /// Token `appid`.
        appid: String,
        /// Token `oid`.
        oid: String,
    },
    /// Service role, but a user (delegated) token.
    #[error("user token presented for a service role")]
    UserTokenForServiceRole,
    /// User role, but an app-only token.
    #[error("app token presented for a user role")]
    AppTokenForUserRole,
    /// User role, token `oid` differs from the registered object id.
    #[error("user oid mismatch")]
    UserOidMismatch,
    /// Group role, token `groups` lacks the group's object id.
    #[error("token is not a member of the role's group")]
    NotGroupMember,
    /// The role requires MFA and `amr` lacks `mfa`.
    #[error("role requires MFA but the token has no mfa in amr")]
    MfaRequired,
    /// The role is not registered and only Entra logins are allowed, or a JWT was presented
    /// for a non-Entra role.
    #[error("role is not an Entra principal")]
    NotEntraRole,
    /// The password is not UTF-8 or empty where a token is expected.
    #[error("empty or non-text password")]
    BadPassword,
}

const INVALID_FORMAT: &str = "The access token has invalid format. Please ensure the token is passed exactly as returned by the authentication endpoint and retry.";

impl AuthFailure {
    /// The `ErrorResponse` a client gets for role `role`.
    pub fn to_client(&self, role: &str) -> ErrorFields {
        use AuthFailure::*;
        let auth_spec = |m: String| ErrorFields::fatal(INVALID_AUTHORIZATION_SPECIFICATION, m);
        let password_failed = || {
            ErrorFields::fatal(
                INVALID_PASSWORD,
                format!("password authentication failed for user \"{role}\""),
            )
        };
        match self {
            Malformed(_) | Algorithm(_) | UnknownKid(_) | BadSignature | NotYetValid(_) => {
                auth_spec(INVALID_FORMAT.to_owned())
            }
            KeysUnavailable(_) => auth_spec(
                "The access token could not be validated because the signing keys of the identity provider are unavailable. Please retry later.".to_owned(),
            ),
            Audience(_) => auth_spec(format!(
                "The access token does not have a valid audience claim. Please acquire a new token for the resource \"{}\".",
                crate::config::OSSRDBMS_AUDIENCE
            )),
            Expired(_) => {
                auth_spec("The access token has expired. Please acquire a new token and retry.".to_owned())
            }
            MissingOid => auth_spec(
                "The access token doesn't have a valid oid claim. Acquire a new token and try again".to_owned(),
            ),
            ServiceOidMismatch { label_oid, appid, oid } => auth_spec(format!(
                "Service principal oid mismatch for role \"The oid in the security label [{label_oid}] does not match the appid [{appid}] or oid [{oid}] in the token.\""
            )),
            UserTokenForServiceRole => auth_spec(format!(
                "Service Principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role[{role}]"
            )),
            AppTokenForUserRole => auth_spec(format!(
                "Microsoft Entra user token for role \"{role}\" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token."
            )),
            MfaRequired => auth_spec(format!(
                "Multi-factor authentication is required for role \"{role}\". Please acquire a new token with MFA and retry."
            )),
            Issuer(_) | Tenant(_) | UserOidMismatch | NotGroupMember | NotEntraRole | BadPassword => {
                password_failed()
            }
        }
    }

    /// Short reason for logs and the `reason` metrics label.
    pub fn reason(&self) -> &'static str {
        use AuthFailure::*;
        match self {
            Malformed(_) => "malformed_token",
            Algorithm(_) => "algorithm_not_allowed",
            UnknownKid(_) => "unknown_kid",
            BadSignature => "bad_signature",
            KeysUnavailable(_) => "keys_unavailable",
            Audience(_) => "wrong_audience",
            Expired(_) => "expired",
            NotYetValid(_) => "not_yet_valid",
            Issuer(_) => "wrong_issuer",
            Tenant(_) => "wrong_tenant",
            MissingOid => "missing_oid",
            ServiceOidMismatch { .. } => "service_oid_mismatch",
            UserTokenForServiceRole => "user_token_for_service_role",
            AppTokenForUserRole => "app_token_for_user_role",
            UserOidMismatch => "user_oid_mismatch",
            NotGroupMember => "not_group_member",
            MfaRequired => "mfa_required",
            NotEntraRole => "not_entra_role",
            BadPassword => "bad_password",
        }
    }

    /// As a session error carrying the client text for `role`.
    pub fn into_session_error(self, role: &str) -> SessionError {
        SessionError::Rejected {
            fields: self.to_client(role),
            reason: self.reason(),
            detail: self.to_string(),
        }
    }
}
