//! Client listeners: TCP and a PostgreSQL-style unix socket `<dir>/.s.PGSQL.<port>`. They only
//! accept and describe connections; what happens next is the caller's business.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use crate::error::GatewayError;
use crate::stream::{BoxedIo, Peer};

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket (the path is removed when the listener is dropped).
    Unix(UnixListener, UnixSocketFile),
}

/// Owns the socket file of a unix listener and removes it on drop.
#[derive(Debug)]
pub struct UnixSocketFile(PathBuf);

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds a TCP listener (`host:port`).
    pub async fn bind_tcp(addr: &str) -> Result<Self, GatewayError> {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Listener::Tcp(l))
    }

    /// Binds `<dir>/.s.PGSQL.<port>`, replacing a stale socket file left by a dead process.
    pub fn bind_unix(dir: &Path, port: u16) -> Result<Self, GatewayError> {
        let path = dir.join(format!(".s.PGSQL.{port}"));
        let bind_err = |source| GatewayError::Bind {
            addr: path.display().to_string(),
            source,
        };
        if path.exists() {
            // A live server answers a connect; only a dead one's file may be removed.
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(bind_err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another server is listening on this socket",
                )));
            }
            std::fs::remove_file(&path).map_err(bind_err)?;
        }
        let l = UnixListener::bind(&path).map_err(bind_err)?;
        Ok(Listener::Unix(l, UnixSocketFile(path)))
    }

    /// The TCP address, if TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// The socket file, if unix.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Listener::Tcp(_) => None,
            Listener::Unix(_, f) => Some(&f.0),
        }
    }

    /// Accepts one connection (`TCP_NODELAY` set: the protocol is request/response).
    pub async fn accept(&self) -> std::io::Result<(BoxedIo, Peer)> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), Peer::Tcp(addr)))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Box::new(s), Peer::Unix))
            }
        }
    }
}
