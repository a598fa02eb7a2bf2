//! The grid library: validated names, the controller dialect (typed commands
//! and replies), the block digests, the grid inventory, SSH keys and known_hosts, and the SSH
//! client. Used by the console, the helper and gridsim alike.

pub mod blocks;
pub mod client;
pub mod dialect;
pub mod inventory;
pub mod keys;
pub mod known_hosts;
pub mod name;
pub mod peers;
pub mod process;
pub mod serve;
pub mod volume_file;

pub use client::{ClientConfig, Connection, Endpoint, GridError, Grids, LogFollower};
pub use name::{AppName, GridName, NameError, TemplateName, VolumeName};
