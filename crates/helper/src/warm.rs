//! Warm copy: pass after pass while the source runs, each moving what
//! changed since the last, until the delta is small (or the operator, a
//! scheduled time or the pass limit says so); then the caller stops the
//! source and runs the final pass ([`final_pass`]) and [`verify`].

use crate::copy::{self, Grids, Method, Pass, Target, Totals};
use crate::env::{AtPassLimit, Cutover, Job, Warm};
use crate::run::{emit, say};
use grid::dialect::{HashAlgorithm, VolumeSpec};
use operation_model::{CutoverReason, CutoverReport, Report, mib};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How often the helper looks for a cutover request.
const POLL: Duration = Duration::from_millis(250);

/// What the passes left: what each volume's target holds, and how many
/// passes ran.
pub struct PreCopied {
    pub targets: Vec<Target>,
    pub passes: u32,
}

/// Runs passes while the source runs, until it is time to cut over.
pub async fn pre_copy(
    job: &Job,
    warm: &Warm,
    g: &Grids,
    method: &Method,
    (volumes, targets): (&[VolumeSpec], Vec<Target>),
) -> anyhow::Result<PreCopied> {
    let cut = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let requested: std::sync::Mutex<Option<CutoverReason>> = std::sync::Mutex::new(None);
    // Looks for "cut over now" (the signal app) and the scheduled time.
    let watch = async {
        while !done.load(Ordering::Relaxed) {
            let reason = match g.target.app_info(&warm.signal).await {
                Ok(info) => Some(CutoverReason::Requested {
                    by: info
                        .properties
                        .get("requested_by")
                        .cloned()
                        .unwrap_or_else(|| "an operator".into()),
                }),
                Err(_) if scheduled_time_has_come(warm) => Some(CutoverReason::Scheduled),
                Err(_) => None,
            };
            if let Some(r) = reason {
                if let Ok(mut slot) = requested.lock() {
                    slot.get_or_insert(r);
                }
                cut.store(true, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    };
    let passes = async {
        let result = passes(job, warm, g, method, (volumes, targets), &cut).await;
        done.store(true, Ordering::Relaxed);
        result
    };
    let ((targets, passes, own), ()) = tokio::join!(passes, watch);
    let reason = requested
        .lock()
        .ok()
        .and_then(|mut r| r.take())
        .or(own)
        .unwrap_or(CutoverReason::Requested {
            by: "an operator".into(),
        });
    emit(Report::Cutover(CutoverReport {
        after_pass: passes,
        reason,
    }));
    Ok(PreCopied { targets, passes })
}

fn scheduled_time_has_come(warm: &Warm) -> bool {
    warm.cutover == Cutover::Scheduled
        && warm.cutover_at.is_some_and(|at| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .is_ok_and(|now| now.as_secs() >= at)
        })
}

/// The passes themselves: (what the targets hold, passes run, why they
/// ended when they decided it themselves).
async fn passes(
    job: &Job,
    warm: &Warm,
    g: &Grids,
    method: &Method,
    (volumes, mut targets): (&[VolumeSpec], Vec<Target>),
    cut: &AtomicBool,
) -> (Vec<Target>, u32, Option<CutoverReason>) {
    let mut said_waiting = false;
    let mut warned = false;
    let mut history = vec![];
    let mut pass = 0;
    // How long the helper paused before the pass about to begin.
    let mut waited = Duration::ZERO;
    loop {
        pass += 1;
        // A live pass carries on past a failing volume: it never fails.
        let (totals, record) = one_pass(
            job,
            g,
            method,
            (volumes, &mut targets),
            (pass, waited),
            Live(Some(cut)),
        )
        .await
        .unwrap_or_default();
        waited = Duration::ZERO;
        if cut.load(Ordering::Relaxed) {
            return (targets, pass, None);
        }
        if record.pass == pass {
            history.push(record);
        }
        // Said once, as soon as the passes stop shrinking.
        if !warned
            && let Some(w) =
                operation_model::Outlook::with_threshold(&history, warm.converged_bytes)
                    .and_then(|o| o.warning())
        {
            say(w);
            warned = true;
        }
        let converged = pass > 1 && totals.delta <= warm.converged_bytes;
        let wait = match warm.cutover {
            Cutover::Auto if converged => {
                return (
                    targets,
                    pass,
                    Some(CutoverReason::Converged {
                        delta: totals.delta,
                    }),
                );
            }
            Cutover::Auto if pass >= warm.pass_limit => match warm.at_limit {
                AtPassLimit::CutOver => {
                    return (
                        targets,
                        pass,
                        Some(CutoverReason::PassLimit {
                            delta: totals.delta,
                        }),
                    );
                }
                AtPassLimit::Wait => {
                    if !said_waiting {
                        say(format!(
                            "pass limit ({}) reached with {} still changing between passes; the source keeps running and the passes go on until an operator presses \"cut over now\"",
                            warm.pass_limit,
                            mib(totals.delta)
                        ));
                        said_waiting = true;
                    }
                    true
                }
            },
            Cutover::Auto => false,
            Cutover::Manual | Cutover::Scheduled => {
                if converged && !said_waiting {
                    say(match warm.cutover {
                        Cutover::Scheduled => {
                            "the delta is small; pre-copying on until the scheduled cutover"
                        }
                        _ => {
                            "the delta is small; pre-copying on until an operator presses \"cut over now\""
                        }
                    });
                    said_waiting = true;
                }
                converged || pass >= warm.pass_limit
            }
        };
        if wait {
            // A pause between passes, cut short by a cutover: one more pass
            // (whole, while the app still runs) brings the delta down to
            // what changed during the pause, then the cutover.
            let paused = Instant::now();
            for _ in 0..8 {
                if cut.load(Ordering::Relaxed) {
                    let _ = one_pass(
                        job,
                        g,
                        method,
                        (volumes, &mut targets),
                        (pass + 1, paused.elapsed()),
                        Live(None),
                    )
                    .await;
                    return (targets, pass + 1, None);
                }
                tokio::time::sleep(POLL).await;
            }
            waited = paused.elapsed();
        }
    }
}

/// Which kind of pass.
#[derive(Clone, Copy)]
enum PassKind<'a> {
    /// While the source runs; cut short when the flag is set. A volume
    /// that fails (a connection dropped) is not the end: the next pass
    /// compares its target again.
    Live(Option<&'a AtomicBool>),
    /// After the stop: whole, and a failure fails the copy.
    Final,
}
use PassKind::{Final, Live};

/// One pass over every volume: each moves what differs from what its
/// target holds, which `targets` then records. Reports the pass.
async fn one_pass(
    job: &Job,
    g: &Grids,
    method: &Method,
    (volumes, targets): (&[VolumeSpec], &mut [Target]),
    (pass, waited): (u32, Duration),
    kind: PassKind<'_>,
) -> anyhow::Result<(Totals, operation_model::Pass)> {
    let started = Instant::now();
    // After the first, a live pass is one line in the log: its report.
    let quiet = pass > 1 && matches!(kind, Live(_));
    let mut totals = Totals {
        total: volumes.iter().map(|v| v.size).sum(),
        ..Totals::default()
    };
    let interrupt = match kind {
        Live(flag) => flag,
        Final => None,
    };
    for (v, target) in volumes.iter().zip(targets.iter_mut()) {
        let spec = Pass {
            number: pass,
            interrupt,
            quiet,
        };
        match copy::copy_volume(job, g, method, (v, target), &mut totals, (started, spec)).await {
            Ok(c) => *target = Target::Recorded(c.record),
            Err(e) if matches!(kind, Live(_)) => {
                say(format!(
                    "pass {pass}: volume {}: {e:#}; the next pass compares the target again",
                    v.name
                ));
                *target = Target::Existing;
            }
            Err(e) => return Err(e),
        }
    }
    let record = operation_model::Pass {
        pass,
        delta: totals.delta,
        copied: totals.copied,
        ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        final_pass: matches!(kind, Final),
        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
    };
    // Its line in the log (quiet passes' only one).
    emit(Report::Pass(record.clone()));
    Ok((totals, record))
}

/// The pass after the source stopped: what changed since the last pass.
pub async fn final_pass(
    job: &Job,
    g: &Grids,
    method: &Method,
    (volumes, mut targets): (&[VolumeSpec], Vec<Target>),
    pass: u32,
) -> anyhow::Result<Totals> {
    one_pass(
        job,
        g,
        method,
        (volumes, &mut targets),
        (pass, Duration::ZERO),
        Final,
    )
    .await
    .map(|(totals, _)| totals)
}

/// The stopped source and the target, volume against volume: every
/// block's BLAKE3 digest, both grids at once (a grid that tracks its
/// writes answers from what it remembers and reads only the rest).
pub async fn verify(job: &Job, g: &Grids, v: &VolumeSpec) -> anyhow::Result<()> {
    let src = grid::dialect::VolRef::new(job.source_app.clone(), v.name.clone());
    let dst = grid::dialect::VolRef::new(job.target_app.clone(), v.name.clone());
    let (b, block) = (
        HashAlgorithm::Blake3,
        crate::plan::block_size(v.size, job.block_size),
    );
    let (s, t) = tokio::try_join!(
        g.source.vol_hash_with(&src, block, 0, None, b),
        g.target.vol_hash_with(&dst, block, 0, None, b)
    )?;
    if let Some(i) = copy::first_difference(&s.hashes, &t.hashes) {
        use copy::show;
        anyhow::bail!(
            "checksum mismatch on volume {}: block {i} (offset {}) is {} on the stopped source and {} on the target",
            v.name,
            i as u64 * block,
            show(s.hashes.get(i)),
            show(t.hashes.get(i))
        );
    }
    say(format!(
        "verified volume {}: all {} block digests of the target equal the stopped source's (BLAKE3, both grids)",
        v.name,
        s.hashes.len(),
    ));
    Ok(())
}
