//! Real drivers in other languages connect through the sidecar with no password and no token
//! code: Python psycopg2 and Node `pg` (from `scripts/setup-clients`), Ruby `pg` and PHP
//! `pgsql` (Debian `ruby-pg`, `php-pgsql` from `scripts/setup-system`). Set
//! `PGENTRA_SKIP_INTEROP=1` to skip when those clients are not installed.

use std::path::PathBuf;
use std::process::Command;

use crate::support::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip_allowed() -> bool {
    std::env::var("PGENTRA_SKIP_INTEROP").is_ok_and(|v| v == "1")
}

fn works(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("PGENTRA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/venv/bin/python"));
    works(Command::new(&p).args(["-c", "import psycopg2"])).then_some(p)
}

fn node_modules() -> Option<PathBuf> {
    let m = repo_root().join("interop/sdk/node_modules");
    m.join("pg").is_dir().then_some(m)
}

fn ruby_pg() -> bool {
    works(Command::new("ruby").args(["-e", "require 'pg'"]))
}

fn php_pgsql() -> bool {
    Command::new("php").arg("-m").output().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == "pgsql")
    })
}

/// Runs `cmd` with libpq-style settings pointing at the sidecar and no password anywhere.
fn run(mut cmd: Command, host: &str, port: u16, user: &str) -> String {
    cmd.env("PGHOST", host)
        .env("PGPORT", port.to_string())
        .env("PGUSER", user)
        .env("PGDATABASE", "postgres")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE")
        .env_remove("PGPASSFILE");
    let out = cmd.output().expect("spawn interop client");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_node_ruby_and_php_connect_without_any_token_code() {
    let py = python();
    let node = node_modules();
    let (ruby, php) = (ruby_pg(), php_pgsql());
    if py.is_none() || node.is_none() || !ruby || !php {
        let msg = format!(
            "interop clients missing (python with psycopg2: {}, node_modules/pg: {}, ruby pg: {ruby}, php pgsql: {php}); \
             run scripts/setup-system and scripts/setup-clients, or set PGENTRA_SKIP_INTEROP=1",
            py.is_some(),
            node.is_some(),
        );
        if skip_allowed() {
            eprintln!("skipping: {msg}");
            return;
        }
        panic!("{msg}");
    }
    let stack = Stack::start().await;
    let mut config = stack.sidecar_config();
    config.user = Some(APP_ROLE.into());
    config.unix_socket_dir = Some(stack.socket_dir("sock"));
    let sc = stack.sidecar(config).await;
    let port = sc.port();
    let sock = sc.socket_dir(0).display().to_string();
    let scripts = repo_root().join("interop");
    let (py, node) = (py.unwrap(), node.unwrap());
    let outputs = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for host in ["127.0.0.1", sock.as_str()] {
            let mut c = Command::new(&py);
            c.arg(scripts.join("gateway/psycopg2_connect.py"));
            out.push((format!("psycopg2 via {host}"), run(c, host, port, "app")));

            let mut c = Command::new("node");
            c.arg(scripts.join("sidecar/pg_connect.js"))
                .env("NODE_PATH", &node);
            out.push((format!("node pg via {host}"), run(c, host, port, "app")));

            let mut c = Command::new("ruby");
            c.arg(scripts.join("sidecar/ruby_connect.rb"));
            out.push((format!("ruby pg via {host}"), run(c, host, port, "app")));

            let mut c = Command::new("php");
            c.arg(scripts.join("sidecar/php_connect.php"));
            out.push((format!("php pgsql via {host}"), run(c, host, port, "app")));
        }
        out
    })
    .await
    .unwrap();
    for (what, who) in &outputs {
        assert_eq!(who, APP_ROLE, "{what}");
    }
    assert_eq!(
        stack.identity_requests(),
        1,
        "one token for all eight connections"
    );
    sc.shutdown().await;
    stack.stop().await;
}
