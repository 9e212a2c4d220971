//! Connect as a service principal: Service Connector sets `AZURE_POSTGRESQL_CLIENTID`,
//! `AZURE_POSTGRESQL_CLIENTSECRET` and `AZURE_POSTGRESQL_TENANTID` next to the connection's
//! variables.
//!
//! Locally: those three from the emulator's dev service principal, `AZURE_AUTHORITY_HOST` and
//! `SSL_CERT_FILE` (the emulator's CA) from `pgentra emulator`, then
//! `cargo run -p pgentra-postgres --example service_principal`.

use pgentra_postgres::token::{EntraOptions, Env};
use pgentra_postgres::{ConnectionSettings, Identity, Tls, connect, token_cache_for};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = ConnectionSettings::from_process_env()?;
    let Identity::ServicePrincipal {
        tenant_id,
        client_id,
        ..
    } = &settings.identity
    else {
        return Err(format!(
            "these variables configure a {} identity",
            settings.identity.kind()
        )
        .into());
    };
    println!("signing in as application {client_id} of tenant {tenant_id}");
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
