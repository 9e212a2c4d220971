//! The leg to the real PostgreSQL server, shared by both proxy modes: connect (TCP or unix
//! socket), send the client's startup parameters, log in (trust, cleartext, MD5 or SCRAM-SHA-256
//! with a password it is given), and collect everything up to `ReadyForQuery` so the session can
//! relay it. It never decides who may log in.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pgentra_wire::backend::{self, AuthRequest};
use pgentra_wire::frame::{Frame, decode_frame};
use pgentra_wire::frontend::encode;
use pgentra_wire::{ProtocolVersion, codes};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::config::Endpoint;
use crate::error::UpstreamError;

/// Longest upstream message accepted during login (ParameterStatus, notices, errors).
const MAX_UPSTREAM_STARTUP_MESSAGE: usize = 1 << 20;

/// A connection to the upstream server.
#[derive(Debug)]
pub enum UpstreamStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix-domain socket.
    Unix(UnixStream),
}

impl UpstreamStream {
    /// Connects to `endpoint`, with `TCP_NODELAY` on TCP (every message is latency-bound).
    pub async fn connect(endpoint: &Endpoint) -> Result<Self, UpstreamError> {
        let connect_err = |source| UpstreamError::Connect {
            endpoint: endpoint.to_string(),
            source,
        };
        if endpoint.is_unix() {
            let s = UnixStream::connect(endpoint.socket_path())
                .await
                .map_err(connect_err)?;
            Ok(UpstreamStream::Unix(s))
        } else {
            let s = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(connect_err)?;
            let _ = s.set_nodelay(true);
            Ok(UpstreamStream::Tcp(s))
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Tcp(s) => s.is_write_vectored(),
            UpstreamStream::Unix(s) => s.is_write_vectored(),
        }
    }
}

/// How to answer the upstream server's authentication request.
#[derive(Clone, Copy)]
pub enum UpstreamAuth<'a> {
    /// The channel is trusted: any password request is a configuration error.
    Trusted,
    /// Answer cleartext, MD5 or SCRAM-SHA-256 with this password.
    Password(&'a [u8]),
}

impl std::fmt::Debug for UpstreamAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAuth::Trusted => f.write_str("Trusted"),
            UpstreamAuth::Password(_) => f.write_str("Password(<redacted>)"),
        }
    }
}

/// A logged-in upstream session, stopped right after `ReadyForQuery`.
#[derive(Debug)]
pub struct Established {
    /// The connection.
    pub stream: UpstreamStream,
    /// Messages after `AuthenticationOk` up to and including `ReadyForQuery`, in order
    /// (ParameterStatus, BackendKeyData, NoticeResponse, ReadyForQuery).
    pub preamble: Vec<Frame>,
    /// The upstream's `BackendKeyData`, if it sent one.
    pub backend_key: Option<(i32, Bytes)>,
    /// Bytes read past `ReadyForQuery` (normally none); they belong to the client.
    pub leftover: BytesMut,
}

/// Connects and logs in with the client's startup parameters (`_pq_.*` options dropped: the
/// session runs protocol 3.0). `user` is taken from `params`.
pub async fn connect(
    endpoint: &Endpoint,
    params: &[(String, String)],
    auth: UpstreamAuth<'_>,
    timeout: Duration,
) -> Result<Established, UpstreamError> {
    tokio::time::timeout(timeout, connect_inner(endpoint, params, auth))
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

async fn connect_inner(
    endpoint: &Endpoint,
    params: &[(String, String)],
    auth: UpstreamAuth<'_>,
) -> Result<Established, UpstreamError> {
    let mut stream = UpstreamStream::connect(endpoint).await?;
    let LoggedIn {
        preamble,
        backend_key,
        leftover,
    } = login(&mut stream, params, auth).await?;
    Ok(Established {
        stream,
        preamble,
        backend_key,
        leftover,
    })
}

/// What [`login`] collected after `AuthenticationOk`.
#[derive(Debug)]
pub struct LoggedIn {
    /// Messages up to and including `ReadyForQuery`, in order.
    pub preamble: Vec<Frame>,
    /// The upstream's `BackendKeyData`, if it sent one.
    pub backend_key: Option<(i32, Bytes)>,
    /// Bytes read past `ReadyForQuery` (normally none); they belong to the client.
    pub leftover: BytesMut,
}

/// Logs in on a stream that is already connected (and, for the sidecar, already TLS-wrapped):
/// sends the startup message, answers the authentication request, and reads up to
/// `ReadyForQuery`. [`connect`] is this on a fresh TCP or unix socket.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    params: &[(String, String)],
    auth: UpstreamAuth<'_>,
) -> Result<LoggedIn, UpstreamError> {
    let mut out = BytesMut::new();
    encode::startup(
        &mut out,
        ProtocolVersion::V3_0,
        params
            .iter()
            .filter(|(k, _)| !k.starts_with("_pq_."))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    stream.write_all(&out).await?;
    let user = params
        .iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();

    let mut buf = BytesMut::with_capacity(4096);
    let mut scram: Option<ScramSha256> = None;
    // Authentication exchange.
    loop {
        let frame = read_frame(stream, &mut buf).await?;
        match frame.tag {
            b'R' => {}
            b'E' => return Err(server_error(&frame)),
            b'N' => continue,
            b'v' => continue,
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during authentication",
                    other as char
                )));
            }
        }
        let req = backend::parse_auth_request(frame.body)?;
        let password = |auth: UpstreamAuth<'_>| match auth {
            UpstreamAuth::Trusted => Err(UpstreamError::PasswordRequired),
            UpstreamAuth::Password(p) => Ok(p.to_vec()),
        };
        out.clear();
        match req {
            AuthRequest::Ok => break,
            AuthRequest::CleartextPassword => encode::password(&mut out, &password(auth)?),
            AuthRequest::Md5Password(salt) => {
                let hash = postgres_protocol::authentication::md5_hash(
                    user.as_bytes(),
                    &password(auth)?,
                    salt,
                );
                encode::password(&mut out, hash.as_bytes());
            }
            AuthRequest::Sasl(mechs) => {
                if !mechs.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(UpstreamError::UnsupportedAuth(mechs.join(",")));
                }
                let s = ScramSha256::new(&password(auth)?, ChannelBinding::unsupported());
                postgres_protocol::message::frontend::sasl_initial_response(
                    SCRAM_SHA_256,
                    s.message(),
                    &mut out,
                )
                .map_err(UpstreamError::Io)?;
                scram = Some(s);
            }
            AuthRequest::SaslContinue(data) => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Protocol("SASL continue without start".into()))?;
                s.update(&data)
                    .map_err(|e| UpstreamError::Scram(e.to_string()))?;
                postgres_protocol::message::frontend::sasl_response(s.message(), &mut out)
                    .map_err(UpstreamError::Io)?;
            }
            AuthRequest::SaslFinal(data) => {
                let mut s = scram
                    .take()
                    .ok_or_else(|| UpstreamError::Protocol("SASL final without start".into()))?;
                s.finish(&data)
                    .map_err(|e| UpstreamError::Scram(e.to_string()))?;
                continue;
            }
            AuthRequest::Other(code) => {
                return Err(UpstreamError::UnsupportedAuth(format!("code {code}")));
            }
        }
        stream.write_all(&out).await?;
    }

    // Post-authentication messages up to ReadyForQuery.
    let mut preamble = Vec::new();
    let mut backend_key = None;
    loop {
        let frame = read_frame(stream, &mut buf).await?;
        match frame.tag {
            b'E' => return Err(server_error(&frame)),
            b'K' => {
                backend_key = Some(backend::parse_backend_key_data(frame.body.clone())?);
                preamble.push(frame);
            }
            b'Z' => {
                preamble.push(frame);
                break;
            }
            _ => preamble.push(frame),
        }
    }
    Ok(LoggedIn {
        preamble,
        backend_key,
        // PostgreSQL can pipeline nothing after ReadyForQuery until the client speaks, but
        // whatever did arrive must reach the client, not vanish.
        leftover: buf,
    })
}

fn server_error(frame: &Frame) -> UpstreamError {
    match backend::parse_error_fields(&frame.body) {
        Ok(fields) => UpstreamError::Server(fields),
        Err(e) => UpstreamError::Protocol(e.to_string()),
    }
}

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Frame, UpstreamError> {
    loop {
        if let Some(f) = decode_frame(buf, MAX_UPSTREAM_STARTUP_MESSAGE)? {
            return Ok(f);
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return Err(UpstreamError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection during login",
            )));
        }
    }
}

/// Sends a `CancelRequest` for `(process_id, secret)` to `endpoint` on a new connection.
pub async fn send_cancel(
    endpoint: &Endpoint,
    process_id: i32,
    secret: &[u8],
) -> Result<(), UpstreamError> {
    let mut stream = UpstreamStream::connect(endpoint).await?;
    let mut out = BytesMut::new();
    encode::cancel_request(&mut out, process_id, secret);
    debug_assert_eq!(&out[4..8], &codes::CANCEL_REQUEST.to_be_bytes());
    stream.write_all(&out).await?;
    stream.flush().await?;
    // The server closes the connection after reading the request; waiting for that makes the
    // cancel observable before the client's next step.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}
