//! Optional TLS with a self-signed certificate generated at start-up
//! (rcgen), so HTTPS clients can be tested against the simulator: write the
//! certificate PEM somewhere and have the client trust it. ALPN offers h2
//! and http/1.1.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The TLS certificate or configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup failed: {0}")]
pub struct TlsError(String);

/// A certificate and the TLS configuration serving it.
#[derive(Clone)]
pub struct TlsSettings {
    cert_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl TlsSettings {
    /// A fresh self-signed certificate for `names` (DNS names or IP
    /// addresses, e.g. `["localhost", "127.0.0.1"]`).
    pub fn self_signed(names: &[&str]) -> Result<Self, TlsError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError(format!("generating the certificate: {e}")))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .map_err(|e| TlsError(format!("installing the certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsSettings {
            cert_pem: certified.cert.pem(),
            config: Arc::new(config),
        })
    }

    /// The certificate, PEM-encoded, for clients to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

impl std::fmt::Debug for TlsSettings {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings").finish_non_exhaustive()
    }
}
