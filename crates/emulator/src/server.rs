//! Listeners and connections: accepts TCP (and TLS) connections and serves the axum router on
//! each, and holds the shared state handlers read.
//!
//! Owns sockets and nothing else; a dropped connection here is how a `Drop` fault is carried out.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::faults::Faults;
use crate::keys::KeyRing;
use crate::record::RequestLog;
use crate::routes::managed_identity::MiCache;

/// Everything handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) dir: Directory,
    pub(crate) keys: KeyRing,
    pub(crate) clock: Clock,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    pub(crate) mi_cache: MiCache,
    pub(crate) identity_header: String,
    pub(crate) http_base: String,
    pub(crate) https_base: String,
    http_client: OnceLock<reqwest::Client>,
}

impl State {
    pub(crate) fn new(
        dir: Directory,
        keys: KeyRing,
        identity_header: String,
        http_base: String,
        https_base: String,
    ) -> Self {
        State {
            dir,
            keys,
            clock: Clock::default(),
            faults: Faults::default(),
            log: RequestLog::default(),
            mi_cache: MiCache::default(),
            identity_header,
            http_base,
            https_base,
            http_client: OnceLock::new(),
        }
    }

    /// HTTP client for fetching federated issuers' JWKS, built on first use.
    pub(crate) fn http_client(&self) -> &reqwest::Client {
        self.http_client.get_or_init(reqwest::Client::new)
    }
}

/// Per-connection facts the router needs, put into each request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ConnCtl {
    /// Notified by a `Drop` fault: the connection task then drops the socket unanswered.
    pub(crate) kill: Arc<Notify>,
    pub(crate) scheme: &'static str,
    /// The listener's own base URL, used when a request has no usable `Host`.
    pub(crate) base: String,
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` flips (or its sender is dropped).
pub(crate) fn spawn_listener(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    scheme: &'static str,
    base: String,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Usually EMFILE; back off briefly instead of spinning.
                    tracing::warn!(error = %e, "emulator accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let ctl = ConnCtl {
                kill: Arc::new(Notify::new()),
                scheme,
                base: base.clone(),
            };
            let router = router.clone();
            let shutdown = shutdown.clone();
            match tls.clone() {
                None => {
                    tokio::spawn(serve_connection(stream, router, ctl, shutdown));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        match handshake {
                            Ok(Ok(tls_stream)) => {
                                serve_connection(tls_stream, router, ctl, shutdown).await
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    })
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    ctl: ConnCtl,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = ctl.kill.clone();
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ctl.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "emulator connection ended with an error");
            }
        }
        // Dropping the connection future closes the socket without an answer.
        _ = kill.notified() => {}
        _ = shutdown.changed() => {}
    }
}
