//! The real `pgentra` binary: configuration layering, exit codes, the emulator command.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use assert_cmd::cargo::cargo_bin;

fn pgentra() -> Command {
    let mut cmd = Command::new(cargo_bin("pgentra"));
    // Start from a clean slate: a developer's PGENTRA_* variables must not leak into tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("PGENTRA_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `pgentra --output json emulator …`, returns the JSON banner and stops the process.
fn emulator_banner(cmd: &mut Command) -> serde_json::Value {
    let state = tempfile::tempdir().unwrap();
    let mut child = cmd
        .args(["--https-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("banner {line:?}: {e}"))
}

#[test]
fn env_beats_file_and_flag_beats_env() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("pgentra.toml");
    std::fs::write(
        &config,
        format!("[emulator]\nhttp-addr = \"127.0.0.1:{file_port}\"\n"),
    )
    .unwrap();

    let banner = emulator_banner(
        pgentra()
            .arg("--config")
            .arg(&config)
            .args(["--output", "json", "emulator"]),
    );
    assert_eq!(
        banner["http"],
        format!("http://127.0.0.1:{file_port}"),
        "file beats default"
    );

    let banner = emulator_banner(
        pgentra()
            .env("PGENTRA_CONFIG", &config)
            .env(
                "PGENTRA_EMULATOR_HTTP_ADDR",
                format!("127.0.0.1:{env_port}"),
            )
            .args(["--output", "json", "emulator"]),
    );
    assert_eq!(
        banner["http"],
        format!("http://127.0.0.1:{env_port}"),
        "env beats file"
    );

    let banner = emulator_banner(
        pgentra()
            .env("PGENTRA_CONFIG", &config)
            .env(
                "PGENTRA_EMULATOR_HTTP_ADDR",
                format!("127.0.0.1:{env_port}"),
            )
            .args([
                "--output",
                "json",
                "emulator",
                "--http-addr",
                &format!("127.0.0.1:{flag_port}"),
            ]),
    );
    assert_eq!(
        banner["http"],
        format!("http://127.0.0.1:{flag_port}"),
        "flag beats env"
    );
}

#[test]
fn emulator_banner_lists_working_exports() {
    let banner = emulator_banner(pgentra().args([
        "--output",
        "json",
        "emulator",
        "--http-addr",
        "127.0.0.1:0",
    ]));
    let env = &banner["env"];
    let mi = &env["system-assigned managed identity (App Service protocol)"];
    let endpoint = mi["IDENTITY_ENDPOINT"].as_str().unwrap();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") && endpoint.ends_with("/msi/token"),
        "{endpoint}"
    );
    assert!(!mi["IDENTITY_HEADER"].as_str().unwrap().is_empty());
    assert!(banner["ca_cert"].as_str().unwrap().ends_with(".pem"));
}

#[test]
fn unknown_config_key_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgentra.toml");
    std::fs::write(&config, "[emulator]\nhttp-adress = \"x\"\n").unwrap();
    let out = pgentra()
        .arg("--config")
        .arg(&config)
        .arg("emulator")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key `http-adress` in [emulator]"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one readable line: {err}");
}

#[test]
fn missing_config_file_is_a_usage_error() {
    let out = pgentra()
        .args(["--config", "/nonexistent/pgentra.toml", "emulator"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pgentra.toml"));
}

#[test]
fn bad_flag_value_exits_2() {
    let out = pgentra()
        .args(["emulator", "--http-addr", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn emulator_with_a_broken_identities_file_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.toml");
    std::fs::write(&ids, "this is not toml = = =").unwrap();
    let out = pgentra()
        .args(["emulator", "--identities"])
        .arg(&ids)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: load identities file"), "{err}");
}

#[test]
fn completions_are_generated() {
    let out = pgentra().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pgentra"));
}
