//! Volume backups: schedules, retention, incremental archives, and the
//! directory or S3-compatible targets they are kept in.
