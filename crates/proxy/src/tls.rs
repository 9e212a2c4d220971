//! TLS server setup from PEM files (rustls with the aws-lc-rs provider). Only builds the
//! acceptor; it never reads from a socket.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{TlsFiles, UpstreamTls};
use crate::error::GatewayError;

/// Builds a TLS acceptor from the configured certificate chain and key.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, GatewayError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| GatewayError::Tls(format!("reading {}: {e}", files.cert_file.display())))?;
    if certs.is_empty() {
        return Err(GatewayError::Tls(format!(
            "no certificate in {}",
            files.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| GatewayError::Tls(format!("reading {}: {e}", files.key_file.display())))?;
    acceptor_from_der(certs, key)
}

/// Builds a TLS acceptor from DER values already in memory.
pub fn acceptor_from_der(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, GatewayError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| GatewayError::Tls(e.to_string()))?;
    // PostgreSQL 17 clients offer this ALPN id; answering it keeps them happy, and clients that
    // offer nothing are unaffected.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Builds the client TLS configuration of the trusted upstream channel: the server must chain
/// to `ca_file`, and the gateway presents its client certificate.
pub fn upstream_client(files: &UpstreamTls) -> Result<Arc<rustls::ClientConfig>, GatewayError> {
    let read_certs = |path: &std::path::Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| GatewayError::Tls(format!("reading {}: {e}", path.display())))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certs(&files.ca_file)? {
        roots
            .add(ca)
            .map_err(|e| GatewayError::Tls(format!("{}: {e}", files.ca_file.display())))?;
    }
    let chain = read_certs(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| GatewayError::Tls(format!("reading {}: {e}", files.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| GatewayError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}
