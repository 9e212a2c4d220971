//! OpenID discovery, JWKS and instance discovery.

use pgentra_emulator::dev;

use crate::entra::assert_entra_error;
use crate::support::{client, emulator, json, tls_client};

#[tokio::test]
async fn openid_configuration_v2_and_v1_point_at_the_emulator() {
    let emu = emulator().await;
    let http = tls_client(&emu);
    let base = emu.https_base();
    for tenant in [dev::TENANT_ID, dev::TENANT_DOMAIN] {
        for suffix in ["", "/"] {
            let url = format!("{base}/{tenant}/v2.0/.well-known/openid-configuration{suffix}");
            let (s, b) = json(http.get(url).send().await.unwrap()).await;
            assert_eq!(s, 200, "{b}");
            assert_eq!(b["issuer"], format!("{base}/{}/v2.0", dev::TENANT_ID));
            assert_eq!(
                b["token_endpoint"],
                format!("{base}/{}/oauth2/v2.0/token", dev::TENANT_ID)
            );
            assert_eq!(
                b["jwks_uri"],
                format!("{base}/{}/discovery/v2.0/keys", dev::TENANT_ID)
            );
            assert!(
                b["authorization_endpoint"]
                    .as_str()
                    .unwrap()
                    .starts_with(&base)
            );
        }
    }
    let (s, b) = json(
        http.get(format!(
            "{base}/{}/.well-known/openid-configuration",
            dev::TENANT_ID
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        b["issuer"],
        format!("https://sts.windows.net/{}/", dev::TENANT_ID)
    );
    assert_eq!(
        b["token_endpoint"],
        format!("{base}/{}/oauth2/token", dev::TENANT_ID)
    );
    assert_eq!(b["jwks_uri"], format!("{base}/common/discovery/keys"));

    let (s, b) = json(
        http.get(format!(
            "{base}/common/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["issuer"], format!("{base}/{{tenantid}}/v2.0"));

    let (s, b) = json(
        http.get(format!("{base}/nope/v2.0/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_entra_error(s, &b, 400, "invalid_tenant", 90002);
    // Over plain HTTP the URLs use the HTTP base.
    let (_, b) = json(
        client()
            .get(format!(
                "{}/{}/v2.0/.well-known/openid-configuration",
                emu.http_base(),
                dev::TENANT_ID
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        b["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(&emu.http_base())
    );
}

#[tokio::test]
async fn jwks_is_served_at_every_path_on_both_listeners() {
    let emu = emulator().await;
    let kid = emu.current_kid();
    let https = tls_client(&emu);
    for base in [emu.https_base(), emu.http_base()] {
        for path in [
            "/common/discovery/keys".to_string(),
            format!("/{}/discovery/keys", dev::TENANT_ID),
            "/common/discovery/v2.0/keys".to_string(),
            format!("/{}/discovery/v2.0/keys/", dev::TENANT_ID),
        ] {
            let (s, b) = json(https.get(format!("{base}{path}")).send().await.unwrap()).await;
            assert_eq!(s, 200, "{path}");
            let key = &b["keys"][0];
            assert_eq!(key["kid"], kid.as_str());
            assert_eq!(key["x5t"], kid.as_str());
            assert_eq!(key["kty"], "RSA");
            assert_eq!(key["use"], "sig");
            assert_eq!(key["e"], "AQAB");
            assert!(key["x5c"][0].as_str().is_some_and(|c| c.len() > 500));
            assert_eq!(key.get("issuer").is_some(), path.contains("v2.0"), "{path}");
        }
    }
}

#[tokio::test]
async fn instance_discovery_points_back_at_the_authority_host() {
    let emu = emulator().await;
    let http = tls_client(&emu);
    let authority = format!(
        "{}/{}/oauth2/v2.0/authorize",
        emu.https_base(),
        dev::TENANT_ID
    );
    let response = http
        .get(format!(
            "{}/common/discovery/instance?api-version=1.1&authorization_endpoint={}",
            emu.https_base(),
            url::form_urlencoded::byte_serialize(authority.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    let (s, b) = json(response).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["tenant_discovery_endpoint"],
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            emu.https_base(),
            dev::TENANT_ID
        )
    );
    let host = emu.https_base().trim_start_matches("https://").to_string();
    assert!(
        b["metadata"][0]["aliases"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(host))
    );
    let (s, b) = json(
        http.get(format!("{}/common/discovery/instance", emu.https_base()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_entra_error(s, &b, 400, "invalid_instance", 50049);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let emu = emulator().await;
    let r = client()
        .get(format!("{}/nothing/here", emu.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
