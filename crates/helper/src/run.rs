//! The helper's procedure: stop, create, copy, verify, start.

use crate::env::Job;
use crate::plan::{self, Range};
use grid::dialect::{AppState, Descriptor, VolRef, VolumeSpec};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{ClientConfig, Connection, Endpoint, keys};
use operation_model::{Action, Phase, Progress, Report};
use std::time::{Duration, Instant};

/// Longest single `vol read`/`vol write` pair, so progress is reported often.
const MAX_RANGE: u64 = 64 << 20;

/// Writes one report line to the log (stdout, which the grid keeps).
pub fn emit(report: Report) {
    println!("{}", report.encode());
}

/// A line for people.
pub fn say(text: impl Into<String>) {
    emit(Report::Log { text: text.into() });
}

/// The helper enters `phase`; `text` says what it does.
fn enter(phase: Phase, text: impl Into<String>) {
    emit(Report::Phase {
        phase,
        text: text.into(),
    });
}

struct Grids {
    source: Connection,
    target: Connection,
}

/// How to reach the grids: the inventory and the trust key of the grid.
struct Reach {
    inventory: Inventory,
    config: ClientConfig,
}

impl Reach {
    fn load(job: &Job) -> anyhow::Result<Reach> {
        Ok(Reach {
            inventory: Inventory::load(&job.grids_file)?,
            config: ClientConfig::new(
                keys::load(&job.key_file)?,
                KnownHosts::load(&job.known_hosts)?,
            ),
        })
    }

    async fn open(&self, grid: &grid::GridName) -> anyhow::Result<Connection> {
        let endpoint = self
            .inventory
            .get(grid)
            .map(Endpoint::from)
            .ok_or_else(|| anyhow::anyhow!("grid {grid} is not in the helper's grid inventory"))?;
        Ok(Connection::open(&endpoint, &self.config).await?)
    }
}

/// Restarts the source after a failure, on a fresh connection when the old
/// one dropped; a few tries, since the failure may have been the network.
async fn restart_source(
    job: &Job,
    reach: &Reach,
    current: &Connection,
    down_since: Option<Instant>,
) {
    for attempt in 1..=3u64 {
        let fresh;
        let conn = if current.is_closed() {
            match reach.open(&job.source_grid).await {
                Ok(c) => {
                    fresh = c;
                    &fresh
                }
                Err(e) => {
                    say(format!(
                        "could not reach the source grid to restart the app (try {attempt}): {e:#}"
                    ));
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                    continue;
                }
            }
        } else {
            current
        };
        match conn.app_start(&job.source_app).await {
            Ok(_) => {
                say(format!(
                    "restarted the source app {}/{} after the failure",
                    job.source_grid, job.source_app
                ));
                report_downtime(down_since);
                return;
            }
            Err(e) => say(format!(
                "could not restart the source app (try {attempt}): {e}"
            )),
        }
        tokio::time::sleep(Duration::from_secs(attempt)).await;
    }
}

/// Runs the job; on failure after the source was stopped, tries to restart
/// it so the application comes back, and reports the failure.
pub async fn run(job: &Job) -> anyhow::Result<()> {
    say(format!(
        "helper for operation {}: {} {}/{} to {}/{}",
        job.op_id, job.action, job.source_grid, job.source_app, job.target_grid, job.target_app
    ));
    let (reach, grids) = match connect(job).await {
        Ok(both) => both,
        Err(e) => {
            emit(Report::Failed {
                reason: format!("{e:#}"),
            });
            return Err(e);
        }
    };
    let mut source_stopped = false;
    let mut down_since = None;
    let outcome = work(job, &grids, &mut source_stopped, &mut down_since).await;
    if let Err(e) = &outcome {
        if source_stopped {
            say(format!("failed: {e:#}; restarting the source app"));
            restart_source(job, &reach, &grids.source, down_since).await;
        }
        emit(Report::Failed {
            reason: format!("{e:#}"),
        });
    }
    outcome
}

async fn connect(job: &Job) -> anyhow::Result<(Reach, Grids)> {
    let reach = Reach::load(job)?;
    let grids = Grids {
        source: reach.open(&job.source_grid).await?,
        target: reach.open(&job.target_grid).await?,
    };
    Ok((reach, grids))
}

/// The app runs again: how long it was down, when this helper stopped it
/// (a helper restarted mid-copy did not see the stop, and says nothing).
fn report_downtime(down_since: Option<Instant>) {
    if let Some(since) = down_since {
        let ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        emit(Report::Downtime { ms });
    }
}

async fn work(
    job: &Job,
    g: &Grids,
    source_stopped: &mut bool,
    down_since: &mut Option<Instant>,
) -> anyhow::Result<()> {
    let source = g.source.app_info(&job.source_app).await?;
    let descriptor = Descriptor::from(&source);
    let total: u64 = source.volumes.iter().map(|v| v.size).sum();
    say(format!(
        "source {} has {} volume(s), {} bytes",
        source.name,
        source.volumes.len(),
        total
    ));

    // A target left by an earlier attempt is resumed when it has the same shape.
    let existing = match g.target.app_info(&job.target_app).await {
        Ok(info) => Some(info),
        Err(e)
            if e.refusal()
                .is_some_and(|r| r.code == grid::dialect::ErrorCode::NotFound) =>
        {
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(t) = &existing {
        if t.volumes != source.volumes {
            anyhow::bail!(
                "target app {} exists with other volumes; destroy it or pick another target name",
                t.name
            );
        }
        if t.state != AppState::Stopped && t.state != AppState::Failed {
            anyhow::bail!(
                "target app {} is {}; it must be stopped to receive a copy",
                t.name,
                t.state
            );
        }
        say(format!("resuming into the existing target {}", t.name));
    }

    if matches!(
        source.state,
        AppState::Running | AppState::Starting | AppState::Stopping
    ) {
        enter(
            Phase::StoppingSource,
            format!(
                "stopping the source app {} (timeout {} s)",
                source.name, job.stop_timeout_secs
            ),
        );
        let t = Instant::now();
        if source.state == AppState::Running {
            *down_since = Some(t);
        }
        g.source
            .app_stop(&job.source_app, Some(job.stop_timeout_secs))
            .await?;
        say(format!(
            "source stopped in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    *source_stopped = true;

    if existing.is_none() {
        g.target.app_create(&job.target_app, &descriptor).await?;
        enter(
            Phase::Copying,
            format!(
                "created the target app {} on {}",
                job.target_app, job.target_grid
            ),
        );
    } else {
        enter(
            Phase::Copying,
            format!("copying into the existing target {}", job.target_app),
        );
    }

    // A dialect 2 target answers each write with the digests of what it
    // stored: verification then needs no second read of either volume.
    let hashed_writes = g.target.grid_info().await.is_ok_and(|i| i.dialect >= 2);
    let started = Instant::now();
    let mut done = 0u64;
    let mut copied = 0u64;
    let mut copies = vec![];
    for v in &source.volumes {
        let c = copy_volume(
            job,
            g,
            v,
            hashed_writes,
            (total, &mut done, &mut copied),
            started,
        )
        .await?;
        copies.push(c);
    }
    say(format!(
        "copied {copied} bytes in {:.1} s; {} bytes were already in place",
        started.elapsed().as_secs_f64(),
        total - copied
    ));

    enter(
        Phase::Verifying,
        format!(
            "comparing the checksums of {} volume(s)",
            source.volumes.len()
        ),
    );
    for (v, c) in source.volumes.iter().zip(&copies) {
        verify_volume(job, g, v, c).await?;
    }

    match job.action {
        Action::Migrate => {
            enter(
                Phase::StartingTarget,
                format!("starting the target app {}", job.target_app),
            );
            g.target.app_start(&job.target_app).await?;
            say("target app is running; migration copy complete");
            report_downtime(*down_since);
        }
        Action::Snapshot => {
            enter(
                Phase::RestartingSource,
                format!("restarting the source app {}", job.source_app),
            );
            g.source.app_start(&job.source_app).await?;
            *source_stopped = false;
            say("source app is running again; snapshot complete");
            report_downtime(*down_since);
        }
    }
    Ok(())
}

/// The longest range to move at once: under a rate limit, about a quarter
/// second's worth, so the pace (and the progress lines) stay even.
fn max_range(job: &Job) -> u64 {
    if job.rate_limit == 0 {
        return MAX_RANGE;
    }
    let quarter = job.rate_limit / 4 / job.block_size * job.block_size;
    quarter.clamp(job.block_size, MAX_RANGE.max(job.block_size))
}

/// Sleeps until `copied` bytes since `started` are within the rate limit.
async fn throttle(job: &Job, copied: u64, started: Instant) {
    if job.rate_limit == 0 {
        return;
    }
    let due = Duration::from_secs_f64(copied as f64 / job.rate_limit as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

/// What the copy of one volume established: the source's block digests
/// and, from a dialect 2 target, the digests of every block as it is now
/// stored there (from `vol hash` for blocks left alone, from the write
/// receipts for blocks copied).
struct VolumeCopy {
    source: Vec<Option<String>>,
    stored: Option<Vec<Option<String>>>,
}

async fn copy_volume(
    job: &Job,
    g: &Grids,
    v: &VolumeSpec,
    hashed_writes: bool,
    (total, done, copied): (u64, &mut u64, &mut u64),
    started: Instant,
) -> anyhow::Result<VolumeCopy> {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    let src = VolRef::new(job.source_app.clone(), v.name.clone());
    let dst = VolRef::new(job.target_app.clone(), v.name.clone());
    let (sh, th) = tokio::try_join!(
        g.source.vol_hash(&src, job.block_size, 0, None),
        g.target.vol_hash(&dst, job.block_size, 0, None)
    )?;
    let p = plan::plan(
        v.size,
        job.block_size,
        &sh.hashes,
        &th.hashes,
        max_range(job),
    );
    let to_copy = v.size - p.skipped;
    say(format!(
        "volume {}: {} bytes, {} to copy in {} range(s), {} already in place",
        v.name,
        v.size,
        to_copy,
        p.copy.len(),
        p.skipped
    ));
    let mut volume_done = p.skipped;
    *done += p.skipped;
    let progress = |volume_done: u64, done: u64, copied: u64| Progress {
        volume: v.name.to_string(),
        volume_done,
        volume_total: v.size,
        done,
        total,
        copied,
        rate_bytes_per_sec: (copied as f64 / started.elapsed().as_secs_f64().max(1e-3)) as u64,
    };
    emit(Report::Progress(progress(volume_done, *done, *copied)));
    let mut stored = hashed_writes.then(|| th.hashes.clone());
    // Several ranges in flight, each on its own pair of channels; the rate
    // limit holds for all of them: a range starts only once the bytes
    // started so far, its own included, are within the limit, so the bytes
    // finished never run ahead of it. Progress counts finished ranges, so
    // it never goes backwards.
    let started_bytes = AtomicU64::new(*copied);
    let streams = usize::try_from(job.streams).unwrap_or(1).max(1);
    let block_size = job.block_size;
    let mut moves = futures_util::stream::iter(p.copy.iter().copied())
        .map(|range| {
            let (src, dst, started_bytes) = (&src, &dst, &started_bytes);
            async move {
                let before = started_bytes.fetch_add(range.length, Ordering::Relaxed);
                throttle(job, before + range.length, started).await;
                let receipt =
                    copy_range(g, src, dst, range, hashed_writes.then_some(block_size)).await?;
                anyhow::Ok((range, receipt))
            }
        })
        .buffer_unordered(streams);
    let mut last = Instant::now();
    while let Some(moved) = moves.next().await {
        let (range, receipt) = moved?;
        if let (Some(stored), Some(hashes)) = (stored.as_mut(), receipt) {
            let first = usize::try_from(range.offset / block_size).unwrap_or(usize::MAX);
            for (i, h) in hashes.into_iter().enumerate() {
                if let Some(slot) = stored.get_mut(first + i) {
                    *slot = h;
                }
            }
        }
        volume_done += range.length;
        *done += range.length;
        *copied += range.length;
        if last.elapsed() >= Duration::from_millis(500) {
            emit(Report::Progress(progress(volume_done, *done, *copied)));
            last = Instant::now();
        }
    }
    drop(moves);
    emit(Report::Progress(progress(volume_done, *done, *copied)));
    // Into an existing target (a retry, a repeated snapshot): say how much changed.
    if th.hashes.iter().any(Option::is_some) && v.size > 0 {
        say(format!(
            "volume {}: {:.1} % of blocks changed; {} MiB copied",
            v.name,
            to_copy as f64 * 100.0 / v.size as f64,
            to_copy.div_ceil(1 << 20)
        ));
    }
    Ok(VolumeCopy {
        source: sh.hashes,
        stored,
    })
}

/// The target holds what the source holds: every block digest the target
/// gave for what it stored equals the source's (a dialect 1 target: the
/// two whole-volume checksums, which reads both volumes again).
async fn verify_volume(job: &Job, g: &Grids, v: &VolumeSpec, c: &VolumeCopy) -> anyhow::Result<()> {
    if let Some(stored) = &c.stored {
        let differs = c
            .source
            .iter()
            .zip(stored)
            .position(|(s, t)| s != t)
            .or((c.source.len() != stored.len()).then_some(c.source.len().min(stored.len())));
        if let Some(i) = differs {
            let show = |h: Option<&Option<String>>| match h {
                Some(Some(h)) => h.clone(),
                Some(None) => "zero".to_owned(),
                None => "missing".to_owned(),
            };
            anyhow::bail!(
                "checksum mismatch on volume {}: block {i} (offset {}) is {} on the source and {} as the target stored it",
                v.name,
                i as u64 * job.block_size,
                show(c.source.get(i)),
                show(stored.get(i))
            );
        }
        let mut rolled = blake3::Hasher::new();
        for h in &c.source {
            rolled.update(h.as_deref().unwrap_or("zero").as_bytes());
            rolled.update(b"\n");
        }
        say(format!(
            "verified volume {}: all {} block digests of what the target stored equal the source's; blake3-blocks:{}",
            v.name,
            c.source.len(),
            rolled.finalize().to_hex()
        ));
        return Ok(());
    }
    let s = g
        .source
        .vol_checksum(&VolRef::new(job.source_app.clone(), v.name.clone()))
        .await?;
    let t = g
        .target
        .vol_checksum(&VolRef::new(job.target_app.clone(), v.name.clone()))
        .await?;
    if s.digest != t.digest {
        anyhow::bail!(
            "checksum mismatch on volume {}: source {} target {}",
            v.name,
            s.digest,
            t.digest
        );
    }
    say(format!(
        "verified volume {}: {}:{}",
        v.name, s.algorithm, s.digest
    ));
    Ok(())
}

/// Moves one range from the source volume to the target volume; with
/// `hash_blocks`, returns the digests the target gave for what it stored.
async fn copy_range(
    g: &Grids,
    src: &VolRef,
    dst: &VolRef,
    range: Range,
    hash_blocks: Option<u64>,
) -> anyhow::Result<Option<Vec<Option<String>>>> {
    let Range { offset, length } = range;
    let (mut writer, mut reader) = tokio::io::duplex(1 << 20);
    let read = async {
        let n = g
            .source
            .vol_read(src, offset, Some(length), &mut writer)
            .await;
        drop(writer);
        n
    };
    let write = async {
        match hash_blocks {
            Some(b) => g
                .target
                .vol_write_hashed(dst, offset, b, &mut reader)
                .await
                .map(|r| (r.written, Some(r.hashes))),
            None => g
                .target
                .vol_write(dst, offset, &mut reader)
                .await
                .map(|n| (n, None)),
        }
    };
    let (r, w) = tokio::join!(read, write);
    let (r, (w, hashes)) = (r?, w?);
    if r != length || w != length {
        anyhow::bail!(
            "volume {}: range {offset}+{length} moved {r} bytes out and {w} in",
            dst.vol
        );
    }
    Ok(hashes)
}
