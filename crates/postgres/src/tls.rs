//! TLS for PostgreSQL connections with rustls (aws-lc-rs), honouring libpq's `sslmode`: which
//! roots are trusted and how much of the server certificate is checked. Reads CA files once, at
//! construction; never opens a socket.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::settings::SslMode;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CA file or PEM text holds no usable certificate.
    #[error("{what} holds no usable CA certificate{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    NoCertificate {
        /// The file name, or "the CA PEM".
        what: String,
        /// The parse error, if any.
        detail: Option<String>,
    },
    /// `verify-ca`/`verify-full` was asked for but no root is trusted.
    #[error(
        "sslmode={0} needs trusted root certificates, but the system store is empty or disabled \
         and no CA file was given"
    )]
    NoRoots(SslMode),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Trusted roots for `verify-ca`/`verify-full`; built once, shared by every connection.
///
/// `disable`, `prefer` and `require` never look at the roots: `prefer` and `require` encrypt
/// without authenticating the server, as libpq does.
#[derive(Clone)]
pub struct Tls {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("roots", &self.roots.len())
            .finish()
    }
}

/// Options for [`Tls`].
#[derive(Debug, Clone)]
pub struct TlsBuilder {
    system_roots: bool,
    ca_files: Vec<PathBuf>,
    ca_pems: Vec<Vec<u8>>,
}

impl Tls {
    /// The platform's trusted roots (the store `rustls-native-certs` finds).
    pub fn system() -> Result<Tls, TlsError> {
        Tls::builder().build()
    }

    /// The platform's roots plus the CA certificates in a PEM file (libpq's `sslrootcert`).
    pub fn with_ca_file(path: impl AsRef<Path>) -> Result<Tls, TlsError> {
        Tls::builder().ca_file(path).build()
    }

    /// Options: system roots on or off, extra CA files or PEM text.
    pub fn builder() -> TlsBuilder {
        TlsBuilder {
            system_roots: true,
            ca_files: Vec::new(),
            ca_pems: Vec::new(),
        }
    }

    /// How many roots are trusted.
    pub fn root_count(&self) -> usize {
        self.roots.len()
    }

    /// A `tokio-postgres` TLS connector checking what `mode` asks for.
    pub fn make_connect(&self, mode: SslMode) -> Result<MakeRustlsConnect, TlsError> {
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?;
        let verifier = server_cert_verifier(mode, self.roots.clone(), self.provider.clone())?;
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

impl TlsBuilder {
    /// Whether to trust the platform's root store (default: yes).
    pub fn system_roots(mut self, on: bool) -> Self {
        self.system_roots = on;
        self
    }

    /// Also trusts the CA certificates in this PEM file.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_files.push(path.as_ref().to_owned());
        self
    }

    /// Also trusts the CA certificates in this PEM text.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// Loads the roots.
    pub fn build(self) -> Result<Tls, TlsError> {
        let mut roots = RootCertStore::empty();
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                // A broken entry in the system store should not stop connections that do not
                // rely on it; say so once.
                tracing::warn!(error = %e, "skipping unreadable entry of the system certificate store");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "loaded system root certificates");
        }
        for path in &self.ca_files {
            let pem = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
                path: path.clone(),
                source,
            })?;
            add_pem(&mut roots, &pem, &path.display().to_string())?;
        }
        for pem in &self.ca_pems {
            add_pem(&mut roots, pem, "the CA PEM")?;
        }
        Ok(Tls {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        })
    }
}

/// The server-certificate check libpq's `sslmode` names: `disable`/`prefer`/`require` accept any
/// certificate (the handshake signatures are still verified, so the session is encrypted);
/// `verify-ca` checks the chain to `roots` but not the host name; `verify-full` checks both.
/// Shared with the sidecar, so the driver and the proxy judge a server the same way.
pub fn server_cert_verifier(
    mode: SslMode,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    Ok(match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(EncryptOnly {
            algorithms: provider.signature_verification_algorithms,
        }),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            if roots.is_empty() {
                return Err(TlsError::NoRoots(mode));
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
            if mode == SslMode::VerifyCa {
                Arc::new(ChainOnly { inner: webpki })
            } else {
                webpki
            }
        }
    })
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8], what: &str) -> Result<(), TlsError> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsError::NoCertificate {
            what: what.to_owned(),
            detail: Some(e.to_string()),
        })?;
        roots.add(cert).map_err(|e| TlsError::NoCertificate {
            what: what.to_owned(),
            detail: Some(e.to_string()),
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(TlsError::NoCertificate {
            what: what.to_owned(),
            detail: None,
        });
    }
    Ok(())
}

/// `prefer`/`require`: any certificate is accepted, but the handshake signatures are still
/// checked, so the session is encrypted to whoever holds the presented certificate's key.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (and revocation) before the name, so a name error means
        // everything else already passed.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
