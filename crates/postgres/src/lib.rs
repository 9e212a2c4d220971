//! Passwordless PostgreSQL for Rust services on Azure: read the variables Service Connector set,
//! and open every connection with a current Microsoft Entra ID token as its password.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pgentra_postgres::{ConnectionSettings, Tls, connect, token::{EntraOptions, Env}, token_cache_for};
//! let settings = ConnectionSettings::from_process_env()?;            // AZURE_POSTGRESQL_* / spring.*
//! let tokens = token_cache_for(&settings.identity, &Env::from_process(), EntraOptions::default())?;
//! let (client, _conn) = connect(&settings, &tokens, &Tls::system()?).await?;
//! let row = client.query_one("select current_user::text", &[]).await?;
//! # let _: String = row.get(0); Ok(()) }
//! ```
//!
//! That is the whole program for any Service Connector setup: the managed identity
//! (system- or user-assigned) or service principal is chosen from the variables, the token is
//! cached and refreshed ahead of expiry, and the role name comes from the variables or, when
//! they name none, from the token's claims.
//!
//! # Pools
//!
//! Build one [`Connector`] and hand it to a pool; every new physical connection takes the
//! cache's current token (a memory read once warm), so a pool never holds a token past its
//! refresh — the classic outage of a token fetched at start-up and frozen into a pool.
//!
//! | feature | pool | module |
//! |---|---|---|
//! | `deadpool` | `deadpool::managed::Pool` of `deadpool_postgres::ClientWrapper` | [`pool::deadpool`] |
//! | `bb8` | `bb8::Pool` of `tokio_postgres::Client` | [`pool::bb8`] |
//! | `sqlx` | `sqlx::PgPool`, fed by a refresher task (`set_connect_options`) | [`pool::sqlx`] |
//!
//! ```no_run
//! # #[cfg(feature = "deadpool")]
//! # async fn demo(settings: pgentra_postgres::ConnectionSettings, tokens: pgentra_postgres::token::TokenCache)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use pgentra_postgres::{Connector, Tls, pool::deadpool};
//! let connector = Connector::new(&settings, tokens, &Tls::system()?)?;
//! let pool = deadpool::pool(deadpool::Manager::new(connector), 16)?;
//! let client = pool.get().await?;
//! # Ok(()) }
//! ```
//!
//! # What happens on a connect
//!
//! 1. The token for `https://ossrdbms-aad.database.windows.net/.default` comes from the
//!    [`TokenCache`](token::TokenCache); an expired token is never sent (the cache refuses to
//!    return one, and [`Connector`] checks again).
//! 2. TLS follows `sslmode` as libpq does: `disable`; `prefer` and `require` encrypt without
//!    checking the certificate; `verify-ca` checks the chain; `verify-full` the chain and the host
//!    name. Roots: the system store plus optional CA files ([`Tls`]).
//! 3. The role is the settings' user, else derived from the token ([`user_name_from_token`]:
//!    user-assigned identity name, `upn`, `preferred_username`, `unique_name`, `appid`).
//! 4. If the server refuses a *cached* token (SQLSTATE 28P01 or 28000), the cache is forced to
//!    refresh once and the login retried once with the new token. A token fetched for this very
//!    attempt is not retried, nor is one the cache's rate limit hands back unchanged (a forced
//!    refresh within `min_refresh_interval`, 30 s by default, of the last fetch): sending the
//!    same token twice cannot help, and an identity endpoint must not be hammered by a loop of
//!    failing logins.
//!
//! # Service Connector settings
//!
//! [`settings`] parses every client type's variables (`dotnet`, `java`, `springboot`, `python`,
//! `django`, `go`, `nodejs`, `php`, `ruby`, `none`) into one [`ConnectionSettings`] and renders
//! them back ([`ConnectionSettings::render_as`]). Errors name the variable at fault and never
//! contain a secret. The environment is passed in; only
//! [`ConnectionSettings::from_process_env`] reads the process's.

mod connect;
mod credential;
pub mod pool;
pub mod settings;
mod tls;
mod user;

pub use connect::{ConnectError, Connection, Connector, connect};
pub use credential::{token_cache_for, token_source_for};
pub use settings::{
    ClientSecret, ClientType, ConnectionSettings, Identity, SettingsError, SslMode, Variables,
};
pub use tls::{Tls, TlsBuilder, TlsError, server_cert_verifier};
pub use user::{user_name_from_claims, user_name_from_token};

/// The token crate (credentials, cache), re-exported so applications need one dependency.
pub use pgentra_token as token;
