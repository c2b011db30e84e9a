//! Optional TLS (rustls with the ring provider, through tonic), certificates
//! from PEM files named by `STEPLAB_TLS_*` (see [`crate::config::TlsFiles`]).
//!
//! Server side: with a certificate and key every listener of a service (the
//! business service, health and reflection share the port) serves TLS only;
//! with `STEPLAB_TLS_CLIENT_CA_FILE` it also requires a client certificate
//! chaining to those roots (mutual TLS). Client side (the outbox relay, the
//! consistency check's reads, `steplab health`): a target URL `https://...`
//! is reached over TLS, trusting `STEPLAB_TLS_CA_FILE` or else the webpki
//! (Mozilla) roots, and presenting the certificate and key when set, for a
//! target that requires mutual TLS; `http://...` stays plaintext.
//!
//! Every file is read and checked here, at start-up: an unreadable file, one
//! without a certificate, an unparsable key or a key that does not go with
//! the certificate is an error naming the variable and the path, never a
//! failure at the first call.

use crate::config::{ConfigError, TlsFiles};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// How long a client may take over the TLS handshake before the server drops
/// the connection (a stalled handshake holds no call slot, only a socket).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const CERT: &str = "STEPLAB_TLS_CERT_FILE";
const KEY: &str = "STEPLAB_TLS_KEY_FILE";
const CA: &str = "STEPLAB_TLS_CA_FILE";
const CLIENT_CA: &str = "STEPLAB_TLS_CLIENT_CA_FILE";

/// The ring provider, installed as the process default once so rustls never
/// has to guess (it refuses to when two providers are compiled in).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn read(variable: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::new(variable, format!("cannot read {}: {e}", path.display())))
}

/// The certificates of a PEM file: at least one, every one parsable.
fn certificates(variable: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(variable, format!("{} is not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            variable,
            format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()),
        ));
    }
    Ok(certs)
}

/// Root certificates from a PEM file, each usable as a trust anchor.
fn roots(variable: &str, path: &Path) -> Result<Certificate, ConfigError> {
    let pem = read(variable, path)?;
    let mut store = RootCertStore::empty();
    for cert in certificates(variable, path, &pem)? {
        store.add(cert).map_err(|e| {
            ConfigError::new(variable, format!("{}: a certificate cannot be a trust root: {e}", path.display()))
        })?;
    }
    Ok(Certificate::from_pem(pem))
}

/// The certificate chain and key, checked to parse and to belong together.
fn identity(files: &TlsFiles) -> Result<Option<Identity>, ConfigError> {
    let (Some(cert_file), Some(key_file)) = (&files.cert_file, &files.key_file) else {
        return Ok(None);
    };
    let cert_pem = read(CERT, cert_file)?;
    let chain = certificates(CERT, cert_file, &cert_pem)?;
    let key_pem = read(KEY, key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        ConfigError::new(KEY, format!("{} is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", key_file.display()))
    })?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            ConfigError::new(
                KEY,
                format!(
                    "{} does not go with the certificate in {CERT} {}: {e}",
                    key_file.display(),
                    cert_file.display()
                ),
            )
        })?;
    Ok(Some(Identity::from_pem(cert_pem, key_pem)))
}

/// The listeners' TLS, or `None` when the service serves plaintext.
pub fn server_config(files: &TlsFiles) -> Result<Option<ServerTlsConfig>, ConfigError> {
    let Some(identity) = identity(files)? else {
        return Ok(None);
    };
    let mut config = ServerTlsConfig::new().identity(identity).timeout(HANDSHAKE_TIMEOUT);
    if let Some(path) = &files.client_ca_file {
        config = config.client_ca_root(roots(CLIENT_CA, path)?);
    }
    Ok(Some(config))
}

/// How clients of a Steplab service reach an `https://` target.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// `STEPLAB_TLS_CA_FILE`; `None`: the webpki roots.
    roots: Option<Certificate>,
    /// The certificate and key, presented to a server that asks (mutual TLS).
    identity: Option<Identity>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &if self.roots.is_some() { CA } else { "webpki roots" })
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Reads and checks `STEPLAB_TLS_CA_FILE` and, for mutual TLS, the
    /// certificate and key.
    pub fn from_files(files: &TlsFiles) -> Result<Self, ConfigError> {
        let roots = files.ca_file.as_deref().map(|path| roots(CA, path)).transpose()?;
        Ok(ClientTls { roots, identity: identity(files)? })
    }

    /// An endpoint for `url`: over TLS when it is `https://`, verifying the
    /// server's certificate against the URL's host, or `server_name` when
    /// given (when the certificate names a DNS name but the URL an address).
    pub fn endpoint(&self, url: &str, server_name: Option<&str>) -> anyhow::Result<Endpoint> {
        let endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|e| anyhow::anyhow!("`{url}` is not a URL: {e}"))?;
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        let mut tls = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        tls = match &self.roots {
            Some(roots) => tls.ca_certificate(roots.clone()),
            None => tls.with_webpki_roots(),
        };
        if let Some(identity) = &self.identity {
            tls = tls.identity(identity.clone());
        }
        if let Some(name) = server_name {
            tls = tls.domain_name(name);
        }
        // Installs the ring provider before tonic builds its rustls config.
        provider();
        endpoint.tls_config(tls).map_err(|e| anyhow::anyhow!("TLS for {url}: {}", error_chain(&e)))
    }
}

/// An error and its causes on one line (tonic's transport errors say only
/// "transport error" at the top).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !parts.iter().any(|p| p.contains(&part)) {
            parts.push(part);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn files(cert: Option<PathBuf>, key: Option<PathBuf>, ca: Option<PathBuf>) -> TlsFiles {
        TlsFiles { cert_file: cert, key_file: key, ca_file: ca, client_ca_file: None }
    }

    #[test]
    fn without_files_the_server_is_plaintext_and_clients_use_the_webpki_roots() {
        assert!(server_config(&TlsFiles::default()).expect("no tls").is_none());
        let client = ClientTls::from_files(&TlsFiles::default()).expect("defaults");
        assert!(client.roots.is_none() && client.identity.is_none());
        // http stays plaintext; https is configured (the roots are built in).
        client.endpoint("http://127.0.0.1:50052", None).expect("http");
        client.endpoint("https://content.example:443", None).expect("https");
        assert!(client.endpoint("not a url", None).is_err());
    }

    #[test]
    fn a_missing_file_names_its_variable_and_path() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("nope.pem");
        let err = ClientTls::from_files(&files(None, None, Some(missing.clone()))).expect_err("missing ca");
        assert_eq!(err.variable, CA);
        assert!(err.problem.contains(&missing.display().to_string()), "{err}");
        let key = write(dir.path(), "key.pem", "");
        let err = server_config(&files(Some(missing.clone()), Some(key), None)).expect_err("missing cert");
        assert_eq!(err.variable, CERT);
        assert!(err.problem.contains("nope.pem"), "{err}");
    }

    #[test]
    fn files_that_are_not_pem_are_refused_at_start_up() {
        let dir = tempfile::tempdir().expect("dir");
        let junk = write(dir.path(), "junk.pem", "not a certificate\n");
        let err = ClientTls::from_files(&files(None, None, Some(junk.clone()))).expect_err("junk ca");
        assert_eq!(err.variable, CA);
        assert!(err.problem.contains("holds no PEM certificate"), "{err}");
        let bad_block = write(
            dir.path(),
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let err = ClientTls::from_files(&files(None, None, Some(bad_block))).expect_err("bad ca");
        assert_eq!(err.variable, CA);
        let err = server_config(&files(Some(junk.clone()), Some(junk), None)).expect_err("junk cert");
        assert_eq!(err.variable, CERT);
    }
}
