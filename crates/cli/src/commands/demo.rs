//! `pgentra demo`: the seed's flow end to end on a fresh local stack, narrated. Exits 0 only if
//! every step behaved as Azure would.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use pgentra_emulator::{Principal, dev};
use pgentra_postgres::{ClientType, Connector, Tls};
use pgentra_token::{CacheOptions, Env, TokenCache};

use crate::cli::{AuthKind, DemoArgs};
use crate::commands::grant::{grant_sql, validation_sql};
use crate::db;
use crate::stack::Stack;

fn say(line: &str) {
    println!("{line}");
}

pub async fn run(mut args: DemoArgs) -> anyhow::Result<ExitCode> {
    // A demo never reuses state: every run shows the whole flow from nothing.
    let scratch = tempfile::tempdir().context("create a scratch directory")?;
    args.stack.state_dir = scratch.path().join("stack");
    args.stack.fresh = true;
    say("pgentra demo: Service Connector's passwordless PostgreSQL flow, on this machine\n");
    let stack = Stack::start(&args.stack).await?;
    let result = narrate(&stack).await;
    stack.stop().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn narrate(stack: &Stack) -> anyhow::Result<()> {
    let identities = [
        (
            AuthKind::System,
            "system",
            "system-assigned managed identity",
        ),
        (AuthKind::User, "user", "user-assigned managed identity"),
        (AuthKind::Sp, "sp", "service principal"),
    ];
    say("1. Service Connector creates one passwordless connection per identity:");
    let mut connections = Vec::new();
    for (auth, short, label) in identities {
        let conn = stack.create_connection(&format!("demo_{short}"), auth)?;
        say(&format!(
            "   ✓ {label}: pgaadauth_create_principal_with_oid('{}', <object id>, 'service', false, false); GRANT ALL ON DATABASE",
            conn.role
        ));
        connections.push((conn, label));
    }
    say(&format!(
        "\n2. Later, the owner creates a table in database {:?}.",
        stack.database
    ));
    stack.pg.psql(
        &stack.database,
        "CREATE TABLE IF NOT EXISTS todo (id serial PRIMARY KEY, title text NOT NULL)",
    )?;
    say("   ✓ CREATE TABLE todo\n");

    let tls = Tls::builder()
        .ca_file(&stack.ca_bundle)
        .build()
        .context("TLS for the demo clients")?;
    for (n, (conn, label)) in connections.iter().enumerate() {
        say(&format!(
            "{}. An application signs in as the {label}.",
            n + 3
        ));
        // The application's side: only the variables Service Connector set, nothing else.
        let env: Env = stack.exports(conn, ClientType::None).into_iter().collect();
        let entra = pgentra_token::EntraOptions::default().with_http(
            pgentra_token::HttpOptions::default()
                .add_root_pem_file(&stack.ca_bundle)
                .context("trust the emulator's CA")?,
        );
        let source = pgentra_postgres::token_source_for(&conn.settings.identity, &env, entra)?;
        let tokens = TokenCache::from_arc(source.into(), CacheOptions::default());
        let token = tokens.get_token(pgentra_token::OSSRDBMS_SCOPE).await?;
        let claims = token.claims()?;
        say(&format!(
            "   ✓ token from the {} (oid {}, appid {}, expires in {} min)",
            if conn.auth == AuthKind::Sp {
                "Entra token endpoint"
            } else {
                "managed identity endpoint"
            },
            claims.oid.as_deref().unwrap_or("-"),
            claims.appid.as_deref().unwrap_or("-"),
            token.expires_in(std::time::SystemTime::now()).as_secs() / 60
        ));
        let connector = Connector::new(&conn.settings, tokens, &tls)?;
        let (client, _task) = connector.connect().await?;
        let user = client
            .query_one("select current_user", &[])
            .await
            .map_err(db::describe)?;
        let user: String = user.get(0);
        say(&format!(
            "   ✓ connected through the gateway over TLS, token as password: current_user = {user}"
        ));
        if user != conn.role {
            bail!("connected as {user}, expected {}", conn.role);
        }
        match client.query("select count(*) from todo", &[]).await {
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                say("   ✓ before the owner's GRANT: permission denied for table todo")
            }
            Err(e) => return Err(db::describe(e)),
            Ok(_) => bail!("{} could read todo before any GRANT", conn.role),
        }
        stack
            .pg
            .psql(&stack.database, &grant_sql(&conn.role, "public", false))?;
        let validated = stack
            .pg
            .psql(&stack.database, &validation_sql(&conn.role, "public"))?;
        if validated.trim() != "todo" {
            bail!("validation query listed {validated:?}, expected todo");
        }
        say(&format!(
            "   ✓ owner: GRANT ALL PRIVILEGES ON ALL TABLES/SEQUENCES IN SCHEMA public; validation query lists: {}",
            validated.trim()
        ));
        client
            .execute(
                "insert into todo (title) values ($1)",
                &[&format!("written by {user}")],
            )
            .await
            .map_err(db::describe)?;
        say("   ✓ the application inserts a row\n");
    }

    say("6. A token that has expired is refused, with Azure's message.");
    let em = &stack.emulator;
    em.clock().set_offset(-2 * 24 * 3600);
    let expired = em.mint_for(
        Principal::SystemMi,
        dev::OSSRDBMS_RESOURCE,
        Duration::from_secs(3600),
    );
    em.clock().set_offset(0);
    let mut config = tokio_postgres::Config::new();
    config
        .host(stack.gateway_addr.ip().to_string())
        .port(stack.gateway_addr.port())
        .dbname(&stack.database)
        .user("aad_demo_system")
        .password(expired)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let connect = tls.make_connect(pgentra_postgres::SslMode::Require)?;
    match config.connect(connect).await {
        Ok(_) => bail!("the gateway accepted an expired token"),
        Err(e) => {
            let msg = e
                .as_db_error()
                .map(|d| {
                    format!(
                        "{}:  {} (SQLSTATE {})",
                        d.severity(),
                        d.message(),
                        d.code().code()
                    )
                })
                .unwrap_or_else(|| e.to_string());
            if !msg.contains("expired") {
                bail!("expected an expiry error, got: {msg}");
            }
            say(&format!("   ✓ {msg}"));
        }
    }
    let rows = stack
        .pg
        .psql(&stack.database, "select title from todo order by id")?;
    say(&format!(
        "\nDone: three identities wrote to todo without a stored password:\n{}",
        rows.lines()
            .map(|l| format!("   {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    Ok(())
}
