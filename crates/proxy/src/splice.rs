//! After login, both proxy modes only copy bytes: this module relays them both ways until either
//! side closes or the session is cancelled. It never parses a message.

use tokio::io::{AsyncWriteExt, copy_bidirectional_with_sizes};
use tokio_util::sync::CancellationToken;

use crate::stream::Io;

/// Buffer per direction. Larger than tokio's 8 KB default so a big result row or COPY chunk
/// moves in fewer syscalls; small enough for thousands of sessions.
const BUF_SIZE: usize = 32 * 1024;

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceEnd {
    /// One side closed; byte counts client→upstream and upstream→client.
    Closed {
        /// Bytes from the client to the server.
        to_upstream: u64,
        /// Bytes from the server to the client.
        to_client: u64,
    },
    /// The stop token fired (shutdown after the grace period).
    Cancelled,
}

/// Writes the bytes already buffered on each side, then copies both ways.
pub async fn splice<C: Io, U: Io>(
    client: &mut C,
    upstream: &mut U,
    client_pending: &[u8],
    upstream_pending: &[u8],
    stop: &CancellationToken,
) -> std::io::Result<SpliceEnd> {
    if !client_pending.is_empty() {
        upstream.write_all(client_pending).await?;
        upstream.flush().await?;
    }
    if !upstream_pending.is_empty() {
        client.write_all(upstream_pending).await?;
        client.flush().await?;
    }
    tokio::select! {
        r = copy_bidirectional_with_sizes(client, upstream, BUF_SIZE, BUF_SIZE) => {
            let (to_upstream, to_client) = r?;
            Ok(SpliceEnd::Closed { to_upstream, to_client })
        }
        _ = stop.cancelled() => Ok(SpliceEnd::Cancelled),
    }
}
