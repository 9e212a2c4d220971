//! A bb8 pool whose every new connection signs in with the current token.
//! `cargo run -p pgentra-postgres --features bb8 --example pool_bb8`

use std::time::Duration;

use pgentra_postgres::pool::bb8::Manager;
use pgentra_postgres::token::{EntraOptions, Env, OSSRDBMS_SCOPE};
use pgentra_postgres::{ConnectionSettings, Connector, Tls, token_cache_for};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = ConnectionSettings::from_process_env()?;
    let tokens = token_cache_for(
        &settings.identity,
        &Env::from_process(),
        EntraOptions::default(),
    )?;
    let connector = Connector::new(&settings, tokens.clone(), &Tls::system()?)?;
    let pool = bb8::Pool::builder()
        .max_size(16)
        // Not needed for tokens (checked only at login); recycles connections after failovers.
        .max_lifetime(Some(Duration::from_secs(30 * 60)))
        .build(Manager::new(connector))
        .await?;

    let conn = pool.get().await?;
    let version: String = conn.query_one("select version()", &[]).await?.get(0);
    println!("{version}");
    let fetches = tokens.stats(OSSRDBMS_SCOPE).map(|s| s.fetches).unwrap_or(0);
    println!(
        "{} connection(s), {fetches} token request(s)",
        pool.state().connections
    );
    Ok(())
}
