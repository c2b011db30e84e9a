//! The HS256 secret shared by the dev tokens and their verification.

use crate::config::JwtSecretSource;
use std::path::Path;

/// Reads the HS256 secret from the configured source.
pub fn load_secret(source: &JwtSecretSource) -> Result<Vec<u8>, String> {
    match source {
        JwtSecretSource::Value(v) => Ok(v.as_bytes().to_vec()),
        JwtSecretSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "STEPLAB_JWT_SECRET is not set and the dev secret {} cannot be read ({e}): set STEPLAB_JWT_SECRET or run `steplab up` once",
                    path.display()
                )
            })?;
            let secret = text.trim();
            if secret.len() < 32 {
                return Err(format!("the dev secret in {} is shorter than 32 characters", path.display()));
            }
            Ok(secret.as_bytes().to_vec())
        }
    }
}

/// Creates the dev secret file (mode 0600) unless it exists; returns the secret.
pub fn ensure_dev_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read_to_string(path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    use rand::Rng;
    let secret: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(48).map(char::from).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, secret.as_bytes())?;
    Ok(secret.into_bytes())
}
