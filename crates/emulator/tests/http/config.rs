//! Configuration from TOML files and the builder, served over HTTP: extra tenants, certificate
//! files, claim overrides.

use pgentra_emulator::{Config, ManagedIdentity, ServicePrincipal, Tenant, dev};
use serde_json::{Value, json};

use crate::entra::{assert_entra_error, post_form, v2_path};
use crate::support::{client, emulator_with, json, verify};

#[test]
fn the_example_file_parses_and_unknown_keys_name_the_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("emulator.example.toml");
    let config = Config::from_file(&path).expect("example config is valid");
    assert_eq!(
        config.user_identities[0].claims["xms_az_rid"],
        "/subscriptions/00000000-0000-4000-8000-000000000000"
    );
    assert_eq!(config.federated_credentials.len(), 1);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("display_name = \"Bob Admin\"", "displayname = \"Bob\"");
    let err = Config::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("displayname"), "{err}");
}

#[tokio::test]
async fn a_second_tenant_and_claim_overrides_from_toml() {
    let other_tenant = "88888888-8888-4888-8888-888888888888";
    let text = format!(
        r#"
        [[tenants]]
        id = "{tenant}"
        [[tenants]]
        id = "{other_tenant}"
        domains = ["fabrikam.onmicrosoft.com"]

        [system_identity]
        client_id = "{mi}"
        object_id = "{mi_oid}"
        resource_id = "/subscriptions/x/resourcegroups/y/providers/Microsoft.Web/sites/z"
        claims = {{ xms_az_rid = "/subscriptions/x", idtyp = "custom" }}

        [[service_principals]]
        client_id = "99999999-9999-4999-8999-000000000001"
        object_id = "99999999-9999-4999-8999-000000000002"
        tenant = "{other_tenant}"
        secrets = ["fabrikam-secret"]
        "#,
        tenant = dev::TENANT_ID,
        mi = dev::SYSTEM_MI_CLIENT_ID,
        mi_oid = dev::SYSTEM_MI_OBJECT_ID,
    );
    let emu = emulator_with(Config::from_toml_str(&text).unwrap()).await;
    let (s, b) = json(
        client()
            .get(format!(
                "{}?api-version=2019-08-01&resource={}",
                emu.identity_endpoint(),
                dev::OSSRDBMS_RESOURCE
            ))
            .header("X-IDENTITY-HEADER", emu.identity_header())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["xms_az_rid"], "/subscriptions/x");
    assert_eq!(
        claims["idtyp"], "custom",
        "overrides win over issued claims"
    );

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "99999999-9999-4999-8999-000000000001"),
        ("client_secret", "fabrikam-secret"),
        ("scope", dev::OSSRDBMS_SCOPE),
    ];
    let (s, b) = post_form(&emu, &v2_path("fabrikam.onmicrosoft.com"), &form).await;
    assert_eq!(s, 200, "{b}");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["tid"], other_tenant);
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{other_tenant}/")
    );
    // The same app asked for in the other tenant is not there.
    let (s, b) = post_form(&emu, &v2_path(dev::TENANT_ID), &form).await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
}

#[tokio::test]
async fn builder_overrides_can_remove_claims_and_a_bad_config_fails_start() {
    let config = Config::empty()
        .with_tenant(Tenant::new(dev::TENANT_ID))
        .with_system_identity(
            ManagedIdentity::new(
                dev::SYSTEM_MI_CLIENT_ID,
                dev::SYSTEM_MI_OBJECT_ID,
                "/subs/a",
            )
            .claim("xms_mirid", Value::Null)
            .claim("roles", json!(["reader"])),
        );
    let emu = emulator_with(config).await;
    let token = emu.mint_for(
        pgentra_emulator::Principal::SystemMi,
        dev::OSSRDBMS_RESOURCE,
        std::time::Duration::from_secs(60),
    );
    let claims = verify(&emu, &token, dev::OSSRDBMS_RESOURCE).await;
    assert!(claims.get("xms_mirid").is_none());
    assert_eq!(claims["roles"], json!(["reader"]));

    let broken = Config::default().with_service_principal(
        ServicePrincipal::new("new-app", "oid").certificate_path("/nonexistent/cert.pem"),
    );
    let err = pgentra_emulator::Emulator::builder()
        .config(broken)
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("new-app") && err.to_string().contains("/nonexistent/cert.pem"),
        "{err}"
    );
    let err = pgentra_emulator::Emulator::builder()
        .config(Config::empty())
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tenants"), "{err}");
}
