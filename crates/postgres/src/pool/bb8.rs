//! A `bb8` connection manager whose every new connection logs in with the current token. No
//! token is stored in the pool; use bb8's own `max_lifetime`, `idle_timeout` and
//! `test_on_check_out` on the builder.

use crate::connect::{ConnectError, Connector};

/// A pool of token-authenticated connections.
pub type Pool = bb8::Pool<Manager>;

/// `bb8::ManageConnection` for Entra-token connections.
#[derive(Debug, Clone)]
pub struct Manager {
    connector: Connector,
}

impl Manager {
    /// A manager creating connections with `connector`.
    pub fn new(connector: Connector) -> Self {
        Manager { connector }
    }

    /// The connector.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = tokio_postgres::Client;
    type Error = ConnectError;

    async fn connect(&self) -> Result<tokio_postgres::Client, ConnectError> {
        // The I/O task ends by itself when the client is dropped.
        let (client, _task) = self.connector.connect().await?;
        Ok(client)
    }

    async fn is_valid(&self, conn: &mut tokio_postgres::Client) -> Result<(), ConnectError> {
        conn.simple_query("")
            .await
            .map_err(ConnectError::Postgres)?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut tokio_postgres::Client) -> bool {
        conn.is_closed()
    }
}
