//! The operation model, one definition for every process that speaks of
//! operations: the console (server), the browser (wasm) and the helper.
//!
//! States are enums with their rules as methods. On the wire and in the
//! database they keep the snake_case strings they always had; reading an
//! unknown string is an error ([`UnknownValue`]), never a default.

mod digest;
mod event;
pub mod group_run;
pub mod name;
mod outlook;
mod report;
mod state;
mod text;

pub use digest::{BadDigest, BlockDigest, HashAlgorithm};
pub use event::{EventKind, EventSource, PhaseData, StreamEvent, TextData};
pub use outlook::{DEFAULT_SMALL, Outlook};
pub use report::{CutoverReason, CutoverReport, Pass, Progress, Report, SourceStop, mib};
pub use state::{
    Action, AtPassLimit, CancelCleanup, Cutover, KeptState, Mode, Outcome, Phase, Settled,
};
pub use text::visible;

/// How long the source may take to stop by itself before it is forced,
/// unless the operation says otherwise: the helper's default, the form's
/// placeholder, the plan's `--timeout`.
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 120;
/// The longest stop timeout an operation may give its source: a day.
pub const MAX_STOP_TIMEOUT_SECS: u64 = 24 * 3600;
/// Hours a kept source stays before its deadline releases it, unless the
/// console's settings or the operation say otherwise.
pub const DEFAULT_KEEP_SOURCE_HOURS: u64 = 72;
/// The longest a source may be kept: a year.
pub const MAX_KEEP_SOURCE_HOURS: u64 = 8760;

/// A string that names none of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was being read: `phase`, `outcome`, …
    pub what: &'static str,
    pub value: String,
    /// The values that are known, for the message.
    pub known: &'static [&'static str],
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a known {}; use one of: {}",
            self.value,
            self.what,
            self.known.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// For an enum whose values all have a wire string: `as_str`, `ALL`,
/// `Display`, `FromStr` and `TryFrom<String>` (what sqlx's
/// `#[sqlx(try_from = "String")]` uses), one definition.
macro_rules! wire_enum {
    ($ty:ident, $what:literal, [$($variant:ident => $s:literal),+ $(,)?]) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            const NAMES: &'static [&'static str] = &[$($s),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $s),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    other => Err($crate::UnknownValue {
                        what: $what,
                        value: other.chars().take(64).collect(),
                        known: $ty::NAMES,
                    }),
                }
            }
        }

        /// Compares with the wire string, as tests and templates read it.
        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::UnknownValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}
pub(crate) use wire_enum;
