//! The Azure CLI credential with fake `az` scripts: arguments, both expiry fields, not signed in,
//! missing program, failures, timeouts.

use std::time::{Duration, Instant, SystemTime};

use pgentra_emulator::{Principal, dev};
use pgentra_token::{
    AzureCliCredential, AzureCliOptions, Env, ErrorKind, OSSRDBMS_SCOPE, TokenSource,
};

use crate::common::*;

fn cli(program: &std::path::Path) -> AzureCliCredential {
    let env = Env::new()
        .with("PATH", "/usr/bin:/bin")
        .with("HOME", "/nonexistent");
    AzureCliCredential::from_env(
        &env,
        AzureCliOptions::default()
            .with_program(program)
            .with_timeout(Duration::from_secs(5)),
    )
    .unwrap()
}

#[tokio::test]
async fn reads_the_token_and_passes_the_scope() {
    let emu = emulator().await;
    let jwt = emu.mint_for(
        Principal::User { upn: dev::USER_UPN },
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(3600),
    );
    let dir = tempfile::tempdir().unwrap();
    let exp = epoch(SystemTime::now()) + 3600;
    let az = fake_az_ok(dir.path(), &jwt, exp);
    let env = Env::new().with("PATH", "/usr/bin:/bin");
    let cred = AzureCliCredential::from_env(
        &env,
        AzureCliOptions::default()
            .with_program(&az)
            .with_tenant(dev::TENANT_ID),
    )
    .unwrap();
    let tok = cred.get_token(OSSRDBMS_SCOPE).await.unwrap();
    assert_eq!(
        epoch(tok.expires_on()),
        exp,
        "expires_on (epoch) wins over expiresOn"
    );
    let claims = tok.claims().unwrap();
    assert_eq!(claims.upn.as_deref(), Some(dev::USER_UPN));
    assert_eq!(claims.principal_name(), Some(dev::USER_UPN));
    let args = std::fs::read_to_string(dir.path().join("args.txt")).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "account get-access-token --output json --scope {OSSRDBMS_SCOPE} --tenant {}",
            dev::TENANT_ID
        )
    );
}

#[tokio::test]
async fn falls_back_to_the_old_local_time_field() {
    let dir = tempfile::tempdir().unwrap();
    let az = fake_az(
        dir.path(),
        r#"echo '{"accessToken":"a.b.c","expiresOn":"2031-02-03 04:05:06.000000","tokenType":"Bearer"}'"#,
    );
    let env = Env::new().with("PATH", "/usr/bin:/bin");
    let o = AzureCliOptions::default()
        .with_program(&az)
        .with_utc_offset_secs(2 * 3600);
    let tok = AzureCliCredential::from_env(&env, o)
        .unwrap()
        .get_token(OSSRDBMS_SCOPE)
        .await
        .unwrap();
    // 2031-02-03T02:05:06Z
    assert_eq!(epoch(tok.expires_on()), 1_927_850_706);
}

#[tokio::test]
async fn documented_failures() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, ErrorKind, &str); 4] = [
        (
            "not-logged-in",
            "echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1",
            ErrorKind::Unavailable,
            "az login",
        ),
        (
            "failure",
            "echo 'ERROR: AADSTS70043: The refresh token has expired' >&2; exit 1",
            ErrorKind::Authentication,
            "AADSTS70043",
        ),
        (
            "bad-json",
            "echo 'not json'",
            ErrorKind::InvalidResponse,
            "JSON",
        ),
        (
            "leaky-stderr",
            "echo 'ERROR: oops eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln' >&2; exit 2",
            ErrorKind::Authentication,
            "<redacted>",
        ),
    ];
    for (name, body, kind, needle) in cases {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let e = cli(&fake_az(&sub, body))
            .get_token(OSSRDBMS_SCOPE)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{name}: {e}");
        assert_eq!(e.credential(), Some("AzureCliCredential"));
        assert!(e.to_string().contains(needle), "{name}: {e}");
        assert!(!e.to_string().contains("eyJhbGci"), "{name}: {e}");
    }
}

#[tokio::test]
async fn missing_program_is_unavailable() {
    let e = cli(std::path::Path::new("/nonexistent/az"))
        .get_token(OSSRDBMS_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("not found"), "{e}");
    // A bare name is looked up on the injected PATH, which here has no az.
    let env = Env::new().with("PATH", "/nonexistent");
    let cred = AzureCliCredential::from_env(&env, AzureCliOptions::default()).unwrap();
    assert_eq!(
        cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
}

#[tokio::test]
async fn a_hanging_cli_times_out_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let az = fake_az(dir.path(), "exec sleep 30");
    let env = Env::new().with("PATH", "/usr/bin:/bin");
    let cred = AzureCliCredential::from_env(
        &env,
        AzureCliOptions::default()
            .with_program(&az)
            .with_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let started = Instant::now();
    let e = cred.get_token(OSSRDBMS_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn scope_injection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let az = fake_az_ok(dir.path(), "a.b.c", 4_000_000_000);
    for scope in ["--help", "x; rm -rf /", ""] {
        let e = cli(&az).get_token(scope).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{scope:?}");
    }
    assert!(!dir.path().join("args.txt").exists(), "az never ran");
}
