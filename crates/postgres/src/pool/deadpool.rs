//! A `deadpool` manager whose every new connection logs in with the current token, handing out
//! `deadpool_postgres::ClientWrapper` (statement cache, `prepare_cached`, transactions). No token
//! is stored in the pool.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_postgres::ClientWrapper;

use crate::connect::{ConnectError, Connector};

/// A pool of token-authenticated connections.
pub type Pool = managed::Pool<Manager>;
/// A connection checked out of a [`Pool`]; derefs to `ClientWrapper` and `tokio_postgres::Client`.
pub type Object = managed::Object<Manager>;
/// Error of [`Pool::get`].
pub type PoolError = managed::PoolError<ConnectError>;
/// Error of building a [`Pool`].
pub type BuildError = managed::BuildError;

/// How a returned connection is checked before it is handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recycling {
    /// Only `is_closed()` (no round trip).
    #[default]
    Fast,
    /// Also an empty query to the server.
    Verified,
}

/// `deadpool::managed::Manager` for Entra-token connections.
#[derive(Debug, Clone)]
pub struct Manager {
    connector: Connector,
    max_lifetime: Option<Duration>,
    recycling: Recycling,
}

impl Manager {
    /// A manager creating connections with `connector`.
    pub fn new(connector: Connector) -> Self {
        Manager {
            connector,
            max_lifetime: None,
            recycling: Recycling::Fast,
        }
    }

    /// Connections older than this are closed instead of reused, e.g. to rebalance after
    /// failover. (Entra validates the token only at login, so this is not needed for tokens.)
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// How a returned connection is checked before reuse.
    pub fn recycling(mut self, recycling: Recycling) -> Self {
        self.recycling = recycling;
        self
    }

    /// The connector.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }
}

impl managed::Manager for Manager {
    type Type = ClientWrapper;
    type Error = ConnectError;

    async fn create(&self) -> Result<ClientWrapper, ConnectError> {
        let (client, task) = self.connector.connect().await?;
        Ok(ClientWrapper::new(client, task))
    }

    async fn recycle(
        &self,
        client: &mut ClientWrapper,
        metrics: &Metrics,
    ) -> RecycleResult<ConnectError> {
        if client.is_closed() {
            return Err(RecycleError::message("the connection is closed"));
        }
        if let Some(max) = self.max_lifetime
            && metrics.age() >= max
        {
            return Err(RecycleError::message(
                "the connection reached its max lifetime",
            ));
        }
        if self.recycling == Recycling::Verified {
            client
                .simple_query("")
                .await
                .map_err(|e| RecycleError::Backend(ConnectError::Postgres(e)))?;
        }
        Ok(())
    }
}

/// A pool of at most `max_size` connections (deadpool's default runtime: Tokio).
pub fn pool(manager: Manager, max_size: usize) -> Result<Pool, BuildError> {
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
}
