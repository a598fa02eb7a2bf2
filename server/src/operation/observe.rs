//! What the controllers say about an operation's three apps (source,
//! target, helper) and whether the copy is verified.

use super::{Engine, EngineError, helper_name, not_found, store};
use crate::lock::Lock;
use crate::reconcile::{Checksums, HelperFailure, Observed, Seen};
use app::model::Action;
use grid::dialect::{AppInfo, AppState, VolRef};
use grid::{AppName, Connection};
use operation_model::{BlockDigest, Report};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The most of a failed helper's last log line that goes into a reason.
const LAST_LINE_CHARS: usize = 300;

impl Engine {
    /// The states of the source app, the target app and the helper.
    pub(super) async fn states(&self, lock: &Lock) -> (Seen, Seen, Seen) {
        let (src, dst) = tokio::join!(
            self.connection(&lock.source_grid),
            self.connection(&lock.target_grid)
        );
        let helper = async {
            match helper_name(&lock.target_app_name) {
                Ok(h) => seen(&dst, &h).await,
                Err(e) => Seen::Unknown(e.to_string()),
            }
        };
        tokio::join!(
            seen(&src, &lock.source_app_name),
            seen(&dst, &lock.target_app_name),
            helper
        )
    }

    pub(super) async fn observe(&self, lock: &Lock) -> Observed {
        let (source, target, helper) = self.states(lock).await;
        // While the helper works the decision is to wait, whatever the
        // volumes hold: reading both of them then would only slow the copy.
        let helper_works = matches!(
            helper,
            Seen::State(AppState::Starting | AppState::Running | AppState::Stopping)
        );
        let checksums = if matches!(source, Seen::State(_))
            && matches!(target, Seen::State(_))
            && !helper_works
        {
            self.compare(lock).await
        } else {
            Checksums::Unknown
        };
        let helper_failure = if helper == Seen::State(AppState::Failed) {
            self.helper_failure(lock).await
        } else {
            None
        };
        Observed {
            source,
            target,
            helper,
            checksums,
            helper_failure,
        }
    }

    /// Why a failed helper failed: its last `failed` report, in its own
    /// words, else the last line of its log (the grid's account of a
    /// helper killed with it); `None` when the log cannot be read or is empty.
    async fn helper_failure(&self, lock: &Lock) -> Option<HelperFailure> {
        let dst = self.connection(&lock.target_grid).await.ok()?;
        let helper = helper_name(&lock.target_app_name).ok()?;
        let lines = dst.app_log(&helper, None).await.ok()?;
        let reported = lines
            .iter()
            .rev()
            .find_map(|l| match Report::decode(&l.text) {
                Report::Failed { reason } => Some(reason),
                _ => None,
            });
        match reported {
            Some(reason) => Some(HelperFailure::Reported(reason)),
            None => lines.last().map(|l| HelperFailure::Unreported {
                last_line: l.text.chars().take(LAST_LINE_CHARS).collect(),
            }),
        }
    }

    /// What the helper verified, volume by volume (its `verified`
    /// reports): from its log, or, once it is gone, from the store.
    async fn verified(&self, lock: &Lock) -> BTreeMap<String, BlockDigest> {
        let mut found = BTreeMap::new();
        if let (Ok(dst), Ok(helper)) = (
            self.connection(&lock.target_grid).await,
            helper_name(&lock.target_app_name),
        ) && let Ok(lines) = dst.app_log(&helper, None).await
        {
            for l in &lines {
                if let Report::Verified { volume, digest } = Report::decode(&l.text) {
                    found.insert(volume, digest);
                }
            }
        }
        if found.is_empty() {
            found = store::verified(&self.pool, &lock.op_id)
                .await
                .unwrap_or_default();
        }
        found
    }

    /// Whether the copy is verified. The helper compared the stopped
    /// source with the target before either ran again; the side that
    /// stays stopped (the source after a migrate, the target after a
    /// snapshot) must still hold what it verified. The other side runs,
    /// and its app may write. Without reports (an older helper), both
    /// sides' whole-volume checksums.
    async fn compare(&self, lock: &Lock) -> Checksums {
        let (Ok(src), Ok(dst)) = (
            self.connection(&lock.source_grid).await,
            self.connection(&lock.target_grid).await,
        ) else {
            return Checksums::Unknown;
        };
        let (Ok(s), Ok(t)) = (
            src.app_info(&lock.source_app_name).await,
            dst.app_info(&lock.target_app_name).await,
        ) else {
            return Checksums::Unknown;
        };
        if s.volumes != t.volumes {
            return Checksums::Mismatch("(the volume lists differ)".into());
        }
        let reports = self.verified(lock).await;
        if reports.is_empty() {
            return both_sides(&src, &dst, (&s, &t)).await;
        }
        let (stopped, app) = match lock.action {
            Action::Migrate | Action::Rollback => (&src, &s),
            Action::Snapshot => (&dst, &t),
        };
        for v in &app.volumes {
            let Some(expected) = reports.get(v.name.as_str()) else {
                return Checksums::Mismatch(format!("{} (the helper did not verify it)", v.name));
            };
            let vol = VolRef::new(app.name.clone(), v.name.clone());
            match digest_now(stopped, &vol, expected).await {
                Some(now) if &now == expected => {}
                Some(_) => return Checksums::Mismatch(v.name.to_string()),
                None => return Checksums::Unknown,
            }
        }
        Checksums::Match
    }
}

/// The volume's digest now, made as `like` was (its algorithm and block size).
pub(super) async fn digest_now(
    c: &Connection,
    vol: &VolRef,
    like: &BlockDigest,
) -> Option<BlockDigest> {
    let h = c
        .vol_hash_with(vol, like.block_size, 0, None, like.algorithm)
        .await
        .ok()?;
    Some(helper::copy::blocks_digest(&h))
}

/// Both sides' whole-volume checksums, equal volume by volume.
async fn both_sides(src: &Connection, dst: &Connection, (s, t): (&AppInfo, &AppInfo)) -> Checksums {
    for v in &s.volumes {
        let (sv, tv) = (
            VolRef::new(s.name.clone(), v.name.clone()),
            VolRef::new(t.name.clone(), v.name.clone()),
        );
        let (a, b) = tokio::join!(src.vol_checksum(&sv), dst.vol_checksum(&tv));
        match (a, b) {
            (Ok(a), Ok(b)) if a.digest == b.digest => {}
            (Ok(_), Ok(_)) => return Checksums::Mismatch(v.name.to_string()),
            _ => return Checksums::Unknown,
        }
    }
    Checksums::Match
}

async fn seen(conn: &Result<Arc<Connection>, EngineError>, app: &AppName) -> Seen {
    match conn {
        Err(e) => Seen::Unknown(e.to_string()),
        Ok(c) => match c.app_info(app).await {
            Ok(info) => Seen::State(info.state),
            Err(e) if not_found(&e) => Seen::Absent,
            Err(e) => Seen::Unknown(e.to_string()),
        },
    }
}
