//! The gateway's authentication step: ask for a cleartext password, then either validate it as
//! an Entra token and bind it to the role's registered principal (Azure's rules), or, in mixed
//! mode, keep a plain password for the upstream server to check. It never connects upstream.

use bytes::BytesMut;
use pgentra_wire::PasswordMessage;
use pgentra_wire::backend;

use super::failure::AuthFailure;
use super::registry::{Principal, PrincipalType};
use super::validate::{Claims, TokenKind, Validated, Validator};
use crate::config::AuthMode;
use crate::error::SessionError;
use crate::startup::ClientConn;

/// A successful authentication step.
#[derive(Debug)]
pub enum Outcome {
    /// A token bound to a registered principal; log in upstream over the trusted channel.
    Entra {
        /// The role's principal.
        principal: Principal,
        /// The token's validation result.
        token: Validated,
    },
    /// A non-Entra role in mixed mode; the upstream server checks this password.
    Password(PasswordMessage),
}

/// Whether a password has the shape of a compact JWS (`eyJ…` header, three parts).
pub fn looks_like_jwt(password: &[u8]) -> bool {
    password.starts_with(b"eyJ") && password.iter().filter(|&&b| b == b'.').count() == 2
}

/// Checks the token's kind and identity against the principal, as Azure does.
pub fn bind(principal: &Principal, claims: &Claims) -> Result<(), AuthFailure> {
    let oid = claims
        .oid
        .as_deref()
        .ok_or(AuthFailure::MissingOid)?
        .to_ascii_lowercase();
    let registered = principal.object_id.as_str();
    // With several tenants configured, a principal registered in one tenant only accepts
    // tokens issued by that tenant.
    let tid = claims.tid.as_deref().unwrap_or_default();
    if !principal.tenant_id.is_empty() && !principal.tenant_id.eq_ignore_ascii_case(tid) {
        return Err(AuthFailure::Tenant(tid.to_owned()));
    }
    match principal.kind {
        PrincipalType::Service => {
            if claims.kind() == TokenKind::User {
                return Err(AuthFailure::UserTokenForServiceRole);
            }
            let appid = claims.app_id().unwrap_or_default().to_ascii_lowercase();
            if registered != oid && registered != appid {
                return Err(AuthFailure::ServiceOidMismatch {
                    label_oid: principal.object_id.clone(),
                    appid,
                    oid,
                });
            }
        }
        PrincipalType::User => {
            if claims.kind() == TokenKind::App {
                return Err(AuthFailure::AppTokenForUserRole);
            }
            if registered != oid {
                return Err(AuthFailure::UserOidMismatch);
            }
        }
        PrincipalType::Group => {
            let member = claims
                .groups
                .iter()
                .flatten()
                .any(|g| g.eq_ignore_ascii_case(registered));
            if !member {
                return Err(AuthFailure::NotGroupMember);
            }
        }
    }
    if principal.is_mfa && !claims.amr.iter().flatten().any(|m| m == "mfa") {
        return Err(AuthFailure::MfaRequired);
    }
    Ok(())
}

/// Runs the authentication exchange for `role` on `conn`.
pub async fn authenticate(
    conn: &mut ClientConn,
    role: &str,
    principal: Option<Principal>,
    mode: AuthMode,
    validator: &Validator,
    on_validated: impl FnOnce(std::time::Duration, bool),
) -> Result<Outcome, SessionError> {
    let mut out = BytesMut::with_capacity(9);
    backend::auth_cleartext_password(&mut out);
    conn.send(&out).await?;
    let password = conn.read_password().await?;

    let Some(principal) = principal else {
        // Not an Entra role: a token can never log it in; a password may, in mixed mode.
        if mode == AuthMode::Mixed && !looks_like_jwt(password.as_bytes()) {
            return Ok(Outcome::Password(password));
        }
        return Err(AuthFailure::NotEntraRole.into_session_error(role));
    };
    let token = password
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthFailure::BadPassword.into_session_error(role))?;
    let started = std::time::Instant::now();
    let result = validator.validate(token).await;
    on_validated(started.elapsed(), result.as_ref().is_ok_and(|v| v.cached));
    let validated = result.map_err(|f| f.into_session_error(role))?;
    bind(&principal, &validated.claims).map_err(|f| f.into_session_error(role))?;
    Ok(Outcome::Entra {
        principal,
        token: validated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(kind: PrincipalType, oid: &str, mfa: bool) -> Principal {
        Principal {
            role: "r".into(),
            object_id: oid.into(),
            kind,
            tenant_id: String::new(),
            is_admin: false,
            is_mfa: mfa,
        }
    }

    fn app(oid: &str, appid: &str) -> Claims {
        Claims {
            oid: Some(oid.into()),
            appid: Some(appid.into()),
            idtyp: Some("app".into()),
            ..Claims::default()
        }
    }

    fn user(oid: &str) -> Claims {
        Claims {
            oid: Some(oid.into()),
            upn: Some("u@example.com".into()),
            scp: Some("user_impersonation".into()),
            groups: Some(vec!["G1".into()]),
            amr: Some(vec!["pwd".into()]),
            ..Claims::default()
        }
    }

    #[test]
    fn service_roles_match_oid_or_appid() {
        let p = principal(PrincipalType::Service, "aaa", false);
        assert_eq!(bind(&p, &app("AAA", "x")), Ok(()));
        assert_eq!(bind(&p, &app("x", "aaa")), Ok(()));
        assert_eq!(
            bind(&p, &app("b", "c")),
            Err(AuthFailure::ServiceOidMismatch {
                label_oid: "aaa".into(),
                appid: "c".into(),
                oid: "b".into()
            })
        );
        assert_eq!(
            bind(&p, &user("aaa")),
            Err(AuthFailure::UserTokenForServiceRole)
        );
    }

    #[test]
    fn user_roles_need_user_tokens_with_same_oid() {
        let p = principal(PrincipalType::User, "u1", false);
        assert_eq!(bind(&p, &user("U1")), Ok(()));
        assert_eq!(bind(&p, &user("u2")), Err(AuthFailure::UserOidMismatch));
        assert_eq!(
            bind(&p, &app("u1", "u1")),
            Err(AuthFailure::AppTokenForUserRole)
        );
    }

    #[test]
    fn group_roles_and_mfa() {
        let p = principal(PrincipalType::Group, "g1", false);
        assert_eq!(bind(&p, &user("u")), Ok(()));
        assert_eq!(
            bind(&principal(PrincipalType::Group, "g2", false), &user("u")),
            Err(AuthFailure::NotGroupMember)
        );
        let mfa = principal(PrincipalType::User, "u", true);
        assert_eq!(bind(&mfa, &user("u")), Err(AuthFailure::MfaRequired));
        let mut c = user("u");
        c.amr = Some(vec!["pwd".into(), "mfa".into()]);
        assert_eq!(bind(&mfa, &c), Ok(()));
    }

    #[test]
    fn principals_only_accept_their_own_tenant() {
        let mut p = principal(PrincipalType::Service, "aaa", false);
        p.tenant_id = "t1".into();
        let mut c = app("aaa", "x");
        c.tid = Some("T1".into());
        assert_eq!(bind(&p, &c), Ok(()));
        c.tid = Some("t2".into());
        assert_eq!(bind(&p, &c), Err(AuthFailure::Tenant("t2".into())));
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(b"eyJhbGciOi.eyJ.sig"));
        assert!(!looks_like_jwt(b"hunter2"));
        assert!(!looks_like_jwt(b"eyJ.only-two"));
    }
}
