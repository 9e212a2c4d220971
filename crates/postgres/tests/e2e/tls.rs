//! sslmode against a TLS cluster: `require` encrypts without checking, `verify-ca` checks the
//! chain, `verify-full` the chain and the host name; `disable` and `prefer` as in libpq.

use std::time::Duration;

use pgentra_postgres::{ConnectError, Connector, SslMode, Tls, TlsError};

use crate::support::*;

const HOUR: Duration = Duration::from_secs(3600);

async fn login(
    pg: &pgentra_testkit::PgCluster,
    mode: SslMode,
    tls: &Tls,
    host: Option<&str>,
) -> Result<(String, bool), ConnectError> {
    let mut settings = settings_for(pg, Some("app"), mode);
    if let Some(h) = host {
        settings.host = h.to_owned();
    }
    let connector = Connector::new(
        &settings,
        cache(Scripted::new([token("tls-token", HOUR)])),
        tls,
    )?
    // Reach the server at its address whatever name the certificate is checked against.
    .with_config(|c| {
        c.hostaddr("127.0.0.1".parse().unwrap())
            .connect_timeout(Duration::from_secs(10));
    });
    let (client, _task) = connector.connect().await?;
    Ok(whoami(&client).await)
}

#[tokio::test]
async fn sslmodes_against_a_tls_server() {
    let pg = password_cluster(true).await;
    set_role_password(&pg, "app", "tls-token");
    let ca = pg
        .server_ca_path()
        .expect("TLS cluster has a CA")
        .to_owned();
    // The test CA is not in the system store.
    let system = Tls::system().unwrap();
    let with_ca = Tls::with_ca_file(&ca).unwrap();

    assert_eq!(
        login(&pg, SslMode::Disable, &system, None).await.unwrap(),
        ("app".into(), false)
    );
    assert_eq!(
        login(&pg, SslMode::Prefer, &system, None).await.unwrap(),
        ("app".into(), true)
    );
    assert_eq!(
        login(&pg, SslMode::Require, &system, None).await.unwrap(),
        ("app".into(), true)
    );

    // verify-*: an untrusted chain is refused before any password is sent.
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        let err = login(&pg, mode, &system, None).await.unwrap_err();
        assert!(matches!(err, ConnectError::Postgres(_)), "{mode}: {err:?}");
        assert!(
            format!("{err:?}").contains("UnknownIssuer"),
            "{mode}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains("invalid peer certificate: UnknownIssuer"),
            "{err}"
        );
        assert!(
            !err.is_retryable(),
            "a certificate problem does not go away by retrying"
        );
        assert_eq!(
            login(&pg, mode, &with_ca, None).await.unwrap(),
            ("app".into(), true)
        );
    }

    // A name the certificate does not carry: verify-full refuses, verify-ca accepts.
    let err = login(
        &pg,
        SslMode::VerifyFull,
        &with_ca,
        Some("db.not-in-cert.example"),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    assert_eq!(
        login(
            &pg,
            SslMode::VerifyCa,
            &with_ca,
            Some("db.not-in-cert.example")
        )
        .await
        .unwrap(),
        ("app".into(), true)
    );
    // "localhost" is in the certificate.
    assert_eq!(
        login(&pg, SslMode::VerifyFull, &with_ca, Some("localhost"))
            .await
            .unwrap(),
        ("app".into(), true)
    );
}

#[tokio::test]
async fn sslmodes_against_a_plaintext_server() {
    let pg = password_cluster(false).await;
    set_role_password(&pg, "app", "tls-token");
    let system = Tls::system().unwrap();
    assert_eq!(
        login(&pg, SslMode::Prefer, &system, None).await.unwrap(),
        ("app".into(), false)
    );
    for mode in [SslMode::Require, SslMode::VerifyFull] {
        let err = login(&pg, mode, &system, None).await.unwrap_err();
        assert!(matches!(err, ConnectError::Postgres(_)), "{mode}: {err:?}");
    }
}

#[test]
fn tls_setup_errors_are_specific() {
    let none = Tls::builder().system_roots(false).build().unwrap();
    assert_eq!(none.root_count(), 0);
    // Modes that do not verify need no roots.
    for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
        none.make_connect(mode).unwrap();
    }
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        assert!(matches!(none.make_connect(mode), Err(TlsError::NoRoots(m)) if m == mode));
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    assert!(
        matches!(Tls::with_ca_file(&missing), Err(TlsError::ReadCaFile { path, .. }) if path == missing)
    );
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = Tls::with_ca_file(&junk).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.pem"), "{err}");
    let ca = pgentra_testkit::TestCa::new().unwrap();
    let one = Tls::builder()
        .system_roots(false)
        .ca_pem(ca.cert_pem())
        .build()
        .unwrap();
    assert_eq!(one.root_count(), 1);
}
