//! The test kit against the machine's real PostgreSQL binaries.

use pgentra_testkit::{PgCluster, TestCa};

#[test]
fn cluster_starts_answers_and_is_removed_on_drop() {
    let pg = PgCluster::start().expect("start cluster");
    assert_eq!(pg.psql("postgres", "select 40 + 2").unwrap().trim(), "42");
    let sock = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
    assert!(sock.exists(), "unix socket {} missing", sock.display());
    let data = pg.data_dir().to_path_buf();
    drop(pg);
    assert!(!data.exists(), "data dir not removed");
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = PgCluster::start().unwrap();
    let b = PgCluster::start().unwrap();
    assert_ne!(a.port(), b.port());
    a.psql("postgres", "create table only_in_a(x int)").unwrap();
    let in_b = b
        .psql(
            "postgres",
            "select count(*) from pg_tables where tablename = 'only_in_a'",
        )
        .unwrap();
    assert_eq!(in_b.trim(), "0");
}

#[test]
fn tls_cluster_serves_ssl_with_the_test_ca() {
    let pg = PgCluster::builder()
        .tls(true)
        .hba_line("hostssl all all 127.0.0.1/32 trust")
        .start()
        .unwrap();
    let ca = pg.server_ca_path().expect("ca path").to_path_buf();
    // verify-full with our CA over TCP proves the certificate chain and host name.
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"])
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            pg.port(),
            ca.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
}

#[test]
fn psql_errors_carry_the_server_message() {
    let pg = PgCluster::start().unwrap();
    let err = pg
        .psql("postgres", "select * from no_such_table")
        .unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
}

#[test]
fn cluster_is_stopped_when_a_test_panics() {
    let data = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = data.clone();
    let result = std::panic::catch_unwind(move || {
        let pg = PgCluster::start().unwrap();
        *seen.lock().unwrap() = Some(pg.data_dir().to_path_buf());
        panic!("test failure inside");
    });
    assert!(result.is_err());
    let dir = data.lock().unwrap().clone().unwrap();
    assert!(!dir.exists(), "cluster left behind after panic");
}

#[test]
fn test_ca_issues_distinct_leaf_certificates() {
    let ca = TestCa::new().unwrap();
    let a = ca.issue(&["localhost"]).unwrap();
    let b = ca.issue(&["localhost"]).unwrap();
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_ne!(a.cert_pem, b.cert_pem);
    assert!(a.key_pem.contains("PRIVATE KEY"));
}

#[test]
fn kept_cluster_keeps_its_data_across_handles() {
    let dir = tempfile::tempdir().unwrap();
    let first = PgCluster::builder()
        .dir(dir.path().join("pg"))
        .start()
        .unwrap();
    first
        .psql(
            "postgres",
            "create table survived(x int); insert into survived values (7)",
        )
        .unwrap();
    let data = first.data_dir().to_path_buf();
    drop(first);
    assert!(data.exists(), "kept cluster deleted on drop");
    let again = PgCluster::builder()
        .dir(dir.path().join("pg"))
        .start()
        .unwrap();
    assert_eq!(
        again
            .psql("postgres", "select x from survived")
            .unwrap()
            .trim(),
        "7"
    );
}

#[test]
fn kept_cluster_under_a_private_directory_gets_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let running_as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !running_as_root {
        return; // Only root hands the server to another OS user.
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = PgCluster::builder()
        .dir(private.path().join("pg"))
        .start()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot enter") && text.contains("chmod o+x"),
        "{text}"
    );
}
