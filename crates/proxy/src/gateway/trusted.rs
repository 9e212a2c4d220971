//! The gateway's trusted channel to PostgreSQL: a unix socket, or TCP upgraded to TLS with the
//! gateway's client certificate (`SSLRequest`, then rustls). It opens transports; it never
//! decides who may log in and never sends a password.

use std::sync::Arc;

use bytes::BytesMut;
use pgentra_wire::frontend::encode;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::config::Endpoint;
use crate::error::UpstreamError;
use crate::stream::BoxedIo;
use crate::upstream::UpstreamStream;

/// How to reach the server for token-authenticated sessions and the registry.
#[derive(Clone)]
pub struct TrustedChannel {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for TrustedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedChannel")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl TrustedChannel {
    /// A channel to `endpoint`, with client TLS when `tls` is given.
    pub fn new(endpoint: Endpoint, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        TrustedChannel { endpoint, tls }
    }

    /// The endpoint (cancel requests go here, unencrypted, as PostgreSQL allows).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The client TLS configuration, if any.
    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Connects, and negotiates TLS when configured.
    pub async fn open(&self) -> Result<BoxedIo, UpstreamError> {
        let mut stream = UpstreamStream::connect(&self.endpoint).await?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(stream));
        };
        let mut out = BytesMut::new();
        encode::ssl_request(&mut out);
        stream.write_all(&out).await?;
        match stream.read_u8().await? {
            b'S' => {}
            b'N' => {
                return Err(UpstreamError::Protocol(format!(
                    "{} does not accept TLS, but upstream.trusted_tls is configured",
                    self.endpoint
                )));
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected answer {other:#x} to SSLRequest"
                )));
            }
        }
        let name = ServerName::try_from(self.endpoint.host.clone()).map_err(|e| {
            UpstreamError::Protocol(format!("invalid server name {:?}: {e}", self.endpoint.host))
        })?;
        let tls = TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| UpstreamError::Connect {
                endpoint: self.endpoint.to_string(),
                source: e,
            })?;
        Ok(Box::new(tls))
    }
}
