//! Storing, listing, restoring and expiring backups on a [`Target`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use futures::{Stream, StreamExt};
use lain_spec::BackupMode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::archive::{self, Hashing};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::expire::Expire;
use crate::key::{BackupId, VolumeKey};
use crate::manifest::{self, ManifestEntry};
use crate::meta::{plan_retention, BackupMeta, ManifestRef, META_SCHEMA_VERSION};
use crate::target::Target;

const VOLUME_FILE: &str = "volume.json";
const META_FILE: &str = "meta.json";
const ARCHIVE_FILE: &str = "archive.tar.gz";
const MANIFEST_FILE: &str = "manifest.jsonl.gz";
/// Metadata objects are small; anything larger is not ours.
const MAX_META_BYTES: u64 = 1 << 20;
/// A backup directory without `meta.json` is an upload that failed (or
/// is still running); after this long it is removed.
const ORPHAN_AGE: chrono::Duration = chrono::Duration::hours(24);
/// An increment is not built on a backup about to expire, so that
/// retention cannot remove what it builds on while it is written.
const PARENT_MARGIN: chrono::Duration = chrono::Duration::hours(1);
/// Chunks of a restored stream, and how many wait for the reader.
const CHUNK: usize = 256 << 10;
const CHUNKS_IN_FLIGHT: usize = 8;

/// The file beside a volume's backups naming the volume, so the
/// sanitised storage name can be read back.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeRecord {
    schema_version: u32,
    volume: VolumeKey,
}

/// Which backups [`Backups::list`] returns; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub proc: Option<String>,
    pub instance: Option<u32>,
    pub volume: Option<String>,
}

impl ListFilter {
    fn matches(&self, key: &VolumeKey) -> bool {
        self.proc.as_deref().is_none_or(|p| p == key.proc())
            && self.instance.is_none_or(|i| i == key.instance())
            && self.volume.as_deref().is_none_or(|v| v == key.volume())
    }
}

/// What [`Backups::expire`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Expired backups that were deleted.
    pub deleted: Vec<(VolumeKey, BackupId)>,
    /// Expired backups kept because live increments need them.
    pub kept_for_dependents: Vec<(VolumeKey, BackupId)>,
    /// Leftovers of failed uploads that were deleted.
    pub orphans_removed: Vec<(VolumeKey, BackupId)>,
}

/// One volume's backups as found on the target.
struct Scan {
    /// Newest first.
    metas: Vec<BackupMeta>,
    /// Backup directories without metadata, with their objects.
    orphans: Vec<(BackupId, Vec<String>)>,
}

/// Backups of volumes, kept on one [`Target`].
#[derive(Debug, Clone)]
pub struct Backups {
    target: Target,
    limits: Limits,
    spool_dir: Option<PathBuf>,
}

impl Backups {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            limits: Limits::default(),
            spool_dir: None,
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Where archives are spooled while they are written and restored
    /// (the system's temporary directory by default). It needs room for
    /// about the size of a volume: put it on disk, not tmpfs.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Stores the whole volume, from its tar stream (as the Docker API's
    /// `GET /containers/{id}/archive` gives it).
    pub async fn store_full<R>(&self, key: &VolumeKey, tar: R, expire: Expire) -> Result<BackupMeta>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.store_at(key, BackupMode::Full, tar, expire, Utc::now())
            .await
    }

    /// Stores what changed since the volume's previous backup, from the
    /// tar stream of the whole volume. With nothing to build on, stores
    /// a full backup and says why in [`BackupMeta::note`].
    pub async fn store_increment<R>(
        &self,
        key: &VolumeKey,
        tar: R,
        expire: Expire,
    ) -> Result<BackupMeta>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.store_at(key, BackupMode::Increment, tar, expire, Utc::now())
            .await
    }

    /// [`Backups::store_full`] or [`Backups::store_increment`] with the
    /// time given: the backup's id, `created_at` and `expire_at` follow
    /// `now`.
    pub async fn store_at<R>(
        &self,
        key: &VolumeKey,
        mode: BackupMode,
        tar: R,
        expire: Expire,
        now: DateTime<Utc>,
    ) -> Result<BackupMeta>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let name = self.claim_volume(key).await?;
        let id = BackupId::generate(now);

        let mut note = None;
        let mut parent: Option<BackupMeta> = None;
        let mut previous: Option<HashMap<Vec<u8>, ManifestEntry>> = None;
        if mode == BackupMode::Increment {
            let scan = self.scan(&name, key).await?;
            match choose_parent(&scan.metas, now) {
                Ok(p) => match self.load_manifest(&name, p).await {
                    Ok(entries) => {
                        previous =
                            Some(entries.into_iter().map(|e| (e.path.0.clone(), e)).collect());
                        parent = Some(p.clone());
                    }
                    Err(e) => {
                        tracing::warn!(volume = %key, parent = %p.id, error = %e, "cannot read the previous backup; storing a full backup");
                        note = Some(format!(
                            "the previous backup {} cannot be read ({e}); stored as a full backup",
                            p.id
                        ));
                    }
                },
                Err(why) => note = Some(format!("{why}; stored as a full backup")),
            }
        }

        let archive_file = self.spool_file()?;
        let manifest_file = self.spool_file()?;
        let input = SyncIoBridge::new(tar);
        let limits = self.limits.clone();
        let spool_dir = self.spool_dir.clone();
        let task_id = id.clone();
        let (ingested, archive_file, manifest_file) = tokio::task::spawn_blocking(move || {
            archive::ingest(
                input,
                previous.as_ref(),
                &task_id,
                &limits,
                spool_dir.as_deref(),
                &archive_file,
                &manifest_file,
            )
            .map(|i| (i, archive_file, manifest_file))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;

        let dir = format!("{name}/{id}");
        let archive_path = format!("{dir}/{ARCHIVE_FILE}");
        let manifest_path = format!("{dir}/{MANIFEST_FILE}");
        let meta = BackupMeta {
            schema_version: META_SCHEMA_VERSION,
            id: id.clone(),
            volume: key.clone(),
            mode: if parent.is_some() {
                BackupMode::Increment
            } else {
                BackupMode::Full
            },
            requested_mode: mode,
            note,
            created_at: now,
            expire_at: expire.expire_at(now),
            size: ingested.archive.size,
            sha256: ingested.archive.sha256,
            base: parent
                .as_ref()
                .map(|p| p.base.clone().unwrap_or_else(|| p.id.clone())),
            parent: parent.as_ref().map(|p| p.id.clone()),
            depends_on: ingested.depends_on.into_iter().collect(),
            files: ingested.entries,
            stored: ingested.stored,
            volume_bytes: ingested.volume_bytes,
            archive: archive_path.clone(),
            manifest: ManifestRef {
                path: manifest_path.clone(),
                size: ingested.manifest.size,
                sha256: ingested.manifest.sha256,
            },
        };
        let meta_json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| Error::Task(format!("encoding backup metadata: {e}")))?;
        // The metadata goes last: a backup without it is unfinished, and
        // nothing reads it.
        let uploaded = async {
            self.target.put_file(&archive_path, archive_file).await?;
            self.target.put_file(&manifest_path, manifest_file).await?;
            self.target
                .put_bytes(&format!("{dir}/{META_FILE}"), meta_json)
                .await
        }
        .await;
        if let Err(e) = uploaded {
            let _ = self
                .target
                .delete(&[archive_path, manifest_path, format!("{dir}/{META_FILE}")])
                .await;
            return Err(e);
        }
        tracing::info!(volume = %key, id = %meta.id, mode = ?meta.mode, stored = meta.stored, files = meta.files, size = meta.size, "backup stored");
        Ok(meta)
    }

    /// Backups of an app, newest first, optionally only of one proc,
    /// instance or volume. Reads metadata only.
    pub async fn list(&self, app: &str, filter: &ListFilter) -> Result<Vec<BackupMeta>> {
        crate::key::validate_app(app)?;
        let mut prefix = format!("lain.{app}.");
        if let Some(proc) = &filter.proc {
            prefix.push_str(proc);
            prefix.push('.');
            if let Some(instance) = filter.instance {
                prefix.push_str(&format!("{instance}."));
            }
        }
        let mut all = Vec::new();
        for name in self.target.list_dirs("").await? {
            if !name.starts_with(&prefix) {
                continue;
            }
            let key = match self.read_volume(&name).await {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(name, error = %e, "skipping a volume directory");
                    continue;
                }
            };
            if key.app() != app || !filter.matches(&key) {
                continue;
            }
            all.extend(self.scan(&name, &key).await?.metas);
        }
        sort_newest_first(&mut all);
        Ok(all)
    }

    /// Backups of one volume, newest first.
    pub async fn list_volume(&self, key: &VolumeKey) -> Result<Vec<BackupMeta>> {
        match self.find_volume(key).await? {
            Some(name) => Ok(self.scan(&name, key).await?.metas),
            None => Ok(Vec::new()),
        }
    }

    /// The volume as it was at backup `id`, as a tar stream: every entry
    /// in the order the volume's own stream had, with the same content,
    /// modes, owners, times and link targets. Everything is checked
    /// against its sha256 before the first byte is given out.
    pub async fn restore(&self, key: &VolumeKey, id: &BackupId) -> Result<RestoredArchive> {
        let not_found = || Error::NotFound {
            volume: key.to_string(),
            id: id.to_string(),
        };
        let name = self.find_volume(key).await?.ok_or_else(not_found)?;
        let scan = self.scan(&name, key).await?;
        let meta = scan
            .metas
            .iter()
            .find(|m| m.id == *id)
            .ok_or_else(not_found)?
            .clone();
        let manifest = Arc::new(self.load_manifest(&name, &meta).await?);

        let mut per_archive: BTreeMap<BackupId, HashMap<Vec<u8>, usize>> = BTreeMap::new();
        for (i, e) in manifest.iter().enumerate() {
            if e.has_content() {
                per_archive
                    .entry(e.origin.clone())
                    .or_default()
                    .insert(e.path.0.clone(), i);
            }
        }
        let mut spool = self.spool_file()?;
        let mut offsets = vec![None; manifest.len()];
        for (origin, wanted) in per_archive {
            let origin_meta = scan
                .metas
                .iter()
                .find(|m| m.id == origin)
                .ok_or_else(|| Error::Incomplete {
                    volume: key.to_string(),
                    id: id.to_string(),
                    missing: origin.to_string(),
                })?
                .clone();
            let location = format!("{name}/{origin}/{ARCHIVE_FILE}");
            let input = SyncIoBridge::new(self.target.get_reader(&location).await?);
            let limits = self.limits.clone();
            let manifest = manifest.clone();
            let shown = format!("{} {location}", self.target.label());
            let (digest, back_spool, back_offsets) = tokio::task::spawn_blocking(move || {
                let digest = archive::collect(
                    input,
                    &shown,
                    &wanted,
                    &manifest,
                    &limits,
                    &mut spool,
                    &mut offsets,
                )?;
                Ok::<_, Error>((digest, spool, offsets))
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
            if digest.size != origin_meta.size || digest.sha256 != origin_meta.sha256 {
                return Err(Error::Corrupt {
                    location,
                    reason: format!(
                        "it is {} bytes with sha256 {}, but its metadata says {} bytes with sha256 {}",
                        digest.size, digest.sha256, origin_meta.size, origin_meta.sha256
                    ),
                });
            }
            spool = back_spool;
            offsets = back_offsets;
        }

        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let producer_manifest = manifest.clone();
        tokio::task::spawn_blocking(move || {
            let out = ChannelWriter {
                tx: tx.clone(),
                buf: BytesMut::with_capacity(CHUNK),
            };
            if let Err(e) = archive::emit(out, &producer_manifest, &offsets, &mut spool) {
                // The reader sees the error instead of a short stream; if
                // it is gone, there is no one to tell.
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(RestoredArchive {
            meta,
            reader: StreamReader::new(ChunkStream(rx)),
        })
    }

    /// Deletes every backup whose `expire_at` has passed at `now`, except
    /// those live increments need (see [`crate::plan_retention`]), and
    /// leftovers of uploads that failed over a day ago.
    pub async fn expire(&self, now: DateTime<Utc>) -> Result<ExpireReport> {
        let mut report = ExpireReport::default();
        for name in self.target.list_dirs("").await? {
            if !name.starts_with("lain.") {
                continue;
            }
            let key = match self.read_volume(&name).await {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(name, error = %e, "skipping a volume directory");
                    continue;
                }
            };
            let scan = self.scan(&name, &key).await?;
            let plan = plan_retention(&scan.metas, now);
            for id in plan.delete {
                let dir = format!("{name}/{id}");
                // Metadata first: a half-deleted backup is then an orphan,
                // not a backup that fails to restore.
                self.target.delete(&[format!("{dir}/{META_FILE}")]).await?;
                self.target
                    .delete(&[
                        format!("{dir}/{ARCHIVE_FILE}"),
                        format!("{dir}/{MANIFEST_FILE}"),
                    ])
                    .await?;
                tracing::info!(volume = %key, %id, "expired backup deleted");
                report.deleted.push((key.clone(), id));
            }
            for id in plan.kept_for_dependents {
                report.kept_for_dependents.push((key.clone(), id));
            }
            for (id, files) in scan.orphans {
                if id.time() + ORPHAN_AGE <= now {
                    let paths: Vec<String> =
                        files.iter().map(|f| format!("{name}/{id}/{f}")).collect();
                    self.target.delete(&paths).await?;
                    tracing::info!(volume = %key, %id, "leftover of a failed backup deleted");
                    report.orphans_removed.push((key.clone(), id));
                }
            }
        }
        Ok(report)
    }

    fn spool_file(&self) -> Result<File> {
        match &self.spool_dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
        .map_err(|e| Error::io("creating a spool file", e))
    }

    async fn read_volume(&self, name: &str) -> Result<Option<VolumeKey>> {
        let location = format!("{name}/{VOLUME_FILE}");
        let Some(bytes) = self.target.get_bytes(&location, MAX_META_BYTES).await? else {
            return Ok(None);
        };
        let record: VolumeRecord = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            location: location.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(record.volume))
    }

    /// The storage name holding `key`'s backups, if it has any.
    async fn find_volume(&self, key: &VolumeKey) -> Result<Option<String>> {
        self.volume_name(key, false).await
    }

    /// The storage name for `key`'s backups, recorded on first use.
    async fn claim_volume(&self, key: &VolumeKey) -> Result<String> {
        self.volume_name(key, true)
            .await?
            .ok_or_else(|| Error::Task("claiming a volume name gave none".to_owned()))
    }

    async fn volume_name(&self, key: &VolumeKey, claim: bool) -> Result<Option<String>> {
        let mut names = vec![key.storage_name(), key.storage_name_with_hash()];
        names.dedup();
        for name in names {
            match self.read_volume(&name).await? {
                Some(found) if found == *key => return Ok(Some(name)),
                // Another volume's path sanitises to the same name.
                Some(_) => continue,
                None if claim => {
                    let record = VolumeRecord {
                        schema_version: META_SCHEMA_VERSION,
                        volume: key.clone(),
                    };
                    let json = serde_json::to_vec_pretty(&record)
                        .map_err(|e| Error::Task(format!("encoding {VOLUME_FILE}: {e}")))?;
                    self.target
                        .put_bytes(&format!("{name}/{VOLUME_FILE}"), json)
                        .await?;
                    return Ok(Some(name));
                }
                None => return Ok(None),
            }
        }
        Err(Error::invalid_name(
            "volume path",
            key.volume(),
            "both of its storage names are taken by other volumes of the same instance; rename the volume",
        ))
    }

    /// Reads every backup's metadata of one volume.
    async fn scan(&self, name: &str, key: &VolumeKey) -> Result<Scan> {
        let mut by_id: BTreeMap<BackupId, Vec<String>> = BTreeMap::new();
        for file in self.target.list_files(name).await? {
            let Some((dir, rest)) = file.split_once('/') else {
                continue;
            };
            let Ok(id) = BackupId::parse(dir) else {
                continue;
            };
            by_id.entry(id).or_default().push(rest.to_owned());
        }
        let mut orphans = Vec::new();
        let mut with_meta = Vec::new();
        for (id, files) in by_id {
            if files.iter().any(|f| f == META_FILE) {
                with_meta.push(id);
            } else {
                orphans.push((id, files));
            }
        }
        let results: Vec<Result<Option<BackupMeta>>> = futures::stream::iter(with_meta)
            .map(|id| async move {
                let location = format!("{name}/{id}/{META_FILE}");
                let Some(bytes) = self.target.get_bytes(&location, MAX_META_BYTES).await? else {
                    // Deleted since the listing.
                    return Ok(None);
                };
                let meta: BackupMeta = match serde_json::from_slice(&bytes) {
                    Ok(meta) => meta,
                    Err(e) => {
                        tracing::warn!(location, error = %e, "skipping unreadable backup metadata");
                        return Ok(None);
                    }
                };
                if meta.schema_version != META_SCHEMA_VERSION
                    || meta.id != id
                    || meta.volume != *key
                {
                    tracing::warn!(location, "skipping backup metadata that belongs elsewhere or to another format version");
                    return Ok(None);
                }
                Ok(Some(meta))
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut metas = Vec::new();
        for r in results {
            metas.extend(r?);
        }
        sort_newest_first(&mut metas);
        Ok(Scan { metas, orphans })
    }

    /// Reads and checks a backup's manifest.
    async fn load_manifest(&self, name: &str, meta: &BackupMeta) -> Result<Vec<ManifestEntry>> {
        let location = format!("{name}/{}/{MANIFEST_FILE}", meta.id);
        let input = SyncIoBridge::new(self.target.get_reader(&location).await?);
        let shown = format!("{} {location}", self.target.label());
        let limits = self.limits.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || read_manifest_checked(input, &shown, &meta, &limits))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }
}

fn sort_newest_first(metas: &mut [BackupMeta]) {
    metas.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
}

/// The backup an increment is built on: the newest one, if it stays
/// a while yet and everything it needs is still there.
fn choose_parent(
    metas: &[BackupMeta],
    now: DateTime<Utc>,
) -> std::result::Result<&BackupMeta, String> {
    let Some(newest) = metas.first() else {
        return Err("there is no earlier backup of this volume to build on".to_owned());
    };
    if let Some(expire_at) = newest.expire_at {
        let lifetime = expire_at - newest.created_at;
        let margin = PARENT_MARGIN.min(lifetime / 10);
        if expire_at - margin <= now {
            return Err(format!(
                "the newest backup {} expires at {expire_at}, too soon to build on",
                newest.id
            ));
        }
    }
    if let Some(missing) = newest
        .depends_on
        .iter()
        .chain(newest.base.iter())
        .find(|d| !metas.iter().any(|m| &m.id == *d))
    {
        return Err(format!(
            "the newest backup {} needs backup {missing}, which is gone",
            newest.id
        ));
    }
    Ok(newest)
}

/// Reads a manifest and checks it whole: its digest against the metadata,
/// and each entry, since it decides what a restore writes.
fn read_manifest_checked(
    input: impl io::Read,
    location: &str,
    meta: &BackupMeta,
    limits: &Limits,
) -> Result<Vec<ManifestEntry>> {
    let corrupt = |reason: String| Error::Corrupt {
        location: location.to_owned(),
        reason,
    };
    let mut hashing = Hashing::new(input);
    // A line holds a path, a link and PAX records, each escaped in JSON
    // at worst six bytes for one.
    let max_line = 6 * (limits.max_header_bytes + 2 * limits.max_path_bytes as u64) + (64 << 10);
    let entries = {
        let mut lines = BufReader::new(GzDecoder::new(&mut hashing));
        manifest::read_manifest(&mut lines, location, max_line, limits.max_entries)?
    };
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| corrupt(format!("reading it: {e}")))?;
    let (_, digest) = hashing.finish();
    if digest.size != meta.manifest.size || digest.sha256 != meta.manifest.sha256 {
        return Err(corrupt(format!(
            "it is {} bytes with sha256 {}, but the backup's metadata says {} bytes with sha256 {}",
            digest.size, digest.sha256, meta.manifest.size, meta.manifest.sha256
        )));
    }
    if entries.len() as u64 != meta.files {
        return Err(corrupt(format!(
            "it has {} entries, but the backup's metadata says {}",
            entries.len(),
            meta.files
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for e in &entries {
        let path = e.path.as_bytes();
        let shown = e.path.display();
        match archive::normalize_path(path, limits.max_path_bytes) {
            Ok(p) if p == path => {}
            Ok(_) => {
                return Err(corrupt(format!(
                    "entry `{shown}` is not a plain relative path"
                )))
            }
            Err(r) => return Err(corrupt(format!("entry `{shown}`: {r}"))),
        }
        if e.has_content() && e.origin != meta.id && !meta.depends_on.contains(&e.origin) {
            return Err(corrupt(format!(
                "entry `{shown}` comes from backup {}, which the metadata does not list",
                e.origin
            )));
        }
        if e.kind == crate::EntryKind::Hardlink {
            let target = e.link.as_ref().map(|l| l.as_bytes()).unwrap_or_default();
            if !seen.contains(target) {
                return Err(corrupt(format!(
                    "hard link `{shown}` points to a path that is not earlier in the manifest"
                )));
            }
        }
        if !seen.insert(path) {
            return Err(corrupt(format!("entry `{shown}` appears twice")));
        }
    }
    Ok(entries)
}

/// Sends what is written to it, in chunks, to a restore's reader.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the restore's reader went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

struct ChunkStream(mpsc::Receiver<io::Result<Bytes>>);

impl Stream for ChunkStream {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A restored volume: a tar stream (read it as [`AsyncRead`], or turn it
/// into a stream of chunks), produced from spooled files as it is read.
/// An error while producing it reaches the reader as an I/O error, never
/// as a stream that just ends early. It holds a blocking thread and the
/// spool file until it is read to the end or dropped.
pub struct RestoredArchive {
    meta: BackupMeta,
    reader: StreamReader<ChunkStream, Bytes>,
}

impl std::fmt::Debug for RestoredArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoredArchive")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl RestoredArchive {
    /// The backup restored.
    pub fn meta(&self) -> &BackupMeta {
        &self.meta
    }

    /// The rest of the tar stream as chunks, e.g. for an HTTP body.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let (stream, chunk) = self.reader.into_inner_with_chunk();
        futures::stream::iter(chunk.map(Ok)).chain(stream)
    }
}

impl AsyncRead for RestoredArchive {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}
