//! Group definitions kept as files in the console's directory, named
//! `group-NAME.toml` (the demo writes `group-mq.toml` there): the pages
//! offer them by name; nothing outside that directory is read.

use super::GroupError;
use std::path::Path;

/// Whether a file name is a kept definition's.
fn is_definition(name: &str) -> bool {
    name.starts_with("group-")
        && name.ends_with(".toml")
        && name.len() > "group-.toml".len()
        && !name.contains(['/', '\\'])
}

/// The kept definitions' file names, sorted.
pub fn kept(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_definition(n))
        .collect();
    names.sort();
    names
}

/// A kept definition named `name`, as the API's JSON.
pub fn read(dir: &Path, name: &str) -> Result<serde_json::Value, GroupError> {
    if !kept(dir).iter().any(|n| n == name) {
        return Err(GroupError::Bad(format!(
            "definition: {name:?} is not a group definition kept in {} (group-NAME.toml)",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(dir.join(name))
        .map_err(|e| GroupError::Bad(format!("definition: cannot read {name}: {e}")))?;
    group::Definition::toml_as_json(&text).map_err(GroupError::Definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_group_toml_files_of_the_directory_are_definitions() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "group-mq.toml",
            "group-.toml",
            "migctl.toml",
            "group-a.toml.bak",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("group-dir.toml")).unwrap();
        assert_eq!(kept(dir.path()), ["group-mq.toml"]);
        assert!(matches!(
            read(dir.path(), "../group-mq.toml"),
            Err(GroupError::Bad(_))
        ));
        assert!(matches!(
            read(dir.path(), "migctl.toml"),
            Err(GroupError::Bad(_))
        ));
        // Kept but empty: its problems are named.
        assert!(matches!(
            read(dir.path(), "group-mq.toml"),
            Err(GroupError::Definition(_))
        ));
    }
}
