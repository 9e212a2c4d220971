//! Apps connect with no password: psql over TCP and the unix socket, tokio-postgres, the role
//! chosen by config / the app / the token, several instances, cancel, local password and TLS,
//! and every upstream sslmode.

use std::time::Duration;

use pgentra_proxy::SidecarConfig;
use pgentra_proxy::sidecar::{InstanceConfig, SslMode};
use pgentra_testkit::TestCa;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_without_password_over_tcp_and_unix_socket_is_the_entra_role() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.unix_socket_dir = Some(stack.socket_dir("sock"));
    let sc = stack.sidecar(config).await;
    let port = sc.port();
    let sock = sc.socket_dir(0);
    assert!(
        sock.join(format!(".s.PGSQL.{port}")).exists(),
        "socket file named like PostgreSQL's"
    );

    let (tcp, unix) = tokio::task::spawn_blocking(move || {
        // The app's user ("root") is overridden by the configured role.
        let tcp = psql("127.0.0.1", port, "root", "select current_user");
        let unix = psql(sock.to_str().unwrap(), port, "root", "select current_user");
        (tcp, unix)
    })
    .await
    .unwrap();
    assert_eq!(stdout(&tcp), APP_ROLE);
    assert_eq!(stdout(&unix), APP_ROLE);
    assert_eq!(
        stack.identity_requests(),
        1,
        "one token for every connection"
    );

    let report = sc.shutdown().await;
    assert_eq!(report.cut_sessions, 0);
    let sock_file = stack
        .dir
        .path()
        .join("sock")
        .join(format!(".s.PGSQL.{port}"));
    assert!(!sock_file.exists(), "socket file removed on shutdown");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_comes_from_config_else_the_app_else_the_token() {
    let stack = Stack::start().await;
    let sc = stack.sidecar(stack.sidecar_config()).await;

    // No configured user: `*` asks for the token's principal (the App Service's name).
    assert_eq!(
        sc.whoami(0, "*", "postgres").await.unwrap(),
        (APP_ROLE.to_owned(), "postgres".to_owned())
    );
    // Otherwise the app's user is sent as is: a system-assigned token for the user-assigned
    // identity's role is refused by the server, and its message reaches the app unchanged.
    let e = sc.whoami(0, UAMI_ROLE, "postgres").await.unwrap_err();
    let (code, message, detail) = db_error(&e);
    assert_eq!(code, "28000", "{message}");
    assert!(
        message.contains("Service principal oid mismatch"),
        "{message}"
    );
    assert!(
        detail.contains(&format!("role \"{UAMI_ROLE}\"")) && detail.contains("same token"),
        "{detail}"
    );
    assert_eq!(
        sc.handle.login_retries(0),
        0,
        "same token: no pointless retry"
    );
    sc.shutdown().await;

    // A configured user wins over the app's, and a configured database over the app's.
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.database = Some(APP_DB.into());
    let sc = stack.sidecar(config).await;
    assert_eq!(
        sc.whoami(0, UAMI_ROLE, "postgres").await.unwrap(),
        (APP_ROLE.to_owned(), APP_DB.to_owned())
    );
    sc.shutdown().await;

    // A configured `*` derives the role from the token whatever the app says.
    let mut config = stack.sidecar_config();
    config.user = Some("*".into());
    let sc = stack.sidecar(config).await;
    assert_eq!(sc.whoami(0, "root", "postgres").await.unwrap().0, APP_ROLE);
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_each_with_their_own_listener_and_overrides() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.instance = vec![
        InstanceConfig {
            name: Some("main".into()),
            user: Some(APP_ROLE.into()),
            unix_socket_dir: Some(stack.socket_dir("main")),
            ..Default::default()
        },
        InstanceConfig {
            name: Some("reports".into()),
            user: Some(APP_ROLE.into()),
            database: Some(APP_DB.into()),
            sslmode: Some(SslMode::Require),
            ca_file: None,
            ..Default::default()
        },
    ];
    // The second instance's `require` needs no CA; drop the top-level one to prove it.
    config.ca_file = None;
    config.instance[0].ca_file = Some(stack.gateway_ca.clone());
    let sc = stack.sidecar(config).await;
    assert_eq!(sc.addrs.len(), 2);
    assert_eq!(sc.addrs[0].name, "main");
    assert_ne!(sc.addrs[0].tcp, sc.addrs[1].tcp);
    assert!(sc.addrs[1].unix_socket.is_none());
    assert_eq!(
        sc.whoami(0, "x", "postgres").await.unwrap(),
        (APP_ROLE.into(), "postgres".into())
    );
    assert_eq!(
        sc.whoami(1, "x", "postgres").await.unwrap(),
        (APP_ROLE.into(), APP_DB.into())
    );
    let text = sc.handle.metrics_text();
    assert!(
        text.contains("pgentra_proxy_sessions_total{instance=\"main\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pgentra_proxy_sessions_total{instance=\"reports\"} 1"),
        "{text}"
    );
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_reach_the_upstream_backend() {
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    let sc = stack.sidecar(config).await;
    let client = sc.connect(0, "app", "postgres").await.unwrap();
    let cancel = client.cancel_token();
    let started = std::time::Instant::now();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the query ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(db_error(&e).0, "57014", "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        sc.handle
            .metrics_text()
            .contains("pgentra_proxy_cancel_requests_total{instance=\"127.0.0.1:")
    );
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_password_and_tls_can_be_required_from_the_app() {
    let stack = Stack::start().await;
    let ca = TestCa::new().unwrap();
    let leaf = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
    let cert = stack.dir.path().join("sidecar.pem");
    let key = stack.dir.path().join("sidecar.key");
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.client_password = Some("local-secret".into());
    config.client_tls_cert = Some(cert);
    config.client_tls_key = Some(key);
    config.require_client_tls = true;
    let sc = stack.sidecar(config).await;

    let tls = {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_postgres_rustls::MakeRustlsConnect::new(cfg)
    };
    let connect = |password: &'static str, ssl: tokio_postgres::config::SslMode| {
        let mut c = sc.pg_config(0, "app", "postgres");
        c.host("localhost").password(password).ssl_mode(ssl);
        let tls = tls.clone();
        async move {
            let (client, conn) = c.connect(tls).await?;
            tokio::spawn(conn);
            let row = client.query_one("select current_user::text", &[]).await?;
            Ok::<String, tokio_postgres::Error>(row.get(0))
        }
    };
    use tokio_postgres::config::SslMode as Pg;
    assert_eq!(
        connect("local-secret", Pg::Require).await.unwrap(),
        APP_ROLE
    );
    let e = connect("wrong", Pg::Require).await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "28P01");
    assert_eq!(message, "password authentication failed for user \"app\"");
    let e = connect("local-secret", Pg::Disable).await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "28000");
    assert!(message.contains("no encryption"), "{message}");
    sc.shutdown().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_follows_sslmode() {
    let stack = Stack::start().await;
    let run = |mode: SslMode, ca: bool, host: &str| {
        let mut c: SidecarConfig = stack.sidecar_config();
        c.user = Some(APP_ROLE.into());
        c.sslmode = mode;
        c.host = Some(host.into());
        if !ca {
            c.ca_file = None;
        }
        c
    };
    // verify-full with the gateway's CA, for its IP and its DNS name.
    for host in ["127.0.0.1", "localhost"] {
        let sc = stack.sidecar(run(SslMode::VerifyFull, true, host)).await;
        assert_eq!(
            sc.whoami(0, "a", "postgres").await.unwrap().0,
            APP_ROLE,
            "{host}"
        );
        sc.shutdown().await;
    }
    // verify-full without the CA: the system roots do not know the test CA.
    let sc = stack
        .sidecar(run(SslMode::VerifyFull, false, "127.0.0.1"))
        .await;
    let e = sc.whoami(0, "a", "postgres").await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "08001", "{message}");
    assert!(
        message.contains("TLS handshake") && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert!(
        eventually(Duration::from_secs(5), || sc
            .handle
            .failures_for(0, "upstream_tls")
            == 1)
        .await,
        "failure counted after the app was told"
    );
    sc.shutdown().await;
    // verify-ca ignores the name; require ignores the chain.
    let sc = stack
        .sidecar(run(SslMode::VerifyCa, true, "127.0.0.1"))
        .await;
    assert_eq!(sc.whoami(0, "a", "postgres").await.unwrap().0, APP_ROLE);
    sc.shutdown().await;
    let sc = stack
        .sidecar(run(SslMode::Require, false, "127.0.0.1"))
        .await;
    assert_eq!(sc.whoami(0, "a", "postgres").await.unwrap().0, APP_ROLE);
    sc.shutdown().await;
    // disable: the gateway requires TLS, and its refusal is relayed.
    let sc = stack
        .sidecar(run(SslMode::Disable, false, "127.0.0.1"))
        .await;
    let e = sc.whoami(0, "a", "postgres").await.unwrap_err();
    let (code, message, _) = db_error(&e);
    assert_eq!(code, "28000");
    assert!(message.contains("no encryption"), "{message}");
    sc.shutdown().await;
    stack.stop().await;
}
