//! Token signing keys: RSA-2048 keys with a self-signed certificate each, RS256 signing, rotation
//! and the JWKS documents that publish them.
//!
//! Signs whatever claims it is given; deciding the claims is `claims.rs`'s job. Never logs key
//! material.

use std::path::Path;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::error::Error;

/// One signing key and the certificate published for it (`x5c`).
pub(crate) struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
    /// base64url of the JWS header, precomputed because it never changes for this key.
    header_b64: String,
    n_b64: String,
    e_b64: String,
    cert_der: Vec<u8>,
    key_pem: String,
    cert_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

const KEY_FILE: &str = "signing-key.pem";
const CERT_FILE: &str = "signing-cert.pem";

impl SigningKey {
    /// A fresh RSA-2048 key with a self-signed certificate.
    pub(crate) fn generate() -> Result<Self, Error> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(|e| Error::Key(format!("cannot generate RSA key: {e}")))?;
        let key_pem = key.serialize_pem();
        let cert_pem = self_signed_cert(&key)?;
        Self::from_pems(&key_pem, &cert_pem)
    }

    /// Loads `signing-key.pem` + `signing-cert.pem` from `dir`, or generates and writes them.
    pub(crate) fn load_or_generate(dir: &Path) -> Result<Self, Error> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        if key_path.exists() && cert_path.exists() {
            let key_pem = crate::tls::read(&key_path)?;
            let cert_pem = crate::tls::read(&cert_path)?;
            return Self::from_pems(&key_pem, &cert_pem);
        }
        let key = Self::generate()?;
        key.save(dir)?;
        Ok(key)
    }

    /// Writes this key as the state dir's current signing key.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), Error> {
        crate::tls::write_private(&dir.join(KEY_FILE), &self.key_pem)?;
        crate::tls::write(&dir.join(CERT_FILE), &self.cert_pem)
    }

    fn from_pems(key_pem: &str, cert_pem: &str) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject as _;
        let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::Key(format!("signing key is not PKCS#8 PEM: {e}")))?;
        let pair = RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der())
            .map_err(|e| Error::Key(format!("signing key is not an RSA key: {e}")))?;
        let cert = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| Error::Key(format!("signing certificate is not PEM: {e}")))?;
        let cert_der = cert.as_ref().to_vec();
        // Entra's kid is the certificate's SHA-1 thumbprint, base64url: the same value as x5t.
        let kid =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der));
        let public = pair.public_key();
        let n_b64 = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e_b64 = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let header = json!({"typ": "JWT", "alg": "RS256", "x5t": kid, "kid": kid});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(SigningKey {
            kid,
            pair,
            header_b64,
            n_b64,
            e_b64,
            cert_der,
            key_pem: key_pem.to_string(),
            cert_pem: cert_pem.to_string(),
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as a compact JWS with header `{"typ":"JWT","alg":"RS256","x5t":kid,"kid":kid}`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() + 400);
        token.push_str(&self.header_b64);
        token.push('.');
        token.push_str(&payload);
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            // Invariant: the key was validated when loaded and the buffer is modulus-sized, the
            // only two conditions under which RSA signing fails.
            .expect("RSA signing with a validated key into a modulus-sized buffer");
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        token
    }

    /// The JWK for this key; v2 key sets carry an `issuer`.
    pub(crate) fn jwk(&self, issuer: Option<&str>) -> Value {
        let mut jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n_b64,
            "e": self.e_b64,
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        if let (Some(issuer), Some(map)) = (issuer, jwk.as_object_mut()) {
            map.insert("issuer".into(), Value::String(issuer.to_string()));
        }
        jwk
    }
}

fn self_signed_cert(key: &rcgen::KeyPair) -> Result<String, Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| Error::Key(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pgentra emulator token signing");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let cert = params
        .self_signed(key)
        .map_err(|e| Error::Key(format!("cannot self-sign the signing certificate: {e}")))?;
    Ok(cert.pem())
}

/// The current signing key and the previous ones still published.
#[derive(Debug)]
pub(crate) struct KeyRing {
    inner: RwLock<Ring>,
}

#[derive(Debug)]
struct Ring {
    current: Arc<SigningKey>,
    previous: Vec<Arc<SigningKey>>,
    generation: u64,
}

impl KeyRing {
    pub(crate) fn new(current: SigningKey) -> Self {
        KeyRing {
            inner: RwLock::new(Ring {
                current: Arc::new(current),
                previous: Vec::new(),
                generation: 0,
            }),
        }
    }

    pub(crate) fn current(&self) -> Arc<SigningKey> {
        self.read().current.clone()
    }

    /// Changes whenever the current key changes, so cached tokens can be invalidated.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Makes `next` current; the old current key stays published until [`KeyRing::retire`].
    pub(crate) fn rotate(&self, next: SigningKey) -> String {
        let mut ring = self.write();
        let kid = next.kid.clone();
        let old = std::mem::replace(&mut ring.current, Arc::new(next));
        ring.previous.insert(0, old);
        ring.generation += 1;
        kid
    }

    /// Unpublishes every key but the current one.
    pub(crate) fn retire(&self) {
        self.write().previous.clear();
    }

    /// JWKS document: current key first.
    pub(crate) fn jwks(&self, issuer: Option<&str>) -> Value {
        let ring = self.read();
        let keys: Vec<Value> = std::iter::once(&ring.current)
            .chain(&ring.previous)
            .map(|k| k.jwk(issuer))
            .collect();
        json!({ "keys": keys })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        // Poison is ignored: every write replaces whole fields, so the ring stays consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::load_or_generate(dir.path()).unwrap();
        let again = SigningKey::load_or_generate(dir.path()).unwrap();
        assert_eq!(a.kid(), again.kid(), "state dir key is reused");
        let token = a.sign(&json!({"x": 1}));
        assert_eq!(token.split('.').count(), 3);

        let ring = KeyRing::new(a);
        let old_kid = ring.current().kid().to_string();
        let new_kid = ring.rotate(SigningKey::generate().unwrap());
        assert_ne!(old_kid, new_kid);
        let jwks = ring.jwks(None);
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
        ring.retire();
        assert_eq!(ring.jwks(None)["keys"].as_array().unwrap().len(), 1);
    }
}
