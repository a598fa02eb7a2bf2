//! A console that does not answer for a while: the CLI's rule for how long
//! it waits (a console inside the app it moves is away until the app starts
//! where it goes) and what it says when the console goes and comes back.
//! `op watch`, `group watch` and every retried GET share it.

use std::time::{Duration, Instant};

/// How long the CLI waits for a console that does not answer.
pub const AWAY_LIMIT: Duration = Duration::from_secs(600);

/// The console's current absence, if any: when it began and how long the
/// CLI waits for it to end.
#[derive(Debug)]
pub struct Away {
    since: Option<Instant>,
    limit: Duration,
}

impl Default for Away {
    fn default() -> Away {
        Away {
            since: None,
            limit: AWAY_LIMIT,
        }
    }
}

/// What a failure to reach the console means at `now`.
#[derive(Debug, PartialEq, Eq)]
pub enum Silence {
    /// The first failure of an absence: say so once, then retry.
    Began,
    /// Still within the limit: retry quietly.
    Continues,
    /// Longer than the limit: give up.
    TooLong,
}

impl Away {
    /// The console did not answer at `now`.
    pub fn silent(&mut self, now: Instant) -> Silence {
        match self.since {
            None => {
                self.since = Some(now);
                Silence::Began
            }
            Some(since) if now.saturating_duration_since(since) > self.limit => Silence::TooLong,
            Some(_) => Silence::Continues,
        }
    }

    /// The console answered at `now`: the absence (if any) ends, and a
    /// later one counts from its own start — two drops an hour apart are
    /// not an hour away. Returns how long it lasted.
    pub fn answered(&mut self, now: Instant) -> Option<Duration> {
        self.since
            .take()
            .map(|since| now.saturating_duration_since(since))
    }

    /// The line said when an absence begins.
    pub fn began_line(&self, cause: &dyn std::fmt::Display) -> String {
        format!(
            "console does not answer ({cause}); it may be moving with its app: retrying for up to {} min",
            self.limit.as_secs() / 60
        )
    }

    /// The context of the error given up with.
    pub fn too_long(&self) -> String {
        format!(
            "the console has not answered for {} min",
            self.limit.as_secs() / 60
        )
    }

    /// The line said when the console answers again after `lasted`.
    pub fn back_line(lasted: Duration) -> String {
        format!("console answers again after {:.0} s", lasted.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absence_is_said_once_and_given_up_after_the_limit() {
        let t0 = Instant::now();
        let mut away = Away::default();
        assert_eq!(away.silent(t0), Silence::Began);
        assert_eq!(away.silent(t0 + Duration::from_secs(1)), Silence::Continues);
        assert_eq!(away.silent(t0 + AWAY_LIMIT), Silence::Continues);
        assert_eq!(
            away.silent(t0 + AWAY_LIMIT + Duration::from_secs(1)),
            Silence::TooLong
        );
        assert!(away.began_line(&"refused").contains("up to 10 min"));
        assert_eq!(away.too_long(), "the console has not answered for 10 min");
    }

    #[test]
    fn an_answer_ends_the_absence_and_the_next_one_counts_from_its_own_start() {
        let t0 = Instant::now();
        let mut away = Away::default();
        assert_eq!(away.answered(t0), None, "nothing was away");
        away.silent(t0);
        let back = t0 + Duration::from_secs(7);
        assert_eq!(away.answered(back), Some(Duration::from_secs(7)));
        assert_eq!(
            Away::back_line(Duration::from_secs(7)),
            "console answers again after 7 s"
        );
        // An hour later, a new drop: it begins again, it is not an hour away.
        let later = back + Duration::from_secs(3600);
        assert_eq!(away.silent(later), Silence::Began);
        assert_eq!(
            away.silent(later + Duration::from_secs(5)),
            Silence::Continues
        );
    }
}
