//! The lock file `mig.lock` in the config directory (MIG's lock file): while
//! it exists, an operation owns the console. It is created atomically and
//! exclusively (temporary file, fsync, hard link to `mig.lock`, fsync of the
//! directory), so two starts cannot both win and a crash never leaves a
//! half-written lock. Only reconciliation or an override removes it, and
//! removing means archiving under `locks/`. An unreadable lock is reported
//! with its raw text, never deleted silently.

use app::model::Action;
use grid::{AppName, GridName};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "mig.lock";
/// A lock is a few hundred bytes; a file past this is not read further.
pub const MAX_LOCK_BYTES: u64 = 64 << 10;
/// How much of an unreadable lock is kept to show an admin.
pub const SHOWN_BYTES: usize = 4 << 10;
pub const ARCHIVE_DIR: &str = "locks";
pub const LOCK_VERSION: u32 = 1;

/// Which console wrote the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsoleId {
    pub host: String,
    pub pid: u32,
}

impl ConsoleId {
    pub fn this_process() -> ConsoleId {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        ConsoleId {
            host,
            pid: std::process::id(),
        }
    }
}

/// The lock's contents (the design's contract, field for field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub op_id: String,
    pub action: Action,
    #[schema(value_type = String)]
    pub source_grid: GridName,
    #[schema(value_type = String)]
    pub source_app_name: AppName,
    #[schema(value_type = String)]
    pub target_grid: GridName,
    #[schema(value_type = String)]
    pub target_app_name: AppName,
    /// RFC 3339, UTC.
    #[schema(value_type = String)]
    pub created_at: crate::clock::Timestamp,
    pub created_by: String,
    pub console: ConsoleId,
    /// The target existed before the operation and is updated in place: no
    /// clean-up destroys it. Absent (false) from older locks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub update_target: bool,
    /// A warm operation: how it cuts over. Absent from cold (and older) locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmPlan>,
    /// Seconds the source may take to stop by itself before it is forced.
    /// Absent: the default (older locks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_secs: Option<u64>,
    /// A migrate that keeps its source: once the target runs verified, the
    /// source stays on its grid, stopped, this many hours (then its
    /// deadline releases it). Absent: the source is destroyed (older locks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_source_hours: Option<u64>,
    /// A rollback: the migrate it undoes (whose kept source is its target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
}

impl Lock {
    /// The source's stop timeout, seconds.
    pub fn stop_timeout(&self) -> u64 {
        self.stop_timeout_secs
            .unwrap_or(helper::env::DEFAULT_STOP_TIMEOUT)
    }
}

/// How a warm operation cuts over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmPlan {
    pub cutover: app::model::Cutover,
    /// For a scheduled cutover (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub cutover_at: Option<crate::clock::Timestamp>,
}

/// What is on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
// A lock is read where it is used and dropped: its size is no cost worth
// a box at every match on it.
#[allow(clippy::large_enum_variant)]
pub enum LockState {
    Free,
    Held(Lock),
    /// The file exists but is not a lock this console can read.
    Unreadable {
        raw: String,
        problem: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", held_message(.0))]
    Held(Box<LockState>),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lock is held by operation {held}, not {wanted}")]
    NotOurs { held: String, wanted: String },
}

fn held_message(state: &LockState) -> String {
    match state {
        LockState::Held(l) => format!(
            "locked by operation {} ({} of {}/{} to {}/{}, started by {} at {})",
            l.op_id,
            l.action,
            l.source_grid,
            l.source_app_name,
            l.target_grid,
            l.target_app_name,
            l.created_by,
            l.created_at
        ),
        LockState::Unreadable { problem, .. } => format!(
            "locked by an unreadable lock file ({problem}); an admin can inspect and override it"
        ),
        LockState::Free => "locked".into(),
    }
}

/// What a lock file's bytes say: the first [`MAX_LOCK_BYTES`] + 1 bytes of
/// it, and the file's `size`. A lock is held only when it is a whole lock of
/// this version that the console can write back as it read it; anything else
/// is `Unreadable` with at most [`SHOWN_BYTES`] of its text and why. Pure, so
/// it is fuzzed (`fuzz/fuzz_targets/lock_file.rs`).
pub fn parse(raw: &[u8], size: u64) -> LockState {
    let shown = || String::from_utf8_lossy(&raw[..raw.len().min(SHOWN_BYTES)]).into_owned();
    if raw.len() as u64 > MAX_LOCK_BYTES || size > MAX_LOCK_BYTES {
        let size = size.max(raw.len() as u64);
        return LockState::Unreadable {
            raw: shown(),
            problem: format!(
                "the lock file is {size} bytes, far more than a lock; only its first {SHOWN_BYTES} bytes are shown ({size_left} left out)",
                size_left = size.saturating_sub(SHOWN_BYTES as u64)
            ),
        };
    }
    match serde_json::from_slice::<Lock>(raw) {
        Ok(lock) if lock.version == LOCK_VERSION => LockState::Held(lock),
        Ok(lock) => LockState::Unreadable {
            raw: shown(),
            problem: format!("lock version {} is not {LOCK_VERSION}", lock.version),
        },
        Err(e) => LockState::Unreadable {
            raw: shown(),
            problem: e.to_string(),
        },
    }
}

pub struct LockFile {
    dir: PathBuf,
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl LockFile {
    pub fn new(config_dir: &Path) -> LockFile {
        LockFile {
            dir: config_dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Reads `mig.lock`. A file that is not a lock this console can read
    /// (bad JSON, too big, a symlink, a directory, no permission) is
    /// `Unreadable` with what was read of it and why: never deleted, never
    /// followed, never read past [`MAX_LOCK_BYTES`].
    pub fn read(&self) -> LockState {
        let path = self.path();
        let unreadable = |problem: String| LockState::Unreadable {
            raw: String::new(),
            problem: format!("{problem} ({})", path.display()),
        };
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LockState::Free,
            Err(e) => return unreadable(format!("the lock file cannot be read: {e}")),
            Ok(m) if m.file_type().is_symlink() => {
                return unreadable(
                    "the lock file is a symbolic link, which the console never follows".into(),
                );
            }
            Ok(m) if !m.is_file() => {
                return unreadable("the lock file is not a regular file".into());
            }
            Ok(_) => {}
        }
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LockState::Free,
            Err(e) => return unreadable(format!("the lock file cannot be read: {e}")),
        };
        let mut raw = Vec::new();
        if let Err(e) = (&mut file).take(MAX_LOCK_BYTES + 1).read_to_end(&mut raw) {
            return unreadable(format!("the lock file cannot be read: {e}"));
        }
        let size = file.metadata().map_or(raw.len() as u64, |m| m.len());
        parse(&raw, size)
    }

    /// Takes the lock, or says who holds it. Exactly one of any number of
    /// concurrent callers (threads or processes) succeeds.
    pub fn acquire(&self, lock: &Lock) -> Result<(), LockError> {
        let io = |path: PathBuf| move |source| LockError::Io { path, source };
        let tmp = self.dir.join(format!(
            ".{LOCK_FILE}.{}.{}.tmp",
            std::process::id(),
            lock.op_id
        ));
        let body = serde_json::to_vec_pretty(lock).map_err(|e| LockError::Io {
            path: tmp.clone(),
            source: std::io::Error::other(e),
        })?;
        {
            // Readable by the console's user only, like every secret of the config directory.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(tmp.clone()))?;
            f.write_all(&body).map_err(io(tmp.clone()))?;
            f.sync_all().map_err(io(tmp.clone()))?;
        }
        // link() fails if mig.lock exists: the exclusive step. The lock is
        // complete before it has its name.
        let linked = std::fs::hard_link(&tmp, self.path());
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => fsync_dir(&self.dir).map_err(io(self.dir.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(LockError::Held(Box::new(self.read())))
            }
            Err(e) => Err(LockError::Io {
                path: self.path(),
                source: e,
            }),
        }
    }

    /// Moves the lock to `locks/<kind>-<op_id>.json` (kind: `done`,
    /// `overridden`). `expected_op` guards against archiving someone else's
    /// lock; `None` archives whatever is there (an unreadable lock's override).
    pub fn archive(
        &self,
        kind: &str,
        expected_op: Option<&str>,
        label: &str,
    ) -> Result<PathBuf, LockError> {
        if let Some(wanted) = expected_op {
            match self.read() {
                LockState::Held(l) if l.op_id == wanted => {}
                LockState::Held(l) => {
                    return Err(LockError::NotOurs {
                        held: l.op_id,
                        wanted: wanted.to_owned(),
                    });
                }
                other => return Err(LockError::Held(Box::new(other))),
            }
        }
        let archive = self.dir.join(ARCHIVE_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&archive)
            .map_err(|source| LockError::Io {
                path: archive.clone(),
                source,
            })?;
        let mut dest = archive.join(format!("{kind}-{label}.json"));
        let mut n = 1;
        while dest.exists() {
            n += 1;
            dest = archive.join(format!("{kind}-{label}-{n}.json"));
        }
        std::fs::rename(self.path(), &dest).map_err(|source| LockError::Io {
            path: self.path(),
            source,
        })?;
        fsync_dir(&archive).map_err(|source| LockError::Io {
            path: archive.clone(),
            source,
        })?;
        fsync_dir(&self.dir).map_err(|source| LockError::Io {
            path: self.dir.clone(),
            source,
        })?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(op: &str) -> Lock {
        Lock {
            version: LOCK_VERSION,
            op_id: op.into(),
            action: Action::Migrate,
            source_grid: "east".parse().unwrap(),
            source_app_name: "shop".parse().unwrap(),
            target_grid: "west".parse().unwrap(),
            target_app_name: "shop".parse().unwrap(),
            created_at: "2026-11-21T10:00:00Z".parse().unwrap(),
            created_by: "ana".into(),
            console: ConsoleId::this_process(),
            update_target: false,
            keep_source_hours: None,
            rollback_of: None,
            warm: None,
            stop_timeout_secs: None,
        }
    }

    #[test]
    fn of_many_concurrent_takers_exactly_one_wins_and_the_rest_learn_who() {
        let dir = tempfile::tempdir().unwrap();
        let winners: Vec<Result<(), String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50)
                .map(|i| {
                    let file = LockFile::new(dir.path());
                    s.spawn(move || {
                        file.acquire(&lock(&format!("op-{i}")))
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|r| r.is_ok()).count(), 1);
        let LockState::Held(held) = LockFile::new(dir.path()).read() else {
            panic!("the lock should be held")
        };
        for r in winners.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                r.starts_with(&format!(
                    "locked by operation {} (migrate of east/shop to west/shop, started by ana",
                    held.op_id
                )),
                "{r}"
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("mig.lock")],
            "no temporary files are left"
        );
    }

    #[test]
    fn archiving_moves_the_lock_and_frees_the_console_but_only_for_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let file = LockFile::new(dir.path());
        file.acquire(&lock("op-1")).unwrap();
        assert!(matches!(
            file.archive("done", Some("op-2"), "op-2"),
            Err(LockError::NotOurs { .. })
        ));
        let dest = file.archive("done", Some("op-1"), "op-1").unwrap();
        assert_eq!(dest, dir.path().join("locks/done-op-1.json"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("locks"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "the archive is the owner's only");
        assert_eq!(file.read(), LockState::Free);
        let archived: Lock = serde_json::from_slice(&std::fs::read(dest).unwrap()).unwrap();
        assert_eq!(archived.op_id, "op-1");
        file.acquire(&lock("op-2")).unwrap();
    }

    #[test]
    fn an_unreadable_lock_is_reported_raw_and_still_blocks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "{\"op_id\": \"x\", trunc").unwrap();
        let file = LockFile::new(dir.path());
        let LockState::Unreadable { raw, problem } = file.read() else {
            panic!("unreadable expected")
        };
        assert_eq!(raw, "{\"op_id\": \"x\", trunc");
        assert!(!problem.is_empty());
        let err = file.acquire(&lock("op-1")).unwrap_err().to_string();
        assert!(
            err.starts_with("locked by an unreadable lock file"),
            "{err}"
        );
        assert!(
            dir.path().join(LOCK_FILE).exists(),
            "never deleted silently"
        );
        let dest = file.archive("overridden", None, "unreadable").unwrap();
        assert!(dest.ends_with("locks/overridden-unreadable.json"));
    }
}
