//! Signing keys of the identity provider: fetched from a JWKS URL (or found through OIDC
//! discovery), cached, refetched when an unknown `kid` shows up (at most once per
//! `min_refresh`) or when the set grows old, and kept as they were when a fetch fails.
//! It never sees a token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::Instant;

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document.
    Jwks(String),
    /// An OpenID configuration document whose `jwks_uri` names the JWKS.
    Discovery(String),
}

/// Why no key could be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key set is known but lacks this `kid`.
    #[error("no key with id {0:?}")]
    UnknownKid(String),
    /// No key set was ever fetched successfully.
    #[error("no signing keys: {0}")]
    Unavailable(String),
}

/// An RSA verification key ready for RS256.
pub type VerifyKey = Arc<ParsedPublicKey>;

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, VerifyKey>,
    fetched_at: Option<Instant>,
    generation: u64,
    last_error: Option<String>,
}

struct RefreshGate {
    last_attempt: Option<Instant>,
}

/// Cached key set with single-flight, rate-limited refresh.
pub struct JwksCache {
    source: KeySource,
    http: reqwest::Client,
    min_refresh: Duration,
    max_age: Duration,
    set: RwLock<Arc<KeySet>>,
    gate: tokio::sync::Mutex<RefreshGate>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.snapshot();
        f.debug_struct("JwksCache")
            .field("source", &self.source)
            .field("keys", &set.keys.len())
            .field("generation", &set.generation)
            .finish()
    }
}

impl JwksCache {
    /// A cache that fetches lazily on first use.
    pub fn new(
        source: KeySource,
        http: reqwest::Client,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Self {
        JwksCache {
            source,
            http,
            min_refresh,
            max_age,
            set: RwLock::new(Arc::new(KeySet::default())),
            gate: tokio::sync::Mutex::new(RefreshGate { last_attempt: None }),
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Number of keys held and how many successful fetches happened.
    pub fn stats(&self) -> (usize, u64) {
        let s = self.snapshot();
        (s.keys.len(), s.generation)
    }

    /// The key for `kid`, fetching or refreshing the set when needed.
    pub async fn key(&self, kid: &str) -> Result<VerifyKey, KeyError> {
        let set = self.snapshot();
        let fresh = set.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
        if let Some(k) = set.keys.get(kid)
            && fresh
        {
            return Ok(k.clone());
        }
        self.refresh(set.generation).await;
        let set = self.snapshot();
        match set.keys.get(kid) {
            Some(k) => Ok(k.clone()),
            None if set.generation == 0 => Err(KeyError::Unavailable(
                set.last_error
                    .clone()
                    .unwrap_or_else(|| "not fetched yet".to_owned()),
            )),
            None => Err(KeyError::UnknownKid(kid.to_owned())),
        }
    }

    /// Fetches now unless another caller already did since `seen_generation`, or the last
    /// attempt was less than `min_refresh` ago. On failure the previous set stays.
    async fn refresh(&self, seen_generation: u64) {
        let mut gate = self.gate.lock().await;
        if self.snapshot().generation != seen_generation {
            return; // someone refreshed while we waited for the gate
        }
        if gate
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.min_refresh)
        {
            return;
        }
        gate.last_attempt = Some(Instant::now());
        let result = self.fetch().await;
        let mut slot = self.set.write().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), source = ?self.source, "fetched signing keys");
                *slot = Arc::new(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                    generation: slot.generation + 1,
                    last_error: None,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, source = ?self.source, "fetching signing keys failed; keeping the previous set");
                *slot = Arc::new(KeySet {
                    keys: slot.keys.clone(),
                    fetched_at: slot.fetched_at,
                    generation: slot.generation,
                    last_error: Some(e),
                });
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyKey>, String> {
        let jwks_url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery(url) => {
                let doc: serde_json::Value = self.get_json(url).await?;
                doc.get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| format!("{url}: no jwks_uri in discovery document"))?
                    .to_owned()
            }
        };
        let doc = self.get_json(&jwks_url).await?;
        let keys = parse_jwks(&doc);
        if keys.is_empty() {
            return Err(format!("{jwks_url}: no usable RSA signing key"));
        }
        Ok(keys)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        resp.json()
            .await
            .map_err(|e| format!("GET {url}: invalid JSON: {e}"))
    }
}

/// Extracts the RSA signature keys of a JWKS document, indexed by `kid` and by `x5t`.
/// Keys of other types or marked `use: enc` are skipped.
pub fn parse_jwks(doc: &serde_json::Value) -> HashMap<String, VerifyKey> {
    let mut out = HashMap::new();
    let Some(keys) = doc.get("keys").and_then(|k| k.as_array()) else {
        return out;
    };
    for jwk in keys {
        let s = |k: &str| jwk.get(k).and_then(|v| v.as_str());
        if s("kty") != Some("RSA") || s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        if s("alg").is_some_and(|a| a != "RS256") {
            continue;
        }
        let (Some(n), Some(e)) = (s("n"), s("e")) else {
            continue;
        };
        let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
            continue;
        };
        let Ok(key) = (RsaPublicKeyComponents {
            n: &n[..],
            e: &e[..],
        })
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256) else {
            continue;
        };
        let key = Arc::new(key);
        for id in [s("kid"), s("x5t")].into_iter().flatten() {
            out.insert(id.to_owned(), key.clone());
        }
    }
    out
}

/// Builds a cache already holding `keys` (tests and static key configurations).
impl JwksCache {
    /// A cache pre-filled with `keys` that still refreshes from `source` on unknown `kid`s.
    pub fn with_keys(
        source: KeySource,
        http: reqwest::Client,
        min_refresh: Duration,
        max_age: Duration,
        keys: HashMap<String, VerifyKey>,
    ) -> Self {
        let cache = JwksCache::new(source, http, min_refresh, max_age);
        *cache.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(KeySet {
            keys,
            fetched_at: Some(Instant::now()),
            generation: 1,
            last_error: None,
        });
        cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;

    /// Serves a JWKS with one key (kid "k1") and counts the requests; fails while `down` is set.
    async fn jwks_server(
        hits: Arc<AtomicUsize>,
        down: Arc<std::sync::atomic::AtomicBool>,
    ) -> String {
        let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = kp.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e)},
            {"kty": "RSA", "use": "sig", "kid": "k1", "x5t": "t1", "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e)},
        ]});
        let app = axum::Router::new().route(
            "/keys",
            axum::routing::get(move || {
                let doc = doc.clone();
                hits.fetch_add(1, Ordering::SeqCst);
                let down = down.load(Ordering::SeqCst);
                async move {
                    if down {
                        Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                    } else {
                        Ok(axum::Json(doc))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/keys")
    }

    #[tokio::test]
    async fn unknown_kids_refresh_at_most_once_per_interval_and_outages_keep_keys() {
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let url = jwks_server(hits.clone(), down.clone()).await;
        let cache = JwksCache::new(
            KeySource::Jwks(url),
            reqwest::Client::new(),
            Duration::from_millis(300),
            Duration::from_secs(3600),
        );
        // First use fetches; only the RSA signature key is kept, under kid and x5t.
        cache.key("k1").await.unwrap();
        cache.key("t1").await.unwrap();
        assert_eq!(cache.stats(), (2, 1));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A burst of unknown kids costs one refetch, then none until the interval passes.
        assert_eq!(
            cache.key("nope").await.unwrap_err(),
            KeyError::UnknownKid("nope".into())
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        let burst = futures::future::join_all((0..20).map(|_| cache.key("nope"))).await;
        assert!(burst.iter().all(|r| r.is_err()));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(cache.key("enc").await.is_err());
        assert!(cache.key("ec").await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // Outage: refresh fails, the known key keeps working.
        down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(cache.key("other").await.is_err());
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        cache.key("k1").await.unwrap();
    }

    #[tokio::test]
    async fn never_fetched_keys_are_unavailable() {
        let cache = JwksCache::new(
            KeySource::Jwks("http://127.0.0.1:9/keys".into()),
            reqwest::Client::new(),
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
        assert!(matches!(
            cache.key("k1").await,
            Err(KeyError::Unavailable(_))
        ));
    }
}
