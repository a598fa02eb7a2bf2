//! A controller's exec line, as gridsim (and any controller speaking the
//! dialect) parses it: never a panic, and whatever parses goes back to a
//! line that parses to the same command.
#![no_main]

use grid::dialect::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = Request::parse_line(line) {
        let again = request.command.to_line();
        let reparsed = Request::parse_line(&again)
            .unwrap_or_else(|e| panic!("{line:?} parsed, its line {again:?} did not: {e:?}"));
        assert_eq!(reparsed.command, request.command, "{line:?} → {again:?}");
    }
});
