//! What a console needs to travel with the app it lives in (MIG's way):
//! everything it knows on the app's `config` volume, with room for the
//! operation's log, and a target grid where the app can start. Checked by
//! pre-flight; nothing is changed anywhere.

use crate::config::Settings;
use app::model::Action;
use grid::dialect::{AppInfo, TemplateInfo};
use std::path::Path;

/// The volume MIG mounts at `/mnt/config`: the console's state lives there.
pub const CONFIG_VOLUME: &str = "config";

/// Room an operation needs on the config volume beyond what is stored
/// already: its events, the lock, the database's journal.
pub const OPERATION_HEADROOM: u64 = 8 << 20;

/// Why a console inside `source` cannot stop and wake up with it, if it
/// cannot: for a migrate, its inventory, key or known hosts live outside its
/// config directory (they would stay behind); the app has no config volume;
/// or the volume is too small for what is stored plus an operation's log
/// (`used` bytes now): a full volume fails the app at stop.
pub fn obstacle(
    settings: &Settings,
    action: Action,
    source: &AppInfo,
    used: u64,
) -> Option<String> {
    let app = &source.name;
    let travels = [
        ("grid inventory", &settings.grids_file),
        ("private key", &settings.private_key_file),
        ("known hosts file", &settings.known_hosts_file),
    ];
    let must_travel = if action.moves() { &travels[..] } else { &[] };
    for (what, file) in must_travel {
        if !inside(file, &settings.config_dir) {
            return Some(format!(
                "the console's {what} {} is outside its config directory {}: it would not travel with {app}; move it into the config volume and point migctl.toml at it",
                file.display(),
                settings.config_dir.display()
            ));
        }
    }
    let Some(volume) = source
        .volumes
        .iter()
        .find(|v| v.name.as_str() == CONFIG_VOLUME)
    else {
        return Some(format!(
            "{app} has no `{CONFIG_VOLUME}` volume: the console's state would not travel with it"
        ));
    };
    let needed = used.saturating_add(OPERATION_HEADROOM);
    if volume.size < needed {
        return Some(format!(
            "{app}'s config volume is too small: {} MiB, and the console's state takes {} MiB plus {} MiB for the operation's log; give {app} a config volume of at least {} MiB",
            volume.size >> 20,
            used.div_ceil(1 << 20),
            OPERATION_HEADROOM >> 20,
            needed.div_ceil(1 << 20)
        ));
    }
    None
}

/// Why the target grid cannot take the copy, if it cannot: it lacks the
/// helper's template, or the template the app runs from (a copy there
/// could never start).
pub fn missing_template(
    grid: &grid::GridName,
    source: &AppInfo,
    helper_template: &str,
    templates: &[TemplateInfo],
) -> Option<String> {
    let has = |name: &str| templates.iter().any(|t| t.name.as_str() == name);
    if !has(helper_template) {
        return Some(format!(
            "grid {grid} has no {helper_template} template: the helper that copies cannot run there; ask the grid's administrator to install it"
        ));
    }
    match &source.template {
        Some(t) if !has(t.as_str()) => Some(format!(
            "grid {grid} has no template {t}, which {} runs from: its copy could not start there; add the template to {grid} or pick another grid",
            source.name
        )),
        _ => None,
    }
}

fn inside(file: &Path, dir: &Path) -> bool {
    match (file.canonicalize(), dir.canonicalize()) {
        (Ok(f), Ok(d)) => f.starts_with(d),
        _ => file.starts_with(dir),
    }
}

/// Bytes the files under `dir` take (what the config volume must hold).
pub fn used_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => used_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid::dialect::{AppState, VolumeSpec};

    fn shop(config_size: Option<u64>, template: Option<&str>) -> AppInfo {
        let mut volumes = vec![VolumeSpec {
            name: "data".parse().unwrap(),
            size: 1 << 30,
        }];
        if let Some(size) = config_size {
            volumes.push(VolumeSpec {
                name: CONFIG_VOLUME.parse().unwrap(),
                size,
            });
        }
        AppInfo {
            name: "shop".parse().unwrap(),
            state: AppState::Running,
            template: template.map(|t| t.parse().unwrap()),
            properties: Default::default(),
            volumes,
            machine: None,
        }
    }

    /// Settings of a console whose files are all in `dir` (the defaults).
    fn settings(dir: &Path) -> Settings {
        crate::config::load(dir, &crate::config::Overrides::default())
            .unwrap()
            .0
    }

    #[test]
    fn the_console_travels_only_with_everything_on_a_big_enough_config_volume() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        assert_eq!(
            obstacle(&s, Action::Migrate, &shop(Some(64 << 20), None), 1 << 20),
            None
        );

        let small = obstacle(&s, Action::Migrate, &shop(Some(8 << 20), None), 3 << 20).unwrap();
        assert!(
            small.contains("config volume is too small: 8 MiB")
                && small.contains("at least 11 MiB"),
            "{small}"
        );
        let none = obstacle(&s, Action::Migrate, &shop(None, None), 0).unwrap();
        assert!(none.contains("has no `config` volume"), "{none}");

        let mut outside = s.clone();
        outside.grids_file = "/etc/migctl/grids.toml".into();
        let why = obstacle(&outside, Action::Migrate, &shop(Some(64 << 20), None), 0).unwrap();
        assert!(
            why.contains("grid inventory /etc/migctl/grids.toml is outside its config directory"),
            "{why}"
        );
        // A snapshot wakes up where it was: its files stay, its writes must fit.
        assert_eq!(
            obstacle(&outside, Action::Snapshot, &shop(Some(64 << 20), None), 0),
            None
        );
        assert!(
            obstacle(
                &outside,
                Action::Snapshot,
                &shop(Some(8 << 20), None),
                3 << 20
            )
            .is_some()
        );
    }

    #[test]
    fn a_target_grid_needs_the_helper_and_the_app_template() {
        let t = |names: &[&str]| -> Vec<TemplateInfo> {
            names
                .iter()
                .map(|n| TemplateInfo {
                    name: n.parse().unwrap(),
                    description: String::new(),
                })
                .collect()
        };
        let west: grid::GridName = "west".parse().unwrap();
        let app = shop(Some(64 << 20), Some("Migctl"));
        assert_eq!(
            missing_template(&west, &app, "MigHelper", &t(&["MigHelper", "Migctl"])),
            None
        );
        let why = missing_template(&west, &app, "MigHelper", &t(&["MigHelper"])).unwrap();
        assert!(why.contains("grid west has no template Migctl"), "{why}");
        let why = missing_template(&west, &app, "MigHelper", &t(&["Migctl"])).unwrap();
        assert!(why.contains("no MigHelper template"), "{why}");
    }
}
