//! Finding the machine's PostgreSQL server binaries; no cluster is started here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
///
/// Order: `$PGENTRA_PG_BINDIR`, `pg_config --bindir`, the directory of `initdb` on PATH, then
/// the newest `/usr/lib/postgresql/*/bin` (Debian installs server binaries there, off PATH).
pub fn bin_dir() -> Result<PathBuf, TestkitError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PGENTRA_PG_BINDIR").map(PathBuf::from)
        && has_server(&dir)
    {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                // Resolve symlinks so that `postgres` is found beside the real initdb.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or(dir);
                return Ok(real);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(TestkitError::NoBinaries)
}

/// A client program (psql, pgbench): beside the server binaries, else on PATH.
pub(crate) fn client_program(name: &str) -> PathBuf {
    bin_dir()
        .map(|d| d.join(name))
        .ok()
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}
