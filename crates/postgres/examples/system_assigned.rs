//! Connect with the app's system-assigned managed identity, from the variables Service Connector
//! set (`az webapp connection create postgres-flexible … --system-identity`).
//!
//! Locally, against the emulator and gateway: set `AZURE_POSTGRESQL_CONNECTIONSTRING` (or the
//! client type's variables) plus `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from
//! `pgentra emulator`, then `cargo run -p pgentra-postgres --example system_assigned`.

use pgentra_postgres::token::{EntraOptions, Env};
use pgentra_postgres::{ConnectionSettings, Identity, Tls, connect, token_cache_for};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = ConnectionSettings::from_process_env()?;
    if settings.identity != Identity::SystemAssigned {
        return Err(format!(
            "these variables configure a {} identity",
            settings.identity.kind()
        )
        .into());
    }
    let tokens = token_cache_for(
        &settings.identity,
        &Env::from_process(),
        EntraOptions::default(),
    )?;
    let (client, _conn) = connect(&settings, &tokens, &Tls::system()?).await?;
    let user: String = client
        .query_one("select current_user::text", &[])
        .await?
        .get(0);
    println!("connected to {settings} as {user}");
    Ok(())
}
