//! Token shapes: the claims of Entra v1 access tokens for app-only principals (managed
//! identities, service principals) and users, plus the v2 id token of the password grant.
//!
//! Pure functions of their inputs and the given time; no signing and no I/O here.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::config::User;
use crate::directory::App;

/// Entra back-dates `iat`/`nbf` by five minutes to absorb clock skew.
pub(crate) const BACKDATE_SECS: i64 = 300;

/// The v1 issuer of a tenant.
pub(crate) fn v1_issuer(tenant_id: &str) -> String {
    format!("https://sts.windows.net/{tenant_id}/")
}

/// A random opaque string like Entra's `uti`, `aio` and `rh` values.
pub(crate) fn opaque(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buf)
}

/// Times of a token issued at `now` for `lifetime` seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    pub(crate) iat: i64,
    pub(crate) exp: i64,
}

impl Times {
    pub(crate) fn new(now: i64, lifetime: i64) -> Self {
        Times {
            iat: now.saturating_sub(BACKDATE_SECS),
            exp: now.saturating_add(lifetime),
        }
    }
}

fn merge(claims: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (k, v) in overrides {
        if v.is_null() {
            claims.remove(k);
        } else {
            claims.insert(k.clone(), v.clone());
        }
    }
}

/// Claims of an app-only v1 token. `appidacr`: "1" secret, "2" certificate/assertion/managed
/// identity.
pub(crate) fn app_claims(app: &App<'_>, resource: &str, appidacr: &str, t: Times) -> Value {
    let issuer = v1_issuer(app.tenant);
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(resource));
    claims.insert("iss".into(), json!(issuer));
    claims.insert("iat".into(), json!(t.iat));
    claims.insert("nbf".into(), json!(t.iat));
    claims.insert("exp".into(), json!(t.exp));
    claims.insert("aio".into(), json!(opaque(42)));
    claims.insert("appid".into(), json!(app.client_id));
    claims.insert("appidacr".into(), json!(appidacr));
    claims.insert("idp".into(), json!(issuer));
    claims.insert("idtyp".into(), json!("app"));
    claims.insert("oid".into(), json!(app.object_id));
    claims.insert("rh".into(), json!(format!("0.{}.", opaque(45))));
    claims.insert("sub".into(), json!(app.object_id));
    claims.insert("tid".into(), json!(app.tenant));
    claims.insert("uti".into(), json!(opaque(16)));
    claims.insert("ver".into(), json!("1.0"));
    if let Some(mirid) = app.mirid {
        claims.insert("xms_mirid".into(), json!(mirid));
    }
    merge(&mut claims, app.claims);
    Value::Object(claims)
}

/// Pairwise `sub` of a user for an app, stable across tokens like Entra's.
fn pairwise_sub(oid: &str, client_id: &str) -> String {
    let d = digest::digest(&digest::SHA256, format!("{oid}|{client_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(d)
}

/// Claims of a delegated (user) v1 token.
pub(crate) fn user_claims(
    user: &User,
    tenant: &str,
    client_id: &str,
    resource: &str,
    scp: &str,
    t: Times,
) -> Value {
    let issuer = v1_issuer(tenant);
    let name = user
        .display_name
        .clone()
        .unwrap_or_else(|| user.upn.split('@').next().unwrap_or_default().to_string());
    let mut claims = Map::new();
    claims.insert("aud".into(), json!(resource));
    claims.insert("iss".into(), json!(issuer));
    claims.insert("iat".into(), json!(t.iat));
    claims.insert("nbf".into(), json!(t.iat));
    claims.insert("exp".into(), json!(t.exp));
    claims.insert("acr".into(), json!("1"));
    claims.insert("aio".into(), json!(opaque(60)));
    claims.insert("amr".into(), json!(user.amr));
    claims.insert("appid".into(), json!(client_id));
    claims.insert("appidacr".into(), json!("0"));
    if !user.groups.is_empty() {
        claims.insert("groups".into(), json!(user.groups));
    }
    claims.insert("ipaddr".into(), json!("127.0.0.1"));
    claims.insert("name".into(), json!(name));
    claims.insert("oid".into(), json!(user.object_id));
    claims.insert("rh".into(), json!(format!("0.{}.", opaque(45))));
    claims.insert("scp".into(), json!(scp));
    claims.insert(
        "sub".into(),
        json!(pairwise_sub(&user.object_id, client_id)),
    );
    claims.insert("tid".into(), json!(tenant));
    claims.insert("unique_name".into(), json!(user.upn));
    claims.insert("upn".into(), json!(user.upn));
    claims.insert("uti".into(), json!(opaque(16)));
    claims.insert("ver".into(), json!("1.0"));
    merge(&mut claims, &user.claims);
    Value::Object(claims)
}

/// The v2 id token returned with a password-grant token when `openid` was asked for.
pub(crate) fn id_token_claims(
    user: &User,
    tenant: &str,
    client_id: &str,
    issuer_base: &str,
    t: Times,
) -> Value {
    json!({
        "aud": client_id,
        "iss": format!("{issuer_base}/{tenant}/v2.0"),
        "iat": t.iat,
        "nbf": t.iat,
        "exp": t.exp,
        "name": user.display_name.clone().unwrap_or_else(|| user.upn.clone()),
        "oid": user.object_id,
        "preferred_username": user.upn,
        "sub": pairwise_sub(&user.object_id, client_id),
        "tid": tenant,
        "ver": "2.0",
    })
}

/// MSAL's `client_info`: base64url of `{"uid": oid, "utid": tid}`.
pub(crate) fn client_info(oid: &str, tenant: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({"uid": oid, "utid": tenant}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_claims_follow_the_v1_shape_and_overrides_win() {
        let mut overrides = Map::new();
        overrides.insert("idtyp".into(), Value::Null);
        overrides.insert("extra".into(), json!(42));
        let app = App {
            client_id: "c",
            object_id: "o",
            tenant: "t",
            mirid: Some("/subs/x"),
            claims: &overrides,
            sp: None,
        };
        let c = app_claims(&app, "https://r", "2", Times::new(1_000_000, 3600));
        assert_eq!(c["iss"], "https://sts.windows.net/t/");
        assert_eq!(c["sub"], "o");
        assert_eq!(c["xms_mirid"], "/subs/x");
        assert_eq!(c["iat"], 1_000_000 - 300);
        assert_eq!(c["exp"], 1_003_600);
        assert_eq!(c["extra"], 42);
        assert!(c.get("idtyp").is_none());
    }
}
