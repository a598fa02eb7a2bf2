//! Text from outside — an app's log, a helper's words, a grid's — as a
//! terminal, a text file or a page may show it: never interpreted.

use std::borrow::Cow;

/// `text` with what a terminal would act on made visible, as `cat -v` and
/// `less` show it: C0 controls as `^X` (ESC as `^[`, CR as `^M`, a newline
/// inside a line as `^J`), DEL as `^?`; C1 controls and the invisible
/// characters that reorder or hide text (bidi overrides and isolates,
/// zero-width characters, line separators) as `<U+202E>`. A tab stays a
/// tab. Text with none of them is returned as it is.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_showing) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !needs_showing(c) => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            c => out.push_str(&format!("<U+{:04X}>", c as u32)),
        }
    }
    Cow::Owned(out)
}

fn needs_showing(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c,
            '\u{061c}' // Arabic letter mark
            | '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides (RLO)
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}' // zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_shown_not_sent() {
        let hostile = "\x1b[2J\x1b]52;c;cGF3bmVk\x07\x1b]0;title\x07\x1b[6n\x1bP+q\x1b\\\r\
                       done\x1b[1A\u{9b}31m\u{202e}gpj.exe\x7f";
        let shown = visible(hostile);
        assert!(!shown.chars().any(needs_showing), "{shown}");
        assert_eq!(
            shown,
            "^[[2J^[]52;c;cGF3bmVk^G^[]0;title^G^[[6n^[P+q^[\\^M\
             done^[[1A<U+009B>31m<U+202E>gpj.exe^?"
        );
    }

    #[test]
    fn a_newline_inside_a_line_cannot_forge_another() {
        assert_eq!(
            visible("copied\n   412 2026-12-02T10:00:00Z console operation ended done"),
            "copied^J   412 2026-12-02T10:00:00Z console operation ended done"
        );
    }

    #[test]
    fn plain_text_tabs_and_other_scripts_pass_unchanged() {
        for t in [
            "",
            "pass 3: 4 MiB of 4 MiB changed",
            "a\tb",
            "Grüße, 東京 — ✓",
        ] {
            assert!(matches!(visible(t), Cow::Borrowed(_)), "{t}");
            assert_eq!(visible(t), t);
        }
    }
}
