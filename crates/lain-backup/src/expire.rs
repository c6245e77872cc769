//! lain.yaml's `expire:`: how long a backup is kept.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Longest accepted expiry: past this, "keep forever" (an empty `expire`)
/// says it better, and date arithmetic stays far from overflowing.
const MAX_EXPIRE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How long a backup is kept: a duration, or forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expire(Option<Duration>);

impl Expire {
    /// Keep forever (an empty or missing `expire:`).
    pub const NEVER: Expire = Expire(None);

    /// Parses LAIN's format: a number and a unit, `s` seconds, `m`
    /// minutes, `h` hours, `d` days (`30s`, `3m`, `10h`, `10d`); several
    /// may follow each other (`1d12h`). Empty (or only spaces) is forever.
    pub fn parse(value: &str) -> Result<Self> {
        let text = value.trim();
        if text.is_empty() {
            return Ok(Self::NEVER);
        }
        let bad = |reason: String| Error::InvalidExpire {
            value: value.to_owned(),
            reason,
        };
        let mut total: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad(format!("expected a number at `{rest}`")));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad("the number is too large".to_owned()))?;
            rest = &rest[digits..];
            let Some(unit) = rest.chars().next() else {
                return Err(bad(format!(
                    "`{number}` has no unit: `{number}d` is days, `{number}h` hours, `{number}m` minutes, `{number}s` seconds"
                )));
            };
            let seconds: u64 = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                other => {
                    return Err(bad(format!(
                        "unknown unit `{other}`: use s, m (minutes), h or d"
                    )))
                }
            };
            rest = &rest[unit.len_utf8()..];
            total = number
                .checked_mul(seconds)
                .and_then(|s| total.checked_add(s))
                .filter(|&s| s <= MAX_EXPIRE.as_secs())
                .ok_or_else(|| {
                    bad("longer than 100 years: leave it empty to keep forever".to_owned())
                })?;
        }
        if total == 0 {
            return Err(bad(
                "a backup that expires at once is never kept: give a positive duration, or leave it empty to keep forever"
                    .to_owned(),
            ));
        }
        Ok(Self(Some(Duration::from_secs(total))))
    }

    /// Keep for `duration` (at most 100 years; longer is cut to that).
    pub fn after(duration: Duration) -> Self {
        Self(Some(duration.min(MAX_EXPIRE)))
    }

    pub fn duration(&self) -> Option<Duration> {
        self.0
    }

    /// When a backup taken at `created` expires; `None` for never.
    pub fn expire_at(&self, created: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let d = chrono::Duration::from_std(self.0?).ok()?;
        created.checked_add_signed(d)
    }
}

impl fmt::Display for Expire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("never"),
            Some(d) => write!(f, "{}s", d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn secs(s: &str) -> u64 {
        Expire::parse(s).unwrap().duration().unwrap().as_secs()
    }

    #[test]
    fn lain_units() {
        assert_eq!(secs("10d"), 10 * 86_400);
        assert_eq!(secs("10h"), 36_000);
        assert_eq!(secs("3m"), 180, "m is minutes in LAIN");
        assert_eq!(secs("30s"), 30);
        assert_eq!(secs(" 1d12h "), 86_400 + 12 * 3600);
        assert_eq!(Expire::parse("").unwrap(), Expire::NEVER);
        assert_eq!(Expire::parse("  ").unwrap(), Expire::NEVER);
    }

    #[test]
    fn bad_values_say_why() {
        for (value, needle) in [
            ("10", "has no unit"),
            ("d", "expected a number"),
            ("10w", "unknown unit `w`"),
            ("10 d", "unknown unit ` `"),
            ("-1d", "expected a number"),
            ("0d", "expires at once"),
            ("99999999999999999999d", "too large"),
            ("40000d", "100 years"),
            ("1.5d", "unknown unit `.`"),
        ] {
            let err = Expire::parse(value).unwrap_err().to_string();
            assert!(err.contains(needle), "{value}: {err}");
            assert!(err.contains(value.trim()), "{value}: {err}");
        }
    }

    #[test]
    fn expire_at() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            Expire::parse("1d").unwrap().expire_at(t),
            Some(Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap())
        );
        assert_eq!(Expire::NEVER.expire_at(t), None);
    }
}
