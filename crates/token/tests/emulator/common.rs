//! Helpers shared by the integration tests: emulator start-up, client options that trust the
//! emulator's CA and retry quickly, request-log counting, a closed port, fake `az` scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgentra_emulator::{Config, Emulator, EndpointKind, RunningEmulator};
use pgentra_token::{EntraOptions, HttpOptions, ManagedIdentityOptions, RetryPolicy};

pub async fn emulator() -> RunningEmulator {
    emulator_with(Config::default()).await
}

pub async fn emulator_with(config: Config) -> RunningEmulator {
    Emulator::builder()
        .config(config)
        .start()
        .await
        .expect("emulator starts")
}

/// A config whose managed-identity endpoint issues a fresh token on every request.
pub fn uncached_mi_config() -> Config {
    let mut c = Config::default();
    c.lifetimes.mi_cache_secs = 0;
    c
}

/// Trusts the emulator CA; short timeouts and millisecond retries keep tests fast.
pub fn http(emu: &RunningEmulator) -> HttpOptions {
    HttpOptions::default()
        .add_root_pem(emu.ca_cert_pem().as_bytes())
        .expect("emulator CA parses")
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::new(
            2,
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .with_imds_retry(RetryPolicy::new(
            3,
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
}

pub fn entra(emu: &RunningEmulator) -> EntraOptions {
    EntraOptions::default()
        .with_authority_host(emu.authority_host())
        .with_http(http(emu))
}

pub fn mi(emu: &RunningEmulator) -> ManagedIdentityOptions {
    ManagedIdentityOptions::default().with_http(http(emu))
}

pub fn count(emu: &RunningEmulator, kind: EndpointKind) -> usize {
    emu.requests().iter().filter(|r| r.endpoint == kind).count()
}

/// A loopback URL nothing listens on.
pub fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// Writes an executable shell script standing in for `az`.
pub fn fake_az(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("az");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A fake `az` that logs its arguments to `args.txt` and prints a token for `token`.
pub fn fake_az_ok(dir: &Path, token: &str, expires_on: i64) -> PathBuf {
    let json = format!(
        r#"{{"accessToken":"{token}","expiresOn":"2099-01-01 00:00:00.000000","expires_on":{expires_on},"subscription":"s","tenant":"t","tokenType":"Bearer"}}"#
    );
    let log = dir.join("args.txt");
    fake_az(
        dir,
        // Builtins only: the credential runs az with exactly the injected environment.
        &format!("echo \"$@\" > '{}'\nprintf '%s\\n' '{json}'", log.display()),
    )
}

pub fn epoch(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs() as i64
}

/// Polls `cond` every 5 ms for up to 10 s of real time (for effects of real network I/O in
/// background tasks; logical time is driven by a ManualClock).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
