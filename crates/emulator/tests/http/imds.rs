//! IMDS identity endpoint.

use pgentra_emulator::{RunningEmulator, dev};
use serde_json::Value;

use crate::support::{client, emulator, json, verify};

async fn imds(
    emu: &RunningEmulator,
    path_suffix: &str,
    query: &str,
    metadata: Option<&str>,
) -> (u16, Value) {
    let url = format!(
        "{}/metadata/identity/oauth2/token{path_suffix}?{query}",
        emu.imds_host()
    );
    let mut request = client().get(url);
    if let Some(m) = metadata {
        request = request.header("Metadata", m);
    }
    json(request.send().await.expect("request")).await
}

fn q(extra: &str) -> String {
    format!(
        "api-version=2018-02-01&resource={}{extra}",
        dev::OSSRDBMS_RESOURCE
    )
}

#[tokio::test]
async fn token_with_and_without_trailing_slash_has_every_number_as_a_string() {
    let emu = emulator().await;
    for suffix in ["", "/"] {
        let (status, body) = imds(&emu, suffix, &q(""), Some("true")).await;
        assert_eq!(status, 200, "{suffix:?}: {body}");
        for field in ["expires_in", "expires_on", "ext_expires_in", "not_before"] {
            let text = body[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} is a string"));
            assert!(text.parse::<i64>().is_ok(), "{field}={text}");
        }
        assert_eq!(body["refresh_token"], "");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], dev::OSSRDBMS_RESOURCE);
        assert_eq!(body["client_id"], dev::SYSTEM_MI_CLIENT_ID);
        let claims = verify(
            &emu,
            body["access_token"].as_str().unwrap(),
            dev::OSSRDBMS_RESOURCE,
        )
        .await;
        assert_eq!(claims["oid"], dev::SYSTEM_MI_OBJECT_ID);
    }
}

#[tokio::test]
async fn metadata_header_is_required_and_probes_get_bad_request_102() {
    let emu = emulator().await;
    for (query, metadata) in [(q(""), None), (q(""), Some("false")), (String::new(), None)] {
        let (status, body) = imds(&emu, "", &query, metadata).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "bad_request_102");
        assert_eq!(
            body["error_description"],
            "Required metadata header not specified"
        );
    }
    // Any capitalisation of the value is accepted, as SDKs send `true`/`True`.
    assert_eq!(imds(&emu, "", &q(""), Some("True")).await.0, 200);
}

#[tokio::test]
async fn user_assigned_identities_by_client_object_and_resource_id() {
    let emu = emulator().await;
    let res_id: String =
        url::form_urlencoded::byte_serialize(dev::USER_MI_RESOURCE_ID.as_bytes()).collect();
    for selector in [
        format!("&client_id={}", dev::USER_MI_CLIENT_ID),
        format!("&object_id={}", dev::USER_MI_OBJECT_ID),
        format!("&msi_res_id={res_id}"),
    ] {
        let (status, body) = imds(&emu, "/", &q(&selector), Some("true")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["client_id"], dev::USER_MI_CLIENT_ID, "{selector}");
    }
    // IMDS does not know App Service's `mi_res_id`: it is ignored like any unknown parameter.
    let (status, body) = imds(&emu, "", &q(&format!("&mi_res_id={res_id}")), Some("true")).await;
    assert_eq!(status, 200);
    assert_eq!(body["client_id"], dev::SYSTEM_MI_CLIENT_ID);
}

#[tokio::test]
async fn documented_failures() {
    let emu = emulator().await;
    let (s, b) = imds(
        &emu,
        "",
        &q("&client_id=11111111-0000-0000-0000-000000000000"),
        Some("true"),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(b["error_description"], "Identity not found");
    let (s, b) = imds(
        &emu,
        "",
        &format!("resource={}", dev::OSSRDBMS_RESOURCE),
        Some("true"),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("api-version")
    );
    let (s, b) = imds(&emu, "", "api-version=2018-02-01", Some("true")).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    let (s, b) = imds(
        &emu,
        "",
        "api-version=2018-02-01&resource=https://nope.example",
        Some("true"),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_resource")));
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS500011: ")
    );
    let two = format!(
        "&client_id={}&object_id={}",
        dev::USER_MI_CLIENT_ID,
        dev::USER_MI_OBJECT_ID
    );
    assert_eq!(imds(&emu, "", &q(&two), Some("true")).await.0, 400);
}
