//! HTTPS material: a local CA and a server certificate signed by it, kept in the state dir and
//! reused across runs, and the rustls configuration that serves them.
//!
//! Files only (`ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`); never opens a socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

pub(crate) const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";
/// The DNS names `server.pem` was issued for, so a changed name list re-issues it.
const SERVER_NAMES_FILE: &str = "server.names";

/// The CA and server certificate of the HTTPS listener.
#[derive(Debug)]
pub(crate) struct TlsMaterial {
    pub(crate) ca_pem: String,
    pub(crate) ca_path: PathBuf,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a private key readable by the owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

fn ca_params() -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "pgentra emulator local CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "pgentra");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    Ok(params)
}

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Tls(e.to_string())
}

/// Loads the CA and server certificate from `dir`, creating whatever is missing. The server
/// certificate covers localhost, 127.0.0.1, ::1 and `extra_names`.
pub(crate) fn load_or_create(dir: &Path, extra_names: &[String]) -> Result<TlsMaterial, Error> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let names_line = names.join("\n");

    let ca_path = dir.join(CA_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let (ca_pem, ca_key) = if ca_path.exists() && ca_key_path.exists() {
        let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(tls_err)?;
        (read(&ca_path)?, key)
    } else {
        let key = KeyPair::generate().map_err(tls_err)?;
        let cert = ca_params()?.self_signed(&key).map_err(tls_err)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write(&ca_path, &cert.pem())?;
        // A new CA invalidates any server certificate issued by an older one.
        let _ = std::fs::remove_file(dir.join(SERVER_FILE));
        (cert.pem(), key)
    };

    let server_path = dir.join(SERVER_FILE);
    let server_key_path = dir.join(SERVER_KEY_FILE);
    let names_path = dir.join(SERVER_NAMES_FILE);
    let reusable = server_path.exists()
        && server_key_path.exists()
        && std::fs::read_to_string(&names_path).ok().as_deref() == Some(names_line.as_str());
    let (server_pem, server_key_pem) = if reusable {
        (read(&server_path)?, read(&server_key_path)?)
    } else {
        let key = KeyPair::generate().map_err(tls_err)?;
        let mut params = CertificateParams::new(names.clone()).map_err(tls_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "pgentra emulator");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(825);
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(tls_err)?;
        write_private(&server_key_path, &key.serialize_pem())?;
        write(&server_path, &cert.pem())?;
        write(&names_path, &names_line)?;
        (cert.pem(), key.serialize_pem())
    };

    let chain = CertificateDer::pem_slice_iter(server_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(tls_err)?;
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(tls_err)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
        ca_path,
        server_config: Arc::new(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_reused_and_reissued_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), &[]).unwrap();
        let server_a = std::fs::read_to_string(dir.path().join(SERVER_FILE)).unwrap();
        let b = load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(
            server_a,
            std::fs::read_to_string(dir.path().join(SERVER_FILE)).unwrap()
        );
        let c = load_or_create(dir.path(), &["login.example.test".to_string()]).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem, "CA survives a server re-issue");
        assert_ne!(
            server_a,
            std::fs::read_to_string(dir.path().join(SERVER_FILE)).unwrap()
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private keys are owner-only");
    }
}
