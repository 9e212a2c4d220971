//! `pgentra emulator`: serves the identity emulator until Ctrl-C/SIGTERM and prints the
//! environment a client needs to reach it.

use std::process::ExitCode;

use anyhow::Context;
use pgentra_emulator::{Config, Emulator, EnvProfile, RunningEmulator};

use crate::cli::{EmulatorArgs, Global, OutputFormat};
use crate::output::shell_quote;

pub async fn run(global: &Global, args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.identities {
        Some(path) => Config::from_file(path)
            .with_context(|| format!("load identities file {}", path.display()))?,
        None => Config::default(),
    };
    let mut builder = Emulator::builder()
        .config(config)
        .http_addr(args.http_addr)
        .https_addr(args.https_addr)
        .state_dir(args.state_dir.clone());
    if let Some(header) = args.identity_header.clone() {
        builder = builder.identity_header(header);
    }
    let emulator = builder.start().await.context("start the emulator")?;
    print_banner(global.output, &emulator);
    super::shutdown_signal().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The variables each client kind needs, grouped so a user can copy one block.
pub fn env_blocks(em: &RunningEmulator) -> Vec<(&'static str, Vec<(String, String)>)> {
    vec![
        (
            "system-assigned managed identity (App Service protocol)",
            em.env_exports(EnvProfile::AppService),
        ),
        (
            "user-assigned managed identity",
            em.env_exports(EnvProfile::AppServiceUserAssigned),
        ),
        (
            "managed identity through IMDS",
            em.env_exports(EnvProfile::Imds),
        ),
        (
            "service principal (client secret over https; SDKs also need instance discovery disabled)",
            em.env_exports(EnvProfile::ClientSecret),
        ),
    ]
}

fn print_banner(format: OutputFormat, em: &RunningEmulator) {
    let blocks = env_blocks(em);
    match format {
        OutputFormat::Json => {
            let env: serde_json::Map<String, serde_json::Value> = blocks
                .iter()
                .map(|(name, vars)| {
                    let vars: serde_json::Map<String, serde_json::Value> = vars
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect();
                    (name.to_string(), serde_json::Value::Object(vars))
                })
                .collect();
            let doc = serde_json::json!({
                "http": em.http_base(),
                "https": em.https_base(),
                "ca_cert": em.ca_cert_path(),
                "tenant_id": em.tenant_id(),
                "jwks_uri": em.jwks_url(),
                "env": env,
            });
            println!("{doc}");
        }
        OutputFormat::Table | OutputFormat::Tsv => {
            println!("pgentra emulator is serving (Ctrl-C to stop)");
            println!(
                "  http   {}  managed identity, IMDS, discovery, JWKS",
                em.http_base()
            );
            println!("  https  {}  Entra authority", em.https_base());
            println!("  CA     {}", em.ca_cert_path().display());
            println!("  JWKS   {}", em.jwks_url());
            for (name, vars) in blocks {
                println!("\n# {name}");
                for (k, v) in vars {
                    println!("export {k}={}", shell_quote(&v));
                }
            }
        }
    }
}
