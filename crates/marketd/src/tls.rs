//! HTTPS: the certificate and key marketd serves with, and their replacement while it runs.
//!
//! Certificates are short-lived (an ACME client renews them every few weeks), so a new
//! pair is picked up on SIGHUP without a restart: each handshake reads the configuration
//! current at that moment, and connections already open keep the one they began with.
//! A pair that does not load is refused whole and the one in use stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the PEM certificate chain (leaf first) and its private key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Offered in this order, so clients that speak HTTP/2 use it.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("tls_key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("tls_cert and tls_key do not make a usable pair: {0}")]
    Pair(rustls::Error),
}

/// The TLS configuration in use, replaceable while connections are served.
pub struct Certificates {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the pair, failing with a message that names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the files again; on success new handshakes use the new pair, on failure the
    /// pair in use is kept.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// An acceptor over the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }
}

/// TLS 1.2 and 1.3 with ring, ALPN `h2` then `http/1.1`, no client certificates.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| TlsError::Key {
        path: files.key.clone(),
        reason: pem_reason(&err, "PRIVATE KEY"),
    })?;
    // The provider is named rather than taken from the process default, so the
    // configuration does not depend on which other crate installed one first.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Pair)?
        .with_no_client_auth()
        // Also checks that the key belongs to the leaf certificate.
        .with_single_cert(chain, key)
        .map_err(TlsError::Pair)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Cert {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|err| bad(pem_reason(&err, "CERTIFICATE")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(pem_reason(&err, "CERTIFICATE")))?;
    if chain.is_empty() {
        return Err(bad(pem_reason(&pem::Error::NoItemsFound, "CERTIFICATE")));
    }
    Ok(chain)
}

/// Why a PEM file did not load, without quoting it: some errors carry the offending
/// line, and in a key file that may be key material.
pub(crate) fn pem_reason(err: &pem::Error, section: &str) -> String {
    match err {
        pem::Error::Io(io) => io.to_string(),
        pem::Error::NoItemsFound => format!("no \"BEGIN {section}\" section found"),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "not valid PEM".to_owned(),
    }
}

/// A task that reloads the certificates on each SIGHUP until `shutdown`. The signal is
/// registered before this returns, not when the task first runs, so a SIGHUP sent once
/// the server is listening never ends the process.
#[cfg(unix)]
pub fn reload_on_hangup(
    certificates: Arc<Certificates>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            match certificates.reload() {
                Ok(()) => tracing::info!(
                    cert = %certificates.files.cert.display(),
                    "TLS certificate reloaded"
                ),
                Err(err) => tracing::error!(
                    error = %err,
                    "TLS certificate not reloaded; the one in use is kept"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (TlsFiles, rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        (files, cert, key)
    }

    #[test]
    fn offers_http2_before_http1() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _, _) = pair(dir.path(), "one");
        let config = server_config(&files).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn a_pair_that_does_not_load_names_the_file_and_never_quotes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (one, _, _) = pair(dir.path(), "one");
        let (two, _, _) = pair(dir.path(), "two");

        let missing = TlsFiles {
            cert: dir.path().join("absent.crt"),
            ..one.clone()
        };
        let err = server_config(&missing).unwrap_err().to_string();
        assert!(err.starts_with("tls_cert "), "{err}");
        assert!(err.contains("absent.crt"), "{err}");

        // A certificate where the key should be.
        let swapped = TlsFiles {
            cert: one.cert.clone(),
            key: one.cert.clone(),
        };
        let err = server_config(&swapped).unwrap_err().to_string();
        assert!(err.starts_with("tls_key "), "{err}");
        assert!(err.contains("BEGIN PRIVATE KEY"), "{err}");

        let mismatched = TlsFiles {
            cert: one.cert.clone(),
            key: two.key,
        };
        let err = server_config(&mismatched).unwrap_err().to_string();
        assert!(err.starts_with("tls_cert and tls_key"), "{err}");

        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA-not-base64!";
        let garbled = dir.path().join("garbled.key");
        std::fs::write(
            &garbled,
            format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let err = server_config(&TlsFiles {
            cert: one.cert,
            key: garbled,
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("tls_key "), "{err}");
        assert!(!err.contains(secret), "{err}");
    }

    #[test]
    fn a_failed_reload_keeps_the_pair_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let (one, _, _) = pair(dir.path(), "one");
        let certificates = Certificates::load(one.clone()).unwrap();
        let before = certificates.current.load_full();
        std::fs::write(&one.key, "not a key").unwrap();
        assert!(certificates.reload().is_err());
        assert!(Arc::ptr_eq(&before, &certificates.current.load_full()));

        let (two, _, _) = pair(dir.path(), "two");
        std::fs::copy(&two.cert, &one.cert).unwrap();
        std::fs::copy(&two.key, &one.key).unwrap();
        certificates.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &certificates.current.load_full()));
    }
}
