//! Token validation throughput: full RS256 validations per second (signature + claims) and
//! cached validations per second (SHA-256 of the token + map lookup), single thread.
//!
//! Usage: `validate_bench [iterations]` (release build recommended).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pgentra_proxy::gateway::jwks::{JwksCache, KeySource};
use pgentra_proxy::gateway::validate::{ValidationRules, Validator, system_clock};

const TENANT: &str = "11111111-1111-4111-8111-111111111111";

fn token(kp: &KeyPair) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = r#"{"typ":"JWT","alg":"RS256","kid":"k1","x5t":"k1"}"#;
    let claims = serde_json::json!({
        "aud": "https://ossrdbms-aad.database.windows.net",
        "iss": format!("https://sts.windows.net/{TENANT}/"), "tid": TENANT,
        "oid": "22222222-2222-4222-8222-000000000002", "appid": "22222222-2222-4222-8222-000000000001",
        "idtyp": "app", "ver": "1.0", "iat": now, "nbf": now, "exp": now + 3600,
        "xms_mirid": "/subscriptions/00000000-0000-4000-8000-000000000000/resourcegroups/rg/providers/Microsoft.Web/sites/app",
    });
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn validator(kp: &KeyPair, cache: usize) -> Validator {
    let public =
        ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, kp.public_key().as_ref()).unwrap();
    let keys = JwksCache::with_keys(
        KeySource::Jwks("http://127.0.0.1:9/unused".into()),
        reqwest::Client::new(),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
        HashMap::from([("k1".to_owned(), Arc::new(public))]),
    );
    let rules = ValidationRules {
        audiences: ["https://ossrdbms-aad.database.windows.net".to_owned()].into(),
        issuers: [format!("https://sts.windows.net/{TENANT}/")].into(),
        tenants: [TENANT.to_owned()].into(),
        leeway: Duration::from_secs(60),
    };
    Validator::new(rules, Arc::new(keys), cache, system_clock())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let t = token(&kp);
    let uncached = validator(&kp, 0);
    let cached = validator(&kp, 16);
    cached.validate(&t).await.unwrap();
    for _ in 0..200 {
        uncached.validate(&t).await.unwrap();
    }
    let start = Instant::now();
    for _ in 0..n {
        assert!(!uncached.validate(&t).await.unwrap().cached);
    }
    let full = start.elapsed();
    let start = Instant::now();
    for _ in 0..n * 10 {
        assert!(cached.validate(&t).await.unwrap().cached);
    }
    let hit = start.elapsed();
    println!("token_bytes={}", t.len());
    println!(
        "rs256_validations_per_sec={:.0} us_per_validation={:.1}",
        n as f64 / full.as_secs_f64(),
        full.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "cached_validations_per_sec={:.0} us_per_cached={:.2}",
        (n * 10) as f64 / hit.as_secs_f64(),
        hit.as_secs_f64() * 1e6 / (n * 10) as f64
    );
}
