//! Entra credentials against the emulator's HTTPS authority: client secret, certificate
//! (RS256 assertion with x5t), workload identity (federated token file), environment.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pgentra_emulator::{
    CertificateSource, Config, EndpointKind, FederatedCredential, ServicePrincipal, dev,
};
use pgentra_token::{
    CertificateOptions, ClientCertificateCredential, ClientSecretCredential, Env,
    EnvironmentCredential, ErrorKind, OSSRDBMS_SCOPE, TokenSource, WorkloadIdentityCredential,
    vars,
};
use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256, RsaKeySize};

use crate::common::*;

const CERT_CLIENT_ID: &str = "77777777-7777-4777-8777-000000000001";
const CERT_OBJECT_ID: &str = "77777777-7777-4777-8777-000000000002";
const WI_ISSUER: &str = "https://oidc.aks.test/issuer/0000";
const WI_SUBJECT: &str = "system:serviceaccount:app:api";

fn rsa_key() -> KeyPair {
    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("RSA key")
}

/// A self-signed certificate and its key, as (cert PEM, key PEM).
fn self_signed(name: &str) -> (String, String) {
    let key = rsa_key();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn sp_with_cert(cert_pem: &str) -> ServicePrincipal {
    ServicePrincipal {
        client_id: CERT_CLIENT_ID.into(),
        object_id: CERT_OBJECT_ID.into(),
        tenant: None,
        display_name: Some("cert-app".into()),
        secrets: vec![],
        certificates: vec![CertificateSource::Pem(cert_pem.to_owned())],
        claims: Default::default(),
    }
}

#[tokio::test]
async fn client_secret_gets_an_app_token() {
    let emu = emulator().await;
    let cred = ClientSecretCredential::new(
        &emu.tenant_id(),
        dev::SP_CLIENT_ID,
        dev::SP_SECRET,
        entra(&emu),
    )
    .unwrap();
    let tok = cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    let c = tok.claims().unwrap();
    assert_eq!(c.appid.as_deref(), Some(dev::SP_CLIENT_ID));
    assert_eq!(c.oid.as_deref(), Some(dev::SP_OBJECT_ID));
    assert_eq!(
        c.iss.as_deref(),
        Some(emu.issuer(&emu.tenant_id()).as_str())
    );
    assert!(c.is_app());
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].endpoint, EndpointKind::TokenV2);
    assert_eq!(reqs[0].grant_type.as_deref(), Some("client_credentials"));
    assert!(!reqs[0].query.contains(dev::SP_SECRET));
}

#[tokio::test]
async fn entra_failures_carry_aadsts_codes_and_advice() {
    let emu = emulator().await;
    let tenant = emu.tenant_id();
    let cases: [(&str, &str, &str, u32, &str); 3] = [
        (
            &tenant,
            dev::SP_CLIENT_ID,
            "not-the-secret",
            7000215,
            "Secret ID",
        ),
        (
            "00000000-0000-4000-8000-00000000dead",
            dev::SP_CLIENT_ID,
            dev::SP_SECRET,
            90002,
            "tenant",
        ),
        (
            &tenant,
            "00000000-0000-4000-8000-00000000beef",
            dev::SP_SECRET,
            700016,
            "AZURE_CLIENT_ID",
        ),
    ];
    for (tenant, client, secret, code, advice) in cases {
        let cred = ClientSecretCredential::new(tenant, client, secret, entra(&emu)).unwrap();
        let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
        assert_eq!(e.aadsts(), Some(code), "{e}");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(text.starts_with("ClientSecretCredential: "), "{text}");
        assert!(text.contains(advice), "{text}");
        assert!(
            !text.contains("not-the-secret") && !text.contains(dev::SP_SECRET),
            "{text}"
        );
        assert!(!text.contains("Trace ID"), "first line only: {text}");
    }
}

#[tokio::test]
async fn untrusted_tls_is_unreachable_not_a_panic() {
    let emu = emulator().await;
    let opts = pgentra_token::EntraOptions::default()
        .with_authority_host(emu.authority_host())
        .with_http(
            pgentra_token::HttpOptions::default().with_retry(pgentra_token::RetryPolicy::none()),
        );
    let cred =
        ClientSecretCredential::new(&emu.tenant_id(), dev::SP_CLIENT_ID, dev::SP_SECRET, opts)
            .unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains(&emu.authority_host()), "{e}");
}

#[tokio::test]
async fn certificate_credential_signs_an_assertion_the_emulator_accepts() {
    let (cert_pem, key_pem) = self_signed("cert-app");
    let mut config = Config::default();
    config.service_principals.push(sp_with_cert(&cert_pem));
    let emu = emulator_with(config).await;
    let pem = format!("{cert_pem}{key_pem}");
    let opts = CertificateOptions::default().with_entra(entra(&emu));
    let cred = ClientCertificateCredential::from_pem(
        &emu.tenant_id(),
        CERT_CLIENT_ID,
        pem.as_bytes(),
        opts.clone(),
    )
    .unwrap();
    let tok = cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert_eq!(tok.claims().unwrap().oid.as_deref(), Some(CERT_OBJECT_ID));

    // The same key order reversed, and from a file through EnvironmentCredential.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sp.pem");
    std::fs::write(&path, format!("{key_pem}{cert_pem}")).unwrap();
    let env = Env::new()
        .with(vars::AZURE_TENANT_ID, emu.tenant_id())
        .with(vars::AZURE_CLIENT_ID, CERT_CLIENT_ID)
        .with(
            vars::AZURE_CLIENT_CERTIFICATE_PATH,
            path.display().to_string(),
        )
        .with(vars::AZURE_AUTHORITY_HOST, emu.authority_host());
    let env_cred = EnvironmentCredential::from_env(
        &env,
        pgentra_token::EntraOptions::default().with_http(http(&emu)),
    )
    .unwrap();
    assert!(env_cred.uses_certificate());
    let tok = env_cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert_eq!(tok.claims().unwrap().appid.as_deref(), Some(CERT_CLIENT_ID));

    // A certificate Entra does not know: the signature check fails with AADSTS700027.
    let (other_cert, other_key) = self_signed("other");
    let stranger = ClientCertificateCredential::from_pem(
        &emu.tenant_id(),
        CERT_CLIENT_ID,
        format!("{other_cert}{other_key}").as_bytes(),
        opts,
    )
    .unwrap();
    assert_ne!(stranger.x5t(), cred.x5t());
    let e = stranger.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.aadsts(), Some(700027), "{e}");
    assert!(e.to_string().contains("not registered"), "{e}");
}

#[test]
fn certificate_input_errors_are_specific() {
    let (cert_pem, key_pem) = self_signed("x");
    let opts = CertificateOptions::default;
    let cases: [(&str, String, &str); 4] = [
        ("no key", cert_pem.clone(), "private key"),
        ("no cert", key_pem.clone(), "CERTIFICATE"),
        ("garbage", "hello".into(), "CERTIFICATE"),
        (
            "ec key",
            {
                let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                format!("{cert_pem}{}", ec.serialize_pem())
            },
            "RSA",
        ),
    ];
    for (what, pem, expect) in cases {
        let e =
            ClientCertificateCredential::from_pem("t", "c", pem.as_bytes(), opts()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{what}");
        assert!(e.to_string().contains(expect), "{what}: {e}");
        assert!(
            !e.to_string().contains("BEGIN"),
            "{what}: no PEM echoed: {e}"
        );
    }
    let e = ClientCertificateCredential::from_pem_file("t", "c", "/nonexistent.pem", opts())
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
}

fn federated_token(key: &KeyPair, subject: &str, lifetime: Duration) -> String {
    let now = epoch(SystemTime::now());
    let claims = serde_json::json!({
        "iss": WI_ISSUER,
        "sub": subject,
        "aud": ["api://AzureADTokenExchange"],
        "iat": now,
        "nbf": now,
        "exp": now + lifetime.as_secs() as i64,
    });
    let enc = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &enc).unwrap()
}

#[tokio::test]
async fn workload_identity_rereads_the_token_file_on_every_fetch() {
    let issuer_key = rsa_key();
    let mut config = Config::default();
    config.federated_credentials.push(FederatedCredential {
        client_id: dev::USER_MI_CLIENT_ID.into(),
        issuer: WI_ISSUER.into(),
        subject: WI_SUBJECT.into(),
        audience: "api://AzureADTokenExchange".into(),
        public_key_pem: Some(issuer_key.public_key_pem()),
        public_key_path: None,
        jwks_url: None,
    });
    let emu = emulator_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(
        &file,
        federated_token(&issuer_key, WI_SUBJECT, Duration::from_secs(3600)),
    )
    .unwrap();
    let env = Env::new()
        .with(vars::AZURE_CLIENT_ID, dev::USER_MI_CLIENT_ID)
        .with(vars::AZURE_TENANT_ID, emu.tenant_id())
        .with(vars::AZURE_FEDERATED_TOKEN_FILE, file.display().to_string())
        .with(vars::AZURE_AUTHORITY_HOST, emu.authority_host());
    // The authority comes from AZURE_AUTHORITY_HOST in the injected env.
    let opts = pgentra_token::EntraOptions::default().with_http(http(&emu));
    let cred = WorkloadIdentityCredential::from_env(&env, opts).unwrap();
    let tok = cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert_eq!(
        tok.claims().unwrap().oid.as_deref(),
        Some(dev::USER_MI_OBJECT_ID)
    );

    // Kubelet rotated the file: the next fetch presents the new content (a wrong subject here).
    std::fs::write(
        &file,
        federated_token(
            &issuer_key,
            "system:serviceaccount:app:other",
            Duration::from_secs(3600),
        ),
    )
    .unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.aadsts(), Some(70021), "{e}");
    assert!(e.to_string().contains("federated"), "{e}");

    // A token signed by a key the federated credential does not trust.
    std::fs::write(
        &file,
        federated_token(&rsa_key(), WI_SUBJECT, Duration::from_secs(3600)),
    )
    .unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.aadsts(), Some(700027), "{e}");

    std::fs::write(&file, "  \n").unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("empty"), "{e}");

    std::fs::remove_file(&file).unwrap();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    assert_eq!(
        count(&emu, EndpointKind::TokenV2),
        3,
        "file errors make no request"
    );
}

#[test]
fn workload_identity_names_missing_variables() {
    let env = Env::new().with(vars::AZURE_CLIENT_ID, "c");
    let e = WorkloadIdentityCredential::from_env(&env, Default::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let text = e.to_string();
    assert!(
        text.contains("AZURE_FEDERATED_TOKEN_FILE") && text.contains("AZURE_TENANT_ID"),
        "{text}"
    );
}
