//! `pgentra token` against the in-process emulator, run as the real binary.

use std::process::Output;

use assert_cmd::cargo::cargo_bin;
use base64::Engine;
use pgentra_emulator::{Emulator, RunningEmulator, dev};

async fn emulator() -> RunningEmulator {
    Emulator::builder().start().await.expect("start emulator")
}

/// Runs `pgentra` with exactly the given environment (plus a PATH without `az`).
async fn pgentra(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(cargo_bin("pgentra"));
    cmd.env_clear().env("PATH", "/nonexistent").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mi_env(em: &RunningEmulator) -> Vec<(String, String)> {
    vec![
        ("IDENTITY_ENDPOINT".into(), em.identity_endpoint()),
        ("IDENTITY_HEADER".into(), em.identity_header()),
    ]
}

#[tokio::test]
async fn system_assigned_managed_identity_token() {
    let em = emulator().await;
    let token = stdout(&pgentra(&mi_env(&em), &["token"]).await);
    let c = claims(&token);
    assert_eq!(c["oid"], dev::SYSTEM_MI_OBJECT_ID);
    assert_eq!(c["aud"], dev::OSSRDBMS_RESOURCE);
    assert_eq!(c["iss"], em.issuer(dev::TENANT_ID));
}

#[tokio::test]
async fn user_assigned_managed_identity_by_flag_and_by_env() {
    let em = emulator().await;
    let token = stdout(
        &pgentra(
            &mi_env(&em),
            &["token", "--client-id", dev::USER_MI_CLIENT_ID],
        )
        .await,
    );
    assert_eq!(claims(&token)["oid"], dev::USER_MI_OBJECT_ID);

    let mut env = mi_env(&em);
    env.push(("AZURE_CLIENT_ID".into(), dev::USER_MI_CLIENT_ID.into()));
    let token = stdout(&pgentra(&env, &["token", "--credential", "managed-identity"]).await);
    assert_eq!(claims(&token)["oid"], dev::USER_MI_OBJECT_ID);
}

#[tokio::test]
async fn service_principal_over_https_with_the_emulator_ca() {
    let em = emulator().await;
    let env = vec![
        ("AZURE_AUTHORITY_HOST".to_string(), em.authority_host()),
        ("AZURE_TENANT_ID".into(), dev::TENANT_ID.into()),
        ("AZURE_CLIENT_ID".into(), dev::SP_CLIENT_ID.into()),
        ("AZURE_CLIENT_SECRET".into(), dev::SP_SECRET.into()),
    ];
    let ca = em.ca_cert_path().display().to_string();
    let token = stdout(&pgentra(&env, &["token", "--ca-file", &ca]).await);
    let c = claims(&token);
    assert_eq!(c["appid"], dev::SP_CLIENT_ID);
    assert_eq!(c["oid"], dev::SP_OBJECT_ID);
}

#[tokio::test]
async fn decode_shows_claims_and_never_the_token() {
    let em = emulator().await;
    let token = stdout(&pgentra(&mi_env(&em), &["token"]).await);
    let out = stdout(&pgentra(&mi_env(&em), &["--output", "json", "token", "--decode"]).await);
    let decoded: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(decoded["oid"], dev::SYSTEM_MI_OBJECT_ID);
    assert_eq!(decoded["type"], "app");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !out.contains(signature),
        "decoded output leaks the signature"
    );
    assert!(!out.contains(&token));
}

#[tokio::test]
async fn no_credential_available_fails_with_one_line_naming_each_reason() {
    // Point IMDS at a closed loopback port: tests never send traffic off this machine.
    let env = vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST".to_string(),
        "http://127.0.0.1:9".to_string(),
    )];
    let out = pgentra(&env, &["token"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    for name in [
        "EnvironmentCredential",
        "ManagedIdentityCredential",
        "AzureCliCredential",
    ] {
        assert!(err.contains(name), "missing {name} in: {err}");
    }
}

#[tokio::test]
async fn wrong_identity_header_is_reported() {
    let em = emulator().await;
    let env = vec![
        ("IDENTITY_ENDPOINT".to_string(), em.identity_endpoint()),
        ("IDENTITY_HEADER".into(), "wrong".into()),
    ];
    let out = pgentra(&env, &["token"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ManagedIdentityCredential"), "{err}");
}
