//! Service principal with a certificate: a PEM certificate and RSA key sign an RS256 client
//! assertion whose header carries `x5t` (base64url SHA-1 of the certificate's DER).
//!
//! The private key stays in memory inside aws-lc-rs; it is never printed or written anywhere.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use futures::future::BoxFuture;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

use crate::credential::entra::{ClientAuth, EntraClient, EntraOptions};
use crate::error::Error;
use crate::secret::AccessToken;
use crate::source::TokenSource;
use crate::time_fmt;

/// Lifetime of a client assertion (MSAL uses 10 minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// Certificate and key used to sign client assertions.
pub(crate) struct Signer {
    key: RsaKeyPair,
    x5t: String,
    chain_b64: Vec<String>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("x5t", &self.x5t)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads the first CERTIFICATE block (plus any further ones as the chain) and the private key
    /// (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) from PEM text.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Signer, Error> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| Error::config(format!("the certificate PEM is malformed: {e}")))?;
        let Some(leaf) = certs.first() else {
            return Err(Error::config(
                "the PEM holds no CERTIFICATE block (it must hold the certificate and its private key)",
            ));
        };
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
            Error::config(
                "the PEM holds no usable private key (expected PRIVATE KEY or RSA PRIVATE KEY; an encrypted key or a PFX file is not supported: convert with `openssl pkcs12 -nodes`)",
            )
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(Error::config(
                    "the private key is not an RSA key: Entra certificate credentials need RSA",
                ));
            }
        }
        .map_err(|e| Error::config(format!("the private key is not a valid RSA key: {e}")))?;
        let sha1 =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf.as_ref());
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Signer {
            key,
            x5t: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            chain_b64: certs.iter().map(|c| b64.encode(c.as_ref())).collect(),
        })
    }

    /// An RS256 client assertion for `client_id` addressed to `audience` (the token endpoint).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        send_chain: bool,
    ) -> Result<String, Error> {
        let now = time_fmt::to_epoch(SystemTime::now());
        let mut header = json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t});
        if send_chain {
            header["x5c"] = json!(self.chain_b64);
        }
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs() as i64,
        });
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            e.encode(header.to_string()),
            e.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::config("signing the client assertion failed"))?;
        Ok(format!("{signing_input}.{}", e.encode(sig)))
    }

    pub(crate) fn x5t(&self) -> &str {
        &self.x5t
    }
}

/// Options of [`ClientCertificateCredential`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CertificateOptions {
    /// Entra settings.
    pub entra: EntraOptions,
    /// Sends the certificate chain (`x5c`) so Entra can use subject-name/issuer authentication.
    pub send_certificate_chain: bool,
}

impl CertificateOptions {
    /// Sets the Entra options.
    pub fn with_entra(mut self, entra: EntraOptions) -> Self {
        self.entra = entra;
        self
    }
}

/// A service principal authenticating with a certificate.
#[derive(Debug)]
pub struct ClientCertificateCredential {
    client: EntraClient,
    signer: Signer,
    send_chain: bool,
}

impl ClientCertificateCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "ClientCertificateCredential";

    /// From PEM text holding the certificate and its unencrypted RSA private key.
    pub fn from_pem(
        tenant_id: &str,
        client_id: &str,
        pem: &[u8],
        options: CertificateOptions,
    ) -> Result<Self, Error> {
        let signer = Signer::from_pem(pem).map_err(|e| e.with_credential(Self::NAME))?;
        let authority = options
            .entra
            .authority(None)
            .map_err(|e| e.with_credential(Self::NAME))?;
        Ok(ClientCertificateCredential {
            client: EntraClient::new(
                Self::NAME,
                &authority,
                tenant_id,
                client_id,
                &options.entra.http,
            )?,
            signer,
            send_chain: options.send_certificate_chain,
        })
    }

    /// From a PEM file (as `AZURE_CLIENT_CERTIFICATE_PATH` names).
    pub fn from_pem_file(
        tenant_id: &str,
        client_id: &str,
        path: impl AsRef<Path>,
        options: CertificateOptions,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            Error::config(format!(
                "cannot read the certificate file {}: {e}",
                path.display()
            ))
            .with_credential(Self::NAME)
        })?;
        Self::from_pem(tenant_id, client_id, &pem, options).map_err(|e| {
            Error::config(format!("{}: {}", path.display(), e.message()))
                .with_credential(Self::NAME)
        })
    }

    /// The certificate thumbprint sent as `x5t` (base64url SHA-1).
    pub fn x5t(&self) -> &str {
        self.signer.x5t()
    }

    /// The token endpoint this credential posts to.
    pub fn token_endpoint(&self) -> &str {
        &self.client.endpoint
    }
}

impl TokenSource for ClientCertificateCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            let assertion = self
                .signer
                .assertion(
                    &self.client.client_id,
                    &self.client.endpoint,
                    self.send_chain,
                )
                .map_err(|e| e.with_credential(Self::NAME))?;
            self.client
                .token(scope, ClientAuth::Assertion(assertion))
                .await
        })
    }
}
