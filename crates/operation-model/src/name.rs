//! The name rule of grids, apps and volumes, one definition for the
//! controller's client, the console's API schema and the browser's form:
//! [`PATTERN`]. Deliberately narrower than a shell word, so no quoting
//! ever matters.

/// The rule as a regular expression, for the API's schema.
pub const PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{0,63}$";

/// The longest name the dialect accepts.
pub const MAX_LEN: usize = 64;

/// Why a name was refused, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name is {len} characters long; at most {MAX_LEN} are allowed")]
    TooLong { kind: &'static str, len: usize },
    #[error("{kind} name {shown} must start with a letter (A-Z or a-z)")]
    BadStart { kind: &'static str, shown: String },
    #[error("{kind} name {shown} contains {bad:?}; use only letters, digits, `_` and `-`")]
    BadChar {
        kind: &'static str,
        shown: String,
        bad: char,
    },
}

pub fn check(kind: &'static str, s: &str) -> Result<(), NameError> {
    // Count characters, not bytes, so the message matches what the operator typed.
    let len = s.chars().count();
    if len == 0 {
        return Err(NameError::Empty { kind });
    }
    if len > MAX_LEN {
        return Err(NameError::TooLong { kind, len });
    }
    let shown = format!("{s:?}");
    let mut chars = s.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(NameError::BadStart { kind, shown });
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(NameError::BadChar { kind, shown, bad });
    }
    Ok(())
}

/// The name of the helper app an operation provisions on the target grid
/// for its target app `target` (MIG's `MigHelper_<app>`): the console, its
/// pages and the helper itself (which reads its own log) name it here.
pub fn helper_of(target: &str) -> String {
    format!("MigHelper_{target}")
}

/// The app whose existence on the target grid asks a warm operation's
/// helper to cut over now.
pub fn cutover_signal_of(target: &str) -> String {
    format!("MigCutNow_{target}")
}

/// Whether an app is one of migctl's own (a helper, a cutover signal),
/// never offered as an operation's source.
pub fn is_migctls_own(app: &str) -> bool {
    app.starts_with("MigHelper_") || app.starts_with("MigCutNow_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same answers as [`PATTERN`] (checked by hand: no regex crate
    /// here): lengths count characters, not bytes.
    #[test]
    fn the_rule_and_its_pattern_agree() {
        assert_eq!(check("app", "shop-2_b"), Ok(()));
        assert_eq!(check("app", &format!("a{}", "b".repeat(63))), Ok(()));
        assert!(matches!(check("app", ""), Err(NameError::Empty { .. })));
        assert!(matches!(
            check("app", "2shop"),
            Err(NameError::BadStart { .. })
        ));
        assert!(matches!(
            check("app", "a;rm -rf /"),
            Err(NameError::BadChar { bad: ';', .. })
        ));
        assert!(matches!(
            check("app", "café"),
            Err(NameError::BadChar { bad: 'é', .. })
        ));
        assert!(matches!(
            check("app", &"a".repeat(65)),
            Err(NameError::TooLong { len: 65, .. })
        ));
        // 40 two-byte characters are 40 characters, not "80, too long".
        assert!(matches!(
            check("app", &"é".repeat(40)),
            Err(NameError::BadStart { .. })
        ));
        assert_eq!(
            PATTERN,
            format!("^[A-Za-z][A-Za-z0-9_-]{{0,{}}}$", MAX_LEN - 1)
        );
    }
}
