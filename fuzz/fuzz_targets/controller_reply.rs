//! What a controller answers (a console reads it from every grid of its
//! inventory, and a grid may be hostile or broken): the error line of a
//! refused command, and each JSON reply of the dialect. Never a panic; a
//! refusal is one printable line of bounded length that reads back as
//! itself; a reply that parses writes back to JSON that parses the same.
//! Input: a selector byte, then the reply (stderr or stdout).
#![no_main]

use grid::dialect::{
    AppInfo, AppSummary, BlockHashes, Checksum, GridInfo, LogLine, MAX_MESSAGE_CHARS, PullReceipt,
    Refusal, StopReply, TemplateInfo, WriteReceipt,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(reply: &[u8]) {
    if let Ok(parsed) = serde_json::from_slice::<T>(reply) {
        let written = serde_json::to_vec(&parsed).expect("a parsed reply can be written");
        let again: T = serde_json::from_slice(&written)
            .unwrap_or_else(|e| panic!("{parsed:?} wrote {written:?}, which does not parse: {e}"));
        assert_eq!(again, parsed);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, reply)) = data.split_first() else {
        return;
    };
    match selector % 11 {
        0 => {
            let status = u32::from(selector);
            let r = Refusal::from_reply(reply, status.max(1));
            assert!(!r.message.chars().any(char::is_control), "{r:?}");
            assert!(r.message.chars().count() <= MAX_MESSAGE_CHARS, "{r:?}");
            assert_eq!(Refusal::from_stderr(&r.to_line()), Some(r));
        }
        1 => round_trip::<GridInfo>(reply),
        2 => round_trip::<Vec<AppSummary>>(reply),
        3 => round_trip::<AppInfo>(reply),
        4 => round_trip::<LogLine>(reply),
        5 => round_trip::<Checksum>(reply),
        6 => round_trip::<BlockHashes>(reply),
        7 => round_trip::<WriteReceipt>(reply),
        8 => round_trip::<PullReceipt>(reply),
        9 => round_trip::<Vec<TemplateInfo>>(reply),
        _ => round_trip::<StopReply>(reply),
    }
});
