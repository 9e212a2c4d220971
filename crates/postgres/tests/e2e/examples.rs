//! The examples, run as programs against the local stack (emulator + gateway) with nothing but
//! Service Connector variables and the identity endpoint in their environment. Child processes
//! are awaited (not waited on) so the in-process emulator and gateway keep serving.

use std::path::PathBuf;

use pgentra_emulator::dev;
use pgentra_postgres::{ClientSecret, ClientType, ConnectionSettings, Identity};

use crate::support::*;

/// `target/<profile>/examples/<name>`, built by `cargo test` (which compiles examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole `cargo test -p pgentra-postgres --all-features`, which builds the examples",
        path.display()
    );
    path
}

async fn run(
    gw: &Gateway,
    name: &str,
    settings: &ConnectionSettings,
    ca_bundle: &std::path::Path,
) -> String {
    let out = tokio::process::Command::new(example(name))
        .env_clear()
        .envs(gw.app_env(settings))
        // The gateway's and the emulator's CAs, where rustls-native-certs and sqlx look.
        .env("SSL_CERT_FILE", ca_bundle)
        .env("PGSSLROOTCERT", ca_bundle)
        .output()
        .await
        .expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn examples_run_against_the_local_stack() {
    let gw = Gateway::start().await;
    let bundle = gw.ca_path.with_file_name("bundle.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}\n{}",
            std::fs::read_to_string(&gw.ca_path).unwrap(),
            gw.emu.ca_cert_pem()
        ),
    )
    .unwrap();
    let system = Identity::SystemAssigned;
    let user = Identity::UserAssigned {
        client_id: dev::USER_MI_CLIENT_ID.into(),
    };
    let sp = Identity::ServicePrincipal {
        tenant_id: dev::TENANT_ID.into(),
        client_id: dev::SP_CLIENT_ID.into(),
        secret: ClientSecret::new(dev::SP_SECRET),
    };
    let with = |identity: &Identity, ct: ClientType| ConnectionSettings {
        client_type: ct,
        ..gw.settings(None, identity.clone())
    };

    let out = run(
        &gw,
        "system_assigned",
        &with(&system, ClientType::Dotnet),
        &bundle,
    )
    .await;
    assert!(out.contains(&format!("as {SYSTEM_MI_ROLE}")), "{out}");
    let out = run(
        &gw,
        "user_assigned",
        &with(&user, ClientType::Nodejs),
        &bundle,
    )
    .await;
    assert!(out.contains(&format!("as {USER_MI_ROLE}")), "{out}");
    let out = run(
        &gw,
        "service_principal",
        &with(&sp, ClientType::SpringBoot),
        &bundle,
    )
    .await;
    assert!(out.contains(&format!("as {SP_ROLE}")), "{out}");

    // An example refuses variables for another identity kind, naming it.
    let wrong = tokio::process::Command::new(example("system_assigned"))
        .env_clear()
        .envs(gw.app_env(&with(&sp, ClientType::Python)))
        .output()
        .await
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("service-principal"));

    #[cfg(feature = "deadpool")]
    {
        let out = run(
            &gw,
            "pool_deadpool",
            &with(&system, ClientType::Python),
            &bundle,
        )
        .await;
        assert!(out.contains("1 token request(s)"), "{out}");
    }
    #[cfg(feature = "bb8")]
    {
        let out = run(&gw, "pool_bb8", &with(&user, ClientType::Go), &bundle).await;
        assert!(out.contains("PostgreSQL"), "{out}");
        assert!(out.contains("1 token request(s)"), "{out}");
    }
    #[cfg(feature = "sqlx")]
    {
        let out = run(&gw, "pool_sqlx", &with(&sp, ClientType::Java), &bundle).await;
        assert!(
            out.contains(&format!("connected as {SP_ROLE}: 42")),
            "{out}"
        );
    }
    gw.stop().await;
}
