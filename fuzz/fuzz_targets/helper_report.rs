//! A line of the helper's log, as the console reads it: never a panic;
//! a report goes back to a line that reads as the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use operation_model::Report;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let report = Report::decode(line);
    let _ = report.text();
    assert_eq!(Report::decode(&report.encode()), report, "{line:?}");
});
