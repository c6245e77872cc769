//! Every way a backup operation can fail. Each message says what failed
//! and, where there is one, what to do about it.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target configuration cannot be used.
    #[error("backup target configuration: {0}")]
    Config(String),

    /// An app, proc, instance, volume path or backup id that cannot name a
    /// backup.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },

    /// A lain.yaml `expire:` value that is not a duration.
    #[error("invalid backup expire `{value}`: {reason} (write a number and a unit: `30s`, `3m` for minutes, `10h`, `10d`; combinations such as `1d12h` work; leave it empty to keep backups forever)")]
    InvalidExpire { value: String, reason: String },

    /// A lain.yaml `schedule:` value that is not a 5-field cron expression.
    #[error("invalid backup schedule `{schedule}`: {reason} (write 5 cron fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * *` for 03:00 UTC every day)")]
    InvalidSchedule { schedule: String, reason: String },

    /// A schedule that never fires again (e.g. February 30th).
    #[error("backup schedule `{schedule}` has no run after {after}: {reason}")]
    NoNextRun {
        schedule: String,
        after: String,
        reason: String,
    },

    /// One entry of an incoming volume archive is refused.
    #[error("refusing the volume archive: entry `{path}`: {reason}")]
    UnsafeEntry { path: String, reason: String },

    /// The incoming volume archive is not a tar stream this crate accepts.
    #[error("refusing the volume archive: {0}")]
    BadArchive(String),

    /// The incoming volume archive is larger than the configured limits.
    #[error("the volume archive exceeds the limit of {limit} {what}; if the volume really is this large, raise `Limits::{field}`")]
    LimitExceeded {
        what: &'static str,
        limit: u64,
        field: &'static str,
    },

    /// The target refused or failed a request.
    #[error("backup target {target}: {op} `{location}` failed: {error} (check that the target is reachable and the credentials may read, write, list and delete there)")]
    Storage {
        target: String,
        op: &'static str,
        location: String,
        error: String,
    },

    /// Local I/O, mostly on the spool files in the temporary directory.
    #[error("{op}: {error} (backups spool to the temporary directory: check that it exists, is writable and has room for the volume)")]
    Io { op: String, error: std::io::Error },

    /// No such backup, or no backups of that volume at all.
    #[error("backup `{id}` of {volume} not found: list the volume's backups to see which exist")]
    NotFound { volume: String, id: String },

    /// A stored object does not match what its metadata says.
    #[error("stored backup data at `{location}` is corrupt: {reason}; this backup cannot be restored, pick an older one")]
    Corrupt { location: String, reason: String },

    /// A backup needs another backup's archive, and that backup is gone.
    #[error("backup `{id}` of {volume} needs backup `{missing}`, which no longer exists (it expired; backups kept only because newer increments need their files cannot be restored themselves): restore a newer backup")]
    Incomplete {
        volume: String,
        id: String,
        missing: String,
    },

    /// A background task died (a panic in this crate or its dependencies).
    #[error("backup task failed: {0} (a bug: please report it)")]
    Task(String),
}

impl Error {
    pub(crate) fn io(op: impl Into<String>, error: std::io::Error) -> Self {
        Error::Io {
            op: op.into(),
            error,
        }
    }

    pub(crate) fn invalid_name(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidName {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
