//! Types the server and the browser both hold: who is signed in, what the
//! console is configured for, what the pages show.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a user may do. Ordered: each role can do everything the ones before it can.
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

/// Which actions the console offers (MIG's `mode` property).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Migrate,
    Snapshot,
    #[default]
    Both,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Migrate => "migrate",
            Mode::Snapshot => "snapshot",
            Mode::Both => "both",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Migrate => "migrate only",
            Mode::Snapshot => "snapshot only",
            Mode::Both => "migrate and snapshot",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "migrate" => Ok(Mode::Migrate),
            "snapshot" => Ok(Mode::Snapshot),
            "both" => Ok(Mode::Both),
            other => Err(format!(
                "`{other}` is not a mode; use migrate, snapshot or both"
            )),
        }
    }
}

/// What an operation does to the source app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Copy to the target, start it, destroy the source once the target is verified.
    Migrate,
    /// Copy to the target (which stays stopped) and restart the source.
    Snapshot,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Migrate => "migrate",
            Action::Snapshot => "snapshot",
        }
    }

    /// Whether the console's mode offers this action.
    pub fn allowed_by(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (_, Mode::Both) | (Action::Migrate, Mode::Migrate) | (Action::Snapshot, Mode::Snapshot)
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation as the API and the pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationView {
    pub id: String,
    pub action: Action,
    pub source_grid: String,
    pub source_app: String,
    pub target_grid: String,
    pub target_app: String,
    /// queued, preflight, provisioning, stopping_source, copying, starting_target,
    /// restarting_source, verifying, reconciling, done, failed, cancelled.
    pub phase: String,
    /// `None` while running; then done, failed or cancelled.
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

/// One event of an operation (phase change, log line, progress sample, states).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub source: String,
    /// The line to show (log text, phase text, progress summary).
    pub text: String,
}

/// An operation with everything its monitor page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationDetail {
    pub operation: OperationView,
    pub events: Vec<EventView>,
    /// Latest states seen (source, target, helper), as text.
    pub states: Option<(String, String, String)>,
}

/// The lock as the dashboard's banner shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockView {
    /// `None` for an unreadable lock.
    pub op_id: Option<String>,
    pub summary: String,
}

/// The user behind a request, as the server established it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user_id: i64,
    pub name: String,
    pub role: Role,
}

/// What this console is configured to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleInfo {
    pub version: String,
    pub current_grid: Option<String>,
    pub current_app: Option<String>,
    pub mode: Mode,
    pub config_dir: String,
    pub grids_file: String,
    pub private_key_file: String,
    pub known_hosts_file: String,
}

/// One row of the users page.
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub state: String,
    pub template: Option<String>,
    pub volumes: Vec<VolumeView>,
}

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
    #[test]
    fn bytes_read_like_an_operator_writes_them() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(human_bytes(100 << 30), "100 GiB");
    }

    use super::*;

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
