//! Test controls: faults, clock, key rotation, request log, minting, state dir, shutdown.

use std::time::{Duration, Instant};

use pgentra_emulator::{Emulator, EndpointKind, EnvProfile, Fault, Principal, dev};

use crate::entra::{assert_entra_error, post_form, secret_form, v2_path};
use crate::support::{client, emulator, json, try_verify, verify};

fn mi_url(emu: &pgentra_emulator::RunningEmulator) -> String {
    format!(
        "{}?api-version=2019-08-01&resource={}",
        emu.identity_endpoint(),
        dev::OSSRDBMS_RESOURCE
    )
}

#[tokio::test]
async fn status_faults_answer_in_the_endpoint_dialect_then_stop() {
    let emu = emulator().await;
    let faults = emu.faults();
    faults.inject(
        EndpointKind::TokenV2,
        Fault::Status {
            status: 429,
            retry_after: Some(7),
        },
        Some(1),
    );
    faults.inject(
        EndpointKind::AppService,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        Some(2),
    );
    faults.inject(
        EndpointKind::Imds,
        Fault::Status {
            status: 410,
            retry_after: None,
        },
        None,
    );

    let response = crate::support::tls_client(&emu)
        .post(format!("{}{}", emu.https_base(), v2_path(dev::TENANT_ID)))
        .form(&secret_form(dev::SP_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "7");
    let (s, b) = json(response).await;
    assert_entra_error(s, &b, 429, "temporarily_unavailable", 50196);
    assert_eq!(
        post_form(&emu, &v2_path(dev::TENANT_ID), &secret_form(dev::SP_SECRET))
            .await
            .0,
        200
    );

    let h = emu.identity_header();
    for _ in 0..2 {
        let (s, b) = json(
            client()
                .get(mi_url(&emu))
                .header("X-IDENTITY-HEADER", &h)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, b["statusCode"].as_u64()), (500, Some(500)));
    }
    assert_eq!(
        client()
            .get(mi_url(&emu))
            .header("X-IDENTITY-HEADER", &h)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let imds = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
        emu.imds_host(),
        dev::OSSRDBMS_RESOURCE
    );
    for _ in 0..3 {
        let r = client()
            .get(&imds)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410, "until cleared");
    }
    faults.clear();
    assert_eq!(
        client()
            .get(&imds)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn delay_and_drop_faults() {
    let emu = emulator().await;
    let h = emu.identity_header();
    emu.faults().inject(
        EndpointKind::AppService,
        Fault::Delay(Duration::from_millis(400)),
        Some(1),
    );
    let start = Instant::now();
    let r = client()
        .get(mi_url(&emu))
        .header("X-IDENTITY-HEADER", &h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(400));

    emu.faults()
        .inject(EndpointKind::AppService, Fault::Drop, Some(1));
    let err = client()
        .get(mi_url(&emu))
        .header("X-IDENTITY-HEADER", &h)
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "no HTTP answer: {err}");
    let r = client()
        .get(mi_url(&emu))
        .header("X-IDENTITY-HEADER", &h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 0, 200]);
}

#[tokio::test]
async fn clock_offset_issues_expired_and_not_yet_valid_tokens() {
    let emu = emulator().await;
    emu.clock().set_offset(-2 * 86_400);
    let h = emu.identity_header();
    let (_, b) = json(
        client()
            .get(mi_url(&emu))
            .header("X-IDENTITY-HEADER", &h)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let err = try_verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
        ),
        "{err:?}"
    );

    emu.clock().set_offset(3600);
    let (_, b) = post_form(&emu, &v2_path(dev::TENANT_ID), &secret_form(dev::SP_SECRET)).await;
    let err = try_verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            jsonwebtoken::errors::ErrorKind::ImmatureSignature
        ),
        "{err:?}"
    );

    emu.clock().set_offset(0);
    let (_, b) = post_form(&emu, &v2_path(dev::TENANT_ID), &secret_form(dev::SP_SECRET)).await;
    verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
}

#[tokio::test]
async fn rotation_publishes_old_and_new_keys_until_retired() {
    let emu = emulator().await;
    let old_kid = emu.current_kid();
    let old_token = emu.mint_for(
        Principal::SystemMi,
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(600),
    );
    let new_kid = emu.rotate_signing_key();
    assert_ne!(old_kid, new_kid);
    let kids: Vec<String> = crate::support::jwks(&emu)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, [new_kid.clone(), old_kid.clone()]);
    let new_token = emu.mint_for(
        Principal::SystemMi,
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(600),
    );
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        Some(new_kid)
    );
    verify(&emu, &old_token, dev::OSSRDBMS_RESOURCE).await;
    verify(&emu, &new_token, dev::OSSRDBMS_RESOURCE).await;
    emu.retire_old_keys();
    assert_eq!(crate::support::jwks(&emu).await.keys.len(), 1);
    assert!(
        try_verify(&emu, &old_token, dev::OSSRDBMS_RESOURCE)
            .await
            .is_err()
    );
    verify(&emu, &new_token, dev::OSSRDBMS_RESOURCE).await;
}

#[tokio::test]
async fn request_log_records_requests_but_never_secrets() {
    let emu = emulator().await;
    let url = format!(
        "{}{}?client_secret={}&client-request-id=abc",
        emu.https_base(),
        v2_path(dev::TENANT_ID),
        dev::SP_SECRET
    );
    let r = crate::support::tls_client(&emu)
        .post(url)
        .form(&secret_form(dev::SP_SECRET))
        .send()
        .await
        .unwrap();
    let token = json(r).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _) = post_form(
        &emu,
        &v2_path(dev::TENANT_ID),
        &[
            ("grant_type", "password"),
            ("client_id", dev::PUBLIC_CLIENT_ID),
            ("username", dev::USER_UPN),
            ("password", dev::USER_PASSWORD),
            ("scope", dev::OSSRDBMS_SCOPE),
        ],
    )
    .await;
    let h = emu.identity_header();
    client()
        .get(mi_url(&emu))
        .header("X-IDENTITY-HEADER", &h)
        .send()
        .await
        .unwrap();

    let log = emu.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].endpoint, EndpointKind::TokenV2);
    assert_eq!(log[0].method, "POST");
    assert_eq!(
        log[0].path,
        format!("/{}/oauth2/v2.0/token", dev::TENANT_ID)
    );
    assert_eq!(log[0].client_id.as_deref(), Some(dev::SP_CLIENT_ID));
    assert_eq!(log[0].grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(log[0].resource.as_deref(), Some(dev::OSSRDBMS_SCOPE));
    assert!(
        log[0].query.contains("client_secret=REDACTED"),
        "{}",
        log[0].query
    );
    assert_eq!(log[1].endpoint, EndpointKind::UserToken);
    assert_eq!(log[1].client_id.as_deref(), Some(dev::PUBLIC_CLIENT_ID));
    assert_eq!(log[2].endpoint, EndpointKind::AppService);
    assert_eq!(log[2].status, 200);
    let everything = format!("{log:?}");
    for secret in [dev::SP_SECRET, dev::USER_PASSWORD, &h, &token] {
        assert!(!everything.contains(secret), "log leaks a secret");
    }
    emu.clear_requests();
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn minted_tokens_verify_and_carry_the_principal() {
    let emu = emulator().await;
    let t = emu
        .mint(serde_json::json!({"aud": "x", "exp": crate::support::now() + 60, "custom": true}));
    assert_eq!(verify(&emu, &t, "x").await["custom"], true);
    let t = emu.mint_for(
        Principal::User {
            upn: dev::MFA_USER_UPN,
        },
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(600),
    );
    let c = verify(&emu, &t, dev::OSSRDBMS_RESOURCE).await;
    assert_eq!(c["upn"], dev::MFA_USER_UPN);
    assert_eq!(c["amr"], serde_json::json!(["pwd", "mfa"]));
    let t = emu.mint_for(
        Principal::UserMi {
            client_id: dev::USER_MI_CLIENT_ID,
        },
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(600),
    );
    assert_eq!(
        verify(&emu, &t, dev::OSSRDBMS_RESOURCE).await["xms_mirid"],
        dev::USER_MI_RESOURCE_ID
    );
    let t = emu.mint_for(
        Principal::ServicePrincipal {
            client_id: "stranger",
        },
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(600),
    );
    assert_eq!(
        verify(&emu, &t, dev::OSSRDBMS_RESOURCE).await["appid"],
        "stranger"
    );
}

#[tokio::test]
async fn env_exports_state_dir_reuse_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::builder()
        .state_dir(dir.path().to_path_buf())
        .identity_header("fixed-header".to_string())
        .start()
        .await
        .unwrap();
    assert_eq!(emu.identity_header(), "fixed-header");
    let exports = emu.env_exports(EnvProfile::AppService);
    assert_eq!(
        exports[0],
        ("IDENTITY_ENDPOINT".to_string(), emu.identity_endpoint())
    );
    let sp = emu.env_exports(EnvProfile::ClientSecret);
    assert!(sp.contains(&(
        "AZURE_CLIENT_SECRET".to_string(),
        dev::SP_SECRET.to_string()
    )));
    assert!(sp.contains(&(
        "NODE_EXTRA_CA_CERTS".to_string(),
        emu.ca_cert_path().display().to_string()
    )));
    for file in ["ca.pem", "server.pem", "server-key.pem"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    let (ca, kid, http) = (emu.ca_cert_pem(), emu.current_kid(), emu.http_base());
    emu.shutdown().await;
    assert!(
        client()
            .get(format!("{http}/common/discovery/keys"))
            .send()
            .await
            .is_err(),
        "stopped"
    );

    let again = Emulator::builder()
        .state_dir(dir.path().to_path_buf())
        .start()
        .await
        .unwrap();
    assert_eq!(again.ca_cert_pem(), ca, "CA reused");
    assert_eq!(again.current_kid(), kid, "signing key reused");
    // The HTTPS certificate is valid for 127.0.0.1 as well as localhost.
    let ip_url = format!(
        "https://127.0.0.1:{}/common/discovery/keys",
        again.https_addr().port()
    );
    assert_eq!(
        crate::support::tls_client(&again)
            .get(ip_url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn health_and_metrics_count_requests_without_being_recorded_or_faulted() {
    let emu = emulator().await;
    emu.faults().inject(EndpointKind::Other, Fault::Drop, None);
    let health = client()
        .get(format!("{}/healthz", emu.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let ok = client()
        .get(mi_url(&emu))
        .header("X-IDENTITY-HEADER", emu.identity_header())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let denied = client().get(mi_url(&emu)).send().await.unwrap();
    assert_ne!(denied.status(), 200);
    let denied_status = denied.status().as_u16();

    let metrics = client()
        .get(format!("{}/metrics", emu.http_base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("pgentra_emulator_requests_total{endpoint=\"app_service\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "pgentra_emulator_requests_total{{endpoint=\"app_service\",status=\"{denied_status}\"}} 1"
        )),
        "{metrics}"
    );
    // Probes are neither in the request log nor in the counters.
    assert_eq!(emu.requests().len(), 2);
    assert!(!metrics.contains("endpoint=\"other\""), "{metrics}");
}
