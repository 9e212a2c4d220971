//! `pgentra up` as a user runs it: in the background, then psql and the seed's Python snippet
//! connect with the exports it printed; SIGTERM stops it cleanly.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The project's Python (with azure-identity and psycopg2), or None when interop is skipped.
fn python() -> Option<PathBuf> {
    let path = std::env::var_os("PGENTRA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/venv/bin/python"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("PGENTRA_SKIP_INTEROP").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "{} missing: run scripts/setup-clients (or set PGENTRA_SKIP_INTEROP=1)",
        path.display()
    );
}

struct Up {
    child: Child,
    env: HashMap<String, String>,
    /// The JSON `pgentra --output json up` printed.
    banner: serde_json::Value,
    env_file: PathBuf,
    _state: tempfile::TempDir,
}

impl Up {
    fn start(extra: &[&str]) -> Up {
        let state = tempfile::tempdir().unwrap();
        let env_file = state.path().join("up.env");
        let mut child = Command::new(cargo_bin("pgentra"))
            .args(["--output", "json", "up", "--state-dir"])
            .arg(state.path().join("stack"))
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args([
                "--emulator-http-addr",
                "127.0.0.1:0",
                "--emulator-https-addr",
                "127.0.0.1:0",
            ])
            .arg("--env-file")
            .arg(&env_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let banner: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("banner {line:?}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !env_file.exists() {
            assert!(
                Instant::now() < deadline,
                "pgentra up did not come up in 120 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(&env_file).unwrap();
        let env = parse_exports(&text);
        Up {
            child,
            env,
            banner,
            env_file,
            _state: state,
        }
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(&self.env);
        cmd
    }

    fn token(&self) -> String {
        let out = self
            .command(cargo_bin("pgentra"))
            .arg("token")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "pgentra up exited with {status} after SIGTERM"
        );
        assert!(!self.env_file.exists(), "env file left behind");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `export K=V` lines with the single-quote quoting `pgentra up` writes.
fn parse_exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace("'\\''", "'"))
                .unwrap_or_else(|| v.to_owned());
            (k.to_owned(), v)
        })
        .collect()
}

/// Runs the seed's Python snippet with `up`'s exports; returns the `current_user` it printed, or
/// None when the interop clients are skipped.
fn seed_python(up: &Up, auth: &str) -> Option<String> {
    let out = up
        .command(python()?)
        .arg(repo_root().join("interop/python/psycopg2_seed.py"))
        .arg(auth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn psql_and_the_seed_python_snippet_connect_with_the_printed_exports() {
    let up = Up::start(&[]);
    let conn = up.env["AZURE_POSTGRESQL_CONNECTIONSTRING"].clone();
    assert!(
        conn.contains("user=aad_demo") && conn.contains("sslmode=require"),
        "{conn}"
    );

    let out = up
        .command("psql")
        .env("PGPASSWORD", up.token())
        .args(["-X", "-A", "-t", "-c", "select current_user", &conn])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aad_demo");

    let out = up
        .command("psql")
        .env("PGPASSWORD", "not-a-token")
        .args(["-X", "-c", "select 1", &conn])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("The access token has invalid format"));

    if let Some(user) = seed_python(&up, "system") {
        assert_eq!(user, "aad_demo");
    }
    up.terminate();
}

#[test]
fn service_principal_exports_work_for_the_seed_snippet() {
    let up = Up::start(&["--auth", "sp", "--connection", "spconn"]);
    assert!(up.env.contains_key("AZURE_POSTGRESQL_CLIENTSECRET"));
    if let Some(user) = seed_python(&up, "sp") {
        assert_eq!(user, "aad_spconn");
    }
    up.terminate();
}

#[test]
fn exec_runs_sql_as_the_service_connector_identity_and_grant_validates() {
    let up = Up::start(&[]);
    let pgentra = || up.command(cargo_bin("pgentra"));

    // exec: the connection and identity come from the Service Connector variables alone.
    let out = pgentra()
        .args([
            "--output",
            "json",
            "exec",
            "--querytext",
            "select current_user as who, 1 + 1 as two",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows, serde_json::json!([{"who": "aad_demo", "two": "2"}]));

    // The application cannot read a table the owner creates later...
    let owner = &up.banner["owner"];
    let owner_args = [
        "--host".to_string(),
        owner["host"].as_str().unwrap().to_string(),
        "--port".into(),
        owner["port"].to_string(),
        "--user".into(),
        owner["user"].as_str().unwrap().to_string(),
        "-d".into(),
        owner["database"].as_str().unwrap().to_string(),
        "--sslmode".into(),
        "disable".into(),
    ];
    let out = pgentra()
        .env("PGPASSWORD", "owner-password-unused-by-trust")
        .arg("exec").args(&owner_args)
        .args(["--querytext", "create table items(id serial primary key, name text); insert into items(name) values ('a')"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "owner exec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pgentra()
        .args(["exec", "--querytext", "select count(*) from items"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied for table items") && err.contains("42501"),
        "{err}"
    );

    // ...until the owner runs the seed's GRANT step; the validation query then lists it.
    let out = pgentra()
        .env("PGPASSWORD", "owner-password-unused-by-trust")
        .args(["--output", "tsv", "grant", "--role", "aad_demo"])
        .args(&owner_args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grant: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "table_name\nitems\n");
    let out = pgentra()
        .args([
            "--output",
            "tsv",
            "exec",
            "--querytext",
            "select name from items",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "name\na\n");
    up.terminate();
}

#[test]
fn demo_runs_the_whole_flow_and_exits_zero() {
    let out = Command::new(cargo_bin("pgentra"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--emulator-http-addr",
            "127.0.0.1:0",
            "--emulator-https-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "current_user = aad_demo_system",
        "current_user = aad_demo_user",
        "current_user = aad_demo_sp",
        "permission denied for table todo",
        "The access token has expired. Please acquire a new token and retry.",
        "written by aad_demo_sp",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn connection_create_emits_variables_that_parse_back_for_every_client_type() {
    use pgentra_emulator::dev;
    use pgentra_postgres::{ClientType, ConnectionSettings, Identity};

    let up = Up::start(&[]);
    let owner = &up.banner["owner"];
    let gateway: std::net::SocketAddr = up.banner["gateway"].as_str().unwrap().parse().unwrap();
    let run = |client_type: ClientType, format: &str| {
        let out = up
            .command(cargo_bin("pgentra"))
            .env("PGPASSWORD", "owner-password-unused-by-trust")
            .args(["connection", "create", "--name", "uami", "--auth", "user"])
            .args([
                "--object-id",
                dev::USER_MI_OBJECT_ID,
                "--client-id",
                dev::USER_MI_CLIENT_ID,
            ])
            .args(["--host", owner["host"].as_str().unwrap()])
            .args([
                "--port",
                &owner["port"].to_string(),
                "--user",
                "postgres",
                "-d",
                "demo",
            ])
            .args(["--sslmode", "disable", "--app-host", "127.0.0.1"])
            .args(["--app-port", &gateway.port().to_string()])
            .args(["--client-type", client_type.as_str(), "--format", format])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for client_type in ClientType::ALL {
        let json: HashMap<String, String> =
            serde_json::from_str(&run(client_type, "json")).unwrap();
        let settings = ConnectionSettings::from_env_as(client_type, &json)
            .unwrap_or_else(|e| panic!("{client_type:?}: {e}: {json:?}"));
        assert_eq!(
            settings.user.as_deref(),
            Some("aad_uami"),
            "{client_type:?}"
        );
        assert_eq!(settings.database, "demo");
        assert_eq!(
            settings.identity,
            Identity::UserAssigned {
                client_id: dev::USER_MI_CLIENT_ID.into()
            },
            "{client_type:?}"
        );
        if client_type != ClientType::Go {
            // Service Connector's Go string carries no port (spec §9.1).
            assert_eq!(settings.port, gateway.port(), "{client_type:?}");
        }
    }
    // The new role logs in through the gateway with the user-assigned identity's token.
    let exports = parse_exports(&run(ClientType::Python, "exports"));
    let token = {
        let out = up
            .command(cargo_bin("pgentra"))
            .args(["token", "--client-id", dev::USER_MI_CLIENT_ID])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let out = up
        .command("psql")
        .env("PGPASSWORD", token)
        .args(["-X", "-A", "-t", "-c", "select current_user"])
        .arg(&exports["AZURE_POSTGRESQL_CONNECTIONSTRING"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aad_uami");
    up.terminate();
}

/// Signs tokens with the running stack's own key: an in-process emulator on the same state
/// directory loads the same signing key, so the gateway judges claims, not signatures.
fn same_key_emulator(up: &Up) -> (tokio::runtime::Runtime, pgentra_emulator::RunningEmulator) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = up._state.path().join("stack/emulator");
    let em = rt
        .block_on(pgentra_emulator::Emulator::builder().state_dir(dir).start())
        .unwrap();
    (rt, em)
}

fn doctor(up: &Up, token_file: Option<&Path>) -> (i32, serde_json::Value) {
    let mut cmd = up.command(cargo_bin("pgentra"));
    cmd.args(["--output", "json", "doctor"]);
    if let Some(f) = token_file {
        cmd.arg("--token-file").arg(f);
    }
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), report)
}

fn failed(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                format!("{} — {}", c["detail"], c["fix"]),
            )
        })
        .collect()
}

#[test]
fn doctor_passes_a_healthy_setup_and_names_the_cause_of_broken_ones() {
    use pgentra_emulator::{Principal, dev};
    let up = Up::start(&[]);
    let (code, report) = doctor(&up, None);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 7, "{report}");

    let (_rt, em) = same_key_emulator(&up);
    let dir = tempfile::tempdir().unwrap();

    // Expired token.
    em.clock().set_offset(-2 * 24 * 3600);
    let expired = em.mint_for(
        Principal::SystemMi,
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(3600),
    );
    em.clock().set_offset(0);
    let file = dir.path().join("expired");
    std::fs::write(&file, expired).unwrap();
    let (code, report) = doctor(&up, Some(&file));
    assert_eq!(code, 1);
    let failures = failed(&report);
    assert_eq!(
        failures.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["expiry", "connect"],
        "{report}"
    );
    assert!(
        failures[1].1.contains("The access token has expired"),
        "{failures:?}"
    );

    // Wrong audience.
    let wrong = em.mint_for(
        Principal::SystemMi,
        "https://management.azure.com",
        Duration::from_secs(3600),
    );
    std::fs::write(&file, wrong).unwrap();
    let (code, report) = doctor(&up, Some(&file));
    assert_eq!(code, 1);
    let failures = failed(&report);
    assert_eq!(
        failures.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["audience", "connect"],
        "{report}"
    );
    assert!(
        failures[1]
            .1
            .contains("does not have a valid audience claim"),
        "{failures:?}"
    );
    assert!(
        failures[1]
            .1
            .contains("request the scope https://ossrdbms-aad.database.windows.net/.default")
    );

    // Missing grant: the owner creates a table after the connection was made.
    let owner = &up.banner["owner"];
    let out = up
        .command("psql")
        .args([
            "-X",
            "-h",
            owner["host"].as_str().unwrap(),
            "-p",
            &owner["port"].to_string(),
        ])
        .args([
            "-U",
            "postgres",
            "-d",
            "demo",
            "-c",
            "create table secrets(x int)",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, report) = doctor(&up, None);
    assert_eq!(code, 1);
    let failures = failed(&report);
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0].0, "privileges");
    assert!(
        failures[0].1.contains("secrets")
            && failures[0].1.contains("pgentra grant --role aad_demo"),
        "{failures:?}"
    );
    up.terminate();
}

#[test]
fn proxy_lets_psql_in_without_a_password() {
    let up = Up::start(&[]);
    let gateway: std::net::SocketAddr = up.banner["gateway"].as_str().unwrap().parse().unwrap();
    let (port, admin) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let mut proxy = up
        .command(cargo_bin("pgentra"))
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--host", "127.0.0.1", "--port", &gateway.port().to_string()])
        .args([
            "--sslmode",
            "verify-full",
            "--ca-file",
            &up.env["PGSSLROOTCERT"],
        ])
        .args(["--admin-listen", &admin])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = up
        .command(cargo_bin("pgentra"))
        .args(["proxy", "wait", "--admin-listen", &admin, "--max", "60s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "proxy wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = up
        .command("psql")
        .args(["-X", "-A", "-t", "-c", "select current_user"])
        .arg(format!(
            "host=127.0.0.1 port={port} user=aad_demo dbname=demo sslmode=disable"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aad_demo");

    Command::new("kill")
        .args(["-TERM", &proxy.id().to_string()])
        .status()
        .unwrap();
    assert!(
        proxy.wait().unwrap().success(),
        "proxy did not exit cleanly on SIGTERM"
    );
    up.terminate();
}

#[test]
fn proxy_config_file_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nsslmod = \"require\"\n").unwrap();
    let out = Command::new(cargo_bin("pgentra"))
        .arg("proxy")
        .arg("--proxy-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sslmod"), "{err}");
}
