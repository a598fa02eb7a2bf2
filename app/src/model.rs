//! Types the server and the browser both hold: who is signed in, what the
//! console is configured for, what the pages show.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use operation_model::group_run::{
    AttemptOutcome, AttemptView, GroupRunView, ItemState, ItemView, MemberPlace, MemberView,
    RunState, Stage, StepState, StepView,
};
pub use operation_model::{
    Action, AtPassLimit, CancelCleanup, Cutover, EventKind, EventSource, KeptState, Mode, Outcome,
    Pass, Phase, PhaseData, Progress, SourceStop, StreamEvent, TextData,
};

/// What a user may do. Ordered: each role can do everything the ones before it can.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches operations and their logs.
    Viewer,
    /// Also starts and cancels operations.
    Operator,
    /// Also overrides locks and manages users.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// True when this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// One line an operator reads next to their name.
    pub fn summary(self) -> &'static str {
        match self {
            Role::Viewer => "can watch operations and their logs",
            Role::Operator => "can start and cancel migrations and snapshots",
            Role::Admin => "can start and cancel operations, override locks and manage users",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a role; use viewer, operator or admin",
            self.0
        )
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// An operation as the API and the pages show it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationView {
    pub id: String,
    pub action: Action,
    pub source_grid: String,
    pub source_app: String,
    pub target_grid: String,
    pub target_app: String,
    pub phase: Phase,
    /// `None` while running.
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Bytes actually moved (blocks already in place or all zero are not).
    #[serde(default)]
    pub bytes_copied: i64,
    /// How long the app was down: the source left `running` until the
    /// target ran (migrate) or the source ran again (snapshot). `None`
    /// until the helper has measured it.
    #[serde(default)]
    pub downtime_ms: Option<i64>,
    /// Warm: copied pass after pass while the source ran, then cut over.
    #[serde(default)]
    pub warm: bool,
    /// Warm: when it cuts over; `cutover_at` for a scheduled one (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<Cutover>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover_at: Option<String>,
    /// Warm: the passes so far, the final one (after the stop) last.
    #[serde(default)]
    pub passes: Vec<Pass>,
    /// How long the source may take to stop by itself before it is forced
    /// (its process killed, its machine powered off).
    #[serde(default)]
    pub stop_timeout_secs: u64,
    /// How the source stopped, once the helper stopped it (controllers that
    /// do not tell leave it out). `forced`: what the app had not written
    /// to its volumes was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_stop: Option<SourceStop>,
    /// A migrate that kept its source: where it is, until when, and what
    /// became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_source: Option<KeptSource>,
    /// A rollback: the migrate it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// A migrate: its latest rollback (whatever its outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<String>,
    /// Warm: why and after which pass it cut over, once the helper said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover_report: Option<operation_model::CutoverReport>,
    /// What the console did to settle the operation, in order.
    #[serde(default)]
    pub settled: Vec<operation_model::Settled>,
    /// How long it took, from its start to its outcome (`None` while it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A migrate's source kept on its grid, stopped, after the target ran
/// verified: it is not an ordinary stopped app (only its release or a
/// rollback ends it).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptSource {
    pub grid: String,
    pub app: String,
    /// When its deadline releases it (RFC 3339).
    pub until: String,
    pub state: KeptState,
    /// Why its deadline did not release it (its fingerprint no longer
    /// matches: it changed behind migctl's back), until that is resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Who released it or rolled it back, when, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A line of the monitor's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: i64,
    pub at: String,
    pub kind: EventKind,
    pub source: EventSource,
    pub text: String,
}

/// An operation with what its events so far add up to: what the monitor
/// starts from. The server folds the events (a page at a time, so a log of
/// 100,000 lines costs the page no more than its last `MAX_LINES`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationDetail {
    pub operation: OperationView,
    pub state: MonitorState,
    /// When this console runs inside the operation's source app, the grid
    /// where it answers again after stopping with the app.
    #[serde(default)]
    pub console_moves_to: Option<String>,
}

/// What the monitor shows, folded from the operation's row and its events
/// in order. The server renders from it and the browser keeps folding the
/// live events into it, so both always agree.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MonitorState {
    pub phase: Phase,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub done: u64,
    pub total: u64,
    /// Copy rate of the last progress sample, bytes per second.
    pub rate: u64,
    pub volume: Option<String>,
    /// Live states of the source app, the target app and the helper.
    pub source_state: String,
    pub target_state: String,
    pub helper_state: String,
    pub last_seq: i64,
    /// The last `MAX_LINES` lines of the log (at most `MAX_LINES` + `DROP_AT_ONCE`).
    pub lines: Vec<LogLine>,
    /// Lines before those: on the page only as a count (and in the downloads).
    pub earlier_lines: u64,
    /// While the console is away with its app (it said so in its last
    /// event): the grid where it will answer again.
    pub away: Option<String>,
    /// Where this console answers again if it stops with the operation's
    /// source app (it lives inside it).
    pub moves_to: Option<String>,
    /// How long the app was down, once the helper has measured it.
    pub downtime_ms: Option<u64>,
    /// How the source stopped, once the helper stopped it.
    pub source_stop: Option<SourceStop>,
    pub warm: bool,
    /// Warm: the passes that ended.
    pub passes: Vec<Pass>,
    /// Warm: the pass under way and its own progress (bytes moved of the
    /// bytes it found changed).
    pub pass: u32,
    pub pass_copied: u64,
    pub pass_delta: u64,
    /// The last phase before the outcome (where a failed or cancelled
    /// operation stopped).
    pub last_running_phase: Option<Phase>,
    /// Warm: a delta this small has converged — the threshold the console
    /// gives its helpers (`warm_converged_mib`, 0 included); `None`: the
    /// default.
    #[serde(default)]
    pub converged_bytes: Option<u64>,
}

impl MonitorState {
    /// The log lines the monitor holds and shows; the whole log is a download.
    pub const MAX_LINES: usize = 1000;
    /// Lines dropped from the front at once, when the window is that much over.
    const DROP_AT_ONCE: usize = 200;

    pub fn new(op: &OperationView) -> MonitorState {
        let unseen = || "not seen yet".to_owned();
        MonitorState {
            phase: op.phase,
            outcome: op.outcome,
            reason: op.reason.clone(),
            done: 0,
            total: u64::try_from(op.bytes_total).unwrap_or(0),
            source_state: unseen(),
            target_state: unseen(),
            helper_state: unseen(),
            downtime_ms: op.downtime_ms.and_then(|ms| u64::try_from(ms).ok()),
            source_stop: op.source_stop,
            warm: op.warm,
            ..MonitorState::default()
        }
    }

    /// What the monitor starts from: the folded events, and the row's word
    /// on what the events may not say yet.
    pub fn from_detail(d: &OperationDetail) -> MonitorState {
        let mut m = d.state.clone();
        m.moves_to = d.console_moves_to.clone();
        m.source_stop = m.source_stop.or(d.operation.source_stop);
        // The row has the last word on the outcome (events may lag it).
        if d.operation.outcome.is_some() {
            m.outcome = d.operation.outcome;
            m.phase = d.operation.phase;
            m.reason = d.operation.reason.clone().or(m.reason);
        }
        m.done = m
            .done
            .max(u64::try_from(d.operation.bytes_done).unwrap_or(0));
        m
    }

    /// Folds one event in. Events at or before `last_seq` are ignored, so
    /// a resumed stream that repeats some never doubles a line; progress
    /// never goes backwards.
    pub fn apply(&mut self, e: &StreamEvent) {
        if e.seq <= self.last_seq {
            return;
        }
        self.last_seq = e.seq;
        self.away = e.away();
        if let Some(ms) = e.downtime_ms() {
            self.downtime_ms = Some(ms);
        }
        if let Some(stop) = e.source_stop() {
            // A forced stop stays said, whatever a restarted helper reports.
            let kept = self.source_stop.filter(|s| s.forced && !stop.forced);
            self.source_stop = kept.or(Some(stop));
        }
        if let Some(p) = e.pass()
            && !self.passes.iter().any(|q| q.pass == p.pass)
        {
            self.passes.push(p);
        }
        let text = match e.kind {
            EventKind::State => {
                if let Some(states) = e.states() {
                    self.source_state = states.source;
                    self.target_state = states.target;
                    self.helper_state = states.helper;
                }
                return;
            }
            EventKind::Progress => {
                let Some(p) = e.progress() else {
                    return;
                };
                // Later passes re-copy what changed: the bar (bytes in
                // place) stays where pass 1 left it, the pass has its own count.
                self.done = self.done.max(p.done);
                self.total = self.total.max(p.total);
                self.rate = p.rate_bytes_per_sec;
                if p.pass > 0 {
                    self.warm = true;
                    self.pass = p.pass;
                    self.pass_copied = p.copied;
                    self.pass_delta = p.delta;
                }
                let text = format!(
                    "{}: {} of {} copied",
                    p.volume,
                    human_bytes(p.volume_done),
                    human_bytes(p.volume_total)
                );
                self.volume = Some(p.volume);
                text
            }
            EventKind::Phase => {
                if let Some(PhaseData { phase, text }) = e.phase() {
                    self.phase = phase;
                    if !phase.is_terminal() {
                        self.last_running_phase = Some(phase);
                    }
                    if let Some(outcome) = phase.outcome() {
                        self.outcome = Some(outcome);
                        if outcome != Outcome::Done {
                            self.reason = Some(text);
                        }
                    }
                }
                e.text()
            }
            EventKind::Log => e.text(),
        };
        self.lines.push(LogLine {
            seq: e.seq,
            at: e.at.clone(),
            kind: e.kind,
            source: e.source,
            text,
        });
        if self.lines.len() >= Self::MAX_LINES + Self::DROP_AT_ONCE {
            let over = self.lines.len() - Self::MAX_LINES;
            self.lines.drain(..over);
            self.earlier_lines += over as u64;
        }
    }

    pub fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// The phase the operation is in, or the last it was in before its
    /// outcome (the pipeline's ticks stop there).
    pub fn reached(&self) -> Phase {
        match self.outcome {
            Some(_) => self.last_running_phase.unwrap_or(self.phase),
            None => self.phase,
        }
    }

    /// Where the console answers again when the stream drops now: it said
    /// it was leaving, or it lives in the app this operation stops.
    pub fn console_away_to(&self) -> Option<String> {
        self.away.clone().or_else(|| self.moves_to.clone())
    }

    pub fn percent(&self) -> u64 {
        if self.outcome == Some(Outcome::Done) {
            return 100;
        }
        percent_of(self.done, self.total)
    }

    /// Seconds left at the current rate, while copying. Warm: none while
    /// the passes after the first run (they go on until a cutover: what a
    /// cutover now would cost is [`MonitorState::outlook`]'s), the rest of
    /// the final pass once the source stopped.
    pub fn eta_secs(&self) -> Option<u64> {
        if !self.running() || self.rate == 0 {
            return None;
        }
        if self.warm && self.pass > 1 {
            if self.phase == Phase::PreCopying {
                return None;
            }
            let rest = self.pass_delta.saturating_sub(self.pass_copied);
            return (rest > 0).then(|| rest.div_ceil(self.rate));
        }
        (self.done < self.total).then(|| (self.total - self.done).div_ceil(self.rate))
    }

    /// Warm, while the passes run: what they say about cutting over now.
    pub fn outlook(&self) -> Option<operation_model::Outlook> {
        (self.warm && self.running() && self.phase == Phase::PreCopying)
            .then(|| {
                let small = self
                    .converged_bytes
                    .unwrap_or(operation_model::DEFAULT_SMALL);
                operation_model::Outlook::with_threshold(&self.passes, small)
            })
            .flatten()
    }

    /// The pass under way, for people: `pass 3: 12 MiB of 40 MiB changed`.
    pub fn pass_label(&self) -> Option<String> {
        (self.warm && self.pass > 0 && self.running()).then(|| {
            let name = if self.phase == Phase::PreCopying {
                format!("pass {}", self.pass)
            } else {
                format!("final pass ({})", self.pass)
            };
            format!(
                "{name}: {} of {} changed",
                human_bytes(self.pass_copied),
                human_bytes(self.pass_delta)
            )
        })
    }
}

/// The lock as the dashboard's banner shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockView {
    /// `None` for an unreadable lock.
    pub op_id: Option<String>,
    pub summary: String,
    /// Why the lock looks stale, if it does.
    pub stale: Option<String>,
}

/// The lock with the evidence an admin needs before overriding it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDetail {
    /// `None` for an unreadable lock (then `raw` and `problem` say why).
    pub op_id: Option<String>,
    /// `(field, value)` pairs of the lock file, in the file's order.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Vec<String>>))]
    pub fields: Vec<(String, String)>,
    pub raw: Option<String>,
    pub problem: Option<String>,
    pub age_secs: Option<u64>,
    /// The operation's phase and its recorded reason, if any.
    pub phase: Option<Phase>,
    pub reason: Option<String>,
    /// The last progress sample, as the monitor says it (`42% — 1.2 GiB of
    /// 3 GiB`); when it came is `last_progress_at`.
    pub last_progress: Option<String>,
    pub last_progress_at: Option<String>,
    pub last_event_at: Option<String>,
    pub last_event_age_secs: Option<u64>,
    /// States read live from the controllers just now.
    pub source_state: String,
    pub target_state: String,
    pub helper_state: String,
    /// True while this console is working on the operation.
    pub driven: bool,
    /// Why the lock looks stale; `None` while the operation makes progress.
    pub stale: Option<String>,
}

/// What an operation will do, shown before the operator confirms it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub action: Action,
    pub source_grid: String,
    pub source_app: String,
    pub target_grid: String,
    pub target_app: String,
    pub helper: String,
    pub volumes: Vec<VolumeView>,
    pub bytes_total: u64,
    /// What will actually move: zero blocks (and, into an updated target,
    /// blocks it already holds) left out; `None` when the grids cannot
    /// hash cheaply (dialect < 3) or not within seconds: then at most
    /// `bytes_total`.
    #[serde(default)]
    pub bytes_to_move: Option<u64>,
    pub target_free_bytes: u64,
    /// Controller commands in order: (who sends it, grid, command line).
    pub steps: Vec<PlanStep>,
    /// Warm or cold, and why (`None`: cold, as asked).
    #[serde(default)]
    pub copy_mode: Option<String>,
    /// Expected duration of the whole operation and of the source's downtime.
    pub estimate_secs: u64,
    pub rate_bytes_per_sec: u64,
    /// Where the rate comes from (a past operation, or an assumption).
    pub rate_basis: String,
    /// The seconds the source gets to stop by itself before it is forced
    /// off; `None`: it is not running, nothing will stop it.
    #[serde(default)]
    pub stop_timeout_secs: Option<u64>,
    /// A rollback: when the migrate it undoes cut over (what the target
    /// changed since then is `bytes_to_move`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_since: Option<String>,
}

/// An operation as the new-operation form asks for it (the preview's
/// question); the server checks every field again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRequest {
    pub source_grid: String,
    pub source_app: String,
    pub target_grid: String,
    pub target_app: String,
    pub action: Action,
    /// Copy into the existing target, moving only the blocks that differ.
    pub update_target: bool,
    /// Pre-copy while the source runs; when to cut over.
    pub warm: bool,
    pub cutover: Option<Cutover>,
    pub cutover_at: Option<String>,
    /// Seconds the source may take to stop by itself before it is forced;
    /// `None`: the default.
    #[serde(default)]
    pub stop_timeout_secs: Option<u64>,
    /// Migrate: keep the source, stopped, until its deadline (`None`: the
    /// console's default); for how many hours (`None`: the console's).
    #[serde(default)]
    pub keep_source: Option<bool>,
    #[serde(default)]
    pub keep_source_hours: Option<u64>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub by: String,
    pub grid: String,
    pub command: String,
    pub why: String,
}

/// A refusal of a form, with the field it is about (if one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

/// The SSE event that ends an operation's event stream when the console
/// cannot read the events: its data says why. Not `error`, which is the
/// name browsers give a dropped connection.
pub const STREAM_ERROR_EVENT: &str = "stream-error";

/// What a form's post answered, shown on the page it redirected to. The
/// redirect carries only an id (`?notice=…`); the words come from the
/// console's own store, so a link cannot put a sentence in its mouth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The form field a refusal is about, if one.
    pub field: Option<String>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// The change was made.
    Done,
    /// The change was refused; the message says why and what to do.
    Refused,
}

impl Notice {
    pub fn done(message: impl Into<String>) -> Notice {
        Notice {
            kind: NoticeKind::Done,
            field: None,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>, field: Option<&str>) -> Notice {
        Notice {
            kind: NoticeKind::Refused,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The refusal's message when it is about `field`.
    pub fn about(&self, field: &str) -> Option<&str> {
        (self.kind == NoticeKind::Refused && self.field.as_deref() == Some(field))
            .then_some(self.message.as_str())
    }

    /// A refusal about no field in particular, for the page's banner.
    pub fn general_refusal(&self) -> Option<&str> {
        (self.kind == NoticeKind::Refused && self.field.is_none()).then_some(self.message.as_str())
    }
}

/// The design's name rule for grids, apps and volumes, as the browser
/// checks it while the operator types (the server checks again).
pub fn check_name(value: &str) -> Result<(), String> {
    operation_model::name::check("app", value).map_err(|e| e.to_string())
}

/// The time of day of an RFC 3339 instant, to the second, as the log's
/// lines show it (`2026-12-05T10:00:01.123Z` → `10:00:01`, UTC as the
/// download has it); anything else as it is.
pub fn clock_time(at: &str) -> &str {
    at.get(11..19)
        .filter(|t| at.as_bytes().get(10) == Some(&b'T') && t.as_bytes().get(2) == Some(&b':'))
        .unwrap_or(at)
}

/// How much of `total` `done` is, in whole percent (0 to 100).
pub fn percent_of(done: u64, total: u64) -> u64 {
    (done.saturating_mul(100))
        .checked_div(total)
        .unwrap_or(0)
        .min(100)
}

/// Bytes copied as the monitor and the lock page both say it:
/// `42% — 1.2 GiB of 3 GiB`.
pub fn progress_text(percent: u64, done: u64, total: u64) -> String {
    format!(
        "{percent}% — {} of {}",
        human_bytes(done),
        human_bytes(total)
    )
}

/// Durations for people: 45 s, 3 min 20 s, 2 h 5 min.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// The user behind a request, as the server established it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user_id: i64,
    pub name: String,
    pub role: Role,
}

/// What this console is configured to be.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleInfo {
    pub version: String,
    pub current_grid: Option<String>,
    pub current_app: Option<String>,
    /// The snapshot operation that made the copy this console runs in
    /// (MIG's "manually started snapshot copy"); `None` for an original.
    pub snapshot_copy_of: Option<String>,
    pub mode: Mode,
    pub config_dir: String,
    pub grids_file: String,
    pub private_key_file: String,
    pub known_hosts_file: String,
    /// A migrate keeps its source unless its request says otherwise.
    #[serde(default)]
    pub keep_source: bool,
    /// Hours a kept source stays, unless the request says otherwise.
    #[serde(default)]
    pub keep_source_hours: u64,
    /// Warm: passes before `warm_at_pass_limit` applies.
    #[serde(default)]
    pub warm_pass_limit: u32,
    /// Warm: a pass that finds this many MiB changed or fewer has converged.
    #[serde(default)]
    pub warm_converged_mib: u64,
    /// Warm: what happens at the pass limit.
    #[serde(default)]
    pub warm_at_pass_limit: AtPassLimit,
}

impl ConsoleInfo {
    /// What warm does when its passes do not converge, said before it
    /// starts (the form), in the console's settings' terms.
    pub fn warm_limit_rule(&self) -> String {
        let then = match self.warm_at_pass_limit {
            AtPassLimit::CutOver => {
                "it cuts over anyway: the app is down while everything still changing copies, which may take long"
            }
            AtPassLimit::Wait => {
                "the source keeps running and the passes go on until you press \"Cut over now\""
            }
        };
        format!(
            "With automatic cutover, warm cuts over by itself once a pass finds {} MiB or less changed; if the app still changes more after {} passes (it writes about as fast as the copy moves), {then}. (A manual or scheduled cutover waits for you or its time.) The operation's page shows each pass, what a cutover now would copy, and warns when passes stop shrinking.",
            self.warm_converged_mib, self.warm_pass_limit
        )
    }
}

/// One entry of the audit trail: who did what, when.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl AuditEntry {
    /// The operation this entry is about, when its detail names one
    /// (`op-YYYYMMDD-HHMMSS-xxxx`, as operations are named).
    pub fn operation(&self) -> Option<&str> {
        let shape = |id: &str| {
            let b = id.as_bytes();
            b.len() == 23
                && b[3..11].iter().all(u8::is_ascii_digit)
                && b[11] == b'-'
                && b[12..18].iter().all(u8::is_ascii_digit)
                && b[18] == b'-'
                && b[19..23].iter().all(u8::is_ascii_hexdigit)
        };
        self.detail
            .match_indices("op-")
            .filter_map(|(i, _)| self.detail.get(i..i + 23))
            .find(|id| shape(id))
    }
}

/// What the audit page and `GET /api/v1/audit` filter by: an exact actor,
/// an action or its family (`login` matches `login.failed`), how many.
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only this user's entries (exact name).
    #[serde(default)]
    pub actor: Option<String>,
    /// Only this action or its family (`login` matches `login.failed`).
    #[serde(default)]
    pub action: Option<String>,
    /// How many entries, newest first: 1 to 1000 (200 when absent).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
}

impl AuditFilter {
    pub const MAX_LIMIT: u32 = 1000;
}

/// One row of the users page.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub api_tokens: i64,
}

/// A grid as the console last saw it. Filled in the background; pages
/// never wait on SSH.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridView {
    pub name: String,
    pub address: String,
    pub description: String,
    /// True when the last check reached the controller.
    pub reachable: bool,
    /// `None` until the first check has finished.
    pub checked_at: Option<String>,
    /// Round trip of `grid info`, in milliseconds.
    pub latency_ms: Option<f64>,
    pub dialect: Option<u32>,
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    pub error: Option<String>,
    pub apps: Vec<AppView>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub state: String,
    pub template: Option<String>,
    pub volumes: Vec<VolumeView>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    pub name: String,
    pub size: u64,
}

/// Bytes for people: 1.5 GiB, 300 MiB, 12 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else if value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The browser says what the server would: the one rule's words.
    #[test]
    fn names_follow_the_design_rule_and_say_what_is_wrong() {
        assert_eq!(check_name("shop-2_b"), Ok(()));
        assert_eq!(
            check_name("2shop"),
            Err(r#"app name "2shop" must start with a letter (A-Z or a-z)"#.to_owned())
        );
        assert_eq!(
            check_name(&"é".repeat(70)).unwrap_err(),
            "app name is 70 characters long; at most 64 are allowed",
            "characters are counted, not bytes"
        );
    }

    fn ev(seq: i64, kind: &str, source: &str, data: serde_json::Value) -> StreamEvent {
        StreamEvent {
            seq,
            at: format!("2026-11-22T10:00:{seq:02}Z"),
            kind: kind.parse().unwrap(),
            source: source.parse().unwrap(),
            data,
        }
    }

    fn progress(seq: i64, done: u64, rate: u64) -> StreamEvent {
        ev(
            seq,
            "progress",
            "helper",
            serde_json::json!({"progress": {"volume": "data", "volume_done": done, "volume_total": 1000,
                "done": done, "total": 1000, "copied": done, "rate_bytes_per_sec": rate}}),
        )
    }

    #[test]
    fn audit_entries_know_the_operation_they_are_about() {
        let entry = |detail: &str| AuditEntry {
            id: 1,
            at: String::new(),
            actor: "ada".into(),
            action: "operation.cancel".into(),
            detail: detail.into(),
        };
        assert_eq!(
            entry("op-20261205-065707-a580: stopped and removed MigHelper_shop").operation(),
            Some("op-20261205-065707-a580")
        );
        assert_eq!(
            entry("{\"op_id\":\"op-20261205-065707-a580\"}").operation(),
            Some("op-20261205-065707-a580")
        );
        assert_eq!(entry("signed in from shop-1").operation(), None);
        assert_eq!(entry("op-2026").operation(), None);
        assert_eq!(entry("op-20261205-065707-zzzz").operation(), None);
    }

    #[test]
    fn log_lines_show_their_time_of_day() {
        assert_eq!(clock_time("2026-12-05T10:00:01.123Z"), "10:00:01");
        assert_eq!(clock_time("2026-12-05T10:00:01Z"), "10:00:01");
        assert_eq!(clock_time("later"), "later");
        assert_eq!(clock_time("2026-12-05 10:00"), "2026-12-05 10:00");
    }

    /// While warm passes run there is no "about N s left" (they go on
    /// until a cutover), but what a cutover now would copy, and a warning
    /// once they stop shrinking; the final pass has its ETA again.
    #[test]
    fn warm_passes_show_what_a_cutover_would_cost_not_a_time_left() {
        const MIB: u64 = 1 << 20;
        let mut m = MonitorState::default();
        let phase = |seq, phase: &str| {
            ev(
                seq,
                "phase",
                "console",
                serde_json::json!({"phase": phase, "text": phase}),
            )
        };
        let pass = |seq, pass: u32, delta: u64, ms: u64| {
            ev(
                seq,
                "log",
                "helper",
                serde_json::json!({"text": format!("pass {pass}"), "pass": {"pass": pass, "delta": delta,
                    "copied": delta, "ms": ms, "final": false}}),
            )
        };
        let pass_progress = |seq, pass: u32, copied: u64, delta: u64| {
            ev(
                seq,
                "progress",
                "helper",
                serde_json::json!({"progress": {"volume": "data", "volume_done": 384 * MIB,
                    "volume_total": 384 * MIB, "done": 384 * MIB, "total": 384 * MIB, "copied": copied,
                    "rate_bytes_per_sec": 8 * MIB, "pass": pass, "delta": delta}}),
            )
        };
        m.apply(&phase(1, "pre_copying"));
        m.apply(&pass(2, 1, 384 * MIB, 48_000));
        assert_eq!(m.outlook(), None, "one pass says nothing yet");
        m.apply(&pass(3, 2, 330 * MIB, 41_000));
        m.apply(&pass_progress(4, 3, 8 * MIB, 330 * MIB));
        assert_eq!(m.eta_secs(), None, "passes go on until a cutover");
        let o = m.outlook().unwrap();
        assert!(!o.converging);
        assert!(
            o.warning()
                .unwrap()
                .starts_with("passes are not converging")
        );
        assert!(o.cutover_bytes > 200 * MIB, "{o:?}");
        m.apply(&phase(5, "copying"));
        m.apply(&pass_progress(6, 4, 8 * MIB, 24 * MIB));
        assert_eq!(m.outlook(), None, "the cutover came");
        assert_eq!(
            m.eta_secs(),
            Some(2),
            "16 MiB of the final pass left at 8 MiB/s"
        );
    }

    /// The helper's report of a forced stop reaches the monitor from the
    /// event stream, and from the row when the events have not said it.
    #[test]
    fn the_monitor_learns_how_the_source_stopped() {
        let mut m = MonitorState::default();
        m.apply(&ev(
            1,
            "log",
            "source",
            serde_json::json!({"text": "x", "source_stop": {"forced": true, "ms": 1, "timeout_secs": 1}}),
        ));
        assert_eq!(m.source_stop, None, "only the helper says how it stopped");
        m.apply(&ev(
            2,
            "log",
            "helper",
            serde_json::json!({"text": "forced", "source_stop": {"forced": true, "ms": 5004, "timeout_secs": 5}}),
        ));
        assert_eq!(
            m.source_stop,
            Some(SourceStop {
                forced: true,
                ms: 5004,
                timeout_secs: 5
            })
        );
        let stop = SourceStop {
            forced: false,
            ms: 2100,
            timeout_secs: 120,
        };
        let op: OperationView = serde_json::from_value(serde_json::json!({
            "id": "op-1", "action": "migrate", "source_grid": "east", "source_app": "a",
            "target_grid": "west", "target_app": "a", "phase": "done", "outcome": "done",
            "reason": null, "bytes_done": 0, "bytes_total": 0, "created_by": "ana",
            "created_at": "t", "updated_at": "t", "finished_at": null,
            "stop_timeout_secs": 120, "source_stop": stop,
        }))
        .unwrap();
        let detail = OperationDetail {
            operation: op,
            state: MonitorState::default(),
            console_moves_to: None,
        };
        assert_eq!(MonitorState::from_detail(&detail).source_stop, Some(stop));
    }

    #[test]
    fn the_monitor_never_goes_backwards_nor_repeats_a_line() {
        let mut m = MonitorState::default();
        m.apply(&ev(
            1,
            "phase",
            "console",
            serde_json::json!({"phase": "copying", "text": "copying"}),
        ));
        m.apply(&progress(2, 600, 100));
        assert_eq!((m.percent(), m.eta_secs()), (60, Some(4)));
        // A late, smaller sample (a resumed helper re-reporting) does not pull it back.
        m.apply(&progress(3, 400, 100));
        assert_eq!(m.done, 600);
        // A resumed stream repeating events adds nothing.
        m.apply(&progress(2, 600, 100));
        m.apply(&ev(
            3,
            "log",
            "helper",
            serde_json::json!({"text": "again"}),
        ));
        assert_eq!(m.lines.len(), 3);
        m.apply(&ev(
            4,
            "state",
            "console",
            serde_json::json!({"source": "stopped", "target": "running", "helper": "running"}),
        ));
        assert_eq!(
            (m.source_state.as_str(), m.helper_state.as_str()),
            ("stopped", "running")
        );
        assert_eq!(m.lines.len(), 3, "states are panes, not log lines");
        m.apply(&ev(
            5,
            "log",
            "target",
            serde_json::json!({"seq": 1, "text": "target booted"}),
        ));
        assert_eq!(m.lines.last().unwrap().source, "target");
        m.apply(&ev(
            6,
            "phase",
            "console",
            serde_json::json!({"phase": "failed", "text": "the helper failed"}),
        ));
        assert_eq!(m.outcome.map(Outcome::as_str), Some("failed"));
        assert_eq!(m.reason.as_deref(), Some("the helper failed"));
        assert_eq!(m.eta_secs(), None, "no ETA once it ended");
    }

    #[test]
    fn the_monitor_knows_the_console_is_away_until_it_hears_from_it_again() {
        let mut m = MonitorState::default();
        m.apply(&ev(
            1,
            "log",
            "console",
            serde_json::json!({"text": "console stopping with its app shop on east", "away": "west"}),
        ));
        assert_eq!(m.away.as_deref(), Some("west"));
        m.apply(&ev(
            2,
            "log",
            "helper",
            serde_json::json!({"seq": 9, "text": "copied"}),
        ));
        assert_eq!(m.away, None, "anything newer means the console is back");
        m.apply(&ev(
            3,
            "log",
            "helper",
            serde_json::json!({"text": "x", "away": "north"}),
        ));
        assert_eq!(m.away, None, "only the console says where it goes");
    }

    #[test]
    fn a_done_operation_shows_full_and_keeps_no_reason() {
        let mut m = MonitorState::default();
        m.apply(&ev(
            1,
            "phase",
            "console",
            serde_json::json!({"phase": "done", "text": "the operation is complete"}),
        ));
        assert_eq!((m.percent(), m.reason.clone()), (100, None));
    }

    #[test]
    fn durations_read_like_an_operator_says_them() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(200), "3 min 20 s");
        assert_eq!(human_duration(7500), "2 h 5 min");
    }

    #[test]
    fn bytes_read_like_an_operator_writes_them() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(human_bytes(100 << 30), "100 GiB");
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }

    #[test]
    fn role_and_mode_parse_what_they_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for m in [Mode::Migrate, Mode::Snapshot, Mode::Both] {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        let err = "root".parse::<Role>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`root` is not a role; use viewer, operator or admin")
        );
        assert!("fly".parse::<Mode>().is_err());
    }
}
