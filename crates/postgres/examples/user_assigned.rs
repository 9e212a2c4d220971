//! Connect with a user-assigned managed identity: Service Connector adds
//! `AZURE_POSTGRESQL_CLIENTID` (Spring: `spring.cloud.azure.credential.client-id`) to the
//! connection's variables.
//!
//! Locally: the connection's variables with `AZURE_POSTGRESQL_CLIENTID` set to the emulator's
//! user-assigned identity, plus `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`, then
//! `cargo run -p pgentra-postgres --example user_assigned`.

use pgentra_postgres::token::{EntraOptions, Env};
use pgentra_postgres::{ConnectionSettings, Identity, Tls, connect, token_cache_for};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = ConnectionSettings::from_process_env()?;
    let Identity::UserAssigned { client_id } = &settings.identity else {
        return Err(format!(
            "these variables configure a {} identity",
            settings.identity.kind()
        )
        .into());
    };
    println!("signing in as user-assigned identity {client_id}");
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
