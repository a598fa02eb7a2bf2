//! The grid library: validated names now; the controller dialect and the
//! SSH client build on them.

pub mod name;

pub use name::{AppName, GridName, NameError, VolumeName};
