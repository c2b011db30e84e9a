//! The TLS block: PEM files for the listeners and for the clients.

use super::{ConfigError, parse};
use std::path::PathBuf;

/// Optional TLS (rustls), from PEM files. The files themselves are read and
/// checked by the platform's `tls` module at start-up, so an unreadable or
/// malformed file stops the service with an error naming its variable and path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `STEPLAB_TLS_CERT_FILE`: the server's certificate chain (leaf first).
    /// With it (and the key) every service listener serves TLS only.
    pub cert_file: Option<PathBuf>,
    /// `STEPLAB_TLS_KEY_FILE`: the private key of that certificate.
    pub key_file: Option<PathBuf>,
    /// `STEPLAB_TLS_CA_FILE`: the root certificate(s) clients trust (the
    /// relay, the consistency check's reads, `steplab health`) on an
    /// `https://` target; without it, the webpki (Mozilla) roots.
    pub ca_file: Option<PathBuf>,
    /// `STEPLAB_TLS_CLIENT_CA_FILE`: mutual TLS. The root certificate(s) a
    /// client's certificate must chain to; a client without one is refused.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(super) struct TlsArgs {
    #[arg(long, env = "STEPLAB_TLS_CERT_FILE")]
    tls_cert_file: Option<String>,
    #[arg(long, env = "STEPLAB_TLS_KEY_FILE")]
    tls_key_file: Option<String>,
    #[arg(long, env = "STEPLAB_TLS_CA_FILE")]
    tls_ca_file: Option<String>,
    #[arg(long, env = "STEPLAB_TLS_CLIENT_CA_FILE")]
    tls_client_ca_file: Option<String>,
}

impl TlsArgs {
    pub(super) fn parse(&self) -> Result<TlsFiles, ConfigError> {
        let path = |raw: &Option<String>| parse::given(raw).map(|v| PathBuf::from(v.trim()));
        let files = TlsFiles {
            cert_file: path(&self.tls_cert_file),
            key_file: path(&self.tls_key_file),
            ca_file: path(&self.tls_ca_file),
            client_ca_file: path(&self.tls_client_ca_file),
        };
        match (&files.cert_file, &files.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "STEPLAB_TLS_KEY_FILE",
                    "is required with STEPLAB_TLS_CERT_FILE: set both (the certificate chain and its private key) or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "STEPLAB_TLS_CERT_FILE",
                    "is required with STEPLAB_TLS_KEY_FILE: set both (the certificate chain and its private key) or neither",
                ));
            }
            _ => {}
        }
        if files.client_ca_file.is_some() && files.cert_file.is_none() {
            return Err(ConfigError::new(
                "STEPLAB_TLS_CLIENT_CA_FILE",
                "has no effect without STEPLAB_TLS_CERT_FILE and STEPLAB_TLS_KEY_FILE: mutual TLS needs TLS on",
            ));
        }
        Ok(files)
    }
}

impl TlsFiles {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the TLS variables alone (`steplab health` needs no more).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        super::read::<TlsArgs>(&lookup)?.parse()
    }

    /// Whether the service listeners serve TLS (certificate and key set).
    pub fn serves_tls(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}
