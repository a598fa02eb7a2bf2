//! SSH private keys: generating them, and reading them only from files
//! nobody else can read.

pub use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the private key {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the private key {} is readable by group or others (mode {mode:o}); fix: chmod 600 {}",
        path.display(),
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{} is not an OpenSSH private key: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },
    #[error("cannot write the private key {}: {problem}", path.display())]
    Write { path: PathBuf, problem: String },
}

/// A new Ed25519 key.
pub fn generate() -> PrivateKey {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// Reads an OpenSSH-format private key, refusing one others could read.
pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| KeyError::Malformed {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    if key.is_encrypted() {
        return Err(KeyError::Malformed {
            path: path.to_owned(),
            problem: "it is encrypted; migctl needs a key without a passphrase".into(),
        });
    }
    Ok(key)
}

/// Writes the key in OpenSSH format with mode 0600 (created so, never widened).
pub fn save(path: &Path, key: &PrivateKey) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |problem: String| KeyError::Write {
        path: path.to_owned(),
        problem,
    };
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    f.sync_all().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_key_loads_and_an_open_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        let key = generate();
        save(&path, &key).unwrap();
        assert_eq!(load(&path).unwrap().public_key(), key.public_key());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("mode 644"), "{err}");
        assert!(err.contains("fix: chmod 600"), "{err}");
    }
}
