//! Entra token endpoints (v2 and v1): client secret, password grant, and their failures.
//! Certificate and federated assertions are in `assertions.rs`.

use pgentra_emulator::{EndpointKind, RunningEmulator, dev};
use serde_json::Value;

use crate::support::{emulator, json, now, tls_client, verify};

pub async fn post_form(emu: &RunningEmulator, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = tls_client(emu)
        .post(format!("{}{path}", emu.https_base()))
        .form(form)
        .send()
        .await
        .expect("request");
    json(response).await
}

pub fn v2_path(tenant: &str) -> String {
    format!("/{tenant}/oauth2/v2.0/token")
}

pub fn secret_form(secret: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", dev::SP_CLIENT_ID),
        ("client_secret", secret),
        ("scope", dev::OSSRDBMS_SCOPE),
    ]
}

/// Checks the Entra error shape and returns the description.
pub fn assert_entra_error(
    status: u16,
    body: &Value,
    want_status: u16,
    error: &str,
    code: u64,
) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    let description = body["error_description"]
        .as_str()
        .expect("description")
        .to_string();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    assert!(
        description.contains("\r\nCorrelation ID: "),
        "{description}"
    );
    assert!(description.contains("\r\nTimestamp: "), "{description}");
    for field in ["trace_id", "correlation_id", "timestamp"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}"
        );
    }
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
    description
}

#[tokio::test]
async fn client_secret_v2_issues_a_verifiable_sp_token_with_numeric_lifetimes() {
    let emu = emulator().await;
    for tenant in [dev::TENANT_ID, dev::TENANT_DOMAIN, "organizations"] {
        let (status, body) = post_form(&emu, &v2_path(tenant), &secret_form(dev::SP_SECRET)).await;
        assert_eq!(status, 200, "{tenant}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        let expires_in = body["expires_in"].as_i64().expect("expires_in is a number");
        assert!((3600..=5400).contains(&expires_in), "{expires_in}");
        assert_eq!(body["ext_expires_in"].as_i64(), Some(expires_in));
        let claims = verify(
            &emu,
            body["access_token"].as_str().unwrap(),
            dev::OSSRDBMS_RESOURCE,
        )
        .await;
        assert_eq!(
            claims["iss"],
            format!("https://sts.windows.net/{}/", dev::TENANT_ID)
        );
        assert_eq!(claims["oid"], dev::SP_OBJECT_ID);
        assert_eq!(claims["appid"], dev::SP_CLIENT_ID);
        assert_eq!(claims["appidacr"], "1");
        assert_eq!(claims["tid"], dev::TENANT_ID);
        assert_eq!(claims["idtyp"], "app");
        assert!(claims.get("xms_mirid").is_none());
        let exp = claims["exp"].as_i64().unwrap();
        assert!((exp - now() - expires_in).abs() < 5);
    }
}

#[tokio::test]
async fn sdk_telemetry_fields_and_basic_auth_are_accepted() {
    let emu = emulator().await;
    let mut form = secret_form(dev::SP_SECRET);
    form.extend([
        ("client_info", "1"),
        ("x-client-SKU", "msal.js.node"),
        ("x-client-VER", "5.6.0"),
        (
            "claims",
            r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#,
        ),
    ]);
    let cid = "8d7a5b2e-1111-4222-8333-944455556666";
    let response = tls_client(&emu)
        .post(format!(
            "{}{}?client-request-id={cid}",
            emu.https_base(),
            v2_path(dev::TENANT_ID)
        ))
        .header("x-client-OS", "linux")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let basic = tls_client(&emu)
        .post(format!("{}{}", emu.https_base(), v2_path(dev::TENANT_ID)))
        .basic_auth(dev::SP_CLIENT_ID, Some(dev::SP_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", dev::OSSRDBMS_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200, "HTTP Basic client authentication");
}

#[tokio::test]
async fn client_credential_failures_have_entra_codes() {
    let emu = emulator().await;
    let path = v2_path(dev::TENANT_ID);
    let (s, b) = post_form(&emu, &path, &secret_form("not-the-secret")).await;
    let d = assert_entra_error(s, &b, 401, "invalid_client", 7000215);
    assert!(d.contains(dev::SP_CLIENT_ID) && !d.contains("not-the-secret"));

    let (s, b) = post_form(
        &emu,
        &v2_path("no-such-tenant.example"),
        &secret_form(dev::SP_SECRET),
    )
    .await;
    let d = assert_entra_error(s, &b, 400, "invalid_tenant", 90002);
    assert!(d.contains("Tenant 'no-such-tenant.example' not found"));

    let (s, b) = post_form(&emu, &v2_path("common"), &secret_form(dev::SP_SECRET)).await;
    assert_entra_error(s, &b, 400, "invalid_request", 9001023);

    let unknown = [
        ("grant_type", "client_credentials"),
        ("client_id", "99999999-9999-4999-8999-999999999999"),
        ("client_secret", "x"),
        ("scope", dev::OSSRDBMS_SCOPE),
    ];
    let (s, b) = post_form(&emu, &path, &unknown).await;
    let d = assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
    assert!(d.contains("99999999-9999-4999-8999-999999999999"));

    for (drop, name) in [
        ("grant_type", "grant_type"),
        ("client_id", "client_id"),
        ("scope", "scope"),
    ] {
        let form: Vec<_> = secret_form(dev::SP_SECRET)
            .into_iter()
            .filter(|(k, _)| *k != drop)
            .collect();
        let (s, b) = post_form(&emu, &path, &form).await;
        let d = assert_entra_error(s, &b, 400, "invalid_request", 900144);
        assert!(d.contains(&format!("parameter: '{name}'")), "{d}");
    }

    let no_secret: Vec<_> = secret_form(dev::SP_SECRET)
        .into_iter()
        .filter(|(k, _)| *k != "client_secret")
        .collect();
    let (s, b) = post_form(&emu, &path, &no_secret).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000218);

    let mut bad_scope = secret_form(dev::SP_SECRET);
    bad_scope[3] = ("scope", "https://unknown.example/.default");
    let (s, b) = post_form(&emu, &path, &bad_scope).await;
    assert_entra_error(s, &b, 400, "invalid_resource", 500011);

    bad_scope[3] = (
        "scope",
        "https://ossrdbms-aad.database.windows.net/.default https://vault.azure.net/.default",
    );
    let (s, b) = post_form(&emu, &path, &bad_scope).await;
    assert_entra_error(s, &b, 400, "invalid_scope", 70011);

    bad_scope[3] = (
        "scope",
        "https://ossrdbms-aad.database.windows.net/user_impersonation",
    );
    let (s, b) = post_form(&emu, &path, &bad_scope).await;
    assert_entra_error(s, &b, 400, "invalid_scope", 1002012);

    let mut grant = secret_form(dev::SP_SECRET);
    grant[0] = ("grant_type", "authorization_code");
    let (s, b) = post_form(&emu, &path, &grant).await;
    assert_entra_error(s, &b, 400, "unsupported_grant_type", 70003);
}

#[tokio::test]
async fn malformed_requests_get_entra_400s_and_correlation_ids_echo() {
    let emu = emulator().await;
    let url = format!("{}{}", emu.https_base(), v2_path(dev::TENANT_ID));
    let http = tls_client(&emu);
    let r = http.get(&url).send().await.unwrap();
    let (s, b) = json(r).await;
    assert_entra_error(s, &b, 400, "invalid_request", 900561);

    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    let (s, b) = json(r).await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);

    let cid = "0b7e2a3c-4d5e-4f60-8a9b-0c1d2e3f4a5b";
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("client-request-id", cid)
        .body(vec![0xff, b'%', b'=', b'&', 0x00, b'%', b'Z'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["client-request-id"], cid);
    let (s, b) = json(r).await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert_eq!(b["correlation_id"], cid);

    let big = "a".repeat(300 * 1024);
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn v1_endpoint_takes_resource_and_answers_with_strings() {
    let emu = emulator().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", dev::SP_CLIENT_ID),
        ("client_secret", dev::SP_SECRET),
        ("resource", dev::OSSRDBMS_RESOURCE),
    ];
    let (s, b) = post_form(&emu, &format!("/{}/oauth2/token", dev::TENANT_ID), &form).await;
    assert_eq!(s, 200, "{b}");
    for field in ["expires_in", "ext_expires_in", "expires_on", "not_before"] {
        assert!(
            b[field].as_str().is_some_and(|v| v.parse::<i64>().is_ok()),
            "{field}"
        );
    }
    assert_eq!(b["resource"], dev::OSSRDBMS_RESOURCE);
    verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    let (s, b) = post_form(
        &emu,
        &format!("/{}/oauth2/token", dev::TENANT_ID),
        &form[..3],
    )
    .await;
    let d = assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(d.contains("'resource'"));
    assert_eq!(
        emu.requests().last().unwrap().endpoint,
        EndpointKind::TokenV1
    );
}

fn password_form<'a>(upn: &'a str, password: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", dev::PUBLIC_CLIENT_ID),
        ("username", upn),
        ("password", password),
        ("scope", scope),
    ]
}

#[tokio::test]
async fn password_grant_issues_user_tokens_with_groups_and_amr() {
    let emu = emulator().await;
    let path = v2_path(dev::TENANT_ID);
    let scope = format!("{} openid profile offline_access", dev::OSSRDBMS_SCOPE);
    let (s, b) = post_form(
        &emu,
        &path,
        &password_form(dev::USER_UPN, dev::USER_PASSWORD, &scope),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["expires_in"].is_number());
    assert_eq!(
        b["scope"],
        format!("{}/user_impersonation", dev::OSSRDBMS_RESOURCE)
    );
    assert!(b["id_token"].is_string(), "openid asked for");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["upn"], dev::USER_UPN);
    assert_eq!(claims["unique_name"], dev::USER_UPN);
    assert_eq!(claims["oid"], dev::USER_OBJECT_ID);
    assert_eq!(claims["scp"], "user_impersonation");
    assert_eq!(claims["groups"], serde_json::json!([dev::GROUP_OBJECT_ID]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["appid"], dev::PUBLIC_CLIENT_ID);
    assert!(
        claims.get("idtyp").is_none(),
        "user tokens are not app tokens"
    );
    assert_ne!(claims["sub"], claims["oid"], "user sub is pairwise");

    let (s, b) = post_form(
        &emu,
        &v2_path("common"),
        &password_form(dev::MFA_USER_UPN, dev::USER_PASSWORD, dev::OSSRDBMS_SCOPE),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        emu.requests().last().unwrap().endpoint,
        EndpointKind::UserToken
    );
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "mfa"]));

    let (s, b) = post_form(
        &emu,
        &path,
        &password_form(dev::USER_UPN, "wrong", dev::OSSRDBMS_SCOPE),
    )
    .await;
    assert_entra_error(s, &b, 400, "invalid_grant", 50126);
    let (s, b) = post_form(
        &emu,
        &path,
        &password_form("nobody@pgentra.onmicrosoft.com", "x", dev::OSSRDBMS_SCOPE),
    )
    .await;
    assert_entra_error(s, &b, 400, "invalid_grant", 50034);
    let mut unknown_client = password_form(dev::USER_UPN, dev::USER_PASSWORD, dev::OSSRDBMS_SCOPE);
    unknown_client[1] = ("client_id", "12345678-0000-4000-8000-000000000000");
    let (s, b) = post_form(&emu, &path, &unknown_client).await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
    // A confidential client must add its secret.
    let mut confidential = password_form(dev::USER_UPN, dev::USER_PASSWORD, dev::OSSRDBMS_SCOPE);
    confidential[1] = ("client_id", dev::SP_CLIENT_ID);
    let (s, b) = post_form(&emu, &path, &confidential).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000218);
    confidential.push(("client_secret", dev::SP_SECRET));
    let (s, b) = post_form(&emu, &path, &confidential).await;
    assert_eq!(s, 200, "{b}");
}

/// MSAL Go and MSAL4J append `openid offline_access profile` to client-credential scopes; Entra
/// ignores them, and so must the emulator (the interop suite's Go and Java rows found this).
#[tokio::test]
async fn oidc_scopes_beside_default_are_ignored_for_client_credentials() {
    let emu = emulator().await;
    let mut form = secret_form(dev::SP_SECRET);
    let scope = format!("{} openid offline_access profile", dev::OSSRDBMS_SCOPE);
    form[3] = ("scope", &scope);
    let (s, b) = post_form(&emu, &v2_path(dev::TENANT_ID), &form).await;
    assert_eq!(s, 200, "{b}");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["appid"], dev::SP_CLIENT_ID);

    // OIDC scopes alone still name no resource.
    form[3] = ("scope", "openid profile");
    let (s, b) = post_form(&emu, &v2_path(dev::TENANT_ID), &form).await;
    assert_eq!(s, 400, "{b}");
}
