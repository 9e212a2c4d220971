//! Python psycopg2 and Node `pg` log in through the gateway with emulator tokens.
//! Needs `scripts/setup-clients` (or `PGENTRA_PYTHON` / node modules in interop/sdk); set
//! `PGENTRA_SKIP_INTEROP=1` to skip when those clients are not installed.

use std::path::PathBuf;
use std::process::Command;

use pgentra_emulator::{Principal, dev};

use crate::support::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip_allowed() -> bool {
    std::env::var("PGENTRA_SKIP_INTEROP").is_ok_and(|v| v == "1")
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("PGENTRA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import psycopg2"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(p)
}

fn node_modules() -> Option<PathBuf> {
    let m = repo_root().join("interop/sdk/node_modules");
    m.join("pg").is_dir().then_some(m)
}

fn run(mut cmd: Command, fx: &Fixture, role: &str, token: &str) -> String {
    cmd.env("PGHOST", "localhost")
        .env("PGPORT", fx.addr().port().to_string())
        .env("PGUSER", role)
        .env("PGDATABASE", "postgres")
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "require")
        .env("PGENTRA_GATEWAY_CA", &fx.ca_path);
    // Blocking here would stall the gateway on this test's single-threaded runtime.
    let out = tokio::task::block_in_place(|| cmd.output()).expect("spawn interop client");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_node_clients_log_in_through_the_gateway() {
    let py = python();
    let node = node_modules();
    if py.is_none() || node.is_none() {
        let msg = format!(
            "interop clients missing (python with psycopg2: {}, node_modules/pg: {}); run scripts/setup-clients or set PGENTRA_SKIP_INTEROP=1",
            py.is_some(),
            node.is_some()
        );
        if skip_allowed() {
            eprintln!("skipping: {msg}");
            return;
        }
        panic!("{msg}");
    }
    let fx = Fixture::start().await;
    let scripts = repo_root().join("interop/gateway");
    let cases = [
        (SYSTEM_MI_ROLE, fx.token(Principal::SystemMi)),
        (USER_ROLE, fx.token(Principal::User { upn: dev::USER_UPN })),
    ];
    for (role, token) in &cases {
        let mut cmd = Command::new(py.as_ref().unwrap());
        cmd.arg(scripts.join("psycopg2_connect.py"));
        assert_eq!(run(cmd, &fx, role, token), *role, "psycopg2 as {role}");

        let mut cmd = Command::new("node");
        cmd.arg(scripts.join("pg_connect.js"))
            .env("NODE_PATH", node.as_ref().unwrap());
        assert_eq!(run(cmd, &fx, role, token), *role, "node pg as {role}");
    }
    // A bad token gets Azure's text in the Python client too.
    let mut cmd = Command::new(py.as_ref().unwrap());
    cmd.arg(scripts.join("psycopg2_connect.py"))
        .env("PGHOST", "localhost")
        .env("PGPORT", fx.addr().port().to_string())
        .env("PGUSER", SYSTEM_MI_ROLE)
        .env("PGPASSWORD", "garbage")
        .env("PGSSLMODE", "require");
    let out = tokio::task::block_in_place(|| cmd.output()).unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(INVALID_FORMAT));
    fx.stop().await;
}
