//! Errors of the test kit: each says which step failed and shows the tool's own output.

use std::path::PathBuf;

/// What went wrong while preparing or using a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: looked in `pg_config --bindir`, PATH and /usr/lib/postgresql/*/bin; install Debian's `postgresql` package (scripts/test does this)"
    )]
    NoBinaries,
    /// A program could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{step} failed ({status}):\n{output}")]
    Command {
        step: String,
        status: String,
        output: String,
    },
    /// File-system work around the cluster failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| TestkitError::Io { what, source }
    }
}
