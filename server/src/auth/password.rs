//! Argon2id password hashing. Hashing is slow on purpose, so it runs on the
//! blocking pool, never on the async runtime; and it needs 19 MiB of work
//! memory, so at most one check a core runs at once, each in a work area
//! allocated once and reused: the memory sign-ins take is bounded by the
//! number of cores, whatever the burst. (Letting argon2 allocate and free
//! 19 MiB a check made glibc's malloc keep most of it: RSS grew by 19 MiB
//! a check.) A burst queues briefly, then is refused as [`Busy`].

use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use rand::Rng;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Shorter passwords are refused when set from the shell.
pub const MIN_LEN: usize = 10;
/// Longer passwords are refused everywhere, before anything is hashed.
pub const MAX_LEN: usize = 1024;
/// How long a request waits for a free hashing slot before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(3);

/// Verified against when the user does not exist, so an unknown name costs
/// as much time as a wrong password and names cannot be probed by timing.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"not a password of anyone's")
        .ok()
        .map(|h| h.to_string())
});

/// Work areas of finished checks, for the next ones (never more than the
/// number of admission permits).
static AREAS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Checks `password` against the PHC string `stored` in `area` (grown to
/// the hash's memory cost if needed). Any malformed hash is a mismatch.
fn verify_in(password: &[u8], stored: &str, area: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        Params::try_from(&parsed),
        Algorithm::try_from(parsed.algorithm.as_str()),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt.as_ref(),
        &mut out,
        &mut area[..blocks],
    );
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
}

/// Admission: at most one hash a core at once.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

/// Every hashing slot stayed busy for [`QUEUE_WAIT`].
#[derive(Debug, thiserror::Error)]
#[error("the console is busy checking other passwords; try again in a few seconds")]
pub struct Busy;

/// Runs `work` on the blocking pool once a slot is free.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    let permit = tokio::time::timeout(QUEUE_WAIT, HASHING.acquire())
        .await
        .map_err(|_| Busy)?
        .map_err(|_| Busy)?;
    let done = tokio::task::spawn_blocking(work).await.map_err(|_| Busy);
    drop(permit);
    done
}

pub async fn hash(password: String) -> anyhow::Result<String> {
    hashing(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
    })
    .await?
}

/// True when `password` matches `stored`. With no stored hash (unknown or
/// disabled user) the work is still done and the answer is false.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, Busy> {
    hashing(move || {
        let known = stored.is_some();
        let Some(hash) = stored.or_else(|| DUMMY_HASH.clone()) else {
            return false;
        };
        let mut area = AREAS
            .lock()
            .ok()
            .and_then(|mut areas| areas.pop())
            .unwrap_or_default();
        let ok = verify_in(password.as_bytes(), &hash, &mut area);
        if let Ok(mut areas) = AREAS.lock() {
            areas.push(area);
        }
        ok && known
    })
    .await
}

/// A password for generated accounts: 20 characters without look-alikes.
pub fn random() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!(
            "the password is too short: use at least {MIN_LEN} characters"
        ));
    }
    if password.len() > MAX_LEN {
        return Err(format!(
            "the password is too long: use at most {MAX_LEN} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(
            !verify("not a password of anyone's".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (random(), random());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(check_strength(&a).is_ok());
        assert!(check_strength("short").is_err());
    }
}
