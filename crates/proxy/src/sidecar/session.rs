//! One sidecar client connection from accept to close: the app's startup (no password unless one
//! is configured), the upstream login with a token from the cache (retried once with a fresh
//! token when the server refuses it), the greeting with a proxy-owned cancel key, then the byte
//! splice. Every failure reaches the app as an `ErrorResponse`; no token is ever logged.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgentra_token::{AccessToken, Claims};
use pgentra_wire::backend::{self, ErrorFields};
use pgentra_wire::{Startup, sqlstate};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::dial::{DialError, Dialer};
use super::identity::{self, RoleChoice};
use super::{Core, InstanceRt};
use crate::error::{SessionError, UpstreamError};
use crate::splice::{self, SpliceEnd};
use crate::startup::{self, ClientConn, Handshake};
use crate::stream::{BoxedIo, Peer};
use crate::upstream::{self, LoggedIn, UpstreamAuth};

fn session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Keeps the active-connections gauge honest on every exit path.
struct ActiveGuard<'a>(&'a super::metrics::InstanceMetrics);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection on instance `idx`; never panics on input, always releases its permit.
pub(super) async fn run(
    core: Arc<Core>,
    idx: usize,
    io: BoxedIo,
    peer: Peer,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let span = tracing::info_span!(
        "session",
        id = %session_id(),
        instance = %core.instances[idx].spec.name,
        peer = %peer.host()
    );
    async move {
        let inst = &core.instances[idx];
        let m = core.metrics.instance(idx);
        m.connections_active.fetch_add(1, Ordering::Relaxed);
        let _active = ActiveGuard(m);
        let result = tokio::select! {
            r = serve(&core, inst, idx, io, peer) => r,
            _ = core.sessions_stop.cancelled() => Err(SessionError::Shutdown),
        };
        match result {
            Ok(()) => tracing::debug!("session closed"),
            Err(SessionError::ClientGone) => {
                m.failure("client_gone");
                tracing::debug!("client closed the connection during startup");
            }
            Err(e) => {
                m.failure(e.reason());
                tracing::warn!(reason = e.reason(), error = %e, "session refused or failed");
            }
        }
    }
    .instrument(span)
    .await
}

/// Answers a connection beyond `max-connections` the way PostgreSQL does.
pub(super) async fn refuse_too_many(mut io: BoxedIo) {
    let mut out = BytesMut::new();
    backend::error_response(
        &mut out,
        &ErrorFields::fatal(
            sqlstate::TOO_MANY_CONNECTIONS,
            "sorry, too many clients already",
        ),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = io.write_all(&out).await;
        let _ = io.shutdown().await;
    })
    .await;
}

async fn serve(
    core: &Core,
    inst: &InstanceRt,
    idx: usize,
    io: BoxedIo,
    peer: Peer,
) -> Result<(), SessionError> {
    let m = core.metrics.instance(idx);
    let deadline = tokio::time::Instant::now() + core.startup_timeout;
    let handshake = tokio::time::timeout_at(deadline, startup::handshake(io, peer, &core.policy))
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (mut conn, startup) = match handshake {
        Handshake::Cancel(req) => {
            m.cancel_requests_total.fetch_add(1, Ordering::Relaxed);
            match inst.cancels.route(req.process_id, &req.secret) {
                Some(route) => {
                    tracing::info!(upstream = %route.endpoint, "forwarding cancel request");
                    if let Err(e) = inst.dialer.cancel(route.process_id, &route.secret).await {
                        tracing::warn!(error = %e, "forwarding cancel request failed");
                    }
                }
                None => tracing::info!("cancel request for an unknown session ignored"),
            }
            return Ok(());
        }
        Handshake::Startup { conn, startup } => (conn, startup),
    };
    let app_user = startup.user().unwrap_or_default().to_owned();
    if let Some(expected) = &core.client_password {
        let checked = tokio::time::timeout_at(
            deadline,
            check_password(&mut conn, expected.as_bytes(), &app_user),
        )
        .await
        .unwrap_or(Err(SessionError::Timeout));
        if let Err(e) = checked {
            return Err(reject(&mut conn, e).await);
        }
    }

    let started = Instant::now();
    let connected = connect_upstream(core, inst, idx, &startup).await;
    core.metrics
        .upstream_connect_seconds
        .observe(started.elapsed());
    let mut up = match connected {
        Ok(up) => up,
        Err(e) => return Err(reject(&mut conn, e).await),
    };

    // Greeting: AuthenticationOk, then the server's messages with its cancel key swapped for
    // ours so cancel requests come back through the sidecar.
    let key = up.login.backend_key.clone().map(|(pid, secret)| {
        inst.cancels
            .register(inst.dialer.endpoint().clone(), pid, secret)
    });
    let mut out = BytesMut::with_capacity(512);
    backend::auth_ok(&mut out);
    for frame in &up.login.preamble {
        match (&key, frame.tag) {
            (Some((pid, secret, _)), b'K') => backend::backend_key_data(&mut out, *pid, secret),
            _ => frame.write_to(&mut out),
        }
    }
    conn.send(&out).await?;
    m.sessions_total.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        user = %up.role,
        database = startup.database().unwrap_or_default(),
        application_name = startup.param("application_name").unwrap_or_default(),
        principal = %up.principal,
        retried = up.retried,
        upstream_ms = started.elapsed().as_millis() as u64,
        "connected to the upstream server with a Microsoft Entra token"
    );

    let end = splice::splice(
        &mut conn.stream,
        &mut up.stream,
        &conn.buf,
        &up.login.leftover,
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

async fn reject(conn: &mut ClientConn, err: SessionError) -> SessionError {
    if let Some(f) = err.to_client() {
        conn.send_error(&f).await;
    }
    err
}

async fn check_password(
    conn: &mut ClientConn,
    expected: &[u8],
    user: &str,
) -> Result<(), SessionError> {
    let mut out = BytesMut::new();
    backend::auth_cleartext_password(&mut out);
    conn.send(&out).await?;
    let given = conn.read_password().await?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected).is_ok() {
        return Ok(());
    }
    Err(SessionError::Rejected {
        fields: ErrorFields::fatal(
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        ),
        reason: "client_password",
        detail: "the app's password does not match client-password".to_owned(),
    })
}

/// A logged-in upstream session.
pub(super) struct Upstream {
    pub stream: BoxedIo,
    pub login: LoggedIn,
    pub role: String,
    pub principal: String,
    pub retried: bool,
}

/// Gets a token, picks the role, logs in, and retries once with a force-refreshed token when
/// the server refuses the first one (28P01/28000): the cached token may have been revoked or
/// signed with a retired key even though it has not expired.
pub(super) async fn connect_upstream(
    core: &Core,
    inst: &InstanceRt,
    idx: usize,
    startup: &Startup,
) -> Result<Upstream, SessionError> {
    let scope = inst.spec.scope.as_str();
    let token = get_token(core, scope).await?;
    let claims = token.claims().ok();
    let role = match identity::choose_role(inst.spec.user.as_deref(), startup.user()) {
        RoleChoice::Named(r) => r.to_owned(),
        RoleChoice::FromToken => claims
            .as_ref()
            .and_then(identity::role_from_claims)
            .ok_or_else(|| SessionError::Rejected {
                fields: ErrorFields::fatal(
                    sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    "pgentra proxy could not derive a role name from the access token; set `user` in the proxy's configuration",
                ),
                reason: "no_role",
                detail: "no usable name claim in the token".to_owned(),
            })?,
    };
    let principal = claims
        .as_ref()
        .map(identity::describe_principal)
        .unwrap_or_else(|| "an opaque token".to_owned());
    let params = upstream_params(&startup.params, &role, inst.spec.database.as_deref());
    let timeout = core.connect_timeout;

    match attempt(&inst.dialer, &params, &token, timeout).await {
        Ok((stream, login)) => Ok(Upstream {
            stream,
            login,
            role,
            principal,
            retried: false,
        }),
        Err(Failure::Login(UpstreamError::Server(f))) if is_auth_failure(&f.code) => {
            core.metrics.forced_refresh(scope);
            tracing::info!(code = %f.code, message = %f.message, "server refused the token; fetching a fresh one");
            let fresh = core.tokens.force_refresh(scope).await;
            let describe = |f: ErrorFields, note: Option<String>| {
                refused(f, &role, &principal, claims.as_ref(), note)
            };
            match fresh {
                Ok(t) if t.secret() != token.secret() => {
                    core.metrics
                        .instance(idx)
                        .auth_retries_total
                        .fetch_add(1, Ordering::Relaxed);
                    match attempt(&inst.dialer, &params, &t, timeout).await {
                        Ok((stream, login)) => Ok(Upstream {
                            stream,
                            login,
                            role,
                            principal,
                            retried: true,
                        }),
                        Err(Failure::Login(UpstreamError::Server(f2))) => Err(describe(
                            f2,
                            Some("a freshly fetched token was refused too".to_owned()),
                        )),
                        Err(other) => Err(other.into_session_error(&inst.spec.name, timeout)),
                    }
                }
                Ok(_) => Err(describe(
                    f,
                    Some("the identity endpoint returned the same token again".to_owned()),
                )),
                Err(e) => Err(describe(
                    f,
                    Some(format!("fetching a fresh token failed: {e}")),
                )),
            }
        }
        Err(e) => Err(e.into_session_error(&inst.spec.name, timeout)),
    }
}

/// The token for `scope`: from memory when possible (the normal case: the cache refreshes
/// ahead in the background), otherwise fetched, bounded by the connect timeout.
async fn get_token(core: &Core, scope: &str) -> Result<AccessToken, SessionError> {
    if let Some(t) = core.tokens.cached(scope) {
        return Ok(t);
    }
    let fetched = tokio::time::timeout(core.connect_timeout, core.tokens.get_token(scope)).await;
    let err = match fetched {
        Ok(Ok(t)) => return Ok(t),
        Ok(Err(e)) => e,
        Err(_) => pgentra_token::Error::other(
            pgentra_token::ErrorKind::Timeout,
            format!(
                "no token within the connect timeout ({:?})",
                core.connect_timeout
            ),
        ),
    };
    Err(SessionError::Rejected {
        fields: identity::token_error_fields(&err),
        reason: "token_unavailable",
        detail: err.to_string(),
    })
}

fn is_auth_failure(code: &str) -> bool {
    code == sqlstate::INVALID_PASSWORD || code == sqlstate::INVALID_AUTHORIZATION_SPECIFICATION
}

/// The server refused the token: its message goes to the app as is, with a detail naming the
/// role and principal the sidecar used (the server's own detail wins when present).
fn refused(
    mut f: ErrorFields,
    role: &str,
    principal: &str,
    claims: Option<&Claims>,
    note: Option<String>,
) -> SessionError {
    let log = format!("{} {}", f.code, f.message);
    if f.detail.is_none() {
        let mut d = format!(
            "pgentra proxy logged in as role \"{role}\" with a Microsoft Entra token for {principal}"
        );
        if let Some(aud) = claims.and_then(|c| c.aud.as_deref()) {
            d.push_str(&format!(" (audience {aud})"));
        }
        if let Some(n) = note {
            d.push_str("; ");
            d.push_str(&n);
        }
        d.push('.');
        f.detail = Some(d);
    }
    SessionError::Rejected {
        fields: f,
        reason: "token_rejected",
        detail: log,
    }
}

/// The app's startup parameters with the role (and database, when configured) replaced.
fn upstream_params(
    app: &[(String, String)],
    role: &str,
    database: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(app.len() + 2);
    out.push(("user".to_owned(), role.to_owned()));
    if let Some(db) = database {
        out.push(("database".to_owned(), db.to_owned()));
    }
    for (k, v) in app {
        if k == "user" || (database.is_some() && k == "database") {
            continue;
        }
        out.push((k.clone(), v.clone()));
    }
    out
}

pub(super) enum Failure {
    Dial(DialError),
    Login(UpstreamError),
    Timeout,
}

impl Failure {
    fn into_session_error(self, instance: &str, timeout: Duration) -> SessionError {
        let (code, reason, message) = match &self {
            Failure::Dial(e @ DialError::Connect { .. }) => (
                sqlstate::CONNECTION_FAILURE,
                "upstream_connect",
                format!("pgentra proxy {e}"),
            ),
            Failure::Dial(e @ (DialError::TlsRefused { .. } | DialError::Handshake { .. })) => (
                sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                "upstream_tls",
                format!("pgentra proxy: {e}"),
            ),
            Failure::Dial(e) => (
                sqlstate::CONNECTION_FAILURE,
                "upstream_io",
                format!("pgentra proxy: {e}"),
            ),
            Failure::Login(UpstreamError::Server(f)) => {
                return SessionError::Rejected {
                    fields: f.clone(),
                    reason: "upstream_refused",
                    detail: format!("{} {}", f.code, f.message),
                };
            }
            Failure::Login(e @ UpstreamError::UnsupportedAuth(_)) => (
                sqlstate::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION,
                e.reason(),
                format!(
                    "pgentra proxy: the upstream server asked for an authentication method the proxy does not support ({e})"
                ),
            ),
            Failure::Login(e) => (
                sqlstate::CONNECTION_FAILURE,
                e.reason(),
                format!("pgentra proxy: logging in to the upstream server failed: {e}"),
            ),
            Failure::Timeout => (
                sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                "upstream_timeout",
                format!(
                    "pgentra proxy: connecting to the upstream server timed out after {:?}",
                    timeout
                ),
            ),
        };
        let mut fields = ErrorFields::fatal(code, message.clone());
        fields.detail = Some(format!("instance \"{instance}\""));
        SessionError::Rejected {
            fields,
            reason,
            detail: message,
        }
    }
}

/// Dials and logs in once with `token`, within `timeout`.
pub(super) async fn attempt(
    dialer: &Dialer,
    params: &[(String, String)],
    token: &AccessToken,
    timeout: Duration,
) -> Result<(BoxedIo, LoggedIn), Failure> {
    let once = async {
        let mut stream = dialer.dial().await.map_err(Failure::Dial)?;
        let login = upstream::login(
            &mut stream,
            params,
            UpstreamAuth::Password(token.secret().as_bytes()),
        )
        .await
        .map_err(Failure::Login)?;
        Ok((stream, login))
    };
    tokio::time::timeout(timeout, once)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn upstream_params_replace_user_and_configured_database_only() {
        let app = p(&[
            ("user", "root"),
            ("database", "root"),
            ("application_name", "psql"),
        ]);
        assert_eq!(
            upstream_params(&app, "aad_app", None),
            p(&[
                ("user", "aad_app"),
                ("database", "root"),
                ("application_name", "psql")
            ])
        );
        assert_eq!(
            upstream_params(&app, "aad_app", Some("sales")),
            p(&[
                ("user", "aad_app"),
                ("database", "sales"),
                ("application_name", "psql")
            ])
        );
    }

    #[test]
    fn only_authentication_codes_trigger_a_retry() {
        assert!(is_auth_failure("28P01"));
        assert!(is_auth_failure("28000"));
        assert!(!is_auth_failure("3D000"));
        assert!(!is_auth_failure("53300"));
    }

    #[test]
    fn refused_keeps_the_server_text_and_adds_who_logged_in() {
        let f = ErrorFields::fatal("28000", "The access token has expired.");
        let e = refused(f, "aad_app", "my-app (oid o)", None, Some("x".into()));
        let c = e.to_client().unwrap();
        assert_eq!(c.message, "The access token has expired.");
        let d = c.detail.unwrap();
        assert!(
            d.contains("role \"aad_app\"") && d.contains("my-app (oid o)") && d.contains("; x."),
            "{d}"
        );
    }
}
