//! The grid inventory (`grids.toml`): which grids the console may use and
//! how to reach their controllers.
//!
//! ```toml
//! [[grid]]
//! name = "east"
//! address = "127.0.0.1:2201"
//! user = "migctl"
//! description = "Primary data centre"
//! ```

use crate::name::GridName;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridEntry {
    pub name: GridName,
    /// `host:port` of the controller's SSH server.
    pub address: String,
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default)]
    pub description: String,
}

fn default_user() -> String {
    "migctl".into()
}

impl GridEntry {
    /// Host and port; the port defaults to 22.
    pub fn host_port(&self) -> (String, u16) {
        match self.address.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                p.parse().unwrap_or(22),
            ),
            _ => (self.address.clone(), 22),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub grids: Vec<GridEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    grid: Vec<GridEntry>,
}

#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {problem}\n  fix: {fix}", path.display())]
pub struct InventoryError {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
    pub fix: String,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
            path: path.to_owned(),
            line: 0,
            problem: format!("cannot read the grid inventory: {e}"),
            fix: "create it with one [[grid]] table per grid (name, address, user)".into(),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let file: File = toml::from_str(text).map_err(|e| InventoryError {
            path: path.to_owned(),
            line: e
                .span()
                .and_then(|s| text.get(..s.start))
                .map_or(1, |t| t.matches('\n').count() + 1),
            problem: e.message().trim().to_owned(),
            fix: r#"each grid is [[grid]] with name = "east", address = "host:port", user = "migctl""#
                .into(),
        })?;
        let mut seen = std::collections::HashSet::new();
        for g in &file.grid {
            if !seen.insert(g.name.clone()) {
                return Err(InventoryError {
                    path: path.to_owned(),
                    line: line_of(text, &format!("\"{}\"", g.name)),
                    problem: format!("grid {} is listed twice", g.name),
                    fix: "keep one [[grid]] table per grid name".into(),
                });
            }
        }
        Ok(Inventory { grids: file.grid })
    }

    pub fn get(&self, name: &GridName) -> Option<&GridEntry> {
        self.grids.iter().find(|g| &g.name == name)
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_and_bad_ones_name_the_line() {
        let inv = Inventory::parse(
            Path::new("grids.toml"),
            "[[grid]]\nname = \"east\"\naddress = \"127.0.0.1:2201\"\n\n[[grid]]\nname = \"west\"\naddress = \"west.example\"\nuser = \"ops\"\n",
        )
        .unwrap();
        assert_eq!(inv.grids.len(), 2);
        assert_eq!(inv.grids[0].host_port(), ("127.0.0.1".into(), 2201));
        assert_eq!(inv.grids[0].user, "migctl");
        assert_eq!(inv.grids[1].host_port(), ("west.example".into(), 22));

        let err = Inventory::parse(
            Path::new("grids.toml"),
            "[[grid]]\nname = \"a b\"\naddress = \"x:1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("grids.toml:2:"), "{err}");
        assert!(err.contains("contains ' '"), "{err}");

        let err = Inventory::parse(
            Path::new("grids.toml"),
            "[[grid]]\nname = \"a\"\naddress = \"x:1\"\n[[grid]]\nname = \"a\"\naddress = \"y:1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("grids.toml:5: grid a is listed twice"),
            "{err}"
        );
    }
}
