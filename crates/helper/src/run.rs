//! The helper's procedure: stop, create, copy, verify, start.

use crate::copy::{self, Grids, Method, Pass, Target, Totals};
use crate::env::Job;
use crate::warm;
use grid::dialect::{AppState, Descriptor, HowStopped};
use grid::inventory::Inventory;
use grid::known_hosts::KnownHosts;
use grid::{ClientConfig, Connection, Endpoint, keys};
use operation_model::{Action, Phase, Report, SourceStop};
use std::time::{Duration, Instant};

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

/// The helper's one entry point, for `mighelper` and `migctl helper`
/// alike: reads the job from `var` (the process's environment), does it,
/// and returns the exit status. Every way it ends is reported on stdout,
/// where the grid's log takes it to the console: `done`, or a typed
/// `failed` report (an incomplete environment included).
pub async fn main_with(var: impl Fn(&str) -> Option<String>) -> i32 {
    let job = match Job::from_env(var) {
        Ok(job) => job,
        Err(e) => {
            emit(Report::Failed {
                reason: format!("the helper's environment is incomplete: {e}"),
            });
            return 2;
        }
    };
    match run(&job).await {
        Ok(()) => {
            say("done");
            0
        }
        // `run` reported the failure.
        Err(_) => 1,
    }
}

/// Whether the helper stops a source app found in `state` (one that runs,
/// or is on its way to or from running); the preview says the same.
pub fn stops_source(state: AppState) -> bool {
    matches!(
        state,
        AppState::Running | AppState::Starting | AppState::Stopping
    )
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
            match target_may_run(job, &grids).await {
                None => {
                    say(format!("failed: {e:#}; restarting the source app"));
                    restart_source(job, &reach, &grids.source, down_since).await;
                }
                // Two running copies of one app is worse than none: the
                // console's reconciliation decides from what both grids say.
                Some(why) => say(format!(
                    "failed: {e:#}; not restarting the source app: {why}"
                )),
            }
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

/// The app runs again: how long it was down, when this helper (or its
/// earlier run, [`EarlierRun`]) stopped it.
fn report_downtime(down_since: Option<Instant>) {
    if let Some(since) = down_since {
        let ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        emit(Report::Downtime { ms });
    }
}

/// Whether the target of a migrate may be running, and so the source must
/// not be restarted after a failure: `None` when it is certainly not (no
/// such app, or stopped or failed), otherwise why not. A snapshot's target
/// is a stopped copy: its source always comes back.
async fn target_may_run(job: &Job, g: &Grids) -> Option<String> {
    if !job.action.moves() {
        return None;
    }
    match g.target.app_info(&job.target_app).await {
        Ok(t) if matches!(t.state, AppState::Stopped | AppState::Failed) => None,
        Ok(t) => Some(format!(
            "the target app {}/{} is {}",
            job.target_grid, t.name, t.state
        )),
        Err(e) if e.is_not_found() => None,
        Err(e) => Some(format!(
            "cannot tell whether the target app {}/{} runs: {e}",
            job.target_grid, job.target_app
        )),
    }
}

/// What an earlier run of this helper did, from its lines in the helper's
/// own log (the grid restarts a helper that died, with the same job; the
/// log is this operation's: a helper app lives for one).
#[derive(Default)]
struct EarlierRun {
    /// When it began to stop the source: the grid's time of its
    /// `stopping_source` phase line (the grid and the helper share a host,
    /// so the same clock).
    stopped_source: Option<Instant>,
    /// It verified the copy and began to start the target.
    started_target: bool,
}

impl EarlierRun {
    async fn read(job: &Job, g: &Grids) -> EarlierRun {
        let Ok(me) = grid::AppName::new(operation_model::name::helper_of(job.target_app.as_str()))
        else {
            return EarlierRun::default();
        };
        let Ok(lines) = g.target.app_log(&me, None).await else {
            return EarlierRun::default();
        };
        let mut earlier = EarlierRun::default();
        for line in &lines {
            match Report::decode(&line.text) {
                Report::Phase {
                    phase: Phase::StoppingSource,
                    ..
                } if earlier.stopped_source.is_none() => {
                    earlier.stopped_source = grid_time_to_instant(&line.at);
                }
                Report::Phase {
                    phase: Phase::StartingTarget,
                    ..
                } => earlier.started_target = true,
                _ => {}
            }
        }
        earlier
    }
}

/// The `Instant` of a grid's RFC 3339 time (the grid's clock is ours).
fn grid_time_to_instant(at: &str) -> Option<Instant> {
    let at =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    let ago = Duration::try_from(time::OffsetDateTime::now_utc() - at).ok()?;
    Instant::now().checked_sub(ago)
}

async fn work(
    job: &Job,
    g: &Grids,
    source_stopped: &mut bool,
    down_since: &mut Option<Instant>,
) -> anyhow::Result<()> {
    let source = g.source.app_info(&job.source_app).await?;
    let earlier = EarlierRun::read(job, g).await;
    // A restarted helper finds the source stopped by its earlier run: the
    // app has been down since then, and its downtime is measured from it.
    if !stops_source(source.state)
        && let Some(since) = earlier.stopped_source
    {
        say(format!(
            "the source was stopped by this helper's earlier run, {:.1} s ago: the downtime counts from then",
            since.elapsed().as_secs_f64()
        ));
        *down_since = Some(since);
        *source_stopped = true;
    }
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
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(t) = &existing {
        if t.volumes != source.volumes {
            anyhow::bail!(
                "target app {} exists with other volumes; destroy it or pick another target name",
                t.name
            );
        }
        // The earlier run verified the copy and started the target before
        // it died: the migration is done but for the fingerprint.
        if job.action.moves()
            && earlier.started_target
            && matches!(t.state, AppState::Running | AppState::Starting)
            && !stops_source(source.state)
        {
            *source_stopped = false;
            say(format!(
                "this helper's earlier run verified the copy and started the target {}, which is {}: nothing is left to copy; migration copy complete",
                t.name, t.state
            ));
            report_downtime(*down_since);
            let method = Method::choose(job, g, source.volumes.first()).await;
            if let Err(e) = copy::fingerprint(job, g, &method, &source.volumes).await {
                say(format!(
                    "cannot fingerprint the copy for the console: {e:#}"
                ));
            }
            return Ok(());
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

    // Warm: passes while the source runs, when its grid can read it running.
    let mut warm = None;
    if let Some(w) = &job.warm {
        match warm_refused(g, &source).await {
            None => warm = Some(w),
            Some(why) => say(format!("copying cold: {why}")),
        }
    }
    let mut pre_copied = None;
    let mut method = None;
    if let Some(w) = warm {
        if existing.is_none() {
            g.target.app_create(&job.target_app, &descriptor).await?;
        }
        enter(
            Phase::PreCopying,
            format!(
                "pre-copying while {} runs: pass 1 copies everything, each later pass what changed since the one before",
                source.name
            ),
        );
        let m = Method::choose(job, g, source.volumes.first()).await;
        say(m.describe(job, true));
        let targets = source
            .volumes
            .iter()
            .map(|_| {
                if existing.is_some() {
                    Target::Existing
                } else {
                    Target::Fresh
                }
            })
            .collect();
        pre_copied = Some(warm::pre_copy(job, w, g, &m, (&source.volumes, targets)).await?);
        method = Some(m);
    }

    if stops_source(source.state) {
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
        let stopped = g
            .source
            .app_stop(&job.source_app, Some(job.stop_timeout_secs))
            .await?;
        let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        match stopped.stopped {
            // A controller that says how it stopped: a typed report.
            Some(how @ (HowStopped::ByItself | HowStopped::Forced)) => {
                emit(Report::SourceStop(SourceStop {
                    forced: how == HowStopped::Forced,
                    ms,
                    timeout_secs: job.stop_timeout_secs,
                }));
            }
            // Stopped meanwhile (by whom, and how, its grid's log says).
            Some(HowStopped::NotRunning) => say(format!(
                "source stopped in {:.1} s: it was not running any more when the helper stopped it (its grid's log says how it ended)",
                ms as f64 / 1000.0
            )),
            None => say(format!("source stopped in {:.1} s", ms as f64 / 1000.0)),
        }
    }
    *source_stopped = true;

    if let (Some(pre), Some(method)) = (pre_copied, &method) {
        enter(
            Phase::Copying,
            format!("final pass: copying what changed since pass {}", pre.passes),
        );
        let t = Instant::now();
        let totals = warm::final_pass(
            job,
            g,
            method,
            (&source.volumes, pre.targets),
            pre.passes + 1,
        )
        .await?;
        say(format!(
            "final pass copied {} bytes in {:.2} s ({} bytes on the wire)",
            totals.copied,
            t.elapsed().as_secs_f64(),
            totals.wire
        ));
        enter(
            Phase::Verifying,
            format!(
                "comparing every block of {} volume(s) with the stopped source",
                source.volumes.len()
            ),
        );
        for v in &source.volumes {
            warm::verify(job, g, v).await?;
        }
    } else {
        method = Some(copy_cold(job, g, &source, (&descriptor, existing.is_none())).await?);
    }

    // The app runs again: the target (migrate) or the source (snapshot).
    let (phase, conn, app, starting, (running, done)) = match job.action {
        Action::Migrate | Action::Rollback => (
            Phase::StartingTarget,
            &g.target,
            &job.target_app,
            "starting the target app",
            ("target app is running", "migration copy complete"),
        ),
        Action::Snapshot => (
            Phase::RestartingSource,
            &g.source,
            &job.source_app,
            "restarting the source app",
            ("source app is running again", "snapshot complete"),
        ),
    };
    enter(phase, format!("{starting} {app}"));
    let t = Instant::now();
    conn.app_start(app).await?;
    // The app runs (the target, or the source again): a failure from here
    // on restarts nothing.
    *source_stopped = false;
    say(format!(
        "{running} (started in {:.2} s); {done}",
        t.elapsed().as_secs_f64()
    ));
    report_downtime(*down_since);
    // The app runs again: a fingerprint of what stays stopped, for the
    // console. Without it the console compares both sides itself.
    if let Some(m) = &method
        && let Err(e) = copy::fingerprint(job, g, m, &source.volumes).await
    {
        say(format!(
            "cannot fingerprint the copy for the console: {e:#}"
        ));
    }
    Ok(())
}

/// Why a warm job copies cold: its source does not run (nothing to chase)
/// or its grid cannot read a running app's volumes.
async fn warm_refused(g: &Grids, source: &grid::dialect::AppInfo) -> Option<String> {
    if source.state != AppState::Running {
        return Some(format!(
            "the source app {} is {}, not running: there is nothing to copy while it runs",
            source.name, source.state
        ));
    }
    match g.source.grid_info().await {
        Ok(i) if i.dialect >= 4 => None,
        Ok(i) => Some(format!(
            "the source grid {} speaks dialect {}; reading a running app's volumes needs dialect 4",
            i.name, i.dialect
        )),
        Err(e) => Some(format!("cannot ask the source grid what it speaks: {e}")),
    }
}

/// MIG's copy: the source is stopped; create the target (unless it
/// exists), copy every volume, verify.
async fn copy_cold(
    job: &Job,
    g: &Grids,
    source: &grid::dialect::AppInfo,
    (descriptor, fresh): (&Descriptor, bool),
) -> anyhow::Result<Method> {
    if fresh {
        g.target.app_create(&job.target_app, descriptor).await?;
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

    let method = Method::choose(job, g, source.volumes.first()).await;
    say(method.describe(job, false));
    let started = Instant::now();
    let total: u64 = source.volumes.iter().map(|v| v.size).sum();
    let mut totals = Totals {
        total,
        ..Totals::default()
    };
    let target = if fresh {
        Target::Fresh
    } else {
        Target::Existing
    };
    let mut copies = vec![];
    for v in &source.volumes {
        copies.push(
            copy::copy_volume(
                job,
                g,
                &method,
                (v, &target),
                &mut totals,
                (started, Pass::default()),
            )
            .await?,
        );
    }
    say(format!(
        "copied {} bytes in {:.1} s ({} bytes on the wire); {} bytes were already in place",
        totals.copied,
        started.elapsed().as_secs_f64(),
        totals.wire,
        total - totals.copied
    ));

    enter(
        Phase::Verifying,
        format!(
            "comparing the digests of {} volume(s)",
            source.volumes.len()
        ),
    );
    for (v, c) in source.volumes.iter().zip(&copies) {
        copy::verify_volume(job, g, v, c).await?;
    }
    Ok(method)
}
