//! App Service / Container Apps managed identity endpoint.

use pgentra_emulator::{Config, EndpointKind, dev};
use serde_json::Value;

use crate::support::{client, emulator, emulator_with, json, now, verify};

async fn get(
    emu: &pgentra_emulator::RunningEmulator,
    query: &str,
    header: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut request = client().get(format!("{}?{query}", emu.identity_endpoint()));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    json(request.send().await.expect("request")).await
}

fn ossrdbms_query(extra: &str) -> String {
    format!(
        "api-version=2019-08-01&resource={}{extra}",
        dev::OSSRDBMS_RESOURCE
    )
}

#[tokio::test]
async fn system_assigned_token_has_the_app_service_shape_and_v1_claims() {
    let emu = emulator().await;
    let h = emu.identity_header();
    let (status, body) = get(&emu, &ossrdbms_query(""), Some(("X-IDENTITY-HEADER", &h))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resource"], dev::OSSRDBMS_RESOURCE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], dev::SYSTEM_MI_CLIENT_ID);
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("string")
        .parse()
        .unwrap();
    assert!((expires_on - (now() + 86_400)).abs() < 10, "24 h lifetime");
    assert!(body["not_before"].is_string() && body["expires_in"].is_string());

    let token = body["access_token"].as_str().unwrap();
    let claims = verify(&emu, token, dev::OSSRDBMS_RESOURCE).await;
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{}/", dev::TENANT_ID)
    );
    assert_eq!(claims["oid"], dev::SYSTEM_MI_OBJECT_ID);
    assert_eq!(claims["sub"], dev::SYSTEM_MI_OBJECT_ID);
    assert_eq!(claims["appid"], dev::SYSTEM_MI_CLIENT_ID);
    assert_eq!(claims["tid"], dev::TENANT_ID);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["xms_mirid"], dev::SYSTEM_MI_RESOURCE_ID);
    assert_eq!(claims["exp"].as_i64(), Some(expires_on));
    for opaque in ["uti", "aio", "rh"] {
        assert!(
            claims[opaque].as_str().is_some_and(|s| !s.is_empty()),
            "{opaque}"
        );
    }
}

#[tokio::test]
async fn user_assigned_is_selected_by_any_id_and_the_header_is_case_insensitive() {
    let emu = emulator().await;
    let h = emu.identity_header();
    let encoded_res_id = url_encode(dev::USER_MI_RESOURCE_ID);
    for selector in [
        format!("&client_id={}", dev::USER_MI_CLIENT_ID),
        format!("&object_id={}", dev::USER_MI_OBJECT_ID),
        format!("&principal_id={}", dev::USER_MI_OBJECT_ID.to_uppercase()),
        format!("&mi_res_id={encoded_res_id}"),
    ] {
        let (status, body) = get(
            &emu,
            &ossrdbms_query(&selector),
            Some(("x-identity-header", &h)),
        )
        .await;
        assert_eq!(status, 200, "{selector}: {body}");
        assert_eq!(body["client_id"], dev::USER_MI_CLIENT_ID);
        let claims = verify(
            &emu,
            body["access_token"].as_str().unwrap(),
            dev::OSSRDBMS_RESOURCE,
        )
        .await;
        assert_eq!(claims["oid"], dev::USER_MI_OBJECT_ID, "{selector}");
        assert_eq!(claims["xms_mirid"], dev::USER_MI_RESOURCE_ID);
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_app_service_error(status: u16, body: &Value, want_status: u16, message_part: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["statusCode"], want_status);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(message_part)),
        "{body}"
    );
    assert!(
        body["correlationId"]
            .as_str()
            .is_some_and(|c| c.len() == 36)
    );
}

#[tokio::test]
async fn header_problems_are_401_and_403() {
    let emu = emulator().await;
    let (s, b) = get(&emu, &ossrdbms_query(""), None).await;
    assert_app_service_error(s, &b, 401, "X-IDENTITY-HEADER");
    let (s, b) = get(
        &emu,
        &ossrdbms_query(""),
        Some(("X-IDENTITY-HEADER", "wrong")),
    )
    .await;
    assert_app_service_error(s, &b, 403, "not valid");
    assert!(!b.to_string().contains(&emu.identity_header()));
    // The legacy header name is not accepted by the 2019-08-01 protocol.
    let h = emu.identity_header();
    let (s, _) = get(&emu, &ossrdbms_query(""), Some(("secret", &h))).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bad_requests_get_app_service_errors() {
    let emu = emulator().await;
    let h = emu.identity_header();
    let hdr = Some(("X-IDENTITY-HEADER", h.as_str()));
    let (s, b) = get(
        &emu,
        &ossrdbms_query("&client_id=00000000-dead-beef-0000-000000000000"),
        hdr,
    )
    .await;
    assert_app_service_error(s, &b, 400, "Unable to load the proper Managed Identity.");
    assert_eq!(b["message"], "Unable to load the proper Managed Identity.");
    let two = format!(
        "&client_id={}&object_id={}",
        dev::USER_MI_CLIENT_ID,
        dev::USER_MI_OBJECT_ID
    );
    let (s, b) = get(&emu, &ossrdbms_query(&two), hdr).await;
    assert_app_service_error(s, &b, 400, "Only one of");
    let (s, b) = get(&emu, "api-version=2019-08-01", hdr).await;
    assert_app_service_error(s, &b, 400, "resource");
    let (s, b) = get(
        &emu,
        "api-version=2019-08-01&resource=https://unknown.example",
        hdr,
    )
    .await;
    assert_app_service_error(s, &b, 400, "AADSTS500011");
    let (s, b) = get(&emu, &format!("resource={}", dev::OSSRDBMS_RESOURCE), hdr).await;
    assert_app_service_error(s, &b, 400, "api-version");
    let (s, b) = get(&emu, "api-version=1999-01-01&resource=x", hdr).await;
    assert_app_service_error(s, &b, 400, "api-version");
    // Garbage in the query never panics the server.
    let (s, _) = get(&emu, "%ZZ&&==&resource=%FF%FE&api-version=2019-08-01", hdr).await;
    assert_eq!(s, 400);
    let response = client()
        .post(emu.identity_endpoint())
        .header("X-IDENTITY-HEADER", &h)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn legacy_2017_protocol_uses_the_secret_header_and_clientid() {
    let emu = emulator().await;
    let h = emu.identity_header();
    let q = format!(
        "api-version=2017-09-01&resource={}&clientid={}",
        dev::OSSRDBMS_RESOURCE,
        dev::USER_MI_CLIENT_ID
    );
    let (s, b) = get(&emu, &q, Some(("secret", &h))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["client_id"], dev::USER_MI_CLIENT_ID);
    assert!(b["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    let (s, _) = get(&emu, &q, Some(("X-IDENTITY-HEADER", &h))).await;
    assert_eq!(s, 401, "2017-09-01 needs the `secret` header");
}

#[tokio::test]
async fn resource_is_echoed_exactly_and_becomes_the_audience() {
    let emu = emulator().await;
    let h = emu.identity_header();
    let q = "api-version=2019-08-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    let (s, b) = get(&emu, q, Some(("X-IDENTITY-HEADER", &h))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["resource"], "https://management.azure.com/");
    verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        "https://management.azure.com/",
    )
    .await;
}

#[tokio::test]
async fn repeat_requests_reuse_the_cached_token_until_key_or_clock_changes() {
    let emu = emulator().await;
    let h = emu.identity_header();
    let hdr = Some(("X-IDENTITY-HEADER", h.as_str()));
    let token = |b: Value| b["access_token"].as_str().unwrap().to_string();
    let first = token(get(&emu, &ossrdbms_query(""), hdr).await.1);
    let second = token(get(&emu, &ossrdbms_query(""), hdr).await.1);
    assert_eq!(first, second, "cached within the window");
    let user = token(
        get(
            &emu,
            &ossrdbms_query(&format!("&client_id={}", dev::USER_MI_CLIENT_ID)),
            hdr,
        )
        .await
        .1,
    );
    assert_ne!(first, user, "cache is per identity");

    let new_kid = emu.rotate_signing_key();
    let rotated = token(get(&emu, &ossrdbms_query(""), hdr).await.1);
    assert_ne!(first, rotated);
    let header = jsonwebtoken::decode_header(&rotated).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));

    emu.clock().advance(1);
    let after_clock = token(get(&emu, &ossrdbms_query(""), hdr).await.1);
    assert_ne!(rotated, after_clock, "a clock change issues a fresh token");

    let fresh = emulator_with(Config::default().with_mi_cache(std::time::Duration::ZERO)).await;
    let fh = fresh.identity_header();
    let a = token(
        get(
            &fresh,
            &ossrdbms_query(""),
            Some(("X-IDENTITY-HEADER", &fh)),
        )
        .await
        .1,
    );
    let b = token(
        get(
            &fresh,
            &ossrdbms_query(""),
            Some(("X-IDENTITY-HEADER", &fh)),
        )
        .await
        .1,
    );
    assert_ne!(a, b, "cache disabled: fresh token each time");
    let log = fresh.requests();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|r| r.endpoint == EndpointKind::AppService && r.status == 200)
    );
}
