//! The hydrate entry: the browser calls `hydrate()` once the wasm module loads.
// The page views are deeply nested types; the release build needs room.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
