//! One way to show an instant on every page: to the second, never with
//! its fraction; in UTC as the server renders it (a page read without
//! JavaScript says so), then in the reader's local time once hydrated.

use leptos::prelude::*;

/// An RFC 3339 instant for people, as the server renders it:
/// `2026-12-05T10:00:01.123456Z` → `2026-12-05 10:00:01 UTC`. Anything
/// that is not such an instant is shown as it is.
pub fn utc_text(at: &str) -> String {
    let b = at.as_bytes();
    let shaped = b.len() >= 20
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (at.ends_with('Z') || at.ends_with("+00:00"));
    match (shaped, at.get(..10), at.get(11..19)) {
        (true, Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => at.to_owned(),
    }
}

/// The same instant in the browser's time zone, with the zone's offset:
/// `2026-12-05 11:00:01 (UTC+1)`; `None` where it does not parse.
#[cfg(feature = "hydrate")]
fn local_text(at: &str) -> Option<String> {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(at));
    let ms = d.get_time();
    if ms.is_nan() {
        return None;
    }
    let offset = -(d.get_timezone_offset() as i64); // minutes east of UTC
    let zone = match offset {
        0 => "UTC".to_owned(),
        m if m % 60 == 0 => format!("UTC{:+}", m / 60),
        m => format!(
            "UTC{}{}:{:02}",
            if m < 0 { '-' } else { '+' },
            m.abs() / 60,
            m.abs() % 60
        ),
    };
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} ({zone})",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    ))
}

/// `<time datetime=…>` showing [`utc_text`], then the local time.
#[component]
pub fn When(#[prop(into)] at: String) -> impl IntoView {
    let utc = utc_text(&at);
    let shown = RwSignal::new(utc.clone());
    #[cfg(feature = "hydrate")]
    {
        let at = at.clone();
        Effect::new(move |_| {
            if let Some(local) = local_text(&at) {
                shown.set(local);
            }
        });
    }
    view! { <time datetime=at title=utc>{move || shown.get()}</time> }
}

#[cfg(test)]
mod tests {
    use super::utc_text;

    #[test]
    fn an_instant_is_shown_to_the_second_and_says_utc() {
        assert_eq!(
            utc_text("2026-12-05T10:00:01.123456789Z"),
            "2026-12-05 10:00:01 UTC"
        );
        assert_eq!(utc_text("2026-12-05T10:00:01Z"), "2026-12-05 10:00:01 UTC");
        assert_eq!(
            utc_text("2026-12-05T10:00:01+00:00"),
            "2026-12-05 10:00:01 UTC"
        );
        // Not an instant in UTC: shown as it came, never cut.
        assert_eq!(
            utc_text("2026-12-05T10:00:01+02:00"),
            "2026-12-05T10:00:01+02:00"
        );
        assert_eq!(utc_text("soon"), "soon");
        assert_eq!(utc_text(""), "");
    }
}
