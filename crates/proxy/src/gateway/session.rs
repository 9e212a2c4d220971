//! One gateway client connection from accept to close: startup phase, authentication, upstream
//! login, relaying the server's greeting with a proxy-owned cancel key, then the byte splice.
//! Every refusal is answered with its client-safe ErrorResponse and logged with its reason.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgentra_wire::backend;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::Core;
use super::auth::{self, Outcome};
use crate::error::SessionError;
use crate::error::UpstreamError;
use crate::splice::{self, SpliceEnd};
use crate::startup::{self, Handshake};
use crate::stream::{BoxedIo, Peer};
use crate::upstream::{self, UpstreamAuth, UpstreamStream};

fn session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Keeps the active-connections gauge honest on every exit path.
struct ActiveGuard<'a>(&'a crate::metrics::Metrics);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection; never panics on client input and always releases its permit. Without
/// a permit (`max_connections` reached) the connection still gets its TLS handshake and cancel
/// requests are still routed, but a session start is refused with SQLSTATE 53300, as
/// PostgreSQL does.
pub(super) async fn run(
    core: Arc<Core>,
    io: BoxedIo,
    peer: Peer,
    permit: Option<OwnedSemaphorePermit>,
) {
    let span = tracing::info_span!(
        "session",
        id = %session_id(),
        peer = %peer.host(),
        user = tracing::field::Empty
    );
    async move {
        core.metrics
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        let _active = ActiveGuard(&core.metrics);
        let result = tokio::select! {
            r = serve(&core, io, peer, permit.is_some()) => r,
            _ = core.sessions_stop.cancelled() => Err(SessionError::Shutdown),
        };
        match result {
            Ok(()) => tracing::debug!("session closed"),
            Err(SessionError::ClientGone) => {
                core.metrics.failure("client_gone");
                tracing::debug!("client closed the connection during startup");
            }
            Err(e) => {
                core.metrics.failure(e.reason());
                tracing::warn!(reason = e.reason(), error = %e, "session refused or failed");
            }
        }
    }
    .instrument(span)
    .await
}

async fn serve(core: &Core, io: BoxedIo, peer: Peer, admitted: bool) -> Result<(), SessionError> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(core.config.startup_timeout_ms);
    let handshake = tokio::time::timeout_at(deadline, startup::handshake(io, peer, &core.policy))
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (mut conn, startup) = match handshake {
        Handshake::Cancel(req) => {
            core.metrics
                .cancel_requests_total
                .fetch_add(1, Ordering::Relaxed);
            match core.cancels.route(req.process_id, &req.secret) {
                Some(route) => {
                    tracing::info!(upstream = %route.endpoint, "forwarding cancel request");
                    if let Err(e) =
                        upstream::send_cancel(&route.endpoint, route.process_id, &route.secret)
                            .await
                    {
                        tracing::warn!(error = %e, "forwarding cancel request failed");
                    }
                }
                None => tracing::info!("cancel request for an unknown session ignored"),
            }
            return Ok(());
        }
        Handshake::Startup { conn, startup } => (conn, startup),
    };
    if !admitted {
        let mut conn = conn;
        let err = SessionError::TooManyConnections;
        if let Some(f) = err.to_client() {
            conn.send_error(&f).await;
        }
        return Err(err);
    }
    let role = startup.user().unwrap_or_default().to_owned();
    let database = startup.database().unwrap_or_default().to_owned();
    tracing::Span::current().record("user", role.as_str());

    let principal = core.registry.get(&role);
    let metrics = &core.metrics;
    let authenticated = tokio::time::timeout_at(
        deadline,
        auth::authenticate(
            &mut conn,
            &role,
            principal,
            core.config.auth.mode,
            &core.validator,
            |elapsed, _cached| metrics.validation_seconds.observe(elapsed),
        ),
    )
    .await
    .unwrap_or(Err(SessionError::Timeout));
    let outcome = match authenticated {
        Ok(o) => o,
        Err(e) => {
            if let Some(f) = e.to_client() {
                conn.send_error(&f).await;
            }
            return Err(e);
        }
    };

    let (endpoint, method) = match &outcome {
        Outcome::Entra { token, .. } => (
            core.trusted.endpoint(),
            if token.cached {
                "entra_cached"
            } else {
                "entra"
            },
        ),
        Outcome::Password(_) => match &core.config.upstream.password {
            Some(ep) => (ep, "password"),
            None => unreachable!("validate() requires upstream.password in mixed mode"),
        },
    };
    let upstream_auth = match &outcome {
        Outcome::Entra { .. } => UpstreamAuth::Trusted,
        Outcome::Password(p) => UpstreamAuth::Password(p.as_bytes()),
    };
    let started = Instant::now();
    let connected = tokio::time::timeout(
        Duration::from_millis(core.config.upstream.connect_timeout_ms),
        async {
            let mut stream: BoxedIo = match &outcome {
                Outcome::Entra { .. } => core.trusted.open().await?,
                Outcome::Password(_) => Box::new(UpstreamStream::connect(endpoint).await?),
            };
            let logged_in = upstream::login(&mut stream, &startup.params, upstream_auth).await?;
            Ok::<_, UpstreamError>((stream, logged_in))
        },
    )
    .await
    .unwrap_or(Err(UpstreamError::Timeout));
    metrics.upstream_connect_seconds.observe(started.elapsed());
    let (mut upstream_io, est) = match connected {
        Ok(c) => c,
        Err(e) => {
            let e = SessionError::Upstream(e);
            if let Some(f) = e.to_client() {
                conn.send_error(&f).await;
            }
            return Err(e);
        }
    };

    // Greeting: AuthenticationOk, then the server's messages with its cancel key swapped for
    // ours so cancel requests come back through the gateway.
    let key = est
        .backend_key
        .clone()
        .map(|(pid, secret)| core.cancels.register(endpoint.clone(), pid, secret));
    let mut out = BytesMut::with_capacity(512);
    backend::auth_ok(&mut out);
    for frame in &est.preamble {
        match (&key, frame.tag) {
            (Some((pid, secret, _)), b'K') => backend::backend_key_data(&mut out, *pid, secret),
            _ => frame.write_to(&mut out),
        }
    }
    conn.send(&out).await?;
    metrics.login(method);
    metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
    let app = startup.param("application_name").unwrap_or_default();
    match &outcome {
        Outcome::Entra { principal, token } => {
            let c = &token.claims;
            tracing::info!(
                user = %role, database = %database, application_name = %app,
                upn = c.user_name().unwrap_or_default(), appid = c.app_id().unwrap_or_default(),
                oid = c.oid.as_deref().unwrap_or_default(), principal_type = ?principal.kind,
                cached = token.cached,
                "Microsoft Entra ID connection authorized"
            );
        }
        Outcome::Password(_) => tracing::info!(
            user = %role, database = %database, application_name = %app,
            "password connection authorized by the upstream server"
        ),
    }
    drop(outcome);

    let end = splice::splice(
        &mut conn.stream,
        &mut upstream_io,
        &conn.buf,
        &est.leftover,
        &core.sessions_stop,
    )
    .await?;
    match end {
        SpliceEnd::Closed {
            to_upstream,
            to_client,
        } => tracing::debug!(to_upstream, to_client, "session ended"),
        SpliceEnd::Cancelled => return Err(SessionError::Shutdown),
    }
    Ok(())
}
