//! `grids.toml`, the grid inventory: never a panic; a refusal names a line
//! an editor shows (an error at the end of a file that ends with a newline
//! is on the empty line after it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = grid::inventory::Inventory::parse(std::path::Path::new("grids.toml"), text) {
        let lines = text.matches('\n').count() + 1;
        assert!((1..=lines).contains(&e.line), "line {} of {text:?}", e.line);
    }
});
