//! Names of grids, apps and volumes. Every name that reaches a controller
//! passes the rule first (`operation_model::name`, the one definition the
//! browser's form and the API's schema use too).

use serde::{Deserialize, Serialize};
use std::fmt;

use operation_model::name::check;
pub use operation_model::name::{MAX_LEN, NameError, PATTERN};

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check($kind, &s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A grid in the inventory.
    GridName,
    "grid"
);
name_type!(
    /// An app on a grid.
    AppName,
    "app"
);
name_type!(
    /// A volume of an app.
    VolumeName,
    "volume"
);
name_type!(
    /// A template apps are provisioned from.
    TemplateName,
    "template"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_names_operators_use() {
        for ok in [
            "shop",
            "east",
            "MigHelper_shop",
            "a",
            "db-2",
            &"a".repeat(64),
        ] {
            assert!(AppName::new(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn refuses_hostile_and_malformed_names_with_the_reason() {
        let cases: [(&str, &str); 7] = [
            ("", "app name is empty"),
            ("a;rm -rf /", "contains ';'"),
            ("$(x)", "must start with a letter"),
            ("my app", "contains ' '"),
            ("café", "contains 'é'"),
            ("1shop", "must start with a letter"),
            ("a/b", "contains '/'"),
        ];
        for (bad, why) in cases {
            let err = AppName::new(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(why), "{bad:?}: got {err:?}, want {why:?}");
        }
        let long = "a".repeat(10_000);
        assert_eq!(
            GridName::new(long).err(),
            Some(NameError::TooLong {
                kind: "grid",
                len: 10_000
            })
        );
    }

    #[test]
    fn deserializing_checks_the_rules() {
        #[derive(Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            grid: GridName,
        }
        let err = serde_json::from_str::<T>(r#"{"grid":"x y"}"#)
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("contains ' '"));
    }
}
