//! `migctl.toml`, the console's settings: never a panic; a refusal in the
//! file names a line an editor shows and says what to write; settings it
//! accepts hold their byte values without overflow (MiB settings become
//! bytes for the helper).
#![no_main]

use libfuzzer_sys::fuzz_target;
use migctl::config::{self, ConfigError, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = std::path::Path::new("/etc/migctl");
    match config::resolve(dir, Some(text), &Overrides::default()) {
        Ok((settings, warnings)) => {
            let mib = 1u64 << 20;
            if let Some(rate) = settings.copy_rate_limit_mib {
                assert!(rate.checked_mul(mib).is_some(), "{rate} MiB/s");
            }
            assert!(settings.warm_converged_mib.checked_mul(mib).is_some());
            assert!(settings.grids_file.starts_with(dir) || settings.grids_file.is_absolute());
            for w in warnings {
                assert!(w.starts_with("/etc/migctl/migctl.toml:"), "{w}");
            }
        }
        Err(ConfigError::Invalid { line, fix, .. }) => {
            let lines = text.matches('\n').count() + 1;
            assert!((1..=lines).contains(&line), "line {line} of {text:?}");
            assert!(fix.starts_with("write "), "{fix}");
        }
        Err(ConfigError::Value { fix, .. }) => assert!(fix.starts_with("write "), "{fix}"),
        Err(e @ ConfigError::Unreadable { .. }) => panic!("text was given: {e}"),
    }
});
