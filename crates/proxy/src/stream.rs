//! Byte-stream plumbing shared by both proxy modes: a boxed client stream (TCP, unix socket,
//! or TLS over either) and the peer description. No protocol knowledge here.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// Any duplex byte stream the proxy can serve.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed duplex stream.
pub type BoxedIo = Box<dyn Io>;

/// Who is on the other end of a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A unix-domain socket peer (always on this host).
    Unix,
}

impl Peer {
    /// Whether the peer is on this host (unix socket or loopback address).
    pub fn is_local(&self) -> bool {
        match self {
            Peer::Tcp(addr) => addr.ip().is_loopback(),
            Peer::Unix => true,
        }
    }

    /// The host as PostgreSQL prints it in messages.
    pub fn host(&self) -> String {
        match self {
            Peer::Tcp(addr) => addr.ip().to_string(),
            Peer::Unix => "[local]".to_owned(),
        }
    }
}
