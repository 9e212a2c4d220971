//! The official Azure SDKs, unmodified, get tokens from the emulator: Python `azure-identity` and
//! Node `@azure/identity` run as subprocesses (`interop/sdk/*`) with only the environment a real
//! platform would give them. Each token is verified against the emulator's JWKS (fetched over
//! HTTPS, checked with jsonwebtoken) and its claims compared with the expected principal.
//!
//! Needs `scripts/setup-clients` (project-local venv and node_modules); fails with that hint when
//! they are missing, unless `PGENTRA_SKIP_INTEROP=1`.

#[allow(dead_code)] // shared helpers; this binary uses only some of them
#[path = "http/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pgentra_emulator::{EndpointKind, EnvProfile, RunningEmulator, dev};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Lang {
    Python,
    Node,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The interpreter and script for `lang`, or `None` when the test must be skipped.
fn program(lang: Lang) -> Option<(PathBuf, PathBuf)> {
    let root = repo_root();
    let sdk = root.join("interop/sdk");
    let (interpreter, script, ready) = match lang {
        Lang::Python => {
            let custom = std::env::var_os("PGENTRA_PYTHON").map(PathBuf::from);
            let python = custom
                .clone()
                .unwrap_or_else(|| root.join(".cache/venv/bin/python"));
            // A custom interpreter is trusted to have the SDK; the project venv is checked.
            let has_sdk = custom.is_some() || venv_has_azure_identity(&root);
            let ready = python.exists() && has_sdk;
            (python, sdk.join("python_token.py"), ready)
        }
        Lang::Node => (
            PathBuf::from("node"),
            sdk.join("node_token.mjs"),
            sdk.join("node_modules/@azure/identity/package.json")
                .exists(),
        ),
    };
    if ready {
        return Some((interpreter, script));
    }
    if std::env::var("PGENTRA_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("PGENTRA_SKIP_INTEROP=1: skipping the {lang:?} SDK interop test");
        return None;
    }
    panic!(
        "the {lang:?} Azure SDK client packages are missing: run scripts/setup-clients \
         (or set PGENTRA_SKIP_INTEROP=1 to skip the SDK interop tests)"
    );
}

fn venv_has_azure_identity(root: &Path) -> bool {
    let Ok(lib) = root.join(".cache/venv/lib").read_dir() else {
        return false;
    };
    lib.flatten()
        .any(|d| d.path().join("site-packages/azure/identity").exists())
}

/// The environment a platform would give the app for `mode` (and nothing from this process but
/// PATH and HOME).
fn environment(emu: &RunningEmulator, mode: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for key in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.to_string(), v);
        }
    }
    let profile = match mode {
        "appservice-system" | "appservice-user" => EnvProfile::AppService,
        "imds-system" | "imds-user" => EnvProfile::Imds,
        "client-secret" => EnvProfile::ClientSecret,
        other => panic!("unknown mode {other}"),
    };
    env.extend(emu.env_exports(profile));
    if mode.ends_with("-user") {
        env.insert("AZURE_CLIENT_ID".into(), dev::USER_MI_CLIENT_ID.into());
    }
    env
}

async fn get_token(lang: Lang, mode: &str) {
    let Some((interpreter, script)) = program(lang) else {
        return;
    };
    let emu = support::emulator().await;
    let output = tokio::process::Command::new(&interpreter)
        .arg(&script)
        .arg(mode)
        .env_clear()
        .envs(environment(&emu, mode))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .unwrap_or_else(|_| panic!("{lang:?} {mode}: SDK did not finish within 120 s"))
        .expect("SDK program runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{lang:?} {mode} failed ({}):\n{stderr}\nrequests: {:#?}",
        output.status,
        emu.requests()
    );
    let line = stdout.lines().last().expect("one JSON line");
    let printed: Value = serde_json::from_str(line).expect("JSON on stdout");
    let token = printed["token"].as_str().expect("token");
    let expires_on = printed["expires_on"].as_i64().expect("expires_on");

    let claims = support::verify(&emu, token, dev::OSSRDBMS_RESOURCE).await;
    let (oid, appid) = match mode {
        "appservice-system" | "imds-system" => (dev::SYSTEM_MI_OBJECT_ID, dev::SYSTEM_MI_CLIENT_ID),
        "appservice-user" | "imds-user" => (dev::USER_MI_OBJECT_ID, dev::USER_MI_CLIENT_ID),
        _ => (dev::SP_OBJECT_ID, dev::SP_CLIENT_ID),
    };
    assert_eq!(claims["aud"], dev::OSSRDBMS_RESOURCE, "{lang:?} {mode}");
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{}/", dev::TENANT_ID)
    );
    assert_eq!(claims["tid"], dev::TENANT_ID);
    assert_eq!(claims["oid"], oid, "{lang:?} {mode}");
    assert_eq!(claims["appid"], appid, "{lang:?} {mode}");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        (exp - expires_on).abs() <= 10,
        "{lang:?} {mode}: SDK expiry {expires_on} vs token exp {exp}"
    );

    let expected_kind = match mode {
        "appservice-system" | "appservice-user" => EndpointKind::AppService,
        "imds-system" | "imds-user" => EndpointKind::Imds,
        _ => EndpointKind::TokenV2,
    };
    let log = emu.requests();
    let issued: Vec<_> = log
        .iter()
        .filter(|r| r.endpoint == expected_kind && r.status == 200)
        .collect();
    assert_eq!(issued.len(), 1, "{lang:?} {mode}: {log:#?}");
    if mode.ends_with("-user") || mode == "client-secret" {
        assert_eq!(issued[0].client_id.as_deref(), Some(appid));
    } else {
        assert_eq!(issued[0].client_id, None, "system-assigned sends no id");
    }
}

macro_rules! interop_tests {
    ($($name:ident: $lang:expr, $mode:literal;)*) => {$(
        #[tokio::test]
        async fn $name() {
            get_token($lang, $mode).await;
        }
    )*};
}

interop_tests! {
    python_app_service_system_assigned: Lang::Python, "appservice-system";
    python_app_service_user_assigned: Lang::Python, "appservice-user";
    python_imds_system_assigned: Lang::Python, "imds-system";
    python_imds_user_assigned: Lang::Python, "imds-user";
    python_client_secret_https_authority: Lang::Python, "client-secret";
    node_app_service_system_assigned: Lang::Node, "appservice-system";
    node_app_service_user_assigned: Lang::Node, "appservice-user";
    node_imds_system_assigned: Lang::Node, "imds-system";
    node_imds_user_assigned: Lang::Node, "imds-user";
    node_client_secret_https_authority: Lang::Node, "client-secret";
}
