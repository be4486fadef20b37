//! Certificates and private keys from PEM files (L0), for every TLS listener the hub has: the
//! web server and the SIP user agent. Each error names the file and what is wrong with it.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use TLS {what} {}: {reason}", path.display())]
pub struct PemError {
    /// `certificate` or `key`.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// The certificate chain in `path` (leaf first); at least one certificate.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let err = |reason: String| PemError { what: "certificate", path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// The private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let err = |reason: String| PemError { what: "key", path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| err(format!("no usable PEM private key ({e})")))
}

/// A TLS server configuration from a certificate file and its key (no client certificates).
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, PemError> {
    let certs = read_certs(cert)?;
    let key_der = read_key(key)?;
    rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key_der).map_err(|e| PemError {
        what: "key",
        path: key.to_path_buf(),
        reason: format!("does not fit the certificate: {e}"),
    })
}
