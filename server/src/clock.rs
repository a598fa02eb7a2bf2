//! The one clock: instants in UTC, written as RFC 3339 text everywhere
//! they leave the process (database rows, the lock file, the API).

use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant, UTC. Stored and sent as RFC 3339 (`2026-11-23T19:33:08.123Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

pub fn now() -> Timestamp {
    Timestamp(OffsetDateTime::now_utc())
}

impl Timestamp {
    /// `hours` later (at most a century: the settings allow a year).
    pub fn plus_hours(self, hours: u64) -> Timestamp {
        let hours = i64::try_from(hours.min(100 * 8766)).unwrap_or(0);
        Timestamp(
            self.0
                .checked_add(time::Duration::hours(hours))
                .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc()),
        )
    }

    /// Whole seconds from this instant until now (0 for one in the future).
    pub fn age_secs(self) -> u64 {
        u64::try_from((OffsetDateTime::now_utc() - self.0).whole_seconds()).unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            // Only years outside 0..=9999 cannot be written.
            Err(_) => write!(f, "{}", self.0.unix_timestamp()),
        }
    }
}

/// Text that is not an instant this clock can write back.
#[derive(Debug, thiserror::Error)]
pub enum BadTime {
    #[error("{0}")]
    Parse(#[from] time::error::Parse),
    /// RFC 3339 allows an offset that moves the instant, in UTC, out of the
    /// years 0000–9999 it can be written in (`9999-12-31T23:59:59-23:59`).
    #[error("it is outside the years 0000 to 9999 in UTC")]
    OutOfRange,
}

impl std::str::FromStr for Timestamp {
    type Err = BadTime;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = OffsetDateTime::parse(s, &Rfc3339)?
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|t| (0..=9999).contains(&t.year()))
            .ok_or(BadTime::OutOfRange)?;
        Ok(Timestamp(t))
    }
}

/// What sqlx's `#[sqlx(try_from = "String")]` reads rows with.
impl TryFrom<String> for Timestamp {
    type Error = BadTime;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_what_they_write_and_junk_is_refused() {
        let t = now();
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        let z: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        assert_eq!(z.to_string(), "2026-11-21T10:00:00Z");
        assert!(z.age_secs() > 0);
        assert!("yesterday".parse::<Timestamp>().is_err());
        // Found writing the lock_file fuzz target: an offset that leaves the
        // years a timestamp can be written in panicked (to_offset), or read
        // as a time that wrote back as a bare number.
        for edge in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+01:00"] {
            assert!(
                matches!(edge.parse::<Timestamp>(), Err(BadTime::OutOfRange)),
                "{edge}"
            );
        }
        let t: Timestamp = "0000-01-01T00:00:00-01:00".parse().unwrap();
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        let json: Result<Timestamp, _> = serde_json::from_str("\"not a time\"");
        assert!(
            json.unwrap_err()
                .to_string()
                .contains("not an RFC 3339 time")
        );
    }
}
