//! Opening a database connection for `exec` and `grant`: from flags or Service Connector
//! variables, with PGPASSWORD (like psql) or an Entra token as the password.

use anyhow::Context;
use pgentra_postgres::{ConnectionSettings, SslMode, Tls};
use pgentra_token::{
    DefaultCredential, DefaultCredentialOptions, EntraOptions, Env, HttpOptions, TokenSource,
};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::cli::ConnArgs;

/// Connects as `args` say and spawns the connection's I/O task.
pub async fn connect(args: &ConnArgs) -> anyhow::Result<Client> {
    let env = Env::from_process();
    let (settings, from_env) = match &args.host {
        Some(host) => {
            let mut s = ConnectionSettings::new(host, &args.database);
            s.port = args.port;
            s.user = args.user.clone();
            s.ssl_mode = args.sslmode.parse().context("--sslmode")?;
            (s, false)
        }
        None => (
            ConnectionSettings::from_process_env().context(
                "no --host, and the Service Connector variables do not describe a connection",
            )?,
            true,
        ),
    };
    let mut http = HttpOptions::default();
    let mut tls = Tls::builder();
    if let Some(ca) = &args.ca_file {
        http = http
            .add_root_pem_file(ca)
            .with_context(|| format!("read {}", ca.display()))?;
        tls = tls.ca_file(ca);
    }
    let tls = tls.build().context("set up TLS")?;

    let password = match env.get("PGPASSWORD") {
        Some(p) => p.to_owned(),
        None => {
            let entra = EntraOptions::default().with_http(http);
            let token = if from_env {
                pgentra_postgres::token_source_for(&settings.identity, &env, entra)?
                    .get_token(pgentra_token::OSSRDBMS_SCOPE)
                    .await
            } else {
                DefaultCredential::from_env(
                    &env,
                    DefaultCredentialOptions::default().with_entra(entra),
                )?
                .get_token(pgentra_token::OSSRDBMS_SCOPE)
                .await
            }
            .context("get an access token for the database")?;
            token.secret().to_owned()
        }
    };
    let user = match &settings.user {
        Some(u) => u.clone(),
        None => pgentra_token::Claims::decode(&password)
            .ok()
            .and_then(|c| pgentra_postgres::user_name_from_claims(&c))
            .context("no --user, and the password is not a token naming a user (upn) or application (appid)")?,
    };

    let mut config = tokio_postgres::Config::new();
    config
        .host(&settings.host)
        .port(settings.port)
        .dbname(&settings.database)
        .user(&user)
        .password(password)
        .application_name("pgentra")
        .ssl_mode(match settings.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
    let connector = tls.make_connect(settings.ssl_mode).context("set up TLS")?;
    let (client, connection) = config
        .connect(connector)
        .await
        .with_context(|| format!("connect to {} as {user}", settings.host))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection ended");
        }
    });
    Ok(client)
}

/// Runs SQL (one or more statements); returns the last result set's columns and rows.
pub async fn query(
    client: &Client,
    sql: &str,
) -> anyhow::Result<(Vec<String>, Vec<Vec<Option<String>>>)> {
    let messages = client.simple_query(sql).await.map_err(describe)?;
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = cols.iter().map(|c| c.name().to_owned()).collect();
                rows.clear();
            }
            SimpleQueryMessage::Row(row) => {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok((columns, rows))
}

/// The server's own message (and SQLSTATE) rather than tokio-postgres' generic "db error".
pub fn describe(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => anyhow::anyhow!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => anyhow::Error::new(e),
    }
}
