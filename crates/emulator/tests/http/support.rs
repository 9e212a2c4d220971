//! Shared helpers: start an emulator, HTTP clients that trust its CA, and token verification
//! against the JWKS it serves over HTTP (jsonwebtoken, never the emulator's own code).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pgentra_emulator::{Config, Emulator, RunningEmulator};
use serde_json::Value;

pub async fn emulator() -> RunningEmulator {
    emulator_with(Config::default()).await
}

pub async fn emulator_with(config: Config) -> RunningEmulator {
    Emulator::builder()
        .config(config)
        .start()
        .await
        .expect("emulator starts")
}

/// A plain client (no connection reuse surprises between tests: each test builds its own).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// A client that trusts only the emulator's CA.
pub fn tls_client(emu: &RunningEmulator) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("tls client")
}

pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, value)
}

/// Fetches the JWKS over HTTPS from the emulator's published URL.
pub async fn jwks(emu: &RunningEmulator) -> JwkSet {
    let response = tls_client(emu)
        .get(emu.jwks_url())
        .send()
        .await
        .expect("jwks request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("jwks json")
}

/// Verifies `token` against the served JWKS (RS256, kid lookup, audience, expiry with no leeway)
/// and returns its claims.
pub async fn verify(emu: &RunningEmulator, token: &str, audience: &str) -> Value {
    try_verify(emu, token, audience)
        .await
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
}

pub async fn try_verify(
    emu: &RunningEmulator,
    token: &str,
    audience: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = jsonwebtoken::decode_header(token)?;
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.clone().expect("kid in header");
    assert_eq!(header.x5t.as_deref(), Some(kid.as_str()), "x5t equals kid");
    let set = jwks(emu).await;
    let jwk = set.find(&kid).ok_or_else(|| {
        jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)
    })?;
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    validation.validate_nbf = true;
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
