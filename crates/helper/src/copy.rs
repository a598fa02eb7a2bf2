//! Moving one volume: which blocks differ, moving them (several ranges at
//! once, pulled by the target's controller or relayed through the helper,
//! zstd on the wire when it pays), and the evidence that the target holds
//! what the source holds.

use crate::env::{CompressChoice, Job, TransferChoice};
use crate::plan::{self, Range};
use crate::run::{emit, say};
use grid::Connection;
use grid::dialect::{BlockHashes, Compression, HashAlgorithm, VolRef, VolumeSpec};
use operation_model::{BlockDigest, Progress, Report};
use std::time::{Duration, Instant};

/// Longest single range, so progress is reported often.
const MAX_RANGE: u64 = 64 << 20;
/// Bytes read from the source to judge whether a volume compresses.
const SAMPLE: u64 = 256 << 10;
/// A sample that zstd shrinks below this share goes compressed.
const COMPRESS_BELOW: f64 = 0.5;

pub struct Grids {
    pub source: Connection,
    pub target: Connection,
}

/// How the bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The target's controller reads the source's controller itself
    /// (`vol pull`, dialect 3): one encrypted hop.
    Pull,
    /// The helper reads from the source and writes to the target: two hops.
    Relay,
}

/// What the two controllers allow, decided once per job.
#[derive(Clone, Copy, Debug)]
pub struct Method {
    pub transport: Transport,
    /// A dialect 2 target answers each write with the digests of what it
    /// stored: verification then reads neither volume again.
    pub hashed_writes: bool,
    /// Both speak dialect 3: XXH3 to find equal blocks in an existing
    /// target, zstd on the wire.
    pub dialect3: bool,
}

/// Whether a volume's bytes go zstd-compressed, as the settings and the
/// dialects allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressRule {
    /// A grid speaks dialect < 3: no compression on the wire.
    Unavailable,
    /// `copy_compression = "off"`.
    Off,
    /// `copy_compression = "zstd"`.
    Always,
    /// `copy_compression = "auto"`: when a sample of what moves shrinks below half.
    WhenASampleCompresses,
}

impl CompressRule {
    pub fn describe(self) -> &'static str {
        match self {
            CompressRule::Unavailable => "unavailable (dialect < 3)",
            CompressRule::Off => "off",
            CompressRule::Always => "zstd",
            CompressRule::WhenASampleCompresses => "zstd where a sample compresses",
        }
    }
}

impl Method {
    /// The one decision of how a copy goes, from what the two controllers
    /// speak and the settings: the helper follows it, the console's
    /// preview shows it. `pull_reachable`: the target's controller can
    /// read the source's (the helper tries; the preview assumes so, and
    /// says the helper relays when it cannot).
    pub fn decide(
        source_dialect: u32,
        target_dialect: u32,
        transfer: TransferChoice,
        pull_reachable: bool,
    ) -> Method {
        let pull = target_dialect >= 3 && transfer != TransferChoice::Relay && pull_reachable;
        Method {
            transport: if pull {
                Transport::Pull
            } else {
                Transport::Relay
            },
            hashed_writes: target_dialect >= 2,
            dialect3: source_dialect >= 3 && target_dialect >= 3,
        }
    }

    /// Whether the bytes may go compressed under `choice`.
    pub fn compress_rule(&self, choice: CompressChoice) -> CompressRule {
        match (self.dialect3, choice) {
            (false, _) => CompressRule::Unavailable,
            (true, CompressChoice::Off) => CompressRule::Off,
            (true, CompressChoice::Zstd) => CompressRule::Always,
            (true, CompressChoice::Auto) => CompressRule::WhenASampleCompresses,
        }
    }

    /// Asks both grids what they speak; with dialect 3 on the target, tries
    /// a pull of no bytes (the target's controller must reach the source).
    pub async fn choose(job: &Job, g: &Grids, probe: Option<&VolumeSpec>) -> Method {
        let (source, target) = tokio::join!(g.source.grid_info(), g.target.grid_info());
        let dialect = |i: Result<grid::dialect::GridInfo, _>| i.map_or(1, |i| i.dialect);
        let (source, target) = (dialect(source), dialect(target));
        let mut reachable = false;
        if Method::decide(source, target, job.transfer, true).transport == Transport::Pull
            && let Some(v) = probe
        {
            let (src, dst) = refs(job, v);
            match g
                .target
                .vol_pull(&dst, &job.source_grid, &src, 0, 0, None, Compression::None)
                .await
            {
                Ok(_) => reachable = true,
                Err(e) => say(format!(
                    "{} cannot read from {} itself ({e}); the helper relays the bytes",
                    job.target_grid, job.source_grid
                )),
            }
        }
        Method::decide(source, target, job.transfer, reachable)
    }

    /// The method for the log; `warm`: passes while the source runs.
    pub fn describe(&self, job: &Job, warm: bool) -> String {
        let transport = match self.transport {
            Transport::Pull => format!(
                "{} pulls from {} (one encrypted hop)",
                job.target_grid, job.source_grid
            ),
            Transport::Relay => format!(
                "relayed through the helper ({} to helper to {})",
                job.source_grid, job.target_grid
            ),
        };
        let detect = if self.dialect3 {
            "XXH3-128 finds equal blocks in an existing target"
        } else {
            "BLAKE3 finds equal blocks"
        };
        let verify = if warm {
            "every block of the stopped source against the target after the final pass (BLAKE3, both grids)"
        } else if self.hashed_writes {
            "BLAKE3 of every copied block as the target stored it, against the source's"
        } else {
            "whole-volume BLAKE3 checksums (a dialect 1 target)"
        };
        format!(
            "copy method: {transport}; {} ranges at once; {detect}; verified by {verify}; compression {}",
            job.streams,
            self.compress_rule(job.compress).describe()
        )
    }
}

/// Counts over all volumes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub total: u64,
    /// In place on the target (copied or found equal).
    pub done: u64,
    /// Moved.
    pub copied: u64,
    /// Bytes that crossed the wire for what was moved (fewer when compressed).
    pub wire: u64,
    /// Bytes that differed when each volume's copy began.
    pub delta: u64,
}

/// What the copy of one volume established: per block, what the source
/// holds and what the target stored (from a dialect 2 target), as digests
/// tagged by algorithm; blocks moved are compared by BLAKE3, blocks left
/// alone by the digests both grids gave when the copy was planned.
pub struct VolumeCopy {
    /// The block the digests below are of ([`plan::block_size`]).
    block_size: u64,
    expected: Vec<Option<String>>,
    stored: Option<Vec<Option<String>>>,
    moved_blocks: usize,
    /// What the target holds now (see [`Target::Recorded`]).
    pub record: Vec<Option<String>>,
    /// Bytes that differed when the copy began, and bytes moved.
    pub delta: u64,
    pub copied: u64,
}

fn refs(job: &Job, v: &VolumeSpec) -> (VolRef, VolRef) {
    (
        VolRef::new(job.source_app.clone(), v.name.clone()),
        VolRef::new(job.target_app.clone(), v.name.clone()),
    )
}

/// Digests as compared: BLAKE3 bare (as dialect 2 gave them), others tagged.
fn tagged(h: BlockHashes) -> Vec<Option<String>> {
    match h.algorithm {
        HashAlgorithm::Blake3 => h.hashes,
        other => h
            .hashes
            .into_iter()
            .map(|d| d.map(|d| format!("{other}:{d}")))
            .collect(),
    }
}

/// The longest range to move at once (whole `block`s): under a rate limit,
/// about a quarter second's worth, so the pace (and the progress lines)
/// stay even.
fn max_range(job: &Job, block: u64) -> u64 {
    if job.rate_limit == 0 {
        return MAX_RANGE;
    }
    let quarter = job.rate_limit / 4 / block * block;
    quarter.clamp(block, MAX_RANGE.max(block))
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

/// zstd or not for one volume: the setting, or (auto) whether a sample of
/// the ranges to move compresses below half.
async fn compression(
    job: &Job,
    g: &Grids,
    method: &Method,
    v: &VolumeSpec,
    src: &VolRef,
    ranges: &[Range],
    quiet: bool,
) -> anyhow::Result<Compression> {
    if ranges.is_empty() {
        return Ok(Compression::None);
    }
    match method.compress_rule(job.compress) {
        CompressRule::Unavailable | CompressRule::Off => return Ok(Compression::None),
        CompressRule::Always => return Ok(Compression::Zstd),
        CompressRule::WhenASampleCompresses => {}
    }
    let picks = 4.min(ranges.len());
    let mut sample = Vec::new();
    for i in 0..picks {
        let r = ranges[i * ranges.len() / picks];
        g.source
            .vol_read(src, r.offset, Some(r.length.min(SAMPLE)), &mut sample)
            .await?;
    }
    let packed = zstd::bulk::compress(&sample, 1)?;
    let share = packed.len() as f64 / sample.len().max(1) as f64;
    let choice = if share < COMPRESS_BELOW {
        Compression::Zstd
    } else {
        Compression::None
    };
    if !quiet {
        say(format!(
            "volume {}: a {} KiB sample compresses to {:.1} %: {}",
            v.name,
            sample.len() >> 10,
            share * 100.0,
            match choice {
                Compression::Zstd => "zstd on the wire",
                Compression::None => "sent as it is",
            }
        ));
    }
    Ok(choice)
}

/// What the target volume holds, as far as the helper knows.
#[derive(Clone, Debug)]
pub enum Target {
    /// Created by the helper just now: all zeros.
    Fresh,
    /// There before (a retry, an update): hashed to find out.
    Existing,
    /// What an earlier warm pass left: per block, the source's digest (by
    /// [`Method::detect`]) as of the hash its copy followed.
    Recorded(Vec<Option<String>>),
}

/// Which pass of the copy this is.
#[derive(Clone, Copy, Default)]
pub struct Pass<'a> {
    /// 0: a cold copy (the source is stopped); 1, 2, …: warm passes, the
    /// final one after the stop included.
    pub number: u32,
    /// Set: start no more ranges (a cutover cuts the pass short).
    pub interrupt: Option<&'a std::sync::atomic::AtomicBool>,
    /// A live pass after the first says one line for all its volumes (the
    /// caller's), not one a volume.
    pub quiet: bool,
}

impl Method {
    /// How equal blocks are found in a target that holds something: XXH3
    /// where both grids have it (cheap), else BLAKE3.
    pub fn detect(&self) -> HashAlgorithm {
        if self.dialect3 {
            HashAlgorithm::Xxh3
        } else {
            HashAlgorithm::Blake3
        }
    }
}

/// Copies the blocks of `v` that differ from what `target` holds; `totals`
/// moves as ranges finish.
pub async fn copy_volume(
    job: &Job,
    g: &Grids,
    method: &Method,
    (v, target): (&VolumeSpec, &Target),
    totals: &mut Totals,
    (started, pass): (Instant, Pass<'_>),
) -> anyhow::Result<VolumeCopy> {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    let (src, dst) = refs(job, v);
    let block_size = plan::block_size(v.size, job.block_size);
    // A cold copy into a fresh target: the source's BLAKE3 digests serve
    // both the plan and the verification. Otherwise blocks are compared by
    // XXH3 where both grids have it (cheap; an existing target is hashed at
    // the same time as the source); in a cold copy, moved blocks are then
    // verified by BLAKE3 range by range; a warm copy is verified after its
    // final pass, volume against volume.
    let warm = pass.number > 0;
    let detect = match target {
        Target::Fresh if !warm => HashAlgorithm::Blake3,
        _ => method.detect(),
    };
    let blocks = usize::try_from(v.size.div_ceil(block_size)).unwrap_or(0);
    let (sh, th) = tokio::try_join!(
        g.source.vol_hash_with(&src, block_size, 0, None, detect),
        async {
            match target {
                Target::Fresh => Ok(vec![None; blocks]),
                Target::Recorded(r) => Ok(r.clone()),
                Target::Existing => g
                    .target
                    .vol_hash_with(&dst, block_size, 0, None, detect)
                    .await
                    .map(tagged),
            }
        }
    )?;
    let resync = th.iter().any(Option::is_some);
    let (mut expected, before) = (tagged(sh), th);
    let p = plan::plan(
        v.size,
        block_size,
        &expected,
        &before,
        max_range(job, block_size),
    );
    let to_copy = v.size - p.skipped;
    if !pass.quiet {
        say(format!(
            "{}volume {}: {} bytes, {} to copy in {} range(s), {} already in place (found by {})",
            if warm {
                format!("pass {}: ", pass.number)
            } else {
                String::new()
            },
            v.name,
            v.size,
            to_copy,
            p.copy.len(),
            p.skipped,
            detect
        ));
    }
    let compress = compression(job, g, method, v, &src, &p.copy, pass.quiet).await?;
    let mut volume_done = p.skipped;
    totals.done += p.skipped;
    totals.delta += to_copy;
    let progress = |volume_done: u64, t: &Totals| Progress {
        volume: v.name.to_string(),
        volume_done,
        volume_total: v.size,
        done: t.done,
        total: t.total,
        copied: t.copied,
        rate_bytes_per_sec: (t.copied as f64 / started.elapsed().as_secs_f64().max(1e-3)) as u64,
        pass: pass.number,
        delta: t.delta,
    };
    emit(Report::Progress(progress(volume_done, totals)));
    let mut stored = method.hashed_writes.then(|| before.clone());
    // Blocks moved are verified by BLAKE3: when the plan used XXH3, the
    // source hashes each range as it goes.
    let source_blake3 = detect != HashAlgorithm::Blake3 && !warm;
    // Several ranges in flight; the rate limit holds for all of them: a
    // range starts only once the bytes started so far, its own included,
    // are within the limit. Progress counts finished ranges, so it never
    // goes backwards.
    let started_bytes = AtomicU64::new(totals.copied);
    let streams = usize::try_from(job.streams).unwrap_or(1).max(1);
    let mut moves = futures_util::stream::iter(p.copy.iter().copied())
        .map(|range| {
            let (src, dst, started_bytes) = (&src, &dst, &started_bytes);
            async move {
                let cut = || pass.interrupt.is_some_and(|i| i.load(Ordering::Relaxed));
                if cut() {
                    return anyhow::Ok((range, None, None));
                }
                let before = started_bytes.fetch_add(range.length, Ordering::Relaxed);
                throttle(job, before + range.length, started).await;
                // A cutover may have come while this range waited its turn.
                if cut() {
                    return anyhow::Ok((range, None, None));
                }
                let source_digests = async {
                    if source_blake3 {
                        g.source
                            .vol_hash(src, block_size, range.offset, Some(range.length))
                            .await
                            .map(|h| Some(h.hashes))
                    } else {
                        Ok(None)
                    }
                };
                let (moved, digests) = tokio::join!(
                    move_range(job, g, method, (src, dst), (range, block_size), compress),
                    source_digests
                );
                anyhow::Ok((range, Some(moved?), digests?))
            }
        })
        .buffer_unordered(streams);
    let mut last = Instant::now();
    // What the target holds after this pass, by the plan's digests: a
    // range cut short keeps what it held.
    let mut record = expected.clone();
    let mut copied = 0;
    while let Some(result) = moves.next().await {
        let (range, moved, digests) = result?;
        let first = usize::try_from(range.offset / block_size).unwrap_or(usize::MAX);
        let Some(moved) = moved else {
            let count = usize::try_from(range.length.div_ceil(block_size)).unwrap_or(0);
            for i in first..(first + count).min(record.len()) {
                record[i] = before.get(i).cloned().flatten();
            }
            continue;
        };
        let place = |list: &mut Vec<Option<String>>, hashes: Vec<Option<String>>| {
            for (i, h) in hashes.into_iter().enumerate() {
                if let Some(slot) = list.get_mut(first + i) {
                    *slot = h;
                }
            }
        };
        if let (Some(stored), Some(hashes)) = (stored.as_mut(), moved.hashes) {
            place(stored, hashes);
        }
        if let Some(hashes) = digests {
            place(&mut expected, hashes);
        }
        volume_done += range.length;
        copied += range.length;
        totals.done += range.length;
        totals.copied += range.length;
        totals.wire += moved.wire;
        if last.elapsed() >= Duration::from_millis(500) {
            emit(Report::Progress(progress(volume_done, totals)));
            last = Instant::now();
        }
    }
    drop(moves);
    emit(Report::Progress(progress(volume_done, totals)));
    let moved_blocks = usize::try_from(copied.div_ceil(block_size)).unwrap_or(usize::MAX);
    if resync && !warm && !expected.is_empty() {
        say(format!(
            "volume {}: {} of {} blocks changed ({:.1} %); {:.1} MiB copied",
            v.name,
            moved_blocks,
            expected.len(),
            moved_blocks as f64 * 100.0 / expected.len() as f64,
            to_copy as f64 / f64::from(1 << 20)
        ));
    }
    Ok(VolumeCopy {
        block_size,
        expected,
        stored,
        moved_blocks,
        record,
        delta: to_copy,
        copied,
    })
}

/// What moving one range produced.
struct Moved {
    /// The target's digests of what it stored (dialect 2 and later).
    hashes: Option<Vec<Option<String>>>,
    wire: u64,
}

async fn move_range(
    job: &Job,
    g: &Grids,
    method: &Method,
    (src, dst): (&VolRef, &VolRef),
    (range, block_size): (Range, u64),
    compress: Compression,
) -> anyhow::Result<Moved> {
    let Range { offset, length } = range;
    let hash_blocks = method.hashed_writes.then_some(block_size);
    if method.transport == Transport::Pull {
        let r = g
            .target
            .vol_pull(
                dst,
                &job.source_grid,
                src,
                offset,
                length,
                hash_blocks,
                compress,
            )
            .await?;
        if r.written != length {
            anyhow::bail!(
                "volume {}: range {offset}+{length}: the target pulled {} bytes",
                dst.vol,
                r.written
            );
        }
        return Ok(Moved {
            hashes: hash_blocks.map(|_| r.hashes),
            wire: r.wire_bytes,
        });
    }
    let (mut writer, mut reader) = tokio::io::duplex(1 << 20);
    let read = async {
        let n = g
            .source
            .vol_read_as(src, offset, Some(length), compress, &mut writer)
            .await;
        drop(writer);
        n
    };
    let write = async {
        match hash_blocks {
            Some(b) => g
                .target
                .vol_write_hashed(dst, offset, b, compress, &mut reader)
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
    let (wire, (written, hashes)) = (r?, w?);
    if written != length {
        anyhow::bail!(
            "volume {}: range {offset}+{length} moved {wire} bytes out and {written} in",
            dst.vol
        );
    }
    Ok(Moved { hashes, wire })
}

/// The first block whose digests differ (a missing one counts).
pub fn first_difference(a: &[Option<String>], b: &[Option<String>]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
}

/// A block's digest in a message: the digest, `zero` or `missing`.
pub fn show(h: Option<&Option<String>>) -> String {
    match h {
        Some(Some(h)) => h.clone(),
        Some(None) => "zero".to_owned(),
        None => "missing".to_owned(),
    }
}

/// One digest for a volume's block digests (`None`: a zero block), as
/// [`Report::Verified`] carries it.
pub fn blocks_digest(h: &BlockHashes) -> BlockDigest {
    let mut rolled = blake3::Hasher::new();
    for d in &h.hashes {
        rolled.update(d.as_deref().unwrap_or("zero").as_bytes());
        rolled.update(b"\n");
    }
    BlockDigest {
        algorithm: h.algorithm,
        block_size: h.block_size,
        hash: *rolled.finalize().as_bytes(),
    }
}

/// After a verified copy, once the app runs again: the fingerprint of each
/// volume of the side that stays stopped (the source after a migrate, the
/// target after a snapshot), which the console checks before it destroys
/// anything. XXH3 where the grid has it.
pub async fn fingerprint(
    job: &Job,
    g: &Grids,
    method: &Method,
    volumes: &[VolumeSpec],
) -> anyhow::Result<()> {
    let (conn, app) = match job.action {
        crate::env::Action::Migrate | crate::env::Action::Rollback => (&g.source, &job.source_app),
        crate::env::Action::Snapshot => (&g.target, &job.target_app),
    };
    let algorithm = if method.dialect3 {
        HashAlgorithm::Xxh3
    } else {
        HashAlgorithm::Blake3
    };
    for v in volumes {
        let vol = VolRef::new(app.clone(), v.name.clone());
        let block = plan::block_size(v.size, job.block_size);
        let h = conn.vol_hash_with(&vol, block, 0, None, algorithm).await?;
        emit(Report::Verified {
            volume: v.name.to_string(),
            digest: blocks_digest(&h),
        });
    }
    Ok(())
}

/// The target holds what the source holds: every block digest the target
/// gave equals the source's (a dialect 1 target: the two whole-volume
/// checksums, which reads both volumes again).
pub async fn verify_volume(
    job: &Job,
    g: &Grids,
    v: &VolumeSpec,
    c: &VolumeCopy,
) -> anyhow::Result<()> {
    let (src, dst) = refs(job, v);
    if let Some(stored) = &c.stored {
        if let Some(i) = first_difference(&c.expected, stored) {
            anyhow::bail!(
                "checksum mismatch on volume {}: block {i} (offset {}) is {} on the source and {} as the target stored it",
                v.name,
                i as u64 * c.block_size,
                show(c.expected.get(i)),
                show(stored.get(i))
            );
        }
        say(format!(
            "verified volume {}: all {} block digests of what the target stored equal the source's ({} moved, checked by BLAKE3)",
            v.name,
            c.expected.len(),
            c.moved_blocks,
        ));
        return Ok(());
    }
    let s = g.source.vol_checksum(&src).await?;
    let t = g.target.vol_checksum(&dst).await?;
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
