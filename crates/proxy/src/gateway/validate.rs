//! Access-token validation, the order Azure Database for PostgreSQL uses: compact-JWS shape,
//! `alg` allow-list (RS256 only), signature against the issuer's keys, `aud`, `exp`, `nbf`,
//! `iss`/`tid`, `oid`. Valid tokens are remembered by SHA-256 until they expire. It never binds
//! a token to a role (see `auth`) and never logs a token.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::failure::AuthFailure;
use super::jwks::{JwksCache, KeyError};

/// Longest token considered. Larger passwords are refused as malformed before any decoding.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// `aud` as a string or an array of strings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, accepted: &HashSet<String>) -> bool {
        match self {
            Audience::One(a) => accepted.contains(a),
            Audience::Many(v) => v.iter().any(|a| accepted.contains(a)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Audience::One(a) => a.clone(),
            Audience::Many(v) => v.join(","),
        }
    }
}

/// The claims the gateway uses. Unknown claims are ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Audience.
    pub aud: Option<Audience>,
    /// Issuer.
    pub iss: Option<String>,
    /// Tenant id.
    pub tid: Option<String>,
    /// Object id of the principal.
    pub oid: Option<String>,
    /// Client id of the application (v1).
    pub appid: Option<String>,
    /// Client id of the application (v2).
    pub azp: Option<String>,
    /// `app` for app-only tokens (optional claim).
    pub idtyp: Option<String>,
    /// Delegated scopes (user tokens only).
    pub scp: Option<String>,
    /// User principal name.
    pub upn: Option<String>,
    /// Legacy user name.
    pub unique_name: Option<String>,
    /// Preferred user name (v2).
    pub preferred_username: Option<String>,
    /// Group object ids.
    pub groups: Option<Vec<String>>,
    /// Authentication methods (`pwd`, `mfa`, ...).
    pub amr: Option<Vec<String>>,
    /// Expiry, epoch seconds.
    pub exp: Option<i64>,
    /// Not before, epoch seconds.
    pub nbf: Option<i64>,
}

/// Which kind of principal a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A delegated token for a signed-in user (`AAD_AUTH_TOKENTYPE_APP_USER`/`_OBO`).
    User,
    /// An app-only token (service principal, managed identity).
    App,
}

impl Claims {
    /// User when the token carries delegated-user claims and is not marked `idtyp=app`.
    pub fn kind(&self) -> TokenKind {
        let userish = self.scp.is_some() || self.upn.is_some() || self.unique_name.is_some();
        if userish && self.idtyp.as_deref() != Some("app") {
            TokenKind::User
        } else {
            TokenKind::App
        }
    }

    /// The application id (`appid`, or `azp` in v2 tokens).
    pub fn app_id(&self) -> Option<&str> {
        self.appid.as_deref().or(self.azp.as_deref())
    }

    /// A user's name for logs.
    pub fn user_name(&self) -> Option<&str> {
        self.upn
            .as_deref()
            .or(self.unique_name.as_deref())
            .or(self.preferred_username.as_deref())
    }
}

/// A validated token's claims, and whether they came from the cache.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Claims (the `oid` is present).
    pub claims: Arc<Claims>,
    /// True when the signature check was skipped because the same token passed before.
    pub cached: bool,
}

/// Source of "now" (injected so tests control time).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// What tokens are accepted.
#[derive(Debug, Clone)]
pub struct ValidationRules {
    /// Accepted `aud` values.
    pub audiences: HashSet<String>,
    /// Accepted `iss` values.
    pub issuers: HashSet<String>,
    /// Accepted `tid` values.
    pub tenants: HashSet<String>,
    /// Skew tolerated on `exp`/`nbf`.
    pub leeway: Duration,
}

/// Validates tokens against the rules and the issuer's keys.
pub struct Validator {
    rules: ValidationRules,
    keys: Arc<JwksCache>,
    cache: TokenCache,
    clock: Clock,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("rules", &self.rules)
            .field("keys", &self.keys)
            .finish()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    x5t: Option<String>,
}

impl Validator {
    /// A validator with a token cache of `cache_size` entries.
    pub fn new(
        rules: ValidationRules,
        keys: Arc<JwksCache>,
        cache_size: usize,
        clock: Clock,
    ) -> Self {
        Validator {
            rules,
            keys,
            cache: TokenCache::new(cache_size),
            clock,
        }
    }

    /// The key cache (for readiness and tests).
    pub fn keys(&self) -> &Arc<JwksCache> {
        &self.keys
    }

    fn now(&self) -> i64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Validates `token` fully, or returns cached claims when this exact token passed before
    /// and has not expired since.
    pub async fn validate(&self, token: &str) -> Result<Validated, AuthFailure> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthFailure::Malformed("token too long"));
        }
        let now = self.now();
        let digest = sha256(token.as_bytes());
        if let Some(claims) = self.cache.get(&digest, now) {
            return Ok(Validated {
                claims,
                cached: true,
            });
        }
        let claims = self.validate_uncached(token, now).await?;
        let claims = Arc::new(claims);
        if let Some(exp) = claims.exp {
            self.cache.insert(digest, claims.clone(), exp);
        }
        Ok(Validated {
            claims,
            cached: false,
        })
    }

    async fn validate_uncached(&self, token: &str, now: i64) -> Result<Claims, AuthFailure> {
        // Shape: three base64url parts.
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailure::Malformed("not three dot-separated parts"));
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(h64)
            .map_err(|_| AuthFailure::Malformed("header is not base64url"))?;
        let header: Header = serde_json::from_slice(&header_json)
            .map_err(|_| AuthFailure::Malformed("header is not a JSON object"))?;
        let alg = header.alg.unwrap_or_default();
        if alg != "RS256" {
            return Err(AuthFailure::Algorithm(clip(alg)));
        }
        let kid = header
            .kid
            .or(header.x5t)
            .ok_or(AuthFailure::Malformed("header has no kid"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(s64)
            .map_err(|_| AuthFailure::Malformed("signature is not base64url"))?;
        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyError::UnknownKid(k) => AuthFailure::UnknownKid(clip(k)),
            KeyError::Unavailable(why) => AuthFailure::KeysUnavailable(why),
        })?;
        let signed = &token[..h64.len() + 1 + p64.len()];
        key.verify_sig(signed.as_bytes(), &signature)
            .map_err(|_| AuthFailure::BadSignature)?;

        let payload = URL_SAFE_NO_PAD
            .decode(p64)
            .map_err(|_| AuthFailure::Malformed("payload is not base64url"))?;
        let claims: Claims = serde_json::from_slice(&payload)
            .map_err(|_| AuthFailure::Malformed("payload claims have unexpected types"))?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_claims(&self, c: &Claims, now: i64) -> Result<(), AuthFailure> {
        let leeway = self.rules.leeway.as_secs() as i64;
        match &c.aud {
            Some(aud) if aud.contains(&self.rules.audiences) => {}
            Some(aud) => return Err(AuthFailure::Audience(aud.describe())),
            None => return Err(AuthFailure::Audience(String::new())),
        }
        let exp = c.exp.ok_or(AuthFailure::Malformed("no exp claim"))?;
        if exp + leeway <= now {
            return Err(AuthFailure::Expired(exp));
        }
        if let Some(nbf) = c.nbf
            && nbf - leeway > now
        {
            return Err(AuthFailure::NotYetValid(nbf));
        }
        let iss = c.iss.as_deref().unwrap_or_default();
        if !self.rules.issuers.contains(iss) {
            return Err(AuthFailure::Issuer(iss.to_owned()));
        }
        let tid = c.tid.as_deref().unwrap_or_default();
        if !self.rules.tenants.contains(tid) {
            return Err(AuthFailure::Tenant(tid.to_owned()));
        }
        if c.oid.as_deref().is_none_or(str::is_empty) {
            return Err(AuthFailure::MissingOid);
        }
        Ok(())
    }
}

/// Unverified header values are attacker-chosen: keep what reaches the log short.
fn clip(mut s: String) -> String {
    if s.len() > 64 {
        let mut end = 64;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Claims of a validated token and its `exp`.
type CacheEntry = (Arc<Claims>, i64);

/// Bounded map from token digest to claims; entries die at the token's `exp`.
struct TokenCache {
    capacity: usize,
    map: Mutex<HashMap<[u8; 32], CacheEntry>>,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, digest: &[u8; 32], now: i64) -> Option<Arc<Claims>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(digest) {
            Some((claims, exp)) if *exp > now => Some(claims.clone()),
            Some(_) => {
                map.remove(digest);
                None
            }
            None => None,
        }
    }

    fn insert(&self, digest: [u8; 32], claims: Arc<Claims>, exp: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            map.retain(|_, (_, e)| *e > now);
            // Still full of live tokens: drop an arbitrary eighth rather than grow without bound.
            if map.len() >= self.capacity {
                let victims: Vec<[u8; 32]> =
                    map.keys().take(self.capacity / 8 + 1).copied().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(digest, (claims, exp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::jwks::KeySource;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{
        KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    };
    use serde_json::json;

    const TENANT: &str = "11111111-2222-3333-4444-555555555555";
    const NOW: i64 = 1_800_000_000;

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    struct Signer(KeyPair);

    impl Signer {
        fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
            let msg = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let mut sig = vec![0u8; self.0.public_modulus_len()];
            self.0
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            format!("{msg}.{}", b64(&sig))
        }
    }

    fn claims() -> serde_json::Value {
        json!({
            "aud": crate::config::OSSRDBMS_AUDIENCE,
            "iss": format!("https://sts.windows.net/{TENANT}/"),
            "tid": TENANT, "oid": "oid-1", "appid": "app-1", "idtyp": "app",
            "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
        })
    }

    fn header() -> serde_json::Value {
        json!({"typ": "JWT", "alg": "RS256", "kid": "k1", "x5t": "k1"})
    }

    fn setup() -> (Signer, Validator) {
        let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public =
            ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, kp.public_key().as_ref()).unwrap();
        let keys = HashMap::from([("k1".to_owned(), Arc::new(public))]);
        // Unknown kids trigger a refresh against a closed port: it fails and the set stays.
        let jwks = JwksCache::with_keys(
            KeySource::Jwks("http://127.0.0.1:9/keys".into()),
            reqwest::Client::new(),
            Duration::from_secs(10),
            Duration::from_secs(3600),
            keys,
        );
        let rules = ValidationRules {
            audiences: [crate::config::OSSRDBMS_AUDIENCE.to_owned()].into(),
            issuers: [format!("https://sts.windows.net/{TENANT}/")].into(),
            tenants: [TENANT.to_owned()].into(),
            leeway: Duration::from_secs(60),
        };
        let clock: Clock = Arc::new(|| UNIX_EPOCH + Duration::from_secs(NOW as u64));
        (
            Signer(kp),
            Validator::new(rules, Arc::new(jwks), 100, clock),
        )
    }

    async fn check(v: &Validator, token: &str) -> Result<Validated, AuthFailure> {
        v.validate(token).await
    }

    #[tokio::test]
    async fn valid_token_then_cached() {
        let (s, v) = setup();
        let t = s.sign(header(), claims());
        let first = check(&v, &t).await.unwrap();
        assert!(!first.cached);
        assert_eq!(first.claims.oid.as_deref(), Some("oid-1"));
        assert_eq!(first.claims.kind(), TokenKind::App);
        assert!(check(&v, &t).await.unwrap().cached);
    }

    #[tokio::test]
    async fn every_claim_failure_is_distinct() {
        let (s, v) = setup();
        let with = |k: &str, val: serde_json::Value| {
            let mut c = claims();
            c[k] = val;
            s.sign(header(), c)
        };
        let cases = [
            (
                with("aud", json!("https://management.azure.com")),
                "wrong_audience",
            ),
            (with("exp", json!(NOW - 61)), "expired"),
            (with("nbf", json!(NOW + 61)), "not_yet_valid"),
            (
                with("iss", json!("https://sts.windows.net/other/")),
                "wrong_issuer",
            ),
            (with("tid", json!("other")), "wrong_tenant"),
            (with("oid", json!(null)), "missing_oid"),
            (with("exp", json!("soon")), "malformed_token"),
        ];
        for (token, reason) in cases {
            let err = check(&v, &token).await.unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
        // Within the leeway both ways.
        assert!(check(&v, &with("exp", json!(NOW - 59))).await.is_ok());
        assert!(check(&v, &with("nbf", json!(NOW + 59))).await.is_ok());
        // An audience array containing ours is fine.
        assert!(
            check(
                &v,
                &with("aud", json!(["x", crate::config::OSSRDBMS_AUDIENCE]))
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn header_and_signature_failures() {
        let (s, v) = setup();
        let good = s.sign(header(), claims());
        let (msg, _) = good.rsplit_once('.').unwrap();
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims().to_string().as_bytes())
        );
        let hs = format!(
            "{}.{}.c2ln",
            b64(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#),
            b64(claims().to_string().as_bytes())
        );
        let mut other_kid = header();
        other_kid["kid"] = json!("k2");
        other_kid["x5t"] = json!("k2");
        let cases = [
            (none, "algorithm_not_allowed"),
            (hs, "algorithm_not_allowed"),
            (format!("{msg}.{}", b64(&[7u8; 256])), "bad_signature"),
            (s.sign(other_kid, claims()), "unknown_kid"),
            (good[..good.len() / 2].to_owned(), "malformed_token"),
            ("not a token".to_owned(), "malformed_token"),
            ("a.b.c.d".to_owned(), "malformed_token"),
            ("x".repeat(MAX_TOKEN_LEN + 1), "malformed_token"),
        ];
        for (token, reason) in cases {
            let err = check(&v, &token).await.unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
        // Claims swapped under a valid signature do not verify.
        let mut forged = claims();
        forged["oid"] = json!("someone-else");
        let sig = good.rsplit_once('.').unwrap().1;
        let (h, _) = msg.split_once('.').unwrap();
        let forged = format!("{h}.{}.{sig}", b64(forged.to_string().as_bytes()));
        assert_eq!(
            check(&v, &forged).await.unwrap_err(),
            AuthFailure::BadSignature
        );
    }
}
