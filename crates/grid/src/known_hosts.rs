//! Pinned host keys, in OpenSSH's known_hosts format (plain host entries:
//! `host key-type base64` or `[host]:port key-type base64`). Hashed (`|1|`)
//! and marker (`@revoked`, `@cert-authority`) lines are skipped.

use russh::keys::{HashAlg, PublicKey};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
struct Entry {
    hosts: Vec<String>,
    key: PublicKey,
}

#[derive(Clone, Debug, Default)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// What the pinned keys say about a presented key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// No key is pinned for this host.
    Unknown,
    /// Keys are pinned for this host and the presented one is not among them.
    Mismatch {
        expected: Vec<String>,
    },
}

/// How known_hosts names a host: `host` on port 22, else `[host]:port`.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The line to append to known_hosts to pin `key` for this host.
pub fn pin_line(host: &str, port: u16, key: &PublicKey) -> String {
    let openssh = key.to_openssh().unwrap_or_default();
    // Drop the key's comment: it names the machine that made the key, not this host.
    let mut parts = openssh.split_whitespace();
    let (kind, data) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    format!("{} {kind} {data}", host_pattern(host, port))
}

#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {problem}", path.display())]
pub struct KnownHostsError {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
}

impl KnownHosts {
    /// Reads the file; a missing file pins nothing (every host is unknown).
    pub fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(KnownHostsError {
                    path: path.to_owned(),
                    line: 0,
                    problem: format!("cannot read: {e}"),
                });
            }
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<KnownHosts, KnownHostsError> {
        let mut entries = vec![];
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with('@')
                || line.starts_with('|')
            {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(hosts), Some(kind), Some(data)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(KnownHostsError {
                    path: path.to_owned(),
                    line: i + 1,
                    problem: "expected `host key-type base64-key`".into(),
                });
            };
            let key = PublicKey::from_openssh(&format!("{kind} {data}")).map_err(|e| {
                KnownHostsError {
                    path: path.to_owned(),
                    line: i + 1,
                    problem: format!("unreadable {kind} key: {e}"),
                }
            })?;
            entries.push(Entry {
                hosts: hosts.split(',').map(str::to_owned).collect(),
                key,
            });
        }
        Ok(KnownHosts {
            path: path.to_owned(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn verdict(&self, host: &str, port: u16, presented: &PublicKey) -> Verdict {
        let pattern = host_pattern(host, port);
        let pinned: Vec<&PublicKey> = self
            .entries
            .iter()
            .filter(|e| e.hosts.iter().any(|h| h == &pattern))
            .map(|e| &e.key)
            .collect();
        if pinned.is_empty() {
            Verdict::Unknown
        } else if pinned.iter().any(|k| k.key_data() == presented.key_data()) {
            Verdict::Trusted
        } else {
            Verdict::Mismatch {
                expected: pinned.into_iter().map(fingerprint).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        crate::keys::generate().public_key().clone()
    }

    #[test]
    fn pinned_keys_are_trusted_others_are_unknown_or_mismatched() {
        let (a, b) = (key(), key());
        let text = format!("# pinned\n{}\n", pin_line("127.0.0.1", 2201, &a));
        let kh = KnownHosts::parse(Path::new("known_hosts"), &text).unwrap();
        assert_eq!(kh.verdict("127.0.0.1", 2201, &a), Verdict::Trusted);
        assert_eq!(kh.verdict("127.0.0.1", 2202, &a), Verdict::Unknown);
        assert_eq!(
            kh.verdict("127.0.0.1", 2201, &b),
            Verdict::Mismatch {
                expected: vec![fingerprint(&a)]
            }
        );
        assert!(fingerprint(&a).starts_with("SHA256:"));
    }

    #[test]
    fn a_broken_line_is_reported_with_its_number() {
        let err = KnownHosts::parse(Path::new("kh"), "\nhost ssh-ed25519 notbase64\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .starts_with("kh:2: unreadable ssh-ed25519 key"),
            "{err}"
        );
    }
}
