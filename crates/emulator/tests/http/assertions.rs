//! Client assertions: certificate JWTs (RS256 by `x5t`, PS256 by `x5t#S256`) and workload
//! identity federated tokens (issuer PEM key, issuer certificate, or JWKS URL).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pgentra_emulator::{Config, FederatedCredential, RunningEmulator, ServicePrincipal, dev};
use serde_json::{Value, json};

use crate::entra::{assert_entra_error, post_form, v2_path};
use crate::support::{emulator_with, now, verify};

const CERT_SP: &str = "77777777-7777-4777-8777-000000000001";
const CERT_SP_OID: &str = "77777777-7777-4777-8777-000000000002";
const ISSUER: &str = "https://oidc.prod-aks.example/issuer-guid/";
const SUBJECT: &str = "system:serviceaccount:apps:orders";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Material {
    cert_pem: String,
    key_pem: String,
    public_pem: String,
    der: Vec<u8>,
}

fn rsa_material() -> Material {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("RSA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sp-cert");
    let cert = params.self_signed(&key).expect("cert");
    Material {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
        der: cert.der().to_vec(),
    }
}

fn thumb(der: &[u8], sha256: bool) -> String {
    let alg = if sha256 {
        &aws_lc_rs::digest::SHA256
    } else {
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY
    };
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(alg, der))
}

fn sign(key_pem: &str, header: &Header, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("encoding key");
    jsonwebtoken::encode(header, claims, &key).expect("sign")
}

fn cert_claims(aud: &str, exp_offset: i64) -> Value {
    json!({
        "aud": aud, "iss": CERT_SP, "sub": CERT_SP,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now(), "nbf": now(), "exp": now() + exp_offset,
    })
}

async fn exchange(emu: &RunningEmulator, client_id: &str, assertion: &str) -> (u16, Value) {
    post_form(
        emu,
        &v2_path(dev::TENANT_ID),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", dev::OSSRDBMS_SCOPE),
        ],
    )
    .await
}

fn token_endpoint(emu: &RunningEmulator) -> String {
    format!("{}/{}/oauth2/v2.0/token", emu.https_base(), dev::TENANT_ID)
}

#[tokio::test]
async fn certificate_assertions_rs256_and_ps256() {
    let m = rsa_material();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sp.pem");
    std::fs::write(&path, format!("{}{}", m.cert_pem, m.key_pem)).unwrap();
    let other = rsa_material();
    let config = Config::default().with_service_principal(
        ServicePrincipal::new(CERT_SP, CERT_SP_OID)
            .certificate_path(&path)
            .certificate_pem(other.cert_pem.clone()),
    );
    let emu = emulator_with(config).await;
    let aud = token_endpoint(&emu);

    let mut rs = Header::new(Algorithm::RS256);
    rs.x5t = Some(thumb(&m.der, false));
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(&m.key_pem, &rs, &cert_claims(&aud, 600)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["appid"], CERT_SP);
    assert_eq!(claims["oid"], CERT_SP_OID);
    assert_eq!(claims["appidacr"], "2");

    // MSAL Python with a SHA-256 thumbprint: PS256 + x5t#S256; the second registered cert.
    let mut ps = Header::new(Algorithm::PS256);
    ps.x5t_s256 = Some(thumb(&other.der, true));
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(&other.key_pem, &ps, &cert_claims(&aud, 600)),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    // Audience variants Entra accepts: v1 endpoint, tenant domain.
    let domain_aud = format!("{}/{}/oauth2/token", emu.https_base(), dev::TENANT_DOMAIN);
    let (s, _) = exchange(
        &emu,
        CERT_SP,
        &sign(&m.key_pem, &rs, &cert_claims(&domain_aud, 600)),
    )
    .await;
    assert_eq!(s, 200);

    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(
            &m.key_pem,
            &rs,
            &cert_claims("https://elsewhere.example/t/oauth2/v2.0/token", 600),
        ),
    )
    .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700023);
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(&m.key_pem, &rs, &cert_claims(&aud, -60)),
    )
    .await;
    let d = assert_entra_error(s, &b, 400, "invalid_client", 700024);
    assert!(d.contains("not within its valid time range"));

    let stranger = rsa_material();
    let mut unknown = Header::new(Algorithm::RS256);
    unknown.x5t = Some(thumb(&stranger.der, false));
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(&stranger.key_pem, &unknown, &cert_claims(&aud, 600)),
    )
    .await;
    let d = assert_entra_error(s, &b, 401, "invalid_client", 700027);
    assert!(d.contains("The key was not found"), "{d}");

    // Registered thumbprint, wrong key: the signature must not verify.
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(&stranger.key_pem, &rs, &cert_claims(&aud, 600)),
    )
    .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);

    let (s, b) = exchange(&emu, CERT_SP, "not.a-jwt").await;
    assert_entra_error(s, &b, 400, "invalid_request", 50027);

    let (s, b) = post_form(
        &emu,
        &v2_path(dev::TENANT_ID),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CERT_SP),
            ("client_assertion", "x.y.z"),
            ("scope", dev::OSSRDBMS_SCOPE),
        ],
    )
    .await;
    let d = assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(d.contains("client_assertion_type"));
}

fn federated_claims(sub: &str, aud: &str, exp_offset: i64) -> Value {
    json!({"iss": ISSUER, "sub": sub, "aud": [aud], "iat": now(), "nbf": now(), "exp": now() + exp_offset})
}

#[tokio::test]
async fn federated_tokens_with_issuer_key_or_certificate() {
    let issuer = rsa_material();
    let cert_issuer = rsa_material();
    let config = Config::default()
        .with_service_principal(ServicePrincipal::new(CERT_SP, CERT_SP_OID))
        .with_federated_credential(
            FederatedCredential::new(CERT_SP, ISSUER, SUBJECT)
                .public_key_pem(issuer.public_pem.clone()),
        )
        .with_federated_credential(
            FederatedCredential::new(CERT_SP, ISSUER, "system:serviceaccount:apps:billing")
                .public_key_pem(cert_issuer.cert_pem.clone()),
        );
    let emu = emulator_with(config).await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("cluster-key-1".into());
    let aud = "api://AzureADTokenExchange";

    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(
            &issuer.key_pem,
            &header,
            &federated_claims(SUBJECT, aud, 3600),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(
        (claims["appid"].as_str(), claims["appidacr"].as_str()),
        (Some(CERT_SP), Some("2"))
    );

    let billing = federated_claims("system:serviceaccount:apps:billing", aud, 3600);
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(&cert_issuer.key_pem, &header, &billing),
    )
    .await;
    assert_eq!(s, 200, "issuer given as a certificate: {b}");

    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(
            &issuer.key_pem,
            &header,
            &federated_claims("system:serviceaccount:apps:Orders", aud, 3600),
        ),
    )
    .await;
    let d = assert_entra_error(s, &b, 400, "invalid_request", 70021);
    assert!(
        d.contains(ISSUER) && d.contains("apps:Orders"),
        "subject match is case-sensitive: {d}"
    );
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(
            &issuer.key_pem,
            &header,
            &federated_claims(SUBJECT, "api://other", 3600),
        ),
    )
    .await;
    assert_entra_error(s, &b, 400, "invalid_request", 70021);
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(
            &issuer.key_pem,
            &header,
            &federated_claims(SUBJECT, aud, -10),
        ),
    )
    .await;
    assert_entra_error(s, &b, 400, "invalid_client", 700024);
    let forger = rsa_material();
    let (s, b) = exchange(
        &emu,
        CERT_SP,
        &sign(
            &forger.key_pem,
            &header,
            &federated_claims(SUBJECT, aud, 3600),
        ),
    )
    .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);
}

#[tokio::test]
async fn federated_user_assigned_identity_with_issuer_jwks_url() {
    // A second emulator plays the cluster's OIDC issuer: its JWKS signs the service-account token.
    let cluster = emulator_with(Config::default()).await;
    let jwks_url = format!("{}/common/discovery/keys", cluster.http_base());
    let config = Config::default().with_federated_credential(
        FederatedCredential::new(dev::USER_MI_CLIENT_ID, ISSUER, SUBJECT).jwks_url(jwks_url),
    );
    let emu = emulator_with(config).await;
    let sa_token = cluster.mint(federated_claims(
        SUBJECT,
        "api://AzureADTokenExchange",
        3600,
    ));
    let (s, b) = exchange(&emu, dev::USER_MI_CLIENT_ID, &sa_token).await;
    assert_eq!(s, 200, "{b}");
    let claims = verify(
        &emu,
        b["access_token"].as_str().unwrap(),
        dev::OSSRDBMS_RESOURCE,
    )
    .await;
    assert_eq!(claims["oid"], dev::USER_MI_OBJECT_ID);
    assert_eq!(claims["xms_mirid"], dev::USER_MI_RESOURCE_ID);

    // After the issuer rotates and retires its key, the old token no longer verifies.
    cluster.rotate_signing_key();
    cluster.retire_old_keys();
    let (s, b) = exchange(&emu, dev::USER_MI_CLIENT_ID, &sa_token).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error_codes"], json!([50166]));
    // A user-assigned identity has no secrets.
    let (s, b) = post_form(
        &emu,
        &v2_path(dev::TENANT_ID),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", dev::USER_MI_CLIENT_ID),
            ("client_secret", "guess"),
            ("scope", dev::OSSRDBMS_SCOPE),
        ],
    )
    .await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000215);
}
