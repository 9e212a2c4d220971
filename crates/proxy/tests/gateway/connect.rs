//! Real clients log in through the gateway with emulator tokens.

use pgentra_emulator::{Principal, dev};

use crate::support::*;

#[tokio::test]
async fn tokio_postgres_logs_in_with_every_kind_of_identity() {
    let fx = Fixture::start().await;
    let cases = [
        (SYSTEM_MI_ROLE, fx.token(Principal::SystemMi)),
        (
            USER_MI_ROLE,
            fx.token(Principal::UserMi {
                client_id: dev::USER_MI_CLIENT_ID,
            }),
        ),
        (
            SP_ROLE,
            fx.token(Principal::ServicePrincipal {
                client_id: dev::SP_CLIENT_ID,
            }),
        ),
        (USER_ROLE, fx.token(Principal::User { upn: dev::USER_UPN })),
        (GROUP_ROLE, fx.token(Principal::User { upn: dev::USER_UPN })),
    ];
    for (role, token) in &cases {
        let who = fx
            .whoami(role, token)
            .await
            .unwrap_or_else(|e| panic!("{role}: {e:?}"));
        assert_eq!(&who, role);
    }
    // The same token again is served from the validated-token cache.
    assert_eq!(
        fx.whoami(SYSTEM_MI_ROLE, &cases[0].1).await.unwrap(),
        SYSTEM_MI_ROLE
    );
    let metrics = fx.handle.metrics_text();
    assert!(
        metrics.contains("pgentra_gateway_logins_total{method=\"entra\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pgentra_gateway_logins_total{method=\"entra_cached\"} 1"),
        "{metrics}"
    );
    fx.stop().await;
}

#[tokio::test]
async fn session_parameters_and_queries_pass_through() {
    let fx = Fixture::start().await;
    let token = fx.token(Principal::SystemMi);
    let mut cfg = fx.pg_config(SYSTEM_MI_ROLE, &token);
    cfg.application_name("gateway-test")
        .options("-c search_path=pg_catalog");
    let (client, conn) = cfg.connect(fx.tls()).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "select current_setting('application_name'), current_setting('search_path'), $1::int + 1",
            &[&41i32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "gateway-test");
    assert_eq!(row.get::<_, String>(1), "pg_catalog");
    assert_eq!(row.get::<_, i32>(2), 42);
    // A large result crosses the splice intact.
    let rows = client
        .query(
            "select repeat('x', 100000) from generate_series(1, 20)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r.get::<_, String>(0).len() == 100_000));
    fx.stop().await;
}

#[tokio::test]
async fn psql_logs_in_with_a_token_over_tls_and_over_the_unix_socket() {
    let fx = Fixture::start_with(Options::default(), |c, _| {
        c.plaintext = pgentra_proxy::PlaintextPolicy::Loopback;
    })
    .await;
    let token = fx.token(Principal::SystemMi);
    let run = move |host: String, port: u16, sslmode: &str| {
        std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-c", "select current_user"])
            .env("PGHOST", host)
            .env("PGPORT", port.to_string())
            .env("PGUSER", SYSTEM_MI_ROLE)
            .env("PGDATABASE", "postgres")
            .env("PGPASSWORD", &token)
            .env("PGSSLMODE", sslmode)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run psql")
    };
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        let port = fx.addr().port();
        move || run("127.0.0.1".into(), port, "require")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), SYSTEM_MI_ROLE);

    let sock = fx.unix_socket.clone().unwrap();
    let dir = sock.parent().unwrap().display().to_string();
    let port: u16 = sock
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || run(dir, port, "disable"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), SYSTEM_MI_ROLE);
    fx.stop().await;
}

#[tokio::test]
async fn cancel_request_is_routed_to_the_upstream_backend() {
    let fx = Fixture::start().await;
    let token = fx.token(Principal::SystemMi);
    let client = fx.connect(SYSTEM_MI_ROLE, &token).await.unwrap();
    let cancel = client.cancel_token();
    let tls = fx.tls();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    // Wait until the query is really running upstream.
    wait_until_running(&fx.pg, "select pg_sleep(30)").await;
    let started = std::time::Instant::now();
    cancel.cancel_query(tls).await.expect("cancel request sent");
    let res = tokio::time::timeout(std::time::Duration::from_secs(10), sleeper)
        .await
        .expect("query ended after cancel")
        .unwrap();
    let err = res.expect_err("query was cancelled");
    let (code, msg) = db_error(&err);
    assert_eq!(code, "57014");
    assert_eq!(msg, "canceling statement due to user request");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        fx.handle
            .metrics_text()
            .contains("pgentra_gateway_cancel_requests_total 1")
    );
    fx.stop().await;
}

#[tokio::test]
async fn large_tokens_of_users_in_many_groups_log_in() {
    let fx = Fixture::start().await;
    let mut claims = claims_of(&fx.token(Principal::User { upn: dev::USER_UPN }));
    // 600 group ids make a ~30 KB token, far beyond the 16 KB a gateway must take.
    let mut groups: Vec<String> = (0..600)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    groups.push(dev::GROUP_OBJECT_ID.to_owned());
    claims["groups"] = serde_json::json!(groups);
    let token = fx.emu.mint(claims);
    assert!(token.len() > 16 * 1024, "token is {} bytes", token.len());
    assert_eq!(fx.whoami(GROUP_ROLE, &token).await.unwrap(), GROUP_ROLE);
    assert_eq!(fx.whoami(USER_ROLE, &token).await.unwrap(), USER_ROLE);
    fx.stop().await;
}

#[tokio::test]
async fn direct_tls_negotiation_of_postgres_17_clients_works() {
    let fx = Fixture::start().await;
    let token = fx.token(Principal::SystemMi);
    let mut cfg = fx.pg_config(SYSTEM_MI_ROLE, &token);
    cfg.ssl_negotiation(tokio_postgres::config::SslNegotiation::Direct);
    let (client, conn) = cfg.connect(fx.tls()).await.expect("direct TLS login");
    tokio::spawn(conn);
    let row = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), SYSTEM_MI_ROLE);
    fx.stop().await;
}
