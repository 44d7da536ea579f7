//! The platform secret that keys every stored identifier, and random tokens.
//!
//! The secret comes from `TAILOR_SECRET_KEY` (64 hex characters or base64 of 32 bytes or
//! more) or from `secret.key` in the data directory, generated on first start with mode 0600.
//! Losing it makes the stored digests useless: nothing in the store can be matched again, and
//! the index cannot be rebuilt from the store. Back it up with the database.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use tailor_core::IndexKey;
use zeroize::Zeroizing;

use crate::EngineError;

/// The file holding a generated secret, inside the data directory.
pub const SECRET_FILE: &str = "secret.key";

/// Where the secret came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    File,
    Generated,
}

/// Loads the index key: from `env_value` if given, else from the data directory, generating it
/// there on first use.
pub fn load_index_key(
    data_dir: &Path,
    env_value: Option<&str>,
) -> Result<(IndexKey, SecretSource), EngineError> {
    if let Some(text) = env_value {
        let bytes = decode_secret(text).ok_or(EngineError::BadSecret(
            "TAILOR_SECRET_KEY must be 64 hex characters or base64 of at least 32 bytes",
        ))?;
        let key = IndexKey::from_secret(&bytes).ok_or(EngineError::BadSecret(
            "TAILOR_SECRET_KEY must hold at least 32 bytes",
        ))?;
        return Ok((key, SecretSource::Environment));
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = decode_secret(text.trim()).ok_or(EngineError::BadSecret(
                "secret.key in the data directory is not a valid secret",
            ))?;
            let key = IndexKey::from_secret(&bytes).ok_or(EngineError::BadSecret(
                "secret.key holds fewer than 32 bytes",
            ))?;
            Ok((key, SecretSource::File))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = random_bytes::<32>()?;
            write_private(&path, hex::encode(*bytes).as_bytes())?;
            let key = IndexKey::from_secret(&*bytes)
                .ok_or(EngineError::BadSecret("generated secret too short"))?;
            Ok((key, SecretSource::Generated))
        }
        Err(e) => Err(EngineError::Io {
            what: "reading secret.key",
            source: e,
        }),
    }
}

fn decode_secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.trim();
    if text.len() >= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).ok().map(Zeroizing::new);
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|b| b.len() >= 32)
        .map(Zeroizing::new)
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, EngineError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut *bytes).map_err(|_| EngineError::Random)?;
    Ok(bytes)
}

/// A random token of 32 bytes, as 64 hex characters.
pub fn random_token() -> Result<Zeroizing<String>, EngineError> {
    Ok(Zeroizing::new(hex::encode(*random_bytes::<32>()?)))
}

/// Writes a new file readable by its owner only (0600), failing if it exists.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), EngineError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |source| EngineError::Io {
        what: "writing a secret file",
        source,
    };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decode_from_hex_and_base64() {
        assert!(decode_secret(&"ab".repeat(32)).is_some());
        let b64 = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        assert_eq!(decode_secret(&b64).map(|b| b.len()), Some(32));
        assert!(decode_secret("short").is_none());
        assert!(decode_secret(&"ab".repeat(8)).is_none());
    }
}
