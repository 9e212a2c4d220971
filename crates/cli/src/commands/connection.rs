//! `pgentra connection create`: what Service Connector does to the database for a passwordless
//! connection (create the principal, grant), then the variables for the application.

use std::process::ExitCode;

use anyhow::{Context, bail};
use pgentra_postgres::{ClientSecret, ConnectionSettings, Identity, SslMode};

use crate::cli::{AuthKind, ConnArgs, ConnectionCommand, ConnectionCreateArgs, EnvFormat};
use crate::db;
use crate::output::shell_quote;
use crate::stack::{identifier, literal};

pub async fn run(cmd: ConnectionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConnectionCommand::Create(args) => create(args).await,
    }
}

fn identity(args: &ConnectionCreateArgs) -> anyhow::Result<Identity> {
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .with_context(|| format!("--auth {:?} needs {flag}", args.auth).to_lowercase())
    };
    Ok(match args.auth {
        AuthKind::System => Identity::SystemAssigned,
        AuthKind::User => Identity::UserAssigned {
            client_id: need(&args.client_id, "--client-id")?,
        },
        AuthKind::Sp => Identity::ServicePrincipal {
            tenant_id: need(&args.tenant_id, "--tenant-id")?,
            client_id: need(&args.client_id, "--client-id")?,
            secret: ClientSecret::new(need(&args.client_secret, "--client-secret")?),
        },
    })
}

async fn create(args: ConnectionCreateArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.object_type.as_str(), "service" | "user" | "group") {
        bail!(
            "--object-type must be service, user or group, not {:?}",
            args.object_type
        );
    }
    let identity = identity(&args)?;
    let role = format!("aad_{}", args.name);

    // The principal lives in the `postgres` database, as on Azure.
    let admin = ConnArgs {
        database: "postgres".into(),
        ..args.conn.clone()
    };
    let client = db::connect(&admin)
        .await
        .context("connect as the administrator")?;
    let sql = format!(
        "select * from pgaadauth_create_principal_with_oid({}, {}, {}, false, false)",
        literal(&role),
        literal(&args.object_id),
        literal(&args.object_type)
    );
    match db::query(&client, &sql).await {
        Ok(_) => eprintln!("· created role {role}"),
        // Service Connector ignores "already exists", so a re-run is safe.
        Err(e) if e.to_string().contains("already exists") => eprintln!("· role {role} exists"),
        Err(e) => return Err(e.context(format!("create the principal {role}"))),
    }
    let client = db::connect(&args.conn)
        .await
        .context("connect to the application database")?;
    let (r, d) = (identifier(&role), identifier(&args.conn.database));
    db::query(
        &client,
        &format!(
            "GRANT ALL PRIVILEGES ON DATABASE {d} TO {r};\
             GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO {r};\
             GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public TO {r};"
        ),
    )
    .await
    .context("grant the database")?;
    eprintln!("· granted database {} to {role}", args.conn.database);

    let host = args
        .app_host
        .clone()
        .or_else(|| args.conn.host.clone())
        .context(
            "--app-host is needed when the administrator connection came from the environment",
        )?;
    let mut settings = ConnectionSettings::new(host, &args.conn.database);
    settings.port = args.app_port.unwrap_or(args.conn.port);
    settings.user = Some(role);
    settings.ssl_mode = SslMode::Require;
    settings.identity = identity;
    let vars = settings.render_as(args.client_type).into_vec();
    match args.format {
        EnvFormat::Exports => {
            for (k, v) in &vars {
                println!("export {k}={}", shell_quote(v));
            }
        }
        EnvFormat::Dotenv => {
            for (k, v) in &vars {
                println!("{k}={}", shell_quote(v));
            }
        }
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            println!("{}", serde_json::Value::Object(map));
        }
    }
    Ok(ExitCode::SUCCESS)
}
