//! migctl: the web console that migrates and snapshots apps between grids.
//! `main.rs` is the command line; everything else is here so tests can start
//! a real console on port 0.
// The pages' route tree is one deeply nested type (as in frontend/).
#![recursion_limit = "256"]

pub mod auth;
pub mod away;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod demo;
pub mod demo_group;
pub mod demo_libvirt;
pub mod grids;
pub mod group_cli;
pub mod groups;
pub mod lock;
pub mod mq;
pub mod operation;
pub mod reconcile;
pub mod remote;
pub mod retention;
pub mod swarm;
pub mod telemetry;
pub mod watch;
pub mod web;

pub use console::Console;
