//! Throwaway PostgreSQL clusters: initdb, configure, start, stop on drop. No SQL logic here
//! beyond the superuser `psql` helper.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::binaries::{bin_dir, client_program};
use crate::certs::TestCa;
use crate::{TestkitError, free_port};

/// How many fresh ports to try when another process grabbed ours between probe and start.
const START_ATTEMPTS: usize = 4;

/// Options for a [`PgCluster`].
#[derive(Debug, Default)]
pub struct PgClusterBuilder {
    tls: bool,
    hba_lines: Vec<String>,
    conf_lines: Vec<String>,
    dir: Option<PathBuf>,
    port: Option<u16>,
}

impl PgClusterBuilder {
    /// Serve TLS with a certificate for `localhost` and `127.0.0.1` from a fresh [`TestCa`].
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// A `pg_hba.conf` line placed before the defaults (`local all all trust`,
    /// `host all all 127.0.0.1/32 scram-sha-256`), so it wins.
    pub fn hba_line(mut self, line: impl Into<String>) -> Self {
        self.hba_lines.push(line.into());
        self
    }

    /// A `postgresql.conf` line, e.g. `"max_connections = 300"`.
    pub fn conf(mut self, line: impl Into<String>) -> Self {
        self.conf_lines.push(line.into());
        self
    }

    /// Keep the cluster in `dir` instead of a temporary directory: an existing cluster there is
    /// reused (started again), a missing one is created. Dropping the handle stops the server
    /// but keeps the files. `pgentra up` uses this for its local stack.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Listen on this TCP port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Creates and starts the cluster (about a second).
    pub fn start(self) -> Result<PgCluster, TestkitError> {
        PgCluster::create(self)
    }
}

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct PgCluster {
    // Field order matters: `dir` must be dropped (deleted) after the server is stopped in Drop.
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    ca_path: Option<PathBuf>,
    owner: Option<(u32, u32)>,
    dir: ClusterDir,
}

/// Where the cluster lives: deleted with the handle, or kept for the next run.
#[derive(Debug)]
enum ClusterDir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl ClusterDir {
    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(t) => t.path(),
            ClusterDir::Kept(p) => p,
        }
    }
}

impl PgCluster {
    /// Options: TLS, extra `pg_hba.conf` and `postgresql.conf` lines.
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    /// A cluster with the defaults: trust over the unix socket, SCRAM on 127.0.0.1, no TLS.
    pub fn start() -> Result<PgCluster, TestkitError> {
        Self::builder().start()
    }

    fn create(opts: PgClusterBuilder) -> Result<PgCluster, TestkitError> {
        let bin = bin_dir()?;
        // initdb refuses to run as root: run the server tools as the `postgres` OS user then.
        let owner = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = match &opts.dir {
            Some(path) => {
                fs::create_dir_all(path)
                    .map_err(TestkitError::io(format!("create {}", path.display())))?;
                if owner.is_some() {
                    check_traversable(path)?;
                }
                ClusterDir::Kept(path.clone())
            }
            None => ClusterDir::Temp(
                tempfile::Builder::new()
                    .prefix("pgentra-pg-")
                    .tempdir()
                    .map_err(TestkitError::io("create the cluster's temporary directory"))?,
            ),
        };
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        fs::create_dir_all(&socket_dir).map_err(TestkitError::io("create the socket directory"))?;
        if let Some((uid, gid)) = owner {
            for p in [dir.path(), socket_dir.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .map_err(TestkitError::io(format!("chown {}", p.display())))?;
            }
        }

        let mut cluster = PgCluster {
            bin,
            data,
            socket_dir,
            port: 0,
            ca_path: None,
            owner,
            dir,
        };
        let reused = cluster.data.join("PG_VERSION").is_file();
        if reused {
            cluster.ca_path = Some(cluster.dir.path().join("ca.pem")).filter(|p| p.is_file());
            // A server left running by a previous run that died would make `start` fail.
            cluster.stop();
        } else {
            cluster.initdb()?;
            cluster.configure(&opts)?;
        }
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = opts.port.unwrap_or_else(free_port);
            cluster.write_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) if opts.port.is_some() => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(TestkitError::NoBinaries))
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP host, always `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The directory holding the server's unix socket `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The bootstrap superuser.
    pub fn superuser(&self) -> &str {
        "postgres"
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The CA certificate that signed the server certificate, when built with `.tls(true)`.
    pub fn server_ca_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// The server log so far (for test failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs SQL as the superuser over the unix socket; returns unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, TestkitError> {
        let out = Command::new(client_program("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .output()
            .map_err(|source| TestkitError::Spawn {
                program: "psql".into(),
                source,
            })?;
        check(format!("psql `{sql}`"), out).map(|o| String::from_utf8_lossy(&o.stdout).into())
    }

    fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        // Tools must not pick up a developer's environment (PGDATA, PGPORT, locale quirks).
        cmd.env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .env("LC_ALL", "C");
        cmd
    }

    fn run(&self, step: &str, cmd: &mut Command) -> Result<Output, TestkitError> {
        let out = cmd.output().map_err(|source| TestkitError::Spawn {
            program: step.into(),
            source,
        })?;
        check(step.to_string(), out)
    }

    fn initdb(&self) -> Result<(), TestkitError> {
        let mut cmd = self.tool("initdb");
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-N"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
        self.run("initdb", &mut cmd).map(|_| ())
    }

    fn configure(&mut self, opts: &PgClusterBuilder) -> Result<(), TestkitError> {
        let mut conf = format!(
            "\n# pgentra testkit\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n\
             include_if_exists = 'pgentra_port.conf'\n",
            self.socket_dir.display()
        );
        if opts.tls {
            let ca = TestCa::new()?;
            let leaf = ca.issue(&["localhost", "127.0.0.1"])?;
            self.write_owned("server.crt", &leaf.cert_pem, 0o644)?;
            self.write_owned("server.key", &leaf.key_pem, 0o600)?;
            let ca_path = self.dir.path().join("ca.pem");
            fs::write(&ca_path, ca.cert_pem()).map_err(TestkitError::io("write ca.pem"))?;
            self.ca_path = Some(ca_path);
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        for line in &opts.conf_lines {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = self.data.join("postgresql.conf");
        let mut existing =
            fs::read_to_string(&conf_path).map_err(TestkitError::io("read postgresql.conf"))?;
        existing.push_str(&conf);
        fs::write(&conf_path, existing).map_err(TestkitError::io("write postgresql.conf"))?;

        let mut hba = String::from("# pgentra testkit\n");
        for line in &opts.hba_lines {
            hba.push_str(line);
            hba.push('\n');
        }
        hba.push_str("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
        fs::write(self.data.join("pg_hba.conf"), hba).map_err(TestkitError::io("write pg_hba.conf"))
    }

    fn write_port(&self) -> Result<(), TestkitError> {
        fs::write(
            self.data.join("pgentra_port.conf"),
            format!("port = {}\n", self.port),
        )
        .map_err(TestkitError::io("write pgentra_port.conf"))
    }

    fn write_owned(&self, name: &str, contents: &str, mode: u32) -> Result<(), TestkitError> {
        let path = self.data.join(name);
        fs::write(&path, contents).map_err(TestkitError::io(format!("write {name}")))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(TestkitError::io(format!("chmod {name}")))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(TestkitError::io(format!("chown {name}")))?;
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), TestkitError> {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        self.run("pg_ctl start", &mut cmd)
            .map(|_| ())
            .map_err(|e| match e {
                TestkitError::Command {
                    step,
                    status,
                    output,
                } => TestkitError::Command {
                    step,
                    status,
                    output: format!("{output}\n--- server.log ---\n{}", self.log()),
                },
                other => other,
            })
    }
}

impl PgCluster {
    fn stop(&self) {
        // A kept cluster shuts down cleanly; a temporary one needs no checkpoint, and tests
        // finish faster with immediate mode.
        let mode = match self.dir {
            ClusterDir::Kept(_) => "fast",
            ClusterDir::Temp(_) => "immediate",
        };
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"]);
        let _ = cmd.output();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check(step: String, out: Output) -> Result<Output, TestkitError> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(TestkitError::Command {
            step,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// The server runs as the `postgres` OS user, which must be able to enter every directory above
/// the cluster; `mktemp -d` makes mode-700 directories it cannot. Say so before initdb fails with
/// a bare "Permission denied".
fn check_traversable(path: &Path) -> Result<(), TestkitError> {
    let abs =
        fs::canonicalize(path).map_err(TestkitError::io(format!("resolve {}", path.display())))?;
    for dir in abs.ancestors().skip(1) {
        let mode = fs::metadata(dir)
            .map_err(TestkitError::io(format!("inspect {}", dir.display())))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(TestkitError::Command {
                step: format!("use {} for PostgreSQL", path.display()),
                status: format!("{} has mode {:o}", dir.display(), mode & 0o777),
                output: format!(
                    "the server runs as the `postgres` OS user, who cannot enter {}: choose a directory under a world-traversable path, or run `chmod o+x {}`",
                    dir.display(),
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // No libc call (the workspace forbids unsafe): the owner of /proc/self is our effective uid.
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// uid and gid of the `postgres` OS user, read from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), TestkitError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(TestkitError::io("read /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .ok_or_else(|| TestkitError::Command {
            step: "find the `postgres` OS user".into(),
            status: "missing".into(),
            output: "running as root, initdb needs an unprivileged user named `postgres` (Debian's postgresql package creates it)".into(),
        })
}
