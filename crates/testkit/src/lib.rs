//! Test kit: throwaway PostgreSQL clusters and test certificates.
//!
//! Used only by tests and benchmarks, never by production code. A [`PgCluster`] runs the
//! machine's own `initdb`/`pg_ctl` in a private temporary directory on a free port, with its own
//! unix socket directory, and is stopped and removed on drop — also when a test panics. Parallel
//! tests never share a cluster, a port or a socket.
//!
//! ```no_run
//! let pg = pgentra_testkit::PgCluster::builder().tls(true).start()?;
//! let out = pg.psql("postgres", "select 1")?;
//! assert_eq!(out.trim(), "1");
//! # Ok::<(), pgentra_testkit::TestkitError>(())
//! ```

mod binaries;
mod certs;
mod cluster;
mod error;

pub use binaries::bin_dir;
pub use certs::{IssuedCert, TestCa};
pub use cluster::{PgCluster, PgClusterBuilder};
pub use error::TestkitError;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Binding to port 0 and closing leaves a small race with other processes; callers that start
/// servers on it (like [`PgCluster`]) retry with a new port when the bind fails.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        // Invariant: binding an ephemeral loopback port only fails when the machine has no
        // loopback interface, in which case no test here can run at all.
        .expect("bind an ephemeral port on 127.0.0.1")
}
