//! Differential check with the Rust `azure_identity` 1.0 crate: its `ClientSecretCredential`
//! (custom cloud authority over https, emulator CA trusted through a custom reqwest transport)
//! and its App Service `ManagedIdentityCredential` (system- and user-assigned) get tokens the
//! emulator's JWKS verifies.
//!
//! `ManagedIdentityCredential` reads `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` from the process
//! environment only, so that check re-runs this test binary as a child process with those
//! variables set on the child (`child_managed_identity`); this process's environment is never
//! changed.

#[allow(dead_code)] // shared helpers; this binary uses only some of them
#[path = "http/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use pgentra_emulator::{EndpointKind, EnvProfile, dev};
use serde_json::{Value, json};

fn client_options(emu: &pgentra_emulator::RunningEmulator) -> ClientOptions {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = emu.authority_host();
    ClientOptions {
        transport: Some(Transport::new(Arc::new(support::tls_client(emu)))),
        cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
        // A wrong answer should fail the test at once, not after the SDK's retries.
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

#[tokio::test]
async fn client_secret_credential_with_custom_authority() {
    let emu = support::emulator().await;
    let credential = ClientSecretCredential::new(
        dev::TENANT_ID,
        dev::SP_CLIENT_ID.to_string(),
        Secret::new(dev::SP_SECRET),
        Some(ClientSecretCredentialOptions {
            client_options: client_options(&emu),
        }),
    )
    .expect("credential");
    let token = credential
        .get_token(&[dev::OSSRDBMS_SCOPE], None)
        .await
        .expect("token from the emulator");
    let claims = support::verify(&emu, token.token.secret(), dev::OSSRDBMS_RESOURCE).await;
    assert_eq!(claims["oid"], dev::SP_OBJECT_ID);
    assert_eq!(claims["appid"], dev::SP_CLIENT_ID);
    assert_eq!(claims["tid"], dev::TENANT_ID);
    let exp = claims["exp"].as_i64().unwrap();
    assert!((token.expires_on.unix_timestamp() - exp).abs() <= 10);
    assert!(
        emu.requests()
            .iter()
            .any(|r| r.endpoint == EndpointKind::TokenV2 && r.status == 200)
    );

    let wrong = ClientSecretCredential::new(
        dev::TENANT_ID,
        dev::SP_CLIENT_ID.to_string(),
        Secret::new("wrong"),
        Some(ClientSecretCredentialOptions {
            client_options: client_options(&emu),
        }),
    )
    .expect("credential");
    let err = wrong
        .get_token(&[dev::OSSRDBMS_SCOPE], None)
        .await
        .expect_err("a wrong secret is refused");
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
}

/// Runs `child_managed_identity` in a child process with the App Service variables.
async fn managed_identity_in_child(
    user_assigned: Option<Value>,
) -> (Value, pgentra_emulator::RunningEmulator) {
    let emu = support::emulator().await;
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = tokio::process::Command::new(exe);
    command
        .args([
            "--exact",
            "child_managed_identity",
            "--ignored",
            "--nocapture",
        ])
        .env_clear()
        .envs(emu.env_exports(EnvProfile::AppService))
        .env("PGENTRA_CHILD", "1")
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    if let Some(id) = &user_assigned {
        command.env("PGENTRA_CHILD_USER_ASSIGNED", id.to_string());
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("child finishes")
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PGENTRA_TOKEN "))
        .unwrap_or_else(|| panic!("no token line in child output:\n{stdout}"));
    (serde_json::from_str(line).expect("token JSON"), emu)
}

#[tokio::test]
async fn app_service_managed_identity_system_assigned() {
    let (printed, emu) = managed_identity_in_child(None).await;
    let claims = support::verify(
        &emu,
        printed["token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["oid"], dev::SYSTEM_MI_OBJECT_ID);
    assert_eq!(claims["xms_mirid"], dev::SYSTEM_MI_RESOURCE_ID);
    assert_eq!(printed["expires_on"], claims["exp"]);
}

#[tokio::test]
async fn app_service_managed_identity_user_assigned() {
    // Client and object id only: azure_identity 1.0 sends a resource id as `msi_res_id` (the
    // IMDS name) to App Service too, where the parameter is `mi_res_id`.
    for id in [
        json!({"client_id": dev::USER_MI_CLIENT_ID}),
        json!({"object_id": dev::USER_MI_OBJECT_ID}),
    ] {
        let (printed, emu) = managed_identity_in_child(Some(id.clone())).await;
        let claims = support::verify(
            &emu,
            printed["token"].as_str().unwrap(),
            dev::OSSRDBMS_RESOURCE,
        )
        .await;
        assert_eq!(claims["oid"], dev::USER_MI_OBJECT_ID, "{id}");
        assert_eq!(claims["appid"], dev::USER_MI_CLIENT_ID, "{id}");
    }
}

/// Child half of the managed-identity checks; only meaningful when started by them.
#[tokio::test]
#[ignore = "run by app_service_managed_identity_* in a child process with the emulator's env"]
async fn child_managed_identity() {
    assert_eq!(
        std::env::var("PGENTRA_CHILD").as_deref(),
        Ok("1"),
        "started directly; this test runs only as a child of the managed identity tests"
    );
    let user_assigned_id = std::env::var("PGENTRA_CHILD_USER_ASSIGNED")
        .ok()
        .map(|text| {
            let id: Value = serde_json::from_str(&text).expect("id JSON");
            if let Some(c) = id["client_id"].as_str() {
                UserAssignedId::ClientId(c.to_string())
            } else {
                UserAssignedId::ObjectId(id["object_id"].as_str().expect("object_id").to_string())
            }
        });
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id,
        client_options: ClientOptions {
            retry: RetryOptions::none(),
            ..Default::default()
        },
    }))
    .expect("credential");
    let token = credential
        .get_token(&[dev::OSSRDBMS_SCOPE], None)
        .await
        .expect("token");
    println!(
        "PGENTRA_TOKEN {}",
        json!({"token": token.token.secret(), "expires_on": token.expires_on.unix_timestamp()})
    );
}
