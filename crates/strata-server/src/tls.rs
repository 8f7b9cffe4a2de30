//! TLS material: loads the configured PEM certificate and key into a rustls acceptor for the
//! Redis listener and a tonic identity for gRPC, both on the ring crypto provider, and, in
//! cluster mode, the CA the other members' certificates are checked against ([`load_ca`]).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::{Error, Result};

/// Loaded TLS material.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Acceptor for the Redis-protocol listener.
    pub acceptor: TlsAcceptor,
    /// Identity for tonic's gRPC server.
    pub identity: tonic::transport::Identity,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial")
    }
}

/// Installs ring as the process's default rustls provider (a no-op if one is installed).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads the CA certificate(s) at `path` (PEM), checking that there is at least one.
pub fn load_ca(path: &std::path::Path) -> Result<Vec<u8>> {
    let pem =
        std::fs::read(path).map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("CA certificate {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("no certificate in {}", path.display())));
    }
    Ok(pem)
}

impl TlsMaterial {
    /// Reads and checks the certificate chain and key.
    pub fn load(cfg: &TlsConfig) -> Result<Self> {
        install_default_provider();
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| Error::Tls(format!("reading {}: {e}", p.display())))
        };
        let cert_pem = read(&cfg.cert)?;
        let key_pem = read(&cfg.key)?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("certificate {}: {e}", cfg.cert.display())))?;
        if certs.is_empty() {
            return Err(Error::Tls(format!(
                "no certificate in {}",
                cfg.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| Error::Tls(format!("private key {}: {e}", cfg.key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(TlsMaterial {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            identity: tonic::transport::Identity::from_pem(cert_pem, key_pem),
        })
    }
}
