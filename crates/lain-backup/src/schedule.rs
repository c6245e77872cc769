//! lain.yaml's `schedule:` (5-field cron, as LAIN, evaluated in UTC) and
//! the whole backup policy of a volume.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use lain_spec::BackupMode;

use crate::error::{Error, Result};
use crate::expire::Expire;

/// A parsed cron schedule: minute, hour, day of month, month, day of week.
///
/// As in Vixie cron, a day matches when the day of month or the day of
/// week matches (when both are restricted). `@daily`-style aliases work.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    pub fn parse(schedule: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidSchedule {
            schedule: schedule.to_owned(),
            reason,
        };
        let text = schedule.trim();
        if text.is_empty() {
            return Err(bad("it is empty".to_owned()));
        }
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(bad(format!(
                "it has {fields} field{}, LAIN schedules have 5 (no seconds, no years)",
                if fields == 1 { "" } else { "s" }
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            text: text.to_owned(),
            cron,
        })
    }

    /// The first run strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Result<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&time, false)
            .map_err(|e| Error::NoNextRun {
                schedule: self.text.clone(),
                after: time.to_rfc3339(),
                reason: e.to_string(),
            })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.text).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// The first run of `schedule` strictly after `time`, in UTC.
pub fn next_after(schedule: &str, time: DateTime<Utc>) -> Result<DateTime<Utc>> {
    Schedule::parse(schedule)?.next_after(time)
}

/// One `backup_full:` or `backup_increment:` of a volume, checked: what a
/// scheduler needs to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPolicy {
    pub mode: BackupMode,
    pub schedule: Schedule,
    pub expire: Expire,
    /// Run in the container before the volume is read; `None` when not set.
    pub pre_run: Option<String>,
    /// Run in the container after the volume is read (also after a failed
    /// backup); `None` when not set.
    pub post_run: Option<String>,
}

impl BackupPolicy {
    pub fn from_spec(spec: &lain_spec::Backup) -> Result<Self> {
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
        Ok(Self {
            mode: spec.mode,
            schedule: Schedule::parse(&spec.schedule)?,
            expire: Expire::parse(&spec.expire)?,
            pre_run: non_empty(&spec.pre_run),
            post_run: non_empty(&spec.post_run),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn lain_schedules() {
        let t = at(2024, 3, 15, 10, 2, 30); // a Friday
        assert_eq!(
            next_after("*/5 * * * *", t).unwrap(),
            at(2024, 3, 15, 10, 5, 0)
        );
        assert_eq!(
            next_after("0 3 * * *", t).unwrap(),
            at(2024, 3, 16, 3, 0, 0)
        );
        assert_eq!(
            next_after("0 23 * * *", t).unwrap(),
            at(2024, 3, 15, 23, 0, 0)
        );
        assert_eq!(
            next_after("0 3 * * 1", t).unwrap(),
            at(2024, 3, 18, 3, 0, 0)
        );
        assert_eq!(
            next_after("0 3 */3 * *", t).unwrap(),
            at(2024, 3, 16, 3, 0, 0)
        );
        assert_eq!(
            next_after("* * * * 0", t).unwrap(),
            at(2024, 3, 17, 0, 0, 0)
        );
        assert_eq!(next_after("@daily", t).unwrap(), at(2024, 3, 16, 0, 0, 0));
        // Strictly after: a time on the schedule gives the next one.
        assert_eq!(
            next_after("*/5 * * * *", at(2024, 3, 15, 10, 5, 0)).unwrap(),
            at(2024, 3, 15, 10, 10, 0)
        );
        // Across a year end.
        assert_eq!(
            next_after("30 0 1 1 *", at(2024, 12, 31, 23, 59, 0)).unwrap(),
            at(2025, 1, 1, 0, 30, 0)
        );
    }

    #[test]
    fn bad_schedules_name_the_schedule() {
        for (s, needle) in [
            ("", "empty"),
            ("* * * *", "4 fields"),
            ("0 * * * * *", "6 fields"),
            ("61 * * * *", ""),
            ("* 25 * * *", ""),
            ("x * * * *", ""),
            ("*/0 * * * *", ""),
        ] {
            let err = Schedule::parse(s).unwrap_err().to_string();
            assert!(err.contains(&format!("`{s}`")), "{s}: {err}");
            assert!(err.contains(needle), "{s}: {err}");
            assert!(err.contains("5 cron fields"), "{s}: {err}");
        }
    }

    #[test]
    fn impossible_dates_fail_cleanly() {
        let s = Schedule::parse("0 0 30 2 *").unwrap();
        let err = s
            .next_after(at(2024, 1, 1, 0, 0, 0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("0 0 30 2 *"), "{err}");
    }

    #[test]
    fn policy_from_spec() {
        let spec = lain_spec::Backup {
            mode: BackupMode::Increment,
            schedule: "*/5 * * * *".into(),
            expire: "10d".into(),
            pre_run: "/lain/app/tools/incr.sh".into(),
            post_run: String::new(),
        };
        let p = BackupPolicy::from_spec(&spec).unwrap();
        assert_eq!(p.mode, BackupMode::Increment);
        assert_eq!(p.expire, Expire::parse("10d").unwrap());
        assert_eq!(p.pre_run.as_deref(), Some("/lain/app/tools/incr.sh"));
        assert_eq!(p.post_run, None);
        let bad = lain_spec::Backup {
            expire: "10x".into(),
            ..spec
        };
        assert!(BackupPolicy::from_spec(&bad)
            .unwrap_err()
            .to_string()
            .contains("10x"));
    }
}
