//! Operations: probes and metrics over HTTP, connection limits, graceful shutdown, key
//! rotation through OIDC discovery, key outages, and mixed-mode password pass-through.

use std::time::Duration;

use pgentra_emulator::{EndpointKind, Fault, Principal, dev};
use pgentra_proxy::{AuthMode, Endpoint};

use crate::support::*;

async fn get(fx: &Fixture, path: &str) -> (u16, String) {
    let url = format!("http://{}{path}", fx.admin.unwrap());
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn probes_metrics_and_graceful_shutdown() {
    let mut fx = Fixture::start().await;
    assert_eq!(get(&fx, "/startup").await.0, 200);
    assert_eq!(get(&fx, "/liveness").await.0, 200);
    assert_eq!(get(&fx, "/readiness").await, (200, "ok\n".to_owned()));

    let token = fx.token(Principal::SystemMi);
    let session = fx.connect(SYSTEM_MI_ROLE, &token).await.unwrap();
    let _ = fx.whoami(SYSTEM_MI_ROLE, "not-a-token").await.unwrap_err();
    let (status, metrics) = get(&fx, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "pgentra_gateway_connections_total 2",
        "pgentra_gateway_auth_failures_total{reason=\"malformed_token\"} 1",
        "pgentra_gateway_token_validation_seconds_count 2",
        "pgentra_gateway_upstream_connect_seconds_count 1",
        "pgentra_gateway_logins_total{method=\"entra\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in\n{metrics}");
    }

    // Shutdown: stop accepting, keep serving the open session during the grace period.
    fx.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&fx, "/readiness").await, (503, "draining\n".to_owned()));
    assert!(
        tokio::net::TcpStream::connect(fx.addr()).await.is_err(),
        "listener closed"
    );
    let row = session.query_one("select 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    // After the grace period (2 s in the fixture) the session is cut and serve returns.
    let served = fx.served.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("serve returns after the drain deadline")
        .unwrap()
        .unwrap();
    assert!(session.query_one("select 1", &[]).await.is_err());
    assert!(session.is_closed());
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_like_postgres() {
    let fx = Fixture::start_with(Options::default(), |c, _| c.max_connections = 1).await;
    let token = fx.token(Principal::SystemMi);
    let first = fx.connect(SYSTEM_MI_ROLE, &token).await.unwrap();
    let err = fx.whoami(SYSTEM_MI_ROLE, &token).await.unwrap_err();
    assert_eq!(
        db_error(&err),
        (
            "53300".to_owned(),
            "sorry, too many clients already".to_owned()
        )
    );
    drop(first);
    // The permit comes back once the first session is gone.
    let mut ok = false;
    for _ in 0..50 {
        if fx.whoami(SYSTEM_MI_ROLE, &token).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a slot frees up after the first client leaves");
    fx.stop().await;
}

#[tokio::test]
async fn rotated_keys_are_fetched_through_discovery_and_outages_keep_the_old_set() {
    let fx = Fixture::start_with(Options::default(), |c, env| {
        c.auth.jwks_url = None;
        c.auth.discovery_url = Some(format!(
            "{}/{}/.well-known/openid-configuration",
            env.emu.https_base(),
            env.emu.tenant_id()
        ));
    })
    .await;

    let before = fx.token(Principal::SystemMi);
    assert_eq!(
        fx.whoami(SYSTEM_MI_ROLE, &before).await.unwrap(),
        SYSTEM_MI_ROLE
    );
    let fetches = |fx: &Fixture| {
        fx.emu
            .requests()
            .iter()
            .filter(|r| r.endpoint == EndpointKind::Jwks)
            .count()
    };
    let jwks_before = fetches(&fx);
    assert!(jwks_before >= 1);
    assert!(
        fx.emu
            .requests()
            .iter()
            .any(|r| r.endpoint == EndpointKind::OpenIdConfig),
        "keys were found through OIDC discovery"
    );

    // Rotation: a token signed with the new key triggers exactly one refetch.
    let new_kid = fx.emu.rotate_signing_key();
    let after = fx.token(Principal::SystemMi);
    assert_eq!(
        fx.whoami(SYSTEM_MI_ROLE, &after).await.unwrap(),
        SYSTEM_MI_ROLE
    );
    assert_eq!(fetches(&fx), jwks_before + 1);
    assert!(!new_kid.is_empty());

    // Outage: the JWKS endpoint fails, the key set the gateway holds keeps working.
    fx.emu.faults().inject(
        EndpointKind::Jwks,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        None,
    );
    fx.emu.faults().inject(
        EndpointKind::OpenIdConfig,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        None,
    );
    let fresh = fx.token(Principal::ServicePrincipal {
        client_id: dev::SP_CLIENT_ID,
    });
    assert_eq!(fx.whoami(SP_ROLE, &fresh).await.unwrap(), SP_ROLE);
    // A token from a key the gateway never saw is refused while keys cannot be refreshed.
    fx.emu.rotate_signing_key();
    let unseen = fx.token(Principal::SystemMi);
    let err = fx.whoami(SYSTEM_MI_ROLE, &unseen).await.unwrap_err();
    assert_eq!(
        db_error(&err),
        ("28000".to_owned(), INVALID_FORMAT.to_owned())
    );
    fx.stop().await;
}

#[tokio::test]
async fn unreachable_keys_are_reported_as_unavailable() {
    let fx = Fixture::start_with(Options::default(), |c, _| {
        c.auth.jwks_url = Some("http://127.0.0.1:9/discovery/keys".into());
    })
    .await;
    let err = fx
        .whoami(SYSTEM_MI_ROLE, &fx.token(Principal::SystemMi))
        .await
        .unwrap_err();
    assert_eq!(
        db_error(&err),
        (
            "28000".to_owned(),
            "The access token could not be validated because the signing keys of the identity provider are unavailable. Please retry later.".to_owned()
        )
    );
    assert_eq!(fx.handle.failures_for("keys_unavailable"), 1);
    fx.stop().await;
}

#[tokio::test]
async fn mixed_mode_passes_plain_passwords_to_upstream_scram() {
    let opts = Options {
        pg_hba: vec![
            "host all legacy_md5 127.0.0.1/32 md5".into(),
            "host all legacy_clear 127.0.0.1/32 password".into(),
        ],
        ..Options::default()
    };
    let fx = Fixture::start_with(opts, |c, env| {
        c.auth.mode = AuthMode::Mixed;
        // The testkit cluster checks passwords with SCRAM on 127.0.0.1.
        c.upstream.password = Some(Endpoint {
            host: env.pg.host().to_owned(),
            port: env.pg.port(),
        });
    })
    .await;
    fx.pg
        .psql(
            "postgres",
            "set password_encryption = 'scram-sha-256'; create role legacy login password 'hunter2'",
        )
        .unwrap();
    assert_eq!(fx.whoami("legacy", "hunter2").await.unwrap(), "legacy");
    // MD5 and cleartext upstream methods work too.
    fx.pg
        .psql(
            "postgres",
            "set password_encryption = 'md5'; create role legacy_md5 login password 'pw5';
             create role legacy_clear login password 'pwc'",
        )
        .unwrap();
    assert_eq!(fx.whoami("legacy_md5", "pw5").await.unwrap(), "legacy_md5");
    assert_eq!(
        fx.whoami("legacy_clear", "pwc").await.unwrap(),
        "legacy_clear"
    );
    let err = fx.whoami("legacy_md5", "nope").await.unwrap_err();
    assert_eq!(db_error(&err).0, "28P01");
    let err = fx.whoami("legacy", "wrong").await.unwrap_err();
    assert_eq!(
        db_error(&err),
        (
            "28P01".to_owned(),
            "password authentication failed for user \"legacy\"".to_owned()
        )
    );
    // A token is never accepted for a non-Entra role.
    let err = fx
        .whoami("legacy", &fx.token(Principal::SystemMi))
        .await
        .unwrap_err();
    assert_eq!(
        db_error(&err).1,
        "password authentication failed for user \"legacy\""
    );
    // Entra roles still need tokens.
    assert_eq!(
        fx.whoami(SYSTEM_MI_ROLE, &fx.token(Principal::SystemMi))
            .await
            .unwrap(),
        SYSTEM_MI_ROLE
    );
    assert!(
        fx.handle
            .metrics_text()
            .contains("pgentra_gateway_logins_total{method=\"password\"} 3")
    );
    fx.stop().await;
}

#[tokio::test]
async fn entra_only_mode_refuses_passwords() {
    let fx = Fixture::start().await;
    fx.pg
        .psql("postgres", "create role legacy login password 'hunter2'")
        .unwrap();
    let err = fx.whoami("legacy", "hunter2").await.unwrap_err();
    assert_eq!(
        db_error(&err),
        (
            "28P01".to_owned(),
            "password authentication failed for user \"legacy\"".to_owned()
        )
    );
    assert_eq!(fx.handle.failures_for("not_entra_role"), 1);
    fx.stop().await;
}

#[tokio::test]
async fn upstream_errors_reach_the_client_as_error_responses() {
    let fx = Fixture::start().await;
    let token = fx.token(Principal::SystemMi);
    // The server's own refusal is relayed as it is.
    let mut cfg = fx.pg_config(SYSTEM_MI_ROLE, &token);
    cfg.dbname("no_such_db");
    let Err(err) = cfg.connect(fx.tls()).await else {
        panic!("unknown database must fail");
    };
    assert_eq!(
        db_error(&err),
        (
            "3D000".to_owned(),
            "database \"no_such_db\" does not exist".to_owned()
        )
    );
    // A server that is down is a connection failure (08006), not a hang.
    let data = fx.pg.data_dir().display().to_string();
    let bin = pgentra_testkit::bin_dir().unwrap().join("pg_ctl");
    let stopped = tokio::task::spawn_blocking(move || {
        // The testkit runs the server as `postgres` when tests run as root.
        std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$0"; else sh -c "$0"; fi"#)
            .arg(format!("{} -D {data} -m immediate stop", bin.display()))
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(stopped.success());
    let err = fx.whoami(SYSTEM_MI_ROLE, &token).await.unwrap_err();
    assert_eq!(
        db_error(&err),
        (
            "08006".to_owned(),
            "could not connect to the database server behind the gateway".to_owned()
        )
    );
    assert_eq!(fx.handle.failures_for("upstream_connect"), 1);
    fx.stop().await;
}

#[tokio::test]
async fn trusted_channel_can_be_tls_with_a_client_certificate() {
    let fx = Fixture::start_with(
        Options {
            upstream_tls: true,
            ..Options::default()
        },
        |_, _| {},
    )
    .await;
    assert!(fx.config.upstream.trusted_tls.is_some());
    let client = fx
        .connect(SYSTEM_MI_ROLE, &fx.token(Principal::SystemMi))
        .await
        .unwrap();
    let row = client
        .query_one(
            "select current_user::text, ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), SYSTEM_MI_ROLE);
    assert!(row.get::<_, bool>(1), "upstream leg is TLS");
    assert_eq!(row.get::<_, String>(2), "/CN=pgentra-gateway");
    // Cancel requests still reach the backend (PostgreSQL accepts them unencrypted).
    let cancel = client.cancel_token();
    let tls = fx.tls();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    wait_until_running(&fx.pg, "select pg_sleep(30)").await;
    cancel.cancel_query(tls).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db_error(&res.unwrap_err()).0, "57014");
    fx.stop().await;
}
