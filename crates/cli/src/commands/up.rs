//! `pgentra up`: the local stack until Ctrl-C, with the environment for one client printed.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Global, OutputFormat, UpArgs};
use crate::output::shell_quote;
use crate::stack::Stack;

pub async fn run(global: &Global, args: UpArgs) -> anyhow::Result<ExitCode> {
    let stack = Stack::start(&args.stack).await?;
    let result = serve(global, &args, &stack).await;
    stack.stop().await;
    result
}

async fn serve(global: &Global, args: &UpArgs, stack: &Stack) -> anyhow::Result<ExitCode> {
    let conn = stack
        .create_connection(&args.connection, args.auth)
        .with_context(|| format!("create the connection aad_{}", args.connection))?;
    let exports = stack.exports(&conn, args.client_type);
    match global.output {
        OutputFormat::Json => {
            let env: serde_json::Map<String, serde_json::Value> = exports
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "gateway": stack.gateway_addr.to_string(),
                    "role": conn.role,
                    "client_type": args.client_type.as_str(),
                    "env": env,
                    "owner": {
                        "host": stack.pg.socket_dir(),
                        "port": stack.pg.port(),
                        "user": stack.pg.superuser(),
                        "database": stack.database,
                    },
                })
            );
        }
        OutputFormat::Table | OutputFormat::Tsv => {
            println!(
                "pgentra is up: gateway {} → PostgreSQL, role {} ({:?} identity). Ctrl-C to stop.\n",
                stack.gateway_addr, conn.role, args.auth
            );
            println!(
                "# Service Connector variables for --client-type {}",
                args.client_type.as_str()
            );
            for (k, v) in &exports {
                println!("export {k}={}", shell_quote(v));
            }
            println!(
                "\n# The database owner (for the seed's GRANT step), over the local socket:\n# psql -h {} -p {} -U {} {}",
                stack.pg.socket_dir().display(),
                stack.pg.port(),
                stack.pg.superuser(),
                stack.database
            );
        }
    }
    if let Some(path) = &args.env_file {
        let text: String = exports
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
            .collect();
        // Written under a temporary name, then renamed: a script waiting for the file never
        // reads half of it.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    }
    super::shutdown_signal().await;
    eprintln!("· stopping");
    if let Some(path) = &args.env_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(ExitCode::SUCCESS)
}
