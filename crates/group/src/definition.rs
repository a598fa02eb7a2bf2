//! A group's definition as an operator writes it — a TOML file kept in
//! version control, or the same shape as JSON through the API — read and
//! checked once into a [`Definition`]. Unknown keys and bad values are
//! refused with where they sit (`steps[1].after[0].http.status`) and what
//! to write instead; nothing half-read is ever used.
//!
//! ```toml
//! name = "mq"
//! source_grid = "east"
//! target_grid = "west"
//! warm = true
//!
//! [[members]]
//! app = "mq3"
//! [[members]]
//! app = "mq2"
//! [[members]]
//! app = "mq1"
//!
//! [[after_each_step]]
//! name = "redundancy up, as mq1 sees it"
//! http = { url = "http://{mq1.LISTEN}/redundancy", json = { pointer = "/up", value = true } }
//! passes = 2
//!
//! [[steps]]
//! member = "mq1"
//! [[steps.actions]]
//! http = { method = "POST", url = "http://{mq1.LISTEN}/release-activity" }
//! ```
//!
//! Without `[[steps]]`, the members move in the order listed, one step each.

use crate::check::{OnFailure, Policy};
use crate::template::Template;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A check's or an action's defaults, and the bounds of what may be asked.
pub const DEFAULT_INTERVAL_SECS: f64 = 2.0;
pub const DEFAULT_TIMEOUT_SECS: f64 = 5.0;
pub const DEFAULT_DEADLINE_SECS: f64 = 300.0;
/// An approval waits longer for its operator by default: a working day.
pub const DEFAULT_APPROVAL_DEADLINE_SECS: f64 = 8.0 * 3600.0;
/// No deadline is infinite: a week at most.
pub const MAX_DEADLINE_SECS: f64 = 7.0 * 24.0 * 3600.0;
pub const MIN_INTERVAL_SECS: f64 = 0.1;
/// Attempts a check may make within its deadline (each is kept as
/// evidence): a deadline over an interval makes at most this many.
pub const MAX_ATTEMPTS: f64 = 10_000.0;
/// Bytes of an answer kept as a check attempt's evidence.
pub const EXCERPT_BYTES: usize = 512;

/// A definition read and checked: every name resolves, every bound holds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Definition {
    pub name: String,
    pub source_grid: String,
    pub target_grid: String,
    pub members: Vec<Member>,
    /// In order; each moves one member, each member exactly once.
    pub steps: Vec<Step>,
    /// Each step's migrate keeps its source, stopped, for
    /// `keep_source_hours` (default: the console's): what lets the run be
    /// rolled back, and a check's `on_failure = "roll_back"`.
    pub keep_source: bool,
    pub keep_source_hours: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its name on the source grid.
    pub app: String,
    /// Its name on the target grid (the same unless given).
    pub target_app: String,
}

/// One member moved: checks before, actions, the move (one migctl
/// operation), checks after.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub member: String,
    pub warm: bool,
    pub before: Vec<Check>,
    pub actions: Vec<Action>,
    /// The step's own checks, then the definition's `after_each_step`.
    pub after: Vec<Check>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// As written, or said from the probe: `mq1 is running`.
    pub name: String,
    pub probe: Probe,
    pub interval_secs: f64,
    pub timeout_secs: f64,
    pub deadline_secs: f64,
    /// Consecutive passes needed.
    pub passes: u32,
    pub on_failure: OnFailure,
}

impl Check {
    pub fn policy(&self) -> Policy {
        Policy {
            interval: Duration::from_secs_f64(self.interval_secs),
            timeout: Duration::from_secs_f64(self.timeout_secs),
            deadline: Duration::from_secs_f64(self.deadline_secs),
            passes: self.passes,
            on_failure: self.on_failure,
        }
    }
}

/// What a check asks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    Http(HttpProbe),
    /// What the grid's controller says of a member, where it is now.
    AppState {
        member: String,
        state: String,
    },
    /// An operator (operator or admin) approves or refuses, with a reason.
    Approval {
        prompt: String,
    },
    /// A soak time.
    Wait {
        secs: f64,
    },
}

impl Probe {
    /// One failure is the check's failure at once (an operator's refusal).
    pub fn decisive(&self) -> bool {
        matches!(self, Probe::Approval { .. })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    #[serde(default)]
    pub method: HttpMethod,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "http://{mq1.LISTEN}/redundancy"))]
    pub url: Template,
    /// The status it must answer.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// A value in the JSON it answers, compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonExpect>,
}

fn ok_status() -> u16 {
    200
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// `pointer` (RFC 6901) into the answer, `op` against `value`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    pub pointer: String,
    #[serde(default)]
    pub op: CompareOp,
    pub value: serde_json::Value,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    #[default]
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Ge => ">=",
            CompareOp::Le => "<=",
        }
    }
}

impl JsonExpect {
    /// Whether `answer` holds: `Err` says why not, in words for the evidence.
    pub fn holds(&self, answer: &serde_json::Value) -> Result<(), String> {
        let Some(found) = answer.pointer(&self.pointer) else {
            return Err(format!("the answer has nothing at {}", self.pointer));
        };
        let ok = match self.op {
            CompareOp::Eq => found == &self.value,
            CompareOp::Ne => found != &self.value,
            CompareOp::Ge | CompareOp::Le => match (found.as_f64(), self.value.as_f64()) {
                (Some(a), Some(b)) if self.op == CompareOp::Ge => a >= b,
                (Some(a), Some(b)) => a <= b,
                _ => return Err(format!("{} is {found}, not a number", self.pointer)),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} is {found}, wanted {} {}",
                self.pointer,
                self.op.as_str(),
                self.value
            ))
        }
    }
}

/// Something done between checks, e.g. releasing the primary's activity
/// before it stops: an HTTP request that must answer `status`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Action {
    pub name: String,
    pub method: HttpMethod,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub url: Template,
    pub status: u16,
    /// JSON sent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    pub timeout_secs: f64,
}

/// Why a definition was refused: where, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct DefinitionError {
    /// `steps[1].after[0].http.status`; `(file)` for the whole.
    pub at: String,
    pub message: String,
}

// --- what is written, before it is checked ---------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    name: String,
    source_grid: String,
    target_grid: String,
    /// Steps' default.
    #[serde(default)]
    warm: bool,
    members: Vec<WrittenMember>,
    #[serde(default)]
    steps: Option<Vec<WrittenStep>>,
    #[serde(default)]
    after_each_step: Vec<WrittenCheck>,
    #[serde(default)]
    keep_source: bool,
    #[serde(default)]
    keep_source_hours: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenMember {
    app: String,
    #[serde(default)]
    target_app: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenStep {
    member: String,
    #[serde(default)]
    warm: Option<bool>,
    #[serde(default)]
    before: Vec<WrittenCheck>,
    #[serde(default)]
    actions: Vec<WrittenAction>,
    #[serde(default)]
    after: Vec<WrittenCheck>,
}

/// Exactly one of `http`, `app_state`, `approval`, `wait`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenCheck {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    http: Option<HttpProbe>,
    #[serde(default)]
    app_state: Option<WrittenAppState>,
    #[serde(default)]
    approval: Option<WrittenApproval>,
    #[serde(default)]
    wait: Option<WrittenWait>,
    #[serde(default)]
    interval_secs: Option<f64>,
    #[serde(default)]
    timeout_secs: Option<f64>,
    #[serde(default)]
    deadline_secs: Option<f64>,
    #[serde(default)]
    passes: Option<u32>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenAppState {
    member: String,
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenApproval {
    prompt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenWait {
    secs: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenAction {
    #[serde(default)]
    name: Option<String>,
    http: WrittenHttpAction,
    #[serde(default)]
    timeout_secs: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenHttpAction {
    #[serde(default = "post")]
    method: HttpMethod,
    url: Template,
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default)]
    body: Option<serde_json::Value>,
}

fn post() -> HttpMethod {
    HttpMethod::Post
}

/// The states a member's `app_state` check may ask for.
pub const APP_STATES: &[&str] = &["running", "stopped", "absent"];

impl Definition {
    /// A definition file's text as the API's JSON, once it reads as a
    /// definition (its problems named otherwise).
    pub fn toml_as_json(text: &str) -> Result<serde_json::Value, Vec<DefinitionError>> {
        Definition::from_toml(text)?;
        let value: toml::Value = toml::from_str(text).map_err(|e| {
            vec![DefinitionError {
                at: String::new(),
                message: e.to_string(),
            }]
        })?;
        serde_json::to_value(value).map_err(|e| {
            vec![DefinitionError {
                at: String::new(),
                message: e.to_string(),
            }]
        })
    }

    /// A definition file's text.
    pub fn from_toml(text: &str) -> Result<Definition, Vec<DefinitionError>> {
        let de = toml::Deserializer::new(text);
        let written: Written = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            // The path says where in the structure, the line where in the file.
            let line = inner
                .span()
                .map(|s| {
                    format!(
                        " (line {})",
                        text.as_bytes()[..s.start.min(text.len())]
                            .iter()
                            .filter(|b| **b == b'\n')
                            .count()
                            + 1
                    )
                })
                .unwrap_or_default();
            vec![DefinitionError {
                at: if at == "." { "(file)".into() } else { at },
                message: format!("{}{line}", inner.message().trim()),
            }]
        })?;
        written.check()
    }

    /// The same as JSON (the API's body).
    pub fn from_json(value: serde_json::Value) -> Result<Definition, Vec<DefinitionError>> {
        let written: Written = serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            vec![DefinitionError {
                at: if at == "." { "(body)".into() } else { at },
                message: e.into_inner().to_string(),
            }]
        })?;
        written.check()
    }

    pub fn member(&self, app: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.app == app)
    }
}

/// Problems found so far, each with where it sits.
struct Problems(Vec<DefinitionError>);

impl Problems {
    fn add(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(DefinitionError {
            at: at.into(),
            message: message.into(),
        });
    }

    fn name(&mut self, at: &str, kind: &'static str, s: &str) {
        if let Err(e) = operation_model::name::check(kind, s) {
            self.add(at, e.to_string());
        }
    }

    /// A number of seconds within bounds.
    fn secs(&mut self, at: String, v: f64, min: f64, max: f64) -> f64 {
        if !v.is_finite() || v < min || v > max {
            self.add(
                at,
                format!("{v} is out of range; write a number of seconds from {min} to {max}"),
            );
        }
        v
    }
}

impl Written {
    fn check(self) -> Result<Definition, Vec<DefinitionError>> {
        let mut p = Problems(vec![]);
        p.name("name", "group", &self.name);
        p.name("source_grid", "grid", &self.source_grid);
        p.name("target_grid", "grid", &self.target_grid);
        if self.source_grid == self.target_grid {
            p.add(
                "target_grid",
                format!(
                    "the group moves from {0} to {0}; name another grid as the target",
                    self.source_grid
                ),
            );
        }
        if self.members.is_empty() {
            p.add(
                "members",
                "a group needs at least one member ([[members]] app = \"…\")",
            );
        }
        let mut members: Vec<Member> = vec![];
        for (i, m) in self.members.iter().enumerate() {
            p.name(&format!("members[{i}].app"), "app", &m.app);
            let target_app = m.target_app.clone().unwrap_or_else(|| m.app.clone());
            p.name(&format!("members[{i}].target_app"), "app", &target_app);
            if members.iter().any(|o| o.app == m.app) {
                p.add(
                    format!("members[{i}].app"),
                    format!("{} is listed twice", m.app),
                );
            }
            if members.iter().any(|o| o.target_app == target_app) {
                p.add(
                    format!("members[{i}].target_app"),
                    format!(
                        "two members would be named {target_app} on {}",
                        self.target_grid
                    ),
                );
            }
            members.push(Member {
                app: m.app.clone(),
                target_app,
            });
        }
        let names: Vec<&str> = members.iter().map(|m| m.app.as_str()).collect();
        let keep = self.keep_source;
        if let Some(h) = self.keep_source_hours {
            if !keep {
                p.add(
                    "keep_source_hours",
                    "the sources are not kept; write keep_source = true, or leave the hours out",
                );
            } else if !(1..=operation_model::MAX_KEEP_SOURCE_HOURS).contains(&h) {
                p.add(
                    "keep_source_hours",
                    format!(
                        "{h} is not between 1 and {} (a year); leave it out for the console's default",
                        operation_model::MAX_KEEP_SOURCE_HOURS
                    ),
                );
            }
        }
        let after_each: Vec<Check> = self
            .after_each_step
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| {
                check_one(&mut p, &format!("after_each_step[{i}]"), c, &names, keep)
            })
            .collect();
        let written_steps = self.steps.unwrap_or_else(|| {
            members
                .iter()
                .map(|m| WrittenStep {
                    member: m.app.clone(),
                    warm: None,
                    before: vec![],
                    actions: vec![],
                    after: vec![],
                })
                .collect()
        });
        let mut steps = vec![];
        for (i, s) in written_steps.into_iter().enumerate() {
            let at = format!("steps[{i}]");
            if !names.contains(&s.member.as_str()) {
                p.add(
                    format!("{at}.member"),
                    format!(
                        "{} is not a member; the members are {}",
                        s.member,
                        names.join(", ")
                    ),
                );
            } else if steps.iter().any(|o: &Step| o.member == s.member) {
                p.add(
                    format!("{at}.member"),
                    format!("{} is moved by an earlier step already", s.member),
                );
            }
            let before = s
                .before
                .into_iter()
                .enumerate()
                .filter_map(|(j, c)| {
                    check_one(&mut p, &format!("{at}.before[{j}]"), c, &names, keep)
                })
                .collect();
            let actions = s
                .actions
                .into_iter()
                .enumerate()
                .filter_map(|(j, a)| action_one(&mut p, &format!("{at}.actions[{j}]"), a, &names))
                .collect();
            let mut after: Vec<Check> = s
                .after
                .into_iter()
                .enumerate()
                .filter_map(|(j, c)| {
                    check_one(&mut p, &format!("{at}.after[{j}]"), c, &names, keep)
                })
                .collect();
            after.extend(after_each.iter().cloned());
            steps.push(Step {
                member: s.member,
                warm: s.warm.unwrap_or(self.warm),
                before,
                actions,
                after,
            });
        }
        for m in &names {
            if !steps.iter().any(|s| s.member == *m) {
                p.add(
                    "steps",
                    format!("no step moves the member {m}; add one ([[steps]] member = \"{m}\")"),
                );
            }
        }
        if p.0.is_empty() {
            Ok(Definition {
                name: self.name,
                source_grid: self.source_grid,
                target_grid: self.target_grid,
                members,
                steps,
                keep_source: self.keep_source,
                keep_source_hours: self.keep_source_hours,
            })
        } else {
            Err(p.0)
        }
    }
}

fn url_members(p: &mut Problems, at: String, url: &Template, names: &[&str]) {
    let text = url.to_string();
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        p.add(
            at.clone(),
            format!("{text} is not an http:// or https:// URL"),
        );
    }
    for m in url.members() {
        if !names.contains(&m) {
            p.add(
                at.clone(),
                format!(
                    "{{{m}.…}} names no member; the members are {}",
                    names.join(", ")
                ),
            );
        }
    }
}

fn status(p: &mut Problems, at: String, s: u16) {
    if !(100..=599).contains(&s) {
        p.add(at, format!("{s} is not an HTTP status; write 100 to 599"));
    }
}

fn check_one(
    p: &mut Problems,
    at: &str,
    c: WrittenCheck,
    names: &[&str],
    keep_source: bool,
) -> Option<Check> {
    if c.on_failure == Some(OnFailure::RollBack) && !keep_source {
        p.add(
            format!("{at}.on_failure"),
            "roll_back returns the moved members to their kept sources: write keep_source = true at the top of the definition, or pause or abort here",
        );
    }
    let mut probes = vec![];
    if let Some(h) = c.http {
        url_members(p, format!("{at}.http.url"), &h.url, names);
        status(p, format!("{at}.http.status"), h.status);
        if let Some(j) = &h.json {
            if !(j.pointer.is_empty() || j.pointer.starts_with('/')) {
                p.add(
                    format!("{at}.http.json.pointer"),
                    format!(
                        "{:?} is not a JSON pointer; it starts with / (e.g. \"/up\"), or is empty for the whole answer",
                        j.pointer
                    ),
                );
            }
            if matches!(j.op, CompareOp::Ge | CompareOp::Le) && !j.value.is_number() {
                p.add(
                    format!("{at}.http.json.value"),
                    format!("{} compares numbers; {} is not one", j.op.as_str(), j.value),
                );
            }
        }
        probes.push(Probe::Http(h));
    }
    if let Some(s) = c.app_state {
        if !names.contains(&s.member.as_str()) {
            p.add(
                format!("{at}.app_state.member"),
                format!(
                    "{} is not a member; the members are {}",
                    s.member,
                    names.join(", ")
                ),
            );
        }
        if !APP_STATES.contains(&s.state.as_str()) {
            p.add(
                format!("{at}.app_state.state"),
                format!(
                    "{:?} is not a state; write one of {}",
                    s.state,
                    APP_STATES.join(", ")
                ),
            );
        }
        probes.push(Probe::AppState {
            member: s.member,
            state: s.state,
        });
    }
    if let Some(a) = c.approval {
        if a.prompt.trim().is_empty() {
            p.add(
                format!("{at}.approval.prompt"),
                "say what the operator approves",
            );
        }
        probes.push(Probe::Approval { prompt: a.prompt });
    }
    if let Some(w) = c.wait {
        let secs = p.secs(format!("{at}.wait.secs"), w.secs, 0.0, MAX_DEADLINE_SECS);
        probes.push(Probe::Wait { secs });
    }
    let probe = match probes.len() {
        1 => probes.pop()?,
        n => {
            p.add(
                at.to_owned(),
                format!(
                    "a check asks one thing ({n} given): one of http, app_state, approval or wait"
                ),
            );
            return None;
        }
    };
    let deadline_default = match &probe {
        Probe::Approval { .. } => DEFAULT_APPROVAL_DEADLINE_SECS,
        // A soak's deadline leaves room for the soak itself.
        Probe::Wait { secs } => secs + DEFAULT_DEADLINE_SECS,
        _ => DEFAULT_DEADLINE_SECS,
    };
    let interval_secs = p.secs(
        format!("{at}.interval_secs"),
        c.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS),
        MIN_INTERVAL_SECS,
        MAX_DEADLINE_SECS,
    );
    let timeout_secs = p.secs(
        format!("{at}.timeout_secs"),
        c.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
        MIN_INTERVAL_SECS,
        MAX_DEADLINE_SECS,
    );
    let deadline_secs = p.secs(
        format!("{at}.deadline_secs"),
        c.deadline_secs.unwrap_or(deadline_default),
        MIN_INTERVAL_SECS,
        MAX_DEADLINE_SECS,
    );
    if let Probe::Wait { secs } = &probe
        && deadline_secs < *secs
    {
        p.add(
            format!("{at}.deadline_secs"),
            format!("the deadline ({deadline_secs} s) comes before the wait ({secs} s) ends"),
        );
    }
    let polled = matches!(probe, Probe::Http(_) | Probe::AppState { .. });
    if polled && deadline_secs / interval_secs > MAX_ATTEMPTS {
        p.add(
            format!("{at}.interval_secs"),
            format!(
                "an interval of {interval_secs} s over a deadline of {deadline_secs} s makes {:.0} attempts, each kept: at most {MAX_ATTEMPTS}; write an interval of at least {} s",
                deadline_secs / interval_secs,
                (deadline_secs / MAX_ATTEMPTS).ceil()
            ),
        );
    }
    let passes = c.passes.unwrap_or(1);
    if passes == 0 {
        p.add(
            format!("{at}.passes"),
            "a check passes at least once; write 1 or more",
        );
    }
    let name = c.name.unwrap_or_else(|| said(&probe));
    Some(Check {
        name,
        probe,
        interval_secs,
        timeout_secs,
        deadline_secs,
        passes,
        on_failure: c.on_failure.unwrap_or_default(),
    })
}

/// A check's name when none is written.
fn said(probe: &Probe) -> String {
    match probe {
        Probe::Http(h) => match &h.json {
            Some(j) => format!(
                "{} {} answers {} with {} {} {}",
                h.method.as_str(),
                h.url,
                h.status,
                j.pointer,
                j.op.as_str(),
                j.value
            ),
            None => format!("{} {} answers {}", h.method.as_str(), h.url, h.status),
        },
        Probe::AppState { member, state } => format!("{member} is {state}"),
        Probe::Approval { prompt } => format!("approval: {prompt}"),
        Probe::Wait { secs } => format!("wait {secs} s"),
    }
}

fn action_one(p: &mut Problems, at: &str, a: WrittenAction, names: &[&str]) -> Option<Action> {
    url_members(p, format!("{at}.http.url"), &a.http.url, names);
    status(p, format!("{at}.http.status"), a.http.status);
    let timeout_secs = p.secs(
        format!("{at}.timeout_secs"),
        a.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
        MIN_INTERVAL_SECS,
        MAX_DEADLINE_SECS,
    );
    let name = a.name.unwrap_or_else(|| {
        format!(
            "{} {} answers {}",
            a.http.method.as_str(),
            a.http.url,
            a.http.status
        )
    });
    Some(Action {
        name,
        method: a.http.method,
        url: a.http.url,
        status: a.http.status,
        body: a.http.body,
        timeout_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLACE: &str = r#"
name = "mq"
source_grid = "east"
target_grid = "west"
warm = true

[[members]]
app = "mq1"
[[members]]
app = "mq2"
[[members]]
app = "mq3"

[[after_each_step]]
name = "redundancy up, as mq1 sees it"
http = { url = "http://{mq1.LISTEN}/redundancy", json = { pointer = "/up", value = true } }
passes = 2

[[steps]]
member = "mq3"
[[steps]]
member = "mq2"
[[steps]]
member = "mq1"
before = [{ approval = { prompt = "move the primary?" } }]
[[steps.actions]]
http = { url = "http://{mq1.LISTEN}/release-activity" }
"#;

    fn refused(text: &str) -> Vec<String> {
        Definition::from_toml(text)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_solace_style_definition_reads_with_its_defaults() {
        let d = Definition::from_toml(SOLACE).unwrap();
        assert_eq!(
            d.steps
                .iter()
                .map(|s| s.member.as_str())
                .collect::<Vec<_>>(),
            ["mq3", "mq2", "mq1"]
        );
        assert!(d.steps.iter().all(|s| s.warm && s.after.len() == 1));
        let up = &d.steps[0].after[0];
        assert_eq!(up.name, "redundancy up, as mq1 sees it");
        assert_eq!(up.passes, 2);
        assert_eq!(up.on_failure, OnFailure::Pause);
        assert_eq!(up.deadline_secs, DEFAULT_DEADLINE_SECS);
        let Probe::Http(h) = &up.probe else {
            panic!("{up:?}")
        };
        assert_eq!((h.method, h.status), (HttpMethod::Get, 200));
        let last = &d.steps[2];
        assert_eq!(last.before[0].name, "approval: move the primary?");
        assert_eq!(last.before[0].deadline_secs, DEFAULT_APPROVAL_DEADLINE_SECS);
        assert_eq!(last.actions[0].method, HttpMethod::Post);
        assert_eq!(
            last.actions[0].name,
            "POST http://{mq1.LISTEN}/release-activity answers 200"
        );
        assert_eq!(d.member("mq2").unwrap().target_app, "mq2");
        // The same through the API, as JSON.
        let json = serde_json::json!({
            "name": "mq", "source_grid": "east", "target_grid": "west",
            "members": [{"app": "mq1"}, {"app": "mq2", "target_app": "mq2b"}],
        });
        let d = Definition::from_json(json).unwrap();
        assert_eq!(
            d.steps.len(),
            2,
            "a step a member, in order, without [[steps]]"
        );
        assert!(!d.steps[0].warm);
        assert_eq!(d.member("mq2").unwrap().target_app, "mq2b");
    }

    #[test]
    fn roll_back_needs_the_sources_kept() {
        let rolls = SOLACE.replace("passes = 2", "passes = 2\non_failure = \"roll_back\"");
        let e = refused(&rolls);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("after_each_step[0].on_failure: roll_back returns the moved members to their kept sources: write keep_source = true"),
            "{e:?}"
        );
        let kept = rolls.replace(
            "warm = true",
            "warm = true\nkeep_source = true\nkeep_source_hours = 24",
        );
        let d = Definition::from_toml(&kept).unwrap();
        assert!(d.keep_source);
        assert_eq!(d.keep_source_hours, Some(24));
        assert_eq!(d.steps[2].after[0].on_failure, OnFailure::RollBack);
        let e = refused(&SOLACE.replace("warm = true", "warm = true\nkeep_source_hours = 24"));
        assert!(
            e[0].starts_with("keep_source_hours: the sources are not kept"),
            "{e:?}"
        );
        let e = refused(&kept.replace("= 24", "= 0"));
        assert!(
            e[0].starts_with("keep_source_hours: 0 is not between 1 and 8760"),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_where_they_sit() {
        let e = refused(&SOLACE.replace("passes = 2", "passes = 2\nretries = 3"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "after_each_step[0].retries: unknown field `retries`, expected one of `name`"
            ),
            "{e:?}"
        );
        assert!(e[0].ends_with("(line 18)"), "{e:?}");
        let e = Definition::from_json(serde_json::json!({
            "name": "mq", "source_grid": "east", "target_grid": "west",
            "members": [{"app": "mq1", "grid": "east"}],
        }))
        .unwrap_err();
        assert!(
            e[0].at == "members[0].grid" && e[0].message.contains("unknown field `grid`"),
            "{e:?}"
        );
        let e = refused(&SOLACE.replace("pointer = \"/up\"", "pointer = \"/up\", op = \"~=\""));
        assert!(
            e[0].starts_with("after_each_step[0].http.json.op: ") && e[0].contains("~="),
            "{e:?}"
        );
    }

    #[test]
    fn bad_values_are_all_named_at_once() {
        let text = SOLACE
            .replace("passes = 2", "passes = 0\ndeadline_secs = inf")
            .replace("{mq1.LISTEN}/release", "{mq9.LISTEN}/release")
            .replace("member = \"mq2\"", "member = \"mq3\"");
        let e = refused(&text);
        let has = |at: &str, says: &str| {
            assert!(
                e.iter().any(|l| l.starts_with(at) && l.contains(says)),
                "no {at} … {says} in {e:#?}"
            )
        };
        has("after_each_step[0].passes", "at least once");
        has("after_each_step[0].deadline_secs", "out of range");
        has("steps[2].actions[0].http.url", "{mq9.…} names no member");
        has("steps[1].member", "moved by an earlier step already");
        has("steps", "no step moves the member mq2");
    }

    #[test]
    fn a_polled_check_makes_a_bounded_number_of_attempts() {
        // 0.1 s over a week: six million kept attempts.
        let e = refused(&SOLACE.replace(
            "passes = 2",
            "passes = 2\ninterval_secs = 0.1\ndeadline_secs = 604800",
        ));
        assert!(
            e.iter()
                .any(|l| l.starts_with("after_each_step[0].interval_secs")
                    && l.contains("6048000 attempts")
                    && l.contains("at least 61 s")),
            "{e:#?}"
        );
        // An approval is not polled for evidence: its long deadline is fine.
        Definition::from_toml(&SOLACE.replace(
            "prompt = \"move the primary?\" }",
            "prompt = \"move the primary?\" }, interval_secs = 0.1, deadline_secs = 604800",
        ))
        .unwrap();
    }

    #[test]
    fn a_check_asks_exactly_one_thing_and_compares_numbers_only_with_numbers() {
        let e = refused(&SOLACE.replace(
            "before = [{ approval = { prompt = \"move the primary?\" } }]",
            "before = [{ approval = { prompt = \"x\" }, wait = { secs = 5 } }, {}, { http = { url = \"http://{mq1.LISTEN}/v\", json = { pointer = \"v\", op = \">=\", value = \"3\" } } }]",
        ));
        assert!(
            e.iter()
                .any(|l| l.starts_with("steps[2].before[0]: a check asks one thing (2 given)")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("steps[2].before[1]: a check asks one thing (0 given)")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("steps[2].before[2].http.json.pointer")),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("steps[2].before[2].http.json.value: >= compares numbers")),
            "{e:#?}"
        );
    }

    #[test]
    fn json_expectations_say_why_they_do_not_hold() {
        let up = JsonExpect {
            pointer: "/up".into(),
            op: CompareOp::Eq,
            value: serde_json::json!(true),
        };
        assert_eq!(up.holds(&serde_json::json!({"up": true})), Ok(()));
        assert_eq!(
            up.holds(&serde_json::json!({"up": false})).unwrap_err(),
            "/up is false, wanted == true"
        );
        assert_eq!(
            up.holds(&serde_json::json!({})).unwrap_err(),
            "the answer has nothing at /up"
        );
        let view = JsonExpect {
            pointer: "/view".into(),
            op: CompareOp::Ge,
            value: serde_json::json!(2),
        };
        assert_eq!(view.holds(&serde_json::json!({"view": 3})), Ok(()));
        assert!(view.holds(&serde_json::json!({"view": 1})).is_err());
        assert_eq!(
            view.holds(&serde_json::json!({"view": "3"})).unwrap_err(),
            "/view is \"3\", not a number"
        );
    }
}
