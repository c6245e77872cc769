//! A backup's metadata object, and which backups retention removes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use lain_spec::BackupMode;
use serde::{Deserialize, Serialize};

use crate::key::{BackupId, VolumeKey};

/// The metadata format this crate writes and reads.
pub const META_SCHEMA_VERSION: u32 = 1;

/// One backup, as `meta.json` beside its archive describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMeta {
    pub schema_version: u32,
    pub id: BackupId,
    pub volume: VolumeKey,
    /// What was stored: the whole volume, or what changed.
    pub mode: BackupMode,
    /// What was asked for; an increment with nothing to build on is
    /// stored as a full backup, and `note` says why.
    pub requested_mode: BackupMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `None`: kept until deleted by hand.
    pub expire_at: Option<DateTime<Utc>>,
    /// Bytes of the archive object (gzip'd tar).
    pub size: u64,
    /// sha256 of the archive object, hex.
    pub sha256: String,
    /// The full backup an increment's chain starts from.
    pub base: Option<BackupId>,
    /// The backup an increment was compared against.
    pub parent: Option<BackupId>,
    /// Backups whose archives hold content this backup's volume state
    /// needs (never itself). Retention keeps them while this one lives.
    pub depends_on: Vec<BackupId>,
    /// Entries in the volume at this backup (files, directories, links...).
    pub files: u64,
    /// Entries stored in this backup's own archive.
    pub stored: u64,
    /// Bytes of file content in the volume at this backup.
    pub volume_bytes: u64,
    /// Object path of the archive, relative to the target.
    pub archive: String,
    pub manifest: ManifestRef,
}

/// Where a backup's manifest is, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRef {
    /// Object path relative to the target.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl BackupMeta {
    /// Whether `expire_at` has passed at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expire_at.is_some_and(|t| t <= now)
    }

    /// Backups that must stay while this one does.
    fn needs(&self) -> impl Iterator<Item = &BackupId> {
        self.depends_on.iter().chain(self.base.iter())
    }
}

/// What retention does with the backups of one volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Expired and needed by no live backup: delete.
    pub delete: Vec<BackupId>,
    /// Expired, but a live backup still needs its archive: keep.
    pub kept_for_dependents: Vec<BackupId>,
}

/// Decides which backups of one volume go at `now`: every backup whose
/// `expire_at` has passed, except those a live (unexpired) backup needs,
/// the full backup its chain starts from above all.
///
/// A backup kept only for others is not kept for its own sake, so what it
/// needed may go; restoring it then fails with a clear error, while every
/// live backup stays restorable.
pub fn plan_retention(backups: &[BackupMeta], now: DateTime<Utc>) -> RetentionPlan {
    let needed: BTreeSet<&BackupId> = backups
        .iter()
        .filter(|b| !b.is_expired(now))
        .flat_map(BackupMeta::needs)
        .collect();
    let mut plan = RetentionPlan::default();
    for b in backups.iter().filter(|b| b.is_expired(now)) {
        if needed.contains(&b.id) {
            plan.kept_for_dependents.push(b.id.clone());
        } else {
            plan.delete.push(b.id.clone());
        }
    }
    plan.delete.sort();
    plan.kept_for_dependents.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(hour: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hour)
    }

    /// A backup taken at `hour`, kept for `keep` hours.
    fn backup(hour: i64, keep: Option<i64>, mode: BackupMode, deps: &[&BackupMeta]) -> BackupMeta {
        let id = BackupId::generate(t(hour));
        let base = deps
            .iter()
            .find(|d| d.mode == BackupMode::Full)
            .map(|d| d.id.clone());
        BackupMeta {
            schema_version: META_SCHEMA_VERSION,
            id: id.clone(),
            volume: VolumeKey::new("app", "web", 1, "/data").unwrap(),
            mode,
            requested_mode: mode,
            note: None,
            created_at: t(hour),
            expire_at: keep.map(|k| t(hour + k)),
            size: 1,
            sha256: String::new(),
            base,
            parent: deps.last().map(|d| d.id.clone()),
            depends_on: deps.iter().map(|d| d.id.clone()).collect(),
            files: 1,
            stored: 1,
            volume_bytes: 1,
            archive: String::new(),
            manifest: ManifestRef {
                path: String::new(),
                size: 0,
                sha256: String::new(),
            },
        }
    }

    #[test]
    fn expired_backups_go() {
        let a = backup(0, Some(10), BackupMode::Full, &[]);
        let b = backup(5, Some(10), BackupMode::Full, &[]);
        let forever = backup(1, None, BackupMode::Full, &[]);
        let all = [a.clone(), b.clone(), forever];
        assert_eq!(plan_retention(&all, t(9)), RetentionPlan::default());
        // expire_at itself counts as passed.
        assert_eq!(plan_retention(&all, t(10)).delete, vec![a.id.clone()]);
        let mut both = vec![a.id.clone(), b.id.clone()];
        both.sort();
        assert_eq!(plan_retention(&all, t(1000)).delete, both);
    }

    #[test]
    fn a_full_backup_stays_while_an_increment_needs_it() {
        // The full backup keeps 2 hours, its increments 10.
        let full = backup(0, Some(2), BackupMode::Full, &[]);
        let inc1 = backup(1, Some(10), BackupMode::Increment, &[&full]);
        let inc2 = backup(2, Some(10), BackupMode::Increment, &[&full, &inc1]);
        let all = [full.clone(), inc1.clone(), inc2.clone()];

        let plan = plan_retention(&all, t(5));
        assert!(plan.delete.is_empty(), "{plan:?}");
        assert_eq!(plan.kept_for_dependents, vec![full.id.clone()]);

        // inc1 expired at 11, but inc2 (until 12) needs it too.
        let plan = plan_retention(&all, t(11));
        assert!(plan.delete.is_empty(), "{plan:?}");
        let mut kept = vec![full.id.clone(), inc1.id.clone()];
        kept.sort();
        assert_eq!(plan.kept_for_dependents, kept);

        // Once the last increment has expired, the whole chain goes.
        let plan = plan_retention(&all, t(12));
        assert_eq!(plan.delete.len(), 3);
        assert!(plan.kept_for_dependents.is_empty());
    }

    #[test]
    fn the_base_is_kept_even_when_no_file_of_it_is_needed() {
        let full = backup(0, Some(1), BackupMode::Full, &[]);
        let mut inc = backup(1, Some(10), BackupMode::Increment, &[]);
        inc.base = Some(full.id.clone());
        let plan = plan_retention(&[full.clone(), inc], t(5));
        assert_eq!(plan.kept_for_dependents, vec![full.id]);
    }

    #[test]
    fn a_kept_backup_does_not_keep_its_own_needs() {
        // inc2 lives and needs only inc1's archive; inc1 needed the full.
        let full = backup(0, Some(1), BackupMode::Full, &[]);
        let inc1 = backup(1, Some(1), BackupMode::Increment, &[&full]);
        let mut inc2 = backup(2, Some(10), BackupMode::Increment, &[&inc1]);
        inc2.base = None;
        let plan = plan_retention(&[full.clone(), inc1.clone(), inc2], t(5));
        assert_eq!(plan.delete, vec![full.id]);
        assert_eq!(plan.kept_for_dependents, vec![inc1.id]);
    }
}
