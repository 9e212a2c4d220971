//! A deadpool pool whose every new connection signs in with the current token (any identity
//! Service Connector configured). `cargo run -p pgentra-postgres --features deadpool --example pool_deadpool`

use pgentra_postgres::pool::deadpool::{Manager, pool};
use pgentra_postgres::token::{EntraOptions, Env, OSSRDBMS_SCOPE};
use pgentra_postgres::{ConnectionSettings, Connector, Tls, token_cache_for};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let settings = ConnectionSettings::from_process_env()?;
    let tokens = token_cache_for(
        &settings.identity,
        &Env::from_process(),
        EntraOptions::default(),
    )?;
    let connector = Connector::new(&settings, tokens.clone(), &Tls::system()?)?;
    let pool = pool(Manager::new(connector), 16)?;

    let mut tasks = Vec::new();
    for i in 0..16 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached("select $1::int * 2").await?;
            let doubled: i32 = client.query_one(&stmt, &[&i]).await?.get(0);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(doubled)
        }));
    }
    for t in tasks {
        t.await??;
    }
    let fetches = tokens.stats(OSSRDBMS_SCOPE).map(|s| s.fetches).unwrap_or(0);
    println!(
        "{} connections, {fetches} token request(s)",
        pool.status().size
    );
    Ok(())
}
