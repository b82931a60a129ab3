//! Direct HTTPS: a rustls server configuration on `ring`, from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Which file is at fault, and what is wrong with it (never what is in it).
#[derive(Debug)]
pub struct TlsFileError {
    /// `TESSERA_TLS_CERT` or `TESSERA_TLS_KEY`.
    pub setting: &'static str,
    pub message: String,
}

fn fault(setting: &'static str, message: String) -> TlsFileError {
    TlsFileError { setting, message }
}

/// Reads the certificate chain and its private key and builds a TLS 1.2/1.3
/// server configuration with rustls's safe defaults.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsFileError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            fault(
                "TESSERA_TLS_CERT",
                format!("{}: not a PEM certificate chain ({e})", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(fault(
            "TESSERA_TLS_CERT",
            format!("{}: holds no certificate", cert.display()),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        fault(
            "TESSERA_TLS_KEY",
            format!("{}: not a PEM private key ({e})", key.display()),
        )
    })?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| fault("TESSERA_TLS_CERT", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            fault(
                "TESSERA_TLS_KEY",
                format!(
                    "{} is not the private key of the certificate in {}: {e}",
                    key.display(),
                    cert.display()
                ),
            )
        })
}
