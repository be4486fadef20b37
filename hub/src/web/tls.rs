//! TLS material: a configured certificate and key, or a self-signed certificate for
//! localhost generated on first start, kept in the data directory and reused, so browsers
//! that accepted it once keep accepting it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::WebConfig;

/// Why TLS cannot be set up. Each message names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read or parsed.
    #[error(transparent)]
    Load(#[from] crate::pem::PemError),
    /// The generated certificate cannot be stored.
    #[error("cannot write the generated TLS certificate to {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificate generation or the TLS library refused the material.
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// Where the certificate in use came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// `web.tls_cert` / `web.tls_key`.
    Configured,
    /// Generated on this start.
    Generated,
    /// Generated on an earlier start and reused.
    Reused,
}

/// A ready TLS server configuration and what identifies its certificate.
pub struct Tls {
    /// For the server.
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, `AA:BB:…`, for people to compare with the browser.
    pub fingerprint: String,
    /// Where it came from.
    pub source: CertSource,
    /// The certificate file.
    pub cert_path: PathBuf,
}

/// Loads the configured pair, or reuses / generates the self-signed one under `data_dir/tls`.
pub fn prepare(web: &WebConfig, data_dir: &Path) -> Result<Tls, TlsError> {
    let (cert_path, key_path, source) = match (&web.tls_cert, &web.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), CertSource::Configured),
        _ => {
            let dir = data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if c.is_file() && k.is_file() {
                (c, k, CertSource::Reused)
            } else {
                generate(&dir, &c, &k)?;
                (c, k, CertSource::Generated)
            }
        }
    };
    let certs = crate::pem::read_certs(&cert_path)?;
    let fingerprint = fingerprint(&certs[0]);
    let mut config = crate::pem::server_config(&cert_path, &key_path)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls { server_config: Arc::new(config), fingerprint, source, cert_path })
}

/// Checks that a configured certificate and key can be used, without serving: for
/// `hub config check`.
pub fn check_files(web: &WebConfig) -> Result<(), TlsError> {
    if let (Some(c), Some(k)) = (&web.tls_cert, &web.tls_key) {
        crate::pem::server_config(c, k)?;
    }
    Ok(())
}

/// `AA:BB:…` SHA-256 of a DER certificate.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Setup(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_path_buf(), source })?;
    // Key first: a crash between the two writes leaves no certificate, so the next start
    // generates a fresh pair instead of pairing a new certificate with an old key.
    write_atomic(key_path, certified.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(cert_path, certified.cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::files::write_atomic(path, bytes, mode).map_err(|source| TlsError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[test]
    fn generated_once_then_reused() {
        provider();
        let dir = tempfile::tempdir().unwrap();
        let web = WebConfig::default();
        let first = prepare(&web, dir.path()).unwrap();
        assert_eq!(first.source, CertSource::Generated);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let second = prepare(&web, dir.path()).unwrap();
        assert_eq!(second.source, CertSource::Reused);
        assert_eq!(first.fingerprint, second.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "private key readable by its owner only");
        }
    }

    #[test]
    fn unreadable_or_garbage_files_are_named() {
        provider();
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let web = WebConfig { tls_cert: Some(garbage.clone()), tls_key: Some(garbage.clone()), ..Default::default() };
        let e = prepare(&web, dir.path()).err().unwrap().to_string();
        assert_eq!(e, format!("cannot use TLS certificate {}: no PEM certificate in the file", garbage.display()));
        let web =
            WebConfig { tls_cert: Some(dir.path().join("missing.pem")), tls_key: Some(garbage), ..Default::default() };
        let e = check_files(&web).unwrap_err().to_string();
        assert!(e.starts_with("cannot use TLS certificate ") && e.contains("missing.pem: No such file"), "{e}");
    }
}
