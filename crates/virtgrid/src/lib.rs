//! virtgrid: the controller dialect on a libvirt host. A daemon per host
//! ([`socket::serve`]) serves one grid's apps — the domains whose migctl
//! metadata names the grid ([`host::Host`]) — through the same dispatch as
//! gridsim (`grid::serve`); OpenSSH's `ForceCommand` runs the relay
//! ([`socket::relay`]), which hands each command to the daemon.

pub mod accel;
pub mod applog;
pub mod config;
pub mod define;
pub mod domain;
pub mod host;
pub mod hostapp;
pub mod socket;
pub mod state;
pub mod supervise;
pub mod virsh;
