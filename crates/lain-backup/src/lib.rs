//! Volume backups: schedules, retention, incremental archives, and the
//! directory or S3-compatible targets they are kept in.
//!
//! lain.yaml procs declare persistent volumes, some with `backup_full` or
//! `backup_increment` policies. deployd exports a volume of an instance as
//! a tar stream (the Docker API's `GET /containers/{id}/archive`) and
//! hands it to [`Backups::store_full`] or [`Backups::store_increment`];
//! to restore, it takes the tar stream of [`Backups::restore`] and uploads
//! it into a fresh volume. This crate is the logic and the storage in
//! between; it knows nothing of Docker.
//!
//! Why this shape:
//! - **One storage interface** ([`Target`], over `object_store`): a
//!   directory on the control plane or an S3-compatible bucket behave the
//!   same, so the rest is tested once against both.
//! - **Increments from whole streams.** Docker can only export a whole
//!   directory, so an increment reads the whole volume and stores only the
//!   entries that changed since the previous backup, plus a manifest of
//!   every path present, so deleted files stay deleted on restore.
//! - **Every manifest is complete.** Each entry records which backup's
//!   archive holds its content, so a restore reads one manifest and only
//!   the archives it names, and retention knows exactly which backups a
//!   live one needs ([`BackupMeta::depends_on`]).
//! - **Disk, not memory.** Volumes can be larger than RAM: archives are
//!   spooled to temporary files and streamed; only manifests (a few
//!   hundred bytes per entry) are held in memory, bounded by [`Limits`].
//! - **Untrusted input.** Volume streams come from app containers: paths
//!   that are absolute or hold `..`, duplicate paths, dangling hard links,
//!   oversized headers and cut-off streams are refused ([`Error`]).
//!
//! # Storage layout
//!
//! Under the target's root (an S3 target may add a prefix):
//!
//! ```text
//! lain.{app}.{proc}.{instance}.{volume}/     one directory per volume
//!     volume.json                            {"schema_version":1,"volume":{"app","proc","instance","volume"}}
//!     {id}/archive.tar.gz                    the entries this backup stored
//!     {id}/manifest.jsonl.gz                 every entry of the volume at this backup
//!     {id}/meta.json                         BackupMeta, written last
//! ```
//!
//! - `{volume}` is the volume path with every character but ASCII letters
//!   and digits replaced by `_` (LAIN's naming: `/redis/data` →
//!   `_redis_data`). Should two paths of one instance sanitise alike, or
//!   a name pass 200 bytes, the name gets `.{8 hex digits of
//!   sha256(path)}`; `volume.json` always says which volume a directory
//!   holds ([`VolumeKey::storage_name`]).
//! - `{id}` is `YYYYMMDDTHHMMSSZ-xxxxxxxx`: the UTC second the backup was
//!   taken and 8 random hex digits, so ids sort by time ([`BackupId`]).
//! - `archive.tar.gz` is a gzip'd tar (GNU headers; long names as GNU
//!   long-name entries; PAX records as they came) holding a full backup's
//!   every entry, or an increment's changed entries only. It can be read
//!   with plain `tar`.
//! - `manifest.jsonl.gz` is gzip'd JSON lines, one [`ManifestEntry`] per
//!   entry of the volume, in the order of the volume's tar stream: path,
//!   kind, mode, uid, gid, user and group names, mtime, size, sha256 of
//!   the content, link target, device numbers, PAX records, and `origin`,
//!   the backup whose archive holds the entry as it is here. Bytes that
//!   are not UTF-8 are written as `{"hex": "..."}`.
//! - `meta.json` is [`BackupMeta`]: id, volume, mode (and the mode asked
//!   for, with a note when an increment had to become a full backup),
//!   `created_at`, `expire_at`, size and sha256 of the archive, `base`
//!   (the full backup an increment's chain starts from), `parent` (the
//!   backup it was compared against), `depends_on`, counts, and the
//!   manifest's path, size and sha256. A backup without `meta.json` is an
//!   unfinished upload: never listed, removed by [`Backups::expire`] after
//!   a day.
//!
//! An entry counts as changed when its size, mtime, mode, owner, type,
//! link target, device numbers, PAX records (but atime and ctime) or
//! content sha256 differ from the previous backup's manifest.
//!
//! # Retention
//!
//! [`Backups::expire`] deletes backups whose `expire_at` has passed,
//! except those a live backup depends on (its base full backup and every
//! backup holding content it needs): see [`plan_retention`].

mod archive;
mod backups;
mod config;
mod error;
mod expire;
mod key;
mod manifest;
mod meta;
mod schedule;
mod target;

pub use backups::{Backups, ExpireReport, ListFilter, RestoredArchive};
pub use config::{DirConfig, Limits, S3Config, SecretString, TargetConfig};
pub use error::{Error, Result};
pub use expire::Expire;
pub use key::{sanitize_path, BackupId, VolumeKey};
pub use lain_spec::BackupMode;
pub use manifest::{EntryKind, ManifestEntry, RawBytes};
pub use meta::{plan_retention, BackupMeta, ManifestRef, RetentionPlan, META_SCHEMA_VERSION};
pub use schedule::{next_after, BackupPolicy, Schedule};
pub use target::Target;
