//! The sidecar's leg to the upstream server below the PostgreSQL login: TCP (or unix socket),
//! `SSLRequest`, and a rustls handshake checking what the instance's `sslmode` asks for. It
//! builds trust stores once and never sends a password.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use pgentra_wire::frontend::encode;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::config::{Instance, SslMode};
use crate::config::Endpoint;
use crate::stream::BoxedIo;
use crate::upstream::UpstreamStream;

/// Why the transport to the upstream server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP or unix connect failed.
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered `SSLRequest` with 'N'.
    #[error("{endpoint} does not accept TLS connections, but sslmode is {mode}")]
    TlsRefused {
        /// Where.
        endpoint: String,
        /// The instance's mode.
        mode: SslMode,
    },
    /// The TLS handshake failed (certificate not trusted, wrong host name, …).
    #[error("TLS handshake with {endpoint} failed: {source}")]
    Handshake {
        /// Where.
        endpoint: String,
        /// rustls' reason.
        source: std::io::Error,
    },
    /// I/O failed while negotiating.
    #[error("I/O error while negotiating TLS with {endpoint}: {source}")]
    Io {
        /// Where.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered `SSLRequest` with something else than 'S' or 'N'.
    #[error("{endpoint} answered the TLS request with {answer:?}; is it a PostgreSQL server?")]
    NotPostgres {
        /// Where.
        endpoint: String,
        /// The byte received.
        answer: char,
    },
}

/// How to reach one instance: its address and, unless `sslmode=disable`, a TLS connector.
#[derive(Clone)]
pub struct Dialer {
    endpoint: Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>, SslMode)>,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("endpoint", &self.endpoint.to_string())
            .field("sslmode", &self.tls.as_ref().map(|t| t.2))
            .finish()
    }
}

/// System roots, loaded at most once per process start (they are read from disk).
pub(crate) fn system_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "skipping an unreadable entry of the system certificate store");
    }
    found.certs
}

impl Dialer {
    /// Builds the dialer of `instance`; `system` is the platform's root store.
    pub fn new(instance: &Instance, system: &[CertificateDer<'static>]) -> Result<Dialer, String> {
        let endpoint = instance.upstream.clone();
        if instance.sslmode == SslMode::Disable || endpoint.is_unix() {
            return Ok(Dialer {
                endpoint,
                tls: None,
            });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        if instance.sslmode != SslMode::Require {
            roots.add_parsable_certificates(system.iter().cloned());
            if let Some(ca) = &instance.ca_file {
                add_ca_file(&mut roots, ca)?;
            }
        }
        let mode = match instance.sslmode {
            SslMode::Disable | SslMode::Require => pgentra_postgres::SslMode::Require,
            SslMode::VerifyCa => pgentra_postgres::SslMode::VerifyCa,
            SslMode::VerifyFull => pgentra_postgres::SslMode::VerifyFull,
        };
        let verifier =
            pgentra_postgres::server_cert_verifier(mode, Arc::new(roots), provider.clone())
                .map_err(|e| match e {
                    pgentra_postgres::TlsError::NoRoots(_) => format!(
                        "instance {}: sslmode={} needs trusted roots, but the system store is \
                         empty and no `ca-file` is set",
                        instance.name, instance.sslmode
                    ),
                    other => format!("instance {}: {other}", instance.name),
                })?;
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17+ checks ALPN on direct TLS; on the SSLRequest path it is harmless.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| {
            format!(
                "instance {}: {:?} is not a valid TLS server name: {e}",
                instance.name, endpoint.host
            )
        })?;
        Ok(Dialer {
            endpoint,
            tls: Some((TlsConnector::from(Arc::new(config)), name, instance.sslmode)),
        })
    }

    /// The upstream address.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Connects and, unless TLS is off, negotiates it. The stream is ready for the startup
    /// message.
    pub async fn dial(&self) -> Result<BoxedIo, DialError> {
        let ep = || self.endpoint.to_string();
        let mut stream = UpstreamStream::connect(&self.endpoint)
            .await
            .map_err(|e| match e {
                crate::error::UpstreamError::Connect { endpoint, source } => {
                    DialError::Connect { endpoint, source }
                }
                other => DialError::Connect {
                    endpoint: ep(),
                    source: std::io::Error::other(other.to_string()),
                },
            })?;
        let Some((connector, name, mode)) = &self.tls else {
            return Ok(Box::new(stream));
        };
        let io = |source| DialError::Io {
            endpoint: ep(),
            source,
        };
        let mut out = BytesMut::with_capacity(8);
        encode::ssl_request(&mut out);
        stream.write_all(&out).await.map_err(io)?;
        // Exactly one byte: anything the server sent after it would be unencrypted data
        // injected before the handshake (CVE-2021-23222), so it is never read here.
        let answer = stream.read_u8().await.map_err(io)?;
        match answer {
            b'S' => {}
            b'N' => {
                return Err(DialError::TlsRefused {
                    endpoint: ep(),
                    mode: *mode,
                });
            }
            other => {
                return Err(DialError::NotPostgres {
                    endpoint: ep(),
                    answer: other as char,
                });
            }
        }
        let tls = connector
            .connect(name.clone(), stream)
            .await
            .map_err(|source| DialError::Handshake {
                endpoint: ep(),
                source,
            })?;
        Ok(Box::new(tls))
    }

    /// Sends a `CancelRequest` over a new connection (TLS like sessions, since a server that
    /// requires TLS may refuse plaintext), then waits briefly for the server to close it.
    pub async fn cancel(&self, process_id: i32, secret: &[u8]) -> Result<(), DialError> {
        let mut stream = self.dial().await?;
        let io = |source| DialError::Io {
            endpoint: self.endpoint.to_string(),
            source,
        };
        let mut out = BytesMut::with_capacity(16);
        encode::cancel_request(&mut out, process_id, secret);
        stream.write_all(&out).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut sink = [0u8; 1];
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut sink)).await;
        Ok(())
    }
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    Ok(())
}
