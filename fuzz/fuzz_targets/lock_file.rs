//! `mig.lock`, what the console reconciles from at every start (and what an
//! admin, a script or a disk may have written): never a panic; a lock it
//! holds is one it writes back and reads again unchanged (it archives what
//! it read); an unreadable one shows at most `SHOWN_BYTES` of its text and
//! its refusal can be said.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migctl::lock::{self, LockError, LockState};

fuzz_target!(|data: &[u8]| {
    let state = lock::parse(data, data.len() as u64);
    match &state {
        LockState::Held(l) => {
            let written = serde_json::to_vec_pretty(l).expect("a held lock can be written");
            match lock::parse(&written, written.len() as u64) {
                LockState::Held(again) => assert_eq!(&again, l),
                other => panic!("wrote {l:?} and read back {other:?}"),
            }
        }
        LockState::Unreadable { raw, problem } => {
            assert!(raw.chars().count() <= lock::SHOWN_BYTES);
            assert!(!problem.is_empty());
        }
        LockState::Free => panic!("bytes are never a free lock"),
    }
    assert!(!LockError::Held(Box::new(state)).to_string().is_empty());
});
