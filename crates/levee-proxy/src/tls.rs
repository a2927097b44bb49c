//! TLS for listeners that configure `tls: {cert, key}`: PEM files loaded once at start, ALPN
//! offering `h2` then `http/1.1`, so HTTP/2 clients get HTTP/2 and everyone else HTTP/1.1.

use crate::error::ProxyError;
use levee_config::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// An acceptor for `config`'s certificate chain and key.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ProxyError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| {
            ProxyError::Tls(format!(
                "cannot read certificates from {}: {e}",
                config.cert
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| ProxyError::Tls(format!("bad certificate PEM in {}: {e}", config.cert)))?;
    if certs.is_empty() {
        return Err(ProxyError::Tls(format!(
            "{} holds no certificate: give a PEM file with the chain, leaf first",
            config.cert
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|e| {
        ProxyError::Tls(format!(
            "cannot read a private key from {}: {e}",
            config.key
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ProxyError::Tls(format!("the certificate and key do not work together: {e}"))
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
