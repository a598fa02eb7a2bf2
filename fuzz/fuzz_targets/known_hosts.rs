//! `known_hosts`, the pinned host keys: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = grid::known_hosts::KnownHosts::parse(std::path::Path::new("known_hosts"), text);
});
