//! The Azure CLI: runs `az account get-access-token --scope … --output json` and reads its answer.
//!
//! Runs the program with the injected environment only, a timeout, and `kill_on_drop`; the token
//! on stdout is parsed and never echoed into an error (stderr may be, after scrubbing).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use crate::cloud::{validate_scope, validate_tenant};
use crate::env::Env;
use crate::error::{Error, ErrorKind};
use crate::secret::AccessToken;
use crate::source::TokenSource;
use crate::time_fmt;

/// Options of [`AzureCliCredential`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AzureCliOptions {
    /// The program to run; `az` (searched on the injected `PATH`) by default. Tests point this
    /// at a fake script.
    pub program: PathBuf,
    /// How long `az` may take.
    pub timeout: Duration,
    /// Passed as `--tenant` when set.
    pub tenant_id: Option<String>,
    /// Offset from UTC, in seconds, used to read the old `expiresOn` local-time field when the
    /// CLI is older than 2.54 and sends no `expires_on`. Defaults to this host's offset when it
    /// can be determined, else UTC.
    pub utc_offset_secs: i32,
}

impl Default for AzureCliOptions {
    fn default() -> Self {
        AzureCliOptions {
            program: PathBuf::from(if cfg!(windows) { "az.cmd" } else { "az" }),
            timeout: Duration::from_secs(10),
            tenant_id: None,
            utc_offset_secs: time::UtcOffset::current_local_offset()
                .map(|o| o.whole_seconds())
                .unwrap_or(0),
        }
    }
}

impl AzureCliOptions {
    /// Sets the program to run.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the UTC offset used to read the old `expiresOn` field.
    pub fn with_utc_offset_secs(mut self, offset: i32) -> Self {
        self.utc_offset_secs = offset;
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }
}

/// Tokens of the user (or service principal) signed in to the Azure CLI.
#[derive(Debug)]
pub struct AzureCliCredential {
    options: AzureCliOptions,
    env: Env,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliToken {
    access_token: Option<String>,
    #[serde(rename = "expires_on")]
    expires_on: Option<serde_json::Value>,
    #[serde(rename = "expiresOn")]
    expires_on_local: Option<String>,
}

impl AzureCliCredential {
    /// Credential name used in errors.
    pub const NAME: &'static str = "AzureCliCredential";

    /// Runs `az` with the process environment.
    pub fn new(options: AzureCliOptions) -> Result<Self, Error> {
        Self::from_env(&Env::from_process(), options)
    }

    /// Runs `az` with exactly the variables in `env` (it needs `PATH` and `HOME`).
    pub fn from_env(env: &Env, options: AzureCliOptions) -> Result<Self, Error> {
        if let Some(t) = &options.tenant_id {
            validate_tenant(t).map_err(|e| e.with_credential(Self::NAME))?;
        }
        Ok(AzureCliCredential {
            options,
            env: env.clone(),
        })
    }

    async fn run(&self, scope: &str) -> Result<AccessToken, Error> {
        validate_scope(scope)?;
        let program = &self.options.program;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args([
            "account",
            "get-access-token",
            "--output",
            "json",
            "--scope",
            scope,
        ]);
        if let Some(t) = &self.options.tenant_id {
            cmd.args(["--tenant", t]);
        }
        cmd.env_clear()
            .envs(self.env.iter())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::unavailable(format!(
                    "the Azure CLI ({}) was not found on PATH; install it and run `az login`, or use another credential",
                    program.display()
                ))
            } else {
                Error::unavailable(format!("cannot run {}: {e}", program.display()))
            }
        })?;
        let out = match tokio::time::timeout(self.options.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(Error::other(
                    ErrorKind::Unavailable,
                    format!("running {} failed: {e}", program.display()),
                ));
            }
            Err(_) => {
                return Err(Error::other(
                    ErrorKind::Timeout,
                    format!(
                        "`az account get-access-token` did not finish within {:?}",
                        self.options.timeout
                    ),
                ));
            }
        };
        if !out.status.success() {
            let stderr = scrub(&String::from_utf8_lossy(&out.stderr));
            let not_logged_in = stderr.contains("az login") || stderr.contains("az account set");
            if not_logged_in {
                return Err(Error::unavailable(format!(
                    "the Azure CLI is not signed in: run `az login` ({stderr})"
                )));
            }
            if out.status.code() == Some(127) {
                return Err(Error::unavailable(format!(
                    "the Azure CLI could not be started ({stderr})"
                )));
            }
            return Err(Error::other(
                ErrorKind::Authentication,
                format!(
                    "`az account get-access-token` failed ({}): {stderr}",
                    out.status
                ),
            ));
        }
        self.parse(&out.stdout)
    }

    fn parse(&self, stdout: &[u8]) -> Result<AccessToken, Error> {
        let bad = |what: &str| {
            Error::other(
                ErrorKind::InvalidResponse,
                format!("the Azure CLI's output {what}; is it older than 2.0? (`az --version`)"),
            )
        };
        let t: CliToken =
            serde_json::from_slice(stdout).map_err(|_| bad("is not the expected JSON"))?;
        let token = t
            .access_token
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("has no accessToken"))?;
        let epoch = match &t.expires_on {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let expires_on = match epoch {
            Some(e) => time_fmt::from_epoch(e),
            None => t
                .expires_on_local
                .as_deref()
                .and_then(|s| time_fmt::parse_naive_local(s, self.options.utc_offset_secs))
                .ok_or_else(|| bad("has neither expires_on nor a readable expiresOn"))?,
        };
        Ok(AccessToken::new(token, expires_on))
    }
}

/// The CLI prints "ERROR: …" lines; keep a short, token-free excerpt.
fn scrub(stderr: &str) -> String {
    let text: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let text = text.join(" ");
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| if w.contains("eyJ") { "<redacted>" } else { w })
        .collect();
    let joined = words.join(" ");
    if joined.chars().count() > 400 {
        format!("{}…", joined.chars().take(400).collect::<String>())
    } else if joined.is_empty() {
        "no error output".to_owned()
    } else {
        joined
    }
}

impl TokenSource for AzureCliCredential {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn get_token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<AccessToken, Error>> {
        Box::pin(async move {
            self.run(scope)
                .await
                .map_err(|e| e.with_credential(Self::NAME))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(offset: i32) -> AzureCliCredential {
        let o = AzureCliOptions::default().with_utc_offset_secs(offset);
        AzureCliCredential::from_env(&Env::new(), o).unwrap()
    }

    #[test]
    fn parses_new_and_old_output() {
        let c = cred(3600);
        let t = c
            .parse(br#"{"accessToken":"tok","expiresOn":"2023-11-14 23:13:20.000000","expires_on":1700000000,"tokenType":"Bearer"}"#)
            .unwrap();
        assert_eq!(time_fmt::to_epoch(t.expires_on()), 1_700_000_000);
        let t = c
            .parse(br#"{"accessToken":"tok","expiresOn":"2023-11-14 23:13:20.000000"}"#)
            .unwrap();
        assert_eq!(time_fmt::to_epoch(t.expires_on()), 1_700_000_000);
        for bad in [&b"{}"[..], b"not json", br#"{"accessToken":"eyJx"}"#] {
            let e = c.parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse);
            assert!(!e.to_string().contains("eyJ"));
        }
    }

    #[test]
    fn scrub_hides_tokens_and_truncates() {
        assert_eq!(
            scrub("ERROR: bad\n eyJabc.def.ghi \n"),
            "ERROR: bad <redacted>"
        );
        assert_eq!(scrub(""), "no error output");
        assert!(scrub(&"x ".repeat(1000)).ends_with('…'));
    }
}
