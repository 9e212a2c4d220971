//! An sqlx pool kept supplied with current tokens by a refresher task.
//! `cargo run -p pgentra-postgres --features sqlx --example pool_sqlx`

use std::time::Duration;

use pgentra_postgres::pool::sqlx::{Options, pool};
use pgentra_postgres::token::{EntraOptions, Env};
use pgentra_postgres::{ConnectionSettings, token_cache_for};
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = ConnectionSettings::from_process_env()?;
    let tokens = token_cache_for(
        &settings.identity,
        &Env::from_process(),
        EntraOptions::default(),
    )?;
    let pool = pool(
        &settings,
        tokens,
        Options::default().pool_options(
            PgPoolOptions::new()
                .max_connections(16)
                .max_lifetime(Duration::from_secs(30 * 60)),
        ),
    )
    .await?;

    let (user, n): (String, i32) = sqlx::query_as("select current_user::text, 40 + 2")
        .fetch_one(pool.pool())
        .await?;
    println!("connected as {user}: {n}");
    pool.close().await;
    Ok(())
}
