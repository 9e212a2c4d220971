//! The bad-token matrix: every refusal carries Azure's text and a SQLSTATE, and is counted
//! under its own reason.

use pgentra_emulator::{Principal, dev};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_message() {
    let fx = Fixture::start().await;
    let good = fx.token(Principal::SystemMi);
    let base = claims_of(&good);
    let now = base["iat"].as_i64().unwrap();
    let with = |changes: serde_json::Value| {
        let mut c = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let user_token = fx.token(Principal::User { upn: dev::USER_UPN });
    let sp_token = fx.token(Principal::ServicePrincipal {
        client_id: dev::SP_CLIENT_ID,
    });
    let (h, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{h}.{}.{sig}",
        b64(with(json!({"oid": dev::SP_OBJECT_ID}))
            .to_string()
            .as_bytes())
    );
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"typ":"JWT","alg":"none"}"#),
        b64(base.to_string().as_bytes())
    );
    let hs256 = sign_hs256_with_public_key(&fx.emu, &base).await;
    let other_tenant = "99999999-9999-4999-8999-999999999999";
    let audience = format!(
        "The access token does not have a valid audience claim. Please acquire a new token for the resource \"{}\".",
        dev::OSSRDBMS_RESOURCE
    );
    let pw_failed = |role: &str| format!("password authentication failed for user \"{role}\"");
    let junk = "A".repeat(64 * 1024);

    let mi = SYSTEM_MI_ROLE;
    let cases: Vec<(&str, &str, String, &str, String)> = vec![
        (
            "expired",
            mi,
            fx.emu
                .mint(with(json!({"exp": now - 3600, "nbf": now - 7200}))),
            "28000",
            "The access token has expired. Please acquire a new token and retry.".into(),
        ),
        (
            "not_yet_valid",
            mi,
            fx.emu.mint(with(json!({"nbf": now + 3600}))),
            "28000",
            INVALID_FORMAT.into(),
        ),
        (
            "wrong_audience",
            mi,
            fx.emu
                .mint(with(json!({"aud": "https://management.azure.com"}))),
            "28000",
            audience,
        ),
        (
            "wrong_issuer",
            mi,
            fx.emu.mint(with(
                json!({"iss": "https://sts.windows.net/99999999-9999-4999-8999-999999999999/"}),
            )),
            "28P01",
            pw_failed(mi),
        ),
        (
            "wrong_tenant",
            mi,
            fx.emu.mint(with(json!({"tid": other_tenant}))),
            "28P01",
            pw_failed(mi),
        ),
        (
            "bad_signature",
            mi,
            tampered,
            "28000",
            INVALID_FORMAT.into(),
        ),
        (
            "algorithm_not_allowed",
            mi,
            alg_none,
            "28000",
            INVALID_FORMAT.into(),
        ),
        (
            "algorithm_not_allowed",
            mi,
            hs256,
            "28000",
            INVALID_FORMAT.into(),
        ),
        (
            "unknown_kid",
            mi,
            sign_with_foreign_key("not-a-published-kid", &base),
            "28000",
            INVALID_FORMAT.into(),
        ),
        (
            "service_oid_mismatch",
            mi,
            sp_token.clone(),
            "28000",
            format!(
                "Service principal oid mismatch for role \"The oid in the security label [{}] does not match the appid [{}] or oid [{}] in the token.\"",
                dev::SYSTEM_MI_OBJECT_ID,
                dev::SP_CLIENT_ID,
                dev::SP_OBJECT_ID
            ),
        ),
        (
            "user_token_for_service_role",
            mi,
            user_token.clone(),
            "28000",
            format!(
                "Service Principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role[{mi}]"
            ),
        ),
        (
            "app_token_for_user_role",
            USER_ROLE,
            good.clone(),
            "28000",
            format!(
                "Microsoft Entra user token for role \"{USER_ROLE}\" is neither an AAD_AUTH_TOKENTYPE_APP_USER or an AAD_AUTH_TOKENTYPE_APP_OBO token."
            ),
        ),
        (
            "user_oid_mismatch",
            USER_ROLE,
            fx.emu.mint(with_user(
                &user_token,
                json!({"oid": dev::MFA_USER_OBJECT_ID}),
            )),
            "28P01",
            pw_failed(USER_ROLE),
        ),
        (
            "not_group_member",
            GROUP_ROLE,
            good.clone(),
            "28P01",
            pw_failed(GROUP_ROLE),
        ),
        (
            "mfa_required",
            MFA_ROLE,
            user_token.clone(),
            "28000",
            format!(
                "Multi-factor authentication is required for role \"{MFA_ROLE}\". Please acquire a new token with MFA and retry."
            ),
        ),
        (
            "missing_oid",
            mi,
            fx.emu.mint(with(json!({"oid": null}))),
            "28000",
            "The access token doesn't have a valid oid claim. Acquire a new token and try again"
                .into(),
        ),
        (
            "malformed_token",
            mi,
            good[..good.len() - 40].to_owned() + "!",
            "28000",
            INVALID_FORMAT.into(),
        ),
        (
            "malformed_token",
            mi,
            good.split('.').take(2).collect::<Vec<_>>().join("."),
            "28000",
            INVALID_FORMAT.into(),
        ),
        ("malformed_token", mi, junk, "28000", INVALID_FORMAT.into()),
        (
            "not_entra_role",
            "postgres",
            good.clone(),
            "28P01",
            pw_failed("postgres"),
        ),
        (
            "not_entra_role",
            "nobody-registered",
            good.clone(),
            "28P01",
            pw_failed("nobody-registered"),
        ),
    ];
    for (reason, role, token, code, message) in &cases {
        let before = fx.handle.failures_for(reason);
        let err = fx
            .whoami(role, token)
            .await
            .expect_err(&format!("{reason} must be refused"));
        let got = db_error(&err);
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            (*code, message.as_str()),
            "case {reason}"
        );
        assert_eq!(
            fx.handle.failures_for(reason),
            before + 1,
            "reason label {reason}"
        );
    }
    // The good token still works after all that.
    assert_eq!(fx.whoami(mi, &good).await.unwrap(), mi);
    fx.stop().await;
}

fn with_user(user_token: &str, changes: serde_json::Value) -> serde_json::Value {
    let mut c = claims_of(user_token);
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test]
async fn plaintext_is_refused_with_a_clear_fatal_when_tls_is_required() {
    let fx = Fixture::start().await;
    let token = fx.token(Principal::SystemMi);
    let mut cfg = fx.pg_config(SYSTEM_MI_ROLE, &token);
    cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let Err(err) = cfg.connect(tokio_postgres::NoTls).await else {
        panic!("plaintext must be refused");
    };
    let (code, msg) = db_error(&err);
    assert_eq!(code, "28000");
    assert_eq!(
        msg,
        format!(
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"{SYSTEM_MI_ROLE}\", database \"postgres\", no encryption"
        )
    );
    assert_eq!(
        err.as_db_error().unwrap().hint(),
        Some("This server requires TLS: connect with sslmode=require.")
    );
    assert_eq!(fx.handle.failures_for("tls_required"), 1);
    fx.stop().await;
}
