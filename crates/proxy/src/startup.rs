//! The startup phase shared by both proxy modes: read the first packets, negotiate TLS (decline
//! GSSAPI), enforce the plaintext policy, negotiate the protocol version, and hand back either a
//! cancel request or a session start. It never authenticates and never talks upstream.

use bytes::BytesMut;
use pgentra_wire::backend::{self, ErrorFields};
use pgentra_wire::{CancelRequest, MAX_PASSWORD_LEN, Startup, StartupMessage, decode_startup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::config::PlaintextPolicy;
use crate::error::SessionError;
use crate::stream::{BoxedIo, Peer, Prefixed};

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A client connection with whatever bytes have been read but not yet consumed.
pub struct ClientConn {
    /// The (possibly TLS-wrapped) stream.
    pub stream: BoxedIo,
    /// Read-ahead buffer; bytes here belong before anything still in `stream`.
    pub buf: BytesMut,
    /// Whether TLS is active.
    pub tls: bool,
    /// The peer.
    pub peer: Peer,
}

impl std::fmt::Debug for ClientConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConn")
            .field("tls", &self.tls)
            .field("peer", &self.peer)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl ClientConn {
    /// Reads more bytes into `buf`. End of stream is [`SessionError::ClientGone`].
    pub async fn fill(&mut self) -> Result<(), SessionError> {
        // Reserve a little so small reads never reallocate; decoders reserve exact sizes for
        // large messages after validating their length.
        self.buf.reserve(1024);
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(SessionError::ClientGone);
        }
        Ok(())
    }

    /// Writes and flushes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Sends a FATAL `ErrorResponse` (best effort: the connection is about to close anyway).
    pub async fn send_error(&mut self, fields: &ErrorFields) {
        let mut out = BytesMut::new();
        backend::error_response(&mut out, fields);
        let _ = self.send(&out).await;
        let _ = self.stream.shutdown().await;
    }

    /// Reads one `PasswordMessage` (body at most 64 KB).
    pub async fn read_password(&mut self) -> Result<pgentra_wire::PasswordMessage, SessionError> {
        loop {
            if let Some(p) = pgentra_wire::decode_password(&mut self.buf, MAX_PASSWORD_LEN)? {
                return Ok(p);
            }
            self.fill().await?;
        }
    }
}

/// Outcome of the startup phase.
#[derive(Debug)]
pub enum Handshake {
    /// A cancel request; the connection carries nothing else.
    Cancel(CancelRequest),
    /// A session start with its validated parameters.
    Startup {
        /// The client connection, after TLS.
        conn: ClientConn,
        /// The startup message (`user` is present).
        startup: Startup,
    },
}

/// TLS and plaintext rules for the startup phase.
#[derive(Clone)]
pub struct StartupPolicy {
    /// TLS acceptor when TLS is configured.
    pub tls: Option<TlsAcceptor>,
    /// Who may skip TLS.
    pub plaintext: PlaintextPolicy,
}

impl std::fmt::Debug for StartupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartupPolicy")
            .field("tls", &self.tls.is_some())
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

impl StartupPolicy {
    fn plaintext_allowed(&self, peer: &Peer) -> bool {
        match self.plaintext {
            PlaintextPolicy::Never => false,
            PlaintextPolicy::Loopback => peer.is_local(),
            PlaintextPolicy::Always => true,
        }
    }
}

/// Runs the startup phase on a fresh connection. Errors that deserve an answer are sent to the
/// client by the caller (see [`SessionError::to_client`]).
pub async fn handshake(
    stream: BoxedIo,
    peer: Peer,
    policy: &StartupPolicy,
) -> Result<Handshake, SessionError> {
    let mut conn = ClientConn {
        stream,
        buf: BytesMut::with_capacity(1024),
        tls: false,
        peer,
    };
    // At most one SSLRequest and one GSSENCRequest precede the real packet.
    for _ in 0..3 {
        if conn.buf.is_empty() {
            conn.fill().await?;
        }
        // PostgreSQL 17 "direct" TLS: the client opens with a TLS ClientHello (record type
        // 0x16) instead of SSLRequest. As a startup length that byte would be invalid anyway.
        if !conn.tls
            && conn.buf.first() == Some(&TLS_HANDSHAKE_RECORD)
            && let Some(acceptor) = &policy.tls
        {
            let sniffed = conn.buf.split().freeze();
            let tls = acceptor
                .accept(Prefixed::new(sniffed, conn.stream))
                .await
                .map_err(SessionError::Tls)?;
            conn.stream = Box::new(tls);
            conn.tls = true;
            continue;
        }
        let msg = loop {
            match decode_startup(&mut conn.buf) {
                Ok(Some(m)) => break m,
                Ok(None) => conn.fill().await?,
                Err(e) => {
                    let err = SessionError::Protocol(e);
                    if let Some(f) = err.to_client() {
                        conn.send_error(&f).await;
                    }
                    return Err(err);
                }
            }
        };
        match msg {
            StartupMessage::SslRequest => {
                if conn.tls {
                    return Err(reject(
                        &mut conn,
                        SessionError::Protocol(pgentra_wire::WireError::StartupLayout(
                            "SSLRequest inside TLS",
                        )),
                    )
                    .await);
                }
                let Some(acceptor) = &policy.tls else {
                    conn.send(b"N").await?;
                    continue;
                };
                if !conn.buf.is_empty() {
                    // Bytes sent before our answer would be treated as if they came over TLS.
                    return Err(SessionError::DataAfterSslRequest);
                }
                conn.send(b"S").await?;
                let tls = acceptor
                    .accept(conn.stream)
                    .await
                    .map_err(SessionError::Tls)?;
                conn.stream = Box::new(tls);
                conn.tls = true;
            }
            StartupMessage::GssEncRequest => {
                conn.send(b"N").await?;
            }
            StartupMessage::Cancel(c) => return Ok(Handshake::Cancel(c)),
            StartupMessage::Startup(startup) => {
                let Some(user) = startup.user() else {
                    return Err(reject(&mut conn, SessionError::NoUser).await);
                };
                if !conn.tls && !policy.plaintext_allowed(&conn.peer) {
                    let err = SessionError::TlsRequired {
                        host: conn.peer.host(),
                        user: user.to_owned(),
                        database: startup.database().unwrap_or_default().to_owned(),
                    };
                    return Err(reject(&mut conn, err).await);
                }
                let options: Vec<&str> = startup.protocol_options().collect();
                if startup.version.minor > 0 || !options.is_empty() {
                    let mut out = BytesMut::new();
                    backend::negotiate_protocol_version(&mut out, 0, options);
                    conn.send(&out).await?;
                }
                return Ok(Handshake::Startup { conn, startup });
            }
        }
    }
    Err(reject(
        &mut conn,
        SessionError::Protocol(pgentra_wire::WireError::StartupLayout(
            "too many encryption requests",
        )),
    )
    .await)
}

async fn reject(conn: &mut ClientConn, err: SessionError) -> SessionError {
    if let Some(f) = err.to_client() {
        conn.send_error(&f).await;
    }
    err
}
