//! Looking without touching: the pre-flight preview of an operation and the
//! evidence behind a lock. Both ask the controllers live; neither changes
//! anything on a grid or on disk.

use super::start::Preflight;
use super::{Engine, EngineError, HELPER_TEMPLATE, StartRequest, store};
use crate::clock::Timestamp;
use crate::lock::{Lock, LockState};
use crate::reconcile::Seen;
use app::model::{
    Action, LockDetail, PlanStep, PlanView, VolumeView, human_bytes, percent_of, progress_text,
};
use grid::dialect::{Command, Compression, HashAlgorithm, VolRef};
use grid::{AppName, Connection, TemplateName};
use helper::copy::Transport;
use helper::env::CompressChoice;
use std::sync::Arc;

/// Without a finished operation to learn from, the preview assumes this rate.
pub const ASSUMED_RATE: u64 = 50 << 20;
/// Stopping the source, creating the target, starting it, verifying: what
/// an operation takes besides the copy, roughly.
const FIXED_OVERHEAD_SECS: u64 = 15;
/// A running operation without a new event for this long looks stuck.
pub const QUIET_LIMIT_SECS: u64 = 300;

/// How long the preview may spend counting the bytes that will move.
const COUNT_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

fn seconds_since(rfc3339: &str) -> Option<u64> {
    rfc3339.parse::<Timestamp>().ok().map(Timestamp::age_secs)
}

impl Engine {
    /// What starting `req` would do, in order, with volumes, bytes and an
    /// estimate, after the same pre-flight `start` runs.
    pub async fn plan(&self, req: &StartRequest) -> Result<PlanView, EngineError> {
        let p: Preflight = self.preflight(req).await?;
        let bytes_total: u64 = p.source.volumes.iter().map(|v| v.size).sum();
        let (measured, basis) = match store::last_rate(&self.pool).await? {
            Some((rate, op)) if rate > 0 => (rate, format!("the rate {op} copied at")),
            _ => (
                ASSUMED_RATE,
                "an assumed rate: no operation has finished on this console yet".to_owned(),
            ),
        };
        let (rate, basis) = match self.settings.copy_rate_limit_mib {
            Some(mib) if mib << 20 < measured => (
                mib << 20,
                format!("the configured limit copy_rate_limit_mib = {mib}"),
            ),
            _ => (measured, basis),
        };
        let bytes_to_move = self.bytes_to_move(&p).await;
        let estimate_secs =
            bytes_to_move.unwrap_or(bytes_total) / rate.max(1) + FIXED_OVERHEAD_SECS;
        Ok(PlanView {
            action: req.action,
            source_grid: p.source_grid.to_string(),
            source_app: p.source_app.to_string(),
            target_grid: p.target_grid.to_string(),
            target_app: p.target_app.to_string(),
            helper: p.helper.to_string(),
            volumes: p
                .source
                .volumes
                .iter()
                .map(|v| VolumeView {
                    name: v.name.to_string(),
                    size: v.size,
                })
                .collect(),
            bytes_total,
            bytes_to_move,
            target_free_bytes: p.target_free_bytes,
            steps: steps(req.action, &p, self.settings.copy_compression),
            copy_mode: match (&p.warm, &p.cold_because) {
                (None, _) => None,
                (Some(w), None) => Some(format!(
                    "warm: {} keeps running while passes copy what changed; it stops only for the final pass, which {}",
                    p.source_app,
                    match (w.cutover, w.cutover_at) {
                        (app::model::Cutover::Scheduled, Some(at)) => format!("starts at {at}"),
                        (app::model::Cutover::Manual, _) =>
                            "starts when an operator presses \"Cut over now\"".to_owned(),
                        _ => "starts once a pass finds little changed".to_owned(),
                    }
                )),
                (Some(_), Some(why)) => Some(format!("cold after all: {why}")),
            },
            estimate_secs,
            rate_bytes_per_sec: rate,
            rate_basis: basis,
            stop_timeout_secs: helper::run::stops_source(p.source.state).then(|| p.stop_timeout()),
            changed_since: None,
        })
    }

    /// The bytes the helper will move, as it will find them: blocks of the
    /// source that hold data and differ from the target's (a new target
    /// holds zeros). Hashed now with XXH3 (dialect 3; holes are not read);
    /// `None` when a grid cannot, or cannot within [`COUNT_LIMIT`] (a
    /// preview must not wait on reading a huge volume).
    async fn bytes_to_move(&self, p: &Preflight) -> Option<u64> {
        tokio::time::timeout(COUNT_LIMIT, self.count_bytes_to_move(p))
            .await
            .ok()
            .flatten()
    }

    async fn count_bytes_to_move(&self, p: &Preflight) -> Option<u64> {
        let (src, dst) = tokio::try_join!(
            self.connection(&p.source_grid),
            self.connection(&p.target_grid)
        )
        .ok()?;
        let mut total = 0;
        for v in &p.source.volumes {
            // As the helper compares it.
            let block = helper::plan::block_size(v.size, helper::env::DEFAULT_BLOCK_SIZE);
            let hash = |c: Arc<Connection>, app: &AppName| {
                let vol = VolRef::new(app.clone(), v.name.clone());
                async move {
                    c.vol_hash_with(&vol, block, 0, None, HashAlgorithm::Xxh3)
                        .await
                        .map(|h| h.hashes)
                }
            };
            let (s, t) = tokio::join!(hash(src.clone(), &p.source_app), async {
                if p.update_target {
                    hash(dst.clone(), &p.target_app).await.map(Some)
                } else {
                    Ok(None)
                }
            });
            let (s, t) = (s.ok()?, t.ok()?);
            for (i, h) in s.iter().enumerate() {
                let there = t.as_ref().and_then(|t| t.get(i)).cloned().flatten();
                if *h != there {
                    let start = i as u64 * block;
                    total += block.min(v.size.saturating_sub(start));
                }
            }
        }
        Some(total)
    }

    /// The lock with its evidence: the file's fields, its age, the
    /// operation's last progress, and (when `live`) the three apps' states
    /// read from the controllers now. Without `live` nothing waits on SSH.
    pub async fn lock_detail(&self, live: bool) -> Result<Option<LockDetail>, EngineError> {
        let state = self.lock.read();
        let lock = match state {
            LockState::Free => return Ok(None),
            LockState::Unreadable { raw, problem } => {
                return Ok(Some(LockDetail {
                    op_id: None,
                    fields: vec![],
                    raw: Some(raw),
                    stale: Some(format!("the lock file cannot be read: {problem}")),
                    problem: Some(problem),
                    age_secs: None,
                    phase: None,
                    reason: None,
                    last_progress: None,
                    last_progress_at: None,
                    last_event_at: None,
                    last_event_age_secs: None,
                    source_state: "not checked".into(),
                    target_state: "not checked".into(),
                    helper_state: "not checked".into(),
                    driven: false,
                }));
            }
            LockState::Held(l) => l,
        };
        let op = store::get(&self.pool, &lock.op_id).await?;
        let last = store::last_event(&self.pool, &lock.op_id).await?;
        let progress = store::last_progress(&self.pool, &lock.op_id).await?;
        let (source, target, helper) = if live {
            self.states(&lock).await
        } else {
            let not_asked = || Seen::Unknown("not asked".into());
            (not_asked(), not_asked(), not_asked())
        };
        let driven = self.is_driving(&lock.op_id);
        let last_event_age_secs = last.as_ref().and_then(|e| seconds_since(&e.at));
        let stale = staleness(
            driven,
            op.as_ref().and_then(|o| o.reason.as_deref()),
            &helper,
            last_event_age_secs,
        );
        Ok(Some(LockDetail {
            op_id: Some(lock.op_id.clone()),
            fields: fields(&lock),
            raw: None,
            problem: None,
            age_secs: Some(lock.created_at.age_secs()),
            phase: op.as_ref().map(|o| o.phase),
            reason: op.as_ref().and_then(|o| o.reason.clone()),
            last_progress: progress
                .as_ref()
                .map(|(p, _)| progress_text(percent_of(p.done, p.total), p.done, p.total)),
            last_progress_at: progress.map(|(_, at)| at),
            last_event_at: last.map(|e| e.at),
            last_event_age_secs,
            source_state: source.to_string(),
            target_state: target.to_string(),
            helper_state: helper.to_string(),
            driven,
            stale,
        }))
    }
}

/// Why a held lock looks stale, or `None` while its operation moves.
fn staleness(
    driven: bool,
    reason: Option<&str>,
    helper: &Seen,
    quiet_secs: Option<u64>,
) -> Option<String> {
    if !driven {
        return Some(match reason {
            Some(r) => format!("no console is working on it; the last word was: {r}"),
            None => "no console is working on it (the console that took it is gone)".into(),
        });
    }
    // A console that drives it records a reason only while a grid cannot be asked.
    if let Some(r) = reason {
        return Some(format!(
            "the console asks the grids again (every {} s at most): {r}",
            super::drive::RETRY_MAX.as_secs()
        ));
    }
    if let Some(q) = quiet_secs.filter(|&q| q >= QUIET_LIMIT_SECS) {
        return Some(format!("no progress for {} minutes", q / 60));
    }
    match helper {
        Seen::Absent => Some("the helper is gone from the target grid".into()),
        _ => None,
    }
}

fn fields(l: &Lock) -> Vec<(String, String)> {
    [
        ("version", l.version.to_string()),
        ("op_id", l.op_id.clone()),
        ("action", l.action.to_string()),
        ("source_grid", l.source_grid.to_string()),
        ("source_app_name", l.source_app_name.to_string()),
        ("target_grid", l.target_grid.to_string()),
        ("target_app_name", l.target_app_name.to_string()),
        ("created_at", l.created_at.to_string()),
        ("created_by", l.created_by.clone()),
        (
            "console",
            format!("{} pid {}", l.console.host, l.console.pid),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The controller commands the operation sends, in order, and who sends them.
fn steps(action: Action, p: &Preflight, compress: CompressChoice) -> Vec<PlanStep> {
    let (sg, tg) = (p.source_grid.to_string(), p.target_grid.to_string());
    let step = |by: &str, grid: &str, c: Command, why: &str| PlanStep {
        by: by.into(),
        grid: grid.into(),
        command: c.to_line(),
        why: why.into(),
    };
    let app = |a: &AppName| a.clone();
    let mut out = vec![];
    if p.stale_helper {
        out.push(step(
            "console",
            &tg,
            Command::AppDestroy {
                app: app(&p.helper),
            },
            "remove the helper an aborted run left behind",
        ));
    }
    if let Ok(template) = TemplateName::new(HELPER_TEMPLATE) {
        out.push(step(
            "console",
            &tg,
            Command::AppProvision {
                template,
                app: app(&p.helper),
                properties: vec![],
            },
            "start the helper with the operation in its properties (MIG_*)",
        ));
    }
    let warm = p.warm.is_some() && p.cold_because.is_none();
    let stop = step(
        "helper",
        &sg,
        Command::AppStop {
            app: app(&p.source_app),
            timeout_secs: Some(p.stop_timeout()),
        },
        if warm {
            "after the passes: stop the source for the final pass, which copies only the blocks its writes changed since the last pass"
        } else {
            "stop the source: it stays down until the copy is verified"
        },
    );
    // A source that is not running is not stopped (the helper's rule).
    let stops = helper::run::stops_source(p.source.state);
    if !warm && stops {
        out.push(stop.clone());
    }
    // An updated target exists: nothing is created.
    if !p.update_target {
        out.push(step(
            "helper",
            &tg,
            Command::AppCreate {
                app: app(&p.target_app),
            },
            "create the target with the source's descriptor",
        ));
    }
    // What the helper will do, decided as it decides it.
    let method = p.method();
    let compression = method.compress_rule(compress).describe();
    // A new target holds zeros: only the source is hashed (BLAKE3, which
    // also verifies). An updated one is hashed too, to find equal blocks.
    let detect = if p.update_target {
        method.detect()
    } else {
        HashAlgorithm::Blake3
    };
    let block_size = |v: &grid::dialect::VolumeSpec| {
        helper::plan::block_size(v.size, helper::env::DEFAULT_BLOCK_SIZE)
    };
    for v in &p.source.volumes {
        let src = VolRef::new(p.source_app.clone(), v.name.clone());
        let dst = VolRef::new(p.target_app.clone(), v.name.clone());
        let block_size = block_size(v);
        if p.update_target {
            for (by_grid, vol, whose) in [(&tg, &dst, "the target's"), (&sg, &src, "the source's")]
            {
                out.push(step(
                    "helper",
                    by_grid,
                    Command::VolHash {
                        vol: vol.clone(),
                        block_size,
                        offset: 0,
                        length: None,
                        algorithm: detect,
                    },
                    &format!(
                        "hash {whose} blocks with {detect} (both at once): only blocks that differ move{}",
                        if detect == HashAlgorithm::Blake3 {
                            ""
                        } else {
                            ", each then verified by BLAKE3"
                        }
                    ),
                ));
            }
        } else {
            out.push(step(
                "helper",
                &sg,
                Command::VolHash {
                    vol: src.clone(),
                    block_size,
                    offset: 0,
                    length: None,
                    algorithm: HashAlgorithm::Blake3,
                },
                "hash the source's blocks: all-zero blocks are skipped (the new target holds zeros), the rest verified by these digests",
            ));
        }
        if method.transport == Transport::Pull {
            out.push(step(
                "helper",
                &tg,
                Command::VolPull {
                    vol: dst.clone(),
                    from_grid: p.source_grid.clone(),
                    from: src.clone(),
                    offset: 0,
                    length: v.size,
                    hash_blocks: Some(block_size),
                    compress: Compression::None,
                },
                &format!(
                    "the target's controller reads {} from the source's in ranges, several at once (one encrypted hop; the helper relays if it cannot reach the source); compression {compression}; its answer, the digests of what it stored, must equal the source's",
                    human_bytes(v.size)
                ),
            ));
            continue;
        }
        out.push(step(
            "helper",
            &sg,
            Command::VolRead {
                vol: src.clone(),
                offset: 0,
                length: Some(v.size),
                compress: Compression::None,
            },
            &format!(
                "read {} in ranges, relayed through the helper; compression {compression}",
                human_bytes(v.size)
            ),
        ));
        // A dialect 2 target answers each write with the digests of what it
        // stored, which the helper checks; an older one is checked by
        // whole-volume checksums (both volumes read again).
        out.push(step(
            "helper",
            &tg,
            Command::VolWrite {
                vol: dst.clone(),
                offset: 0,
                hash_blocks: method.hashed_writes.then_some(block_size),
                compress: Compression::None,
            },
            if method.hashed_writes {
                "write each range to the target; its answer, the digests of what it stored, must equal the source's"
            } else {
                "write each range to the target"
            },
        ));
        if !method.hashed_writes {
            out.push(step(
                "helper",
                &format!("{sg} + {tg}"),
                Command::VolChecksum { vol: dst },
                "compare whole-volume checksums",
            ));
        }
    }
    if warm {
        // The steps above are pass 1, run while the source runs; later
        // passes repeat them for the blocks that changed.
        out.push(stop);
        for v in &p.source.volumes {
            out.push(step(
                "helper",
                &format!("{sg} + {tg}"),
                Command::VolHash {
                    vol: VolRef::new(p.source_app.clone(), v.name.clone()),
                    block_size: block_size(v),
                    offset: 0,
                    length: None,
                    algorithm: HashAlgorithm::Blake3,
                },
                "verify: every block of the stopped source and of the target, both grids at once",
            ));
        }
    }
    match action {
        Action::Migrate | Action::Rollback => {
            out.push(step(
                "helper",
                &tg,
                Command::AppStart {
                    app: app(&p.target_app),
                },
                "start the target",
            ));
            out.push(step(
                "console",
                &tg,
                Command::AppDestroy {
                    app: app(&p.helper),
                },
                "remove the helper once it has finished",
            ));
            match p.keep_source_hours {
                None => out.push(step(
                    "console",
                    &sg,
                    Command::AppDestroy {
                        app: app(&p.source_app),
                    },
                    "destroy the source, only after the target runs and every checksum matches",
                )),
                Some(hours) => out.push(PlanStep {
                    by: "console".into(),
                    grid: sg.clone(),
                    command: "(nothing: the source is kept)".into(),
                    why: format!(
                        "keep the source, stopped, for {hours} h once the target runs and every checksum matches: roll back to it, or release it (its deadline releases it then, its fingerprint checked first)"
                    ),
                }),
            }
        }
        Action::Snapshot => {
            out.push(step(
                "helper",
                &sg,
                Command::AppStart {
                    app: app(&p.source_app),
                },
                "restart the source; the copy stays stopped",
            ));
            out.push(step(
                "console",
                &tg,
                Command::AppDestroy {
                    app: app(&p.helper),
                },
                "remove the helper once it has finished",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid::dialect::AppState;

    #[test]
    fn a_lock_nobody_drives_is_stale_with_the_last_word() {
        let running = Seen::State(AppState::Running);
        assert_eq!(staleness(true, None, &running, Some(3)), None);
        let s = staleness(
            false,
            Some("cannot decide: west cannot be asked"),
            &running,
            None,
        );
        assert!(s.unwrap().contains("cannot decide: west cannot be asked"));
        assert!(
            staleness(false, None, &running, None)
                .unwrap()
                .contains("gone")
        );
        let asking = staleness(
            true,
            Some("cannot decide: west cannot be asked"),
            &Seen::Unknown("refused".into()),
            Some(2),
        )
        .unwrap();
        assert!(asking.contains("asks the grids again") && asking.contains("west cannot be asked"));
        assert_eq!(
            staleness(true, None, &running, Some(QUIET_LIMIT_SECS + 60)).as_deref(),
            Some("no progress for 6 minutes")
        );
        assert_eq!(
            staleness(true, None, &Seen::Absent, Some(1)).as_deref(),
            Some("the helper is gone from the target grid")
        );
    }

    #[test]
    fn ages_come_from_rfc3339_times() {
        let an_hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let age = seconds_since(&an_hour_ago).unwrap();
        assert!((3599..3700).contains(&age), "{age}");
        assert_eq!(seconds_since("yesterday"), None);
    }

    fn preflight(source_dialect: u32, target_dialect: u32, update_target: bool) -> Preflight {
        Preflight {
            source_grid: "east".parse().unwrap(),
            source_app: AppName::new("shop").unwrap(),
            target_grid: "west".parse().unwrap(),
            target_app: AppName::new("shop2").unwrap(),
            helper: AppName::new("MigHelper_shop2").unwrap(),
            source: grid::dialect::AppInfo {
                name: AppName::new("shop").unwrap(),
                state: AppState::Running,
                template: None,
                properties: Default::default(),
                volumes: vec![grid::dialect::VolumeSpec {
                    name: grid::VolumeName::new("data").unwrap(),
                    size: 8 << 20,
                }],
                machine: None,
            },
            target_free_bytes: 1 << 30,
            target_dialect,
            source_dialect,
            stale_helper: false,
            update_target,
            warm: None,
            cold_because: None,
            stop_timeout_secs: None,
            keep_source_hours: None,
        }
    }

    /// What the preview shows is what the helper's one decision says, for
    /// every pair of dialects, every compression setting, new and updated
    /// targets: XXH3 only when both grids speak dialect 3, a pull only
    /// when the target does, compression as the setting and dialects allow
    /// (the helper logs the same words in its "copy method" line).
    #[test]
    fn the_preview_shows_the_helpers_copy_method() {
        for (s, t, update, compress) in every_case() {
            let p = preflight(s, t, update);
            let lines: Vec<String> = steps(Action::Migrate, &p, compress)
                .into_iter()
                .map(|st| format!("{} {}", st.command, st.why))
                .collect();
            let all = lines.join("\n");
            let case = format!("source v{s}, target v{t}, update {update}, {compress:?}");
            let method =
                helper::copy::Method::decide(s, t, helper::env::TransferChoice::Auto, true);
            assert_eq!(
                all.contains("xxh3"),
                update && s >= 3 && t >= 3,
                "{case}: XXH3 needs both grids at dialect 3\n{all}"
            );
            assert_eq!(all.contains("vol pull"), t >= 3, "{case}\n{all}");
            assert_eq!(
                all.contains("vol checksum"),
                t < 2,
                "{case}: whole-volume checksums only for a dialect 1 target\n{all}"
            );
            let said = format!("compression {}", method.compress_rule(compress).describe());
            assert!(all.contains(&said), "{case}: {said}\n{all}");
            let zstd_promised = all.contains("compression zstd");
            assert_eq!(
                zstd_promised,
                s >= 3 && t >= 3 && compress != CompressChoice::Off,
                "{case}\n{all}"
            );
        }
    }

    fn every_case() -> Vec<(u32, u32, bool, CompressChoice)> {
        let mut out = vec![];
        for s in 1..=4 {
            for t in 1..=4 {
                for update in [false, true] {
                    for c in [
                        CompressChoice::Off,
                        CompressChoice::Zstd,
                        CompressChoice::Auto,
                    ] {
                        out.push((s, t, update, c));
                    }
                }
            }
        }
        out
    }
}
