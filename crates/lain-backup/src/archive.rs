//! Tar streams in and out: checking and recording an incoming volume,
//! writing the archive of what changed, and rebuilding a volume from
//! archives on restore. All of it is blocking I/O, run on tokio's
//! blocking threads by the caller.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::config::Limits;
use crate::error::{Error, Result};
use crate::key::BackupId;
use crate::manifest::{self, EntryKind, ManifestEntry, RawBytes};

/// Size and sha256 of a stream of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digested {
    pub size: u64,
    pub sha256: String,
}

/// Counts and hashes what passes through it, either way.
pub(crate) struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    count: u64,
}

impl<T> Hashing<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (T, Digested) {
        let digest = Digested {
            size: self.count,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (self.inner, digest)
    }
}

impl<T: Read> Read for Hashing<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<T: Write> Write for Hashing<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Remembers whether reading failed, to tell a bad source from a failing
/// spool when a copy between them fails.
pub(crate) struct Flagged<R> {
    inner: R,
    failed: bool,
}

impl<R> Flagged<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            failed: false,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Flagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

/// What [`Budgeted`] and its owner share.
struct ReadState {
    /// Bytes the tar reader may still take before the next entry shows;
    /// `u64::MAX` while an entry's content is read.
    budget: Cell<u64>,
    /// Zero bytes at the end of what was read since the header phase
    /// began: tar's end-of-archive marker is a zero block.
    zero_run: Cell<u64>,
}

impl ReadState {
    fn new() -> Rc<Self> {
        Rc::new(Self {
            budget: Cell::new(0),
            zero_run: Cell::new(0),
        })
    }

    fn begin_headers(&self, limit: u64) {
        // Room for the padding of the entry before, too.
        self.budget.set(limit.saturating_add(1024));
        self.zero_run.set(0);
    }

    fn begin_content(&self) {
        self.budget.set(u64::MAX);
    }

    fn exhausted(&self) -> bool {
        self.budget.get() == 0
    }

    /// Whether the stream ended with tar's end-of-archive marker, rather
    /// than just stopping between two entries (a cut-off stream).
    fn saw_end_marker(&self) -> bool {
        self.zero_run.get() >= 512
    }
}

/// Bounds what the tar reader reads between two entries: the `tar` crate
/// reads long names and PAX records into memory whole, so an untrusted
/// stream could otherwise make it allocate without end.
struct Budgeted<R> {
    inner: R,
    state: Rc<ReadState>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = self.state.budget.get();
        if budget == u64::MAX {
            return self.inner.read(buf);
        }
        if budget == 0 {
            return Err(io::Error::other(
                "the headers of one entry exceed the limit",
            ));
        }
        let max = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.state.budget.set(budget - n as u64);
        let read = &buf[..n];
        match read.iter().rposition(|&b| b != 0) {
            Some(last) => self.state.zero_run.set((n - last - 1) as u64),
            None => self
                .state
                .zero_run
                .set(self.state.zero_run.get() + n as u64),
        }
        Ok(n)
    }
}

/// Makes an entry path relative and plain: no `./` in front, no `/`
/// behind, no empty or `.` components. Refuses absolute paths, `..`,
/// NUL bytes and paths over `max` bytes. The volume's own directory
/// (`./`) becomes `.`.
pub(crate) fn normalize_path(raw: &[u8], max: usize) -> std::result::Result<Vec<u8>, String> {
    if raw.is_empty() {
        return Err("the path is empty".to_owned());
    }
    if raw.len() > max {
        return Err(format!("the path is longer than {max} bytes"));
    }
    if raw.contains(&0) {
        return Err("the path contains a NUL byte".to_owned());
    }
    if raw[0] == b'/' {
        return Err("absolute paths are refused: entries must stay inside the volume".to_owned());
    }
    let mut out = Vec::with_capacity(raw.len());
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(
                    "`..` components are refused: entries must stay inside the volume".to_owned(),
                )
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    Ok(out)
}

fn shown(path: &[u8]) -> String {
    let text = String::from_utf8_lossy(path);
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Appends a PAX record (`LEN KEY=VALUE\n`, LEN counting itself).
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The header of a GNU long-name/long-link or PAX extension entry.
fn extension_header(kind: EntryType, size: usize) -> tar::Header {
    let name: &[u8] = if kind == EntryType::XHeader {
        b"././@PaxHeader"
    } else {
        b"././@LongLink"
    };
    let mut h = tar::Header::new_gnu();
    copy_field(&mut h.as_old_mut().name, name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size as u64);
    h.set_cksum();
    h
}

fn copy_field(field: &mut [u8], value: &[u8]) {
    let n = field.len().min(value.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Writes one entry, with its metadata from `e`, its content from `data`
/// (exactly `e.size` bytes for files, nothing else) and its path and link
/// byte for byte (GNU long-name entries when they do not fit the header).
pub(crate) fn write_tar_entry<W: Write>(
    b: &mut tar::Builder<W>,
    e: &ManifestEntry,
    data: impl Read,
) -> io::Result<()> {
    if !e.pax.is_empty() {
        let mut records = Vec::new();
        for (k, v) in &e.pax {
            pax_record(&mut records, k.as_bytes(), v.as_bytes());
        }
        b.append(
            &extension_header(EntryType::XHeader, records.len()),
            records.as_slice(),
        )?;
    }
    let mut name = e.path.as_bytes().to_vec();
    if e.kind == EntryKind::Dir {
        if name == b"." {
            name = b"./".to_vec();
        } else {
            name.push(b'/');
        }
    }
    let mut h = tar::Header::new_gnu();
    if name.len() > 100 {
        let mut long = name.clone();
        long.push(0);
        b.append(
            &extension_header(EntryType::GNULongName, long.len()),
            long.as_slice(),
        )?;
    }
    copy_field(&mut h.as_old_mut().name, &name);
    if let Some(link) = &e.link {
        if link.as_bytes().len() > 100 {
            let mut long = link.as_bytes().to_vec();
            long.push(0);
            b.append(
                &extension_header(EntryType::GNULongLink, long.len()),
                long.as_slice(),
            )?;
        }
        copy_field(&mut h.as_old_mut().linkname, link.as_bytes());
    }
    h.set_entry_type(e.kind.tar_type());
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(if e.kind == EntryKind::File { e.size } else { 0 });
    if let Some(gnu) = h.as_gnu_mut() {
        if let Some(u) = &e.uname {
            copy_field(&mut gnu.uname, u.as_bytes());
        }
        if let Some(g) = &e.gname {
            copy_field(&mut gnu.gname, g.as_bytes());
        }
    }
    if let Some((major, minor)) = e.dev {
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    h.set_cksum();
    b.append(&h, data)
}

/// What [`ingest`] found and stored.
#[derive(Debug)]
pub(crate) struct Ingested {
    /// Entries of the volume now.
    pub entries: u64,
    /// Entries written to this backup's archive.
    pub stored: u64,
    /// Bytes of file content in the volume now.
    pub volume_bytes: u64,
    /// Other backups whose archives hold content the volume has now.
    pub depends_on: BTreeSet<BackupId>,
    pub archive: Digested,
    pub manifest: Digested,
}

/// Reads a volume's tar stream, checks every entry, and writes
/// - to `archive_out`, a gzip'd tar of the entries that differ from
///   `previous` (all of them when there is none), and
/// - to `manifest_out`, the gzip'd manifest of every entry.
///
/// An entry differs when its size, mtime, mode, owner, type, link target,
/// device, PAX records or content hash do.
pub(crate) fn ingest(
    input: impl Read,
    previous: Option<&HashMap<Vec<u8>, ManifestEntry>>,
    id: &BackupId,
    limits: &Limits,
    spool_dir: Option<&Path>,
    archive_out: &File,
    manifest_out: &File,
) -> Result<Ingested> {
    let state = ReadState::new();
    let mut tar_in = tar::Archive::new(Budgeted {
        inner: input,
        state: state.clone(),
    });
    let archive_io = |e: io::Error| Error::io("writing the spooled archive", e);
    let mut archive = tar::Builder::new(GzEncoder::new(
        Hashing::new(io::BufWriter::new(archive_out)),
        Compression::default(),
    ));
    let mut manifest_w = GzEncoder::new(
        Hashing::new(io::BufWriter::new(manifest_out)),
        Compression::default(),
    );

    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut out = Ingested {
        entries: 0,
        stored: 0,
        volume_bytes: 0,
        depends_on: BTreeSet::new(),
        archive: Digested {
            size: 0,
            sha256: String::new(),
        },
        manifest: Digested {
            size: 0,
            sha256: String::new(),
        },
    };
    let mut entries = tar_in
        .entries()
        .map_err(|e| Error::BadArchive(format!("it is not a tar stream: {e}")))?;
    loop {
        state.begin_headers(limits.max_header_bytes);
        let Some(next) = entries.next() else { break };
        let mut entry = next.map_err(|e| {
            if state.exhausted() {
                Error::LimitExceeded {
                    what: "bytes of headers (long names, PAX records) for one entry",
                    limit: limits.max_header_bytes,
                    field: "max_header_bytes",
                }
            } else {
                Error::BadArchive(format!("after {} entries: {e}", out.entries))
            }
        })?;
        state.begin_content();

        let raw_path = entry.path_bytes().into_owned();
        let unsafe_entry = |reason: String| Error::UnsafeEntry {
            path: shown(&raw_path),
            reason,
        };
        let kind = match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => EntryKind::File,
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => EntryKind::Symlink,
            EntryType::Link => EntryKind::Hardlink,
            EntryType::Fifo => EntryKind::Fifo,
            EntryType::Char => EntryKind::Char,
            EntryType::Block => EntryKind::Block,
            EntryType::XGlobalHeader => {
                // Defaults for the entries after it; Docker never writes
                // one, and the entries carry their own metadata anyway.
                drain(&mut entry, limits.max_header_bytes)
                    .map_err(|e| Error::BadArchive(format!("reading a PAX global header: {e}")))?;
                continue;
            }
            other => {
                return Err(unsafe_entry(format!(
                    "entry type {other:?} is not supported (volumes hold files, directories, links, fifos and devices)"
                )))
            }
        };
        let path = normalize_path(&raw_path, limits.max_path_bytes).map_err(&unsafe_entry)?;
        if path == b"." && kind != EntryKind::Dir {
            return Err(unsafe_entry(
                "only a directory can stand for the volume itself".to_owned(),
            ));
        }
        if out.entries >= limits.max_entries {
            return Err(Error::LimitExceeded {
                what: "entries",
                limit: limits.max_entries,
                field: "max_entries",
            });
        }
        if seen.contains(&path) {
            return Err(unsafe_entry(
                "the path appears twice in the stream".to_owned(),
            ));
        }

        let header_err = |what: &str, e: io::Error| unsafe_entry(format!("bad {what}: {e}"));
        let h = entry.header();
        let mode = h.mode().map_err(|e| header_err("mode", e))?;
        let uid = h.uid().map_err(|e| header_err("uid", e))?;
        let gid = h.gid().map_err(|e| header_err("gid", e))?;
        let mtime = h.mtime().map_err(|e| header_err("mtime", e))?;
        let name_of = |b: Option<&[u8]>| b.filter(|b| !b.is_empty()).map(|b| RawBytes(b.to_vec()));
        let uname = name_of(h.username_bytes());
        let gname = name_of(h.groupname_bytes());
        let dev = if matches!(kind, EntryKind::Char | EntryKind::Block) {
            let major = h
                .device_major()
                .map_err(|e| header_err("device major", e))?;
            let minor = h
                .device_minor()
                .map_err(|e| header_err("device minor", e))?;
            Some((major.unwrap_or(0), minor.unwrap_or(0)))
        } else {
            None
        };
        let link = match kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| unsafe_entry("the link has no target".to_owned()))?;
                if target.len() > limits.max_path_bytes {
                    return Err(unsafe_entry(format!(
                        "the link target is longer than {} bytes",
                        limits.max_path_bytes
                    )));
                }
                if kind == EntryKind::Hardlink {
                    let target = normalize_path(&target, limits.max_path_bytes)
                        .map_err(|r| unsafe_entry(format!("hard link target: {r}")))?;
                    if !seen.contains(&target) {
                        return Err(unsafe_entry(format!(
                            "hard link to `{}`, which is not earlier in the stream",
                            shown(&target)
                        )));
                    }
                    Some(RawBytes(target))
                } else {
                    Some(RawBytes(target))
                }
            }
            _ => None,
        };
        let pax = match entry.pax_extensions() {
            Ok(None) => Vec::new(),
            Ok(Some(records)) => {
                let mut kept = Vec::new();
                for record in records {
                    let record = record.map_err(|e| header_err("PAX record", e))?;
                    let key = record.key_bytes();
                    // Carried by the archive format itself, or (sparse
                    // maps) describing a layout that is not kept.
                    if matches!(key, b"path" | b"linkpath" | b"size")
                        || key.starts_with(b"GNU.sparse.")
                    {
                        continue;
                    }
                    kept.push((
                        RawBytes(key.to_vec()),
                        RawBytes(record.value_bytes().to_vec()),
                    ));
                }
                kept
            }
            Err(e) => return Err(header_err("PAX records", e)),
        };
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            // Content of anything but a file means nothing; skip it.
            drain(&mut entry, limits.max_volume_bytes)
                .map_err(|e| Error::BadArchive(format!("reading `{}`: {e}", shown(&raw_path))))?;
            0
        };
        if out.volume_bytes.saturating_add(size) > limits.max_volume_bytes {
            return Err(Error::LimitExceeded {
                what: "bytes of file content",
                limit: limits.max_volume_bytes,
                field: "max_volume_bytes",
            });
        }

        let mut new = ManifestEntry {
            path: RawBytes(path.clone()),
            kind,
            mode,
            uid,
            gid,
            uname,
            gname,
            mtime,
            size,
            sha256: None,
            link,
            dev,
            pax,
            origin: id.clone(),
        };
        let prev = previous
            .and_then(|p| p.get(&path))
            .filter(|p| p.same_metadata(&new));
        let read_err =
            |e: io::Error| Error::BadArchive(format!("reading `{}`: {e}", shown(&raw_path)));
        let short = |got: u64| {
            Error::BadArchive(format!(
                "`{}` ended after {got} of its {size} bytes: the stream was cut short",
                shown(&raw_path)
            ))
        };
        match (kind, prev) {
            (EntryKind::File, Some(prev)) => {
                // Looks unchanged: only the content hash can tell, and the
                // content must be kept until it has.
                let mut spool = match spool_dir {
                    Some(dir) => tempfile::spooled_tempfile_in(limits.compare_in_memory, dir),
                    None => tempfile::spooled_tempfile(limits.compare_in_memory),
                };
                let mut source = Flagged::new(Hashing::new((&mut entry).take(size)));
                if let Err(e) = io::copy(&mut source, &mut spool) {
                    return Err(if source.failed {
                        read_err(e)
                    } else {
                        Error::io("spooling a file to compare it", e)
                    });
                }
                let (_, digest) = source.into_inner().finish();
                if digest.size != size {
                    return Err(short(digest.size));
                }
                new.sha256 = Some(digest.sha256);
                if new.sha256 == prev.sha256 {
                    new.origin = prev.origin.clone();
                } else {
                    spool
                        .seek(SeekFrom::Start(0))
                        .map_err(|e| Error::io("rewinding a spool file", e))?;
                    write_tar_entry(&mut archive, &new, spool.take(size)).map_err(archive_io)?;
                    out.stored += 1;
                }
            }
            (EntryKind::File, None) => {
                let mut source = Flagged::new(Hashing::new((&mut entry).take(size)));
                if let Err(e) = write_tar_entry(&mut archive, &new, &mut source) {
                    return Err(if source.failed {
                        read_err(e)
                    } else {
                        archive_io(e)
                    });
                }
                let (_, digest) = source.into_inner().finish();
                if digest.size != size {
                    return Err(short(digest.size));
                }
                new.sha256 = Some(digest.sha256);
                out.stored += 1;
            }
            (_, Some(prev)) => new.origin = prev.origin.clone(),
            (_, None) => {
                write_tar_entry(&mut archive, &new, io::empty()).map_err(archive_io)?;
                out.stored += 1;
            }
        }

        if new.has_content() && new.origin != *id {
            out.depends_on.insert(new.origin.clone());
        }
        out.volume_bytes += size;
        out.entries += 1;
        manifest::write_entry(&mut manifest_w, &new)
            .map_err(|e| Error::io("writing the spooled manifest", e))?;
        seen.insert(path);
    }
    if !state.saw_end_marker() {
        return Err(Error::BadArchive(format!(
            "the stream stopped after {} entries without tar's end-of-archive marker: it was cut short, so nothing was stored",
            out.entries
        )));
    }

    let gz = archive.into_inner().map_err(archive_io)?;
    let (mut w, digest) = gz.finish().map_err(archive_io)?.finish();
    w.flush().map_err(archive_io)?;
    out.archive = digest;
    let manifest_io = |e: io::Error| Error::io("writing the spooled manifest", e);
    let (mut w, digest) = manifest_w.finish().map_err(manifest_io)?.finish();
    w.flush().map_err(manifest_io)?;
    out.manifest = digest;
    Ok(out)
}

/// Reads and discards an entry's content, refusing more than `max` bytes.
fn drain(r: &mut impl Read, max: u64) -> io::Result<u64> {
    let n = io::copy(&mut r.take(max.saturating_add(1)), &mut io::sink())?;
    if n > max {
        return Err(io::Error::other(format!("more than {max} bytes")));
    }
    Ok(n)
}

/// Reads a stored archive and copies to `spool` the content of the
/// entries `wanted` (path to index in `manifest`), checking it against
/// the manifest; `offsets` gets where each landed. Returns the archive's
/// digest, to check against its metadata.
pub(crate) fn collect(
    input: impl Read,
    location: &str,
    wanted: &HashMap<Vec<u8>, usize>,
    manifest: &[ManifestEntry],
    limits: &Limits,
    spool: &mut File,
    offsets: &mut [Option<u64>],
) -> Result<Digested> {
    let corrupt = |reason: String| Error::Corrupt {
        location: location.to_owned(),
        reason,
    };
    let state = ReadState::new();
    let mut tar_in = tar::Archive::new(Budgeted {
        inner: GzDecoder::new(Hashing::new(input)),
        state: state.clone(),
    });
    let mut found = 0usize;
    {
        let mut entries = tar_in
            .entries()
            .map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
        loop {
            state.begin_headers(limits.max_header_bytes);
            let Some(next) = entries.next() else { break };
            let mut entry = next.map_err(|e| corrupt(format!("reading it: {e}")))?;
            state.begin_content();
            let path = normalize_path(&entry.path_bytes(), limits.max_path_bytes)
                .map_err(|r| corrupt(format!("entry `{}`: {r}", shown(&entry.path_bytes()))))?;
            let Some(&index) = wanted.get(&path) else {
                drain(&mut entry, u64::MAX - 1).map_err(|e| corrupt(format!("reading it: {e}")))?;
                continue;
            };
            let expected = &manifest[index];
            if offsets[index].is_some() {
                return Err(corrupt(format!("`{}` appears twice", shown(&path))));
            }
            let start = spool
                .seek(SeekFrom::End(0))
                .map_err(|e| Error::io("seeking the restore spool", e))?;
            let mut source = Flagged::new(Hashing::new(
                (&mut entry).take(expected.size.saturating_add(1)),
            ));
            let mut w = io::BufWriter::with_capacity(256 << 10, &mut *spool);
            if let Err(e) = io::copy(&mut source, &mut w).and_then(|_| w.flush()) {
                return Err(if source.failed {
                    corrupt(format!("reading `{}`: {e}", shown(&path)))
                } else {
                    Error::io(format!("spooling `{}` for the restore", shown(&path)), e)
                });
            }
            drop(w);
            let (_, digest) = source.into_inner().finish();
            if digest.size != expected.size || Some(&digest.sha256) != expected.sha256.as_ref() {
                return Err(corrupt(format!(
                    "`{}` holds {} bytes with sha256 {}, but the manifest says {} bytes with sha256 {}",
                    shown(&path),
                    digest.size,
                    digest.sha256,
                    expected.size,
                    expected.sha256.as_deref().unwrap_or("(none)")
                )));
            }
            offsets[index] = Some(start);
            found += 1;
        }
    }
    if !state.saw_end_marker() {
        return Err(corrupt(
            "it ends without tar's end-of-archive marker".to_owned(),
        ));
    }
    if found != wanted.len() {
        let missing = wanted
            .iter()
            .find(|(_, &i)| offsets[i].is_none())
            .map(|(p, _)| shown(p))
            .unwrap_or_default();
        return Err(corrupt(format!(
            "{} entries the manifest places here are missing, e.g. `{missing}`",
            wanted.len() - found
        )));
    }
    // Read the rest, so the gzip trailer is checked and the whole object
    // is hashed.
    let mut decoder = tar_in.into_inner().inner;
    io::copy(&mut decoder, &mut io::sink())
        .map_err(|e| corrupt(format!("reading its end: {e}")))?;
    let mut hashing = decoder.into_inner();
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| corrupt(format!("reading its end: {e}")))?;
    Ok(hashing.finish().1)
}

/// Writes the restored volume as a tar stream: every manifest entry in
/// order, file content from `spool` at `offsets`.
pub(crate) fn emit(
    out: impl Write,
    manifest: &[ManifestEntry],
    offsets: &[Option<u64>],
    spool: &mut File,
) -> io::Result<()> {
    let mut b = tar::Builder::new(io::BufWriter::with_capacity(256 << 10, out));
    for (e, offset) in manifest.iter().zip(offsets) {
        if e.has_content() {
            let Some(offset) = *offset else {
                return Err(io::Error::other(format!(
                    "no content spooled for `{}`",
                    shown(e.path.as_bytes())
                )));
            };
            spool.seek(SeekFrom::Start(offset))?;
            let mut data = io::BufReader::with_capacity(256 << 10, (&mut *spool).take(e.size));
            write_tar_entry(&mut b, e, &mut data)?;
        } else {
            write_tar_entry(&mut b, e, io::empty())?;
        }
    }
    b.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        let n = |p: &[u8]| normalize_path(p, 4096);
        assert_eq!(n(b"data/").unwrap(), b"data");
        assert_eq!(n(b"./data//x/./y").unwrap(), b"data/x/y");
        assert_eq!(n(b"./").unwrap(), b".");
        assert_eq!(n(b".").unwrap(), b".");
        assert_eq!(n(b"a..b/..c").unwrap(), b"a..b/..c");
    }

    #[test]
    fn escaping_paths_are_refused() {
        let n = |p: &[u8]| normalize_path(p, 4096).unwrap_err();
        assert!(n(b"/etc/passwd").contains("absolute"));
        assert!(n(b"../x").contains(".."));
        assert!(n(b"a/../../x").contains(".."));
        assert!(n(b"a/..").contains(".."));
        assert!(n(b"").contains("empty"));
        assert!(n(b"a\0b").contains("NUL"));
        assert!(normalize_path(&[b'a'; 20], 10)
            .unwrap_err()
            .contains("longer"));
    }

    /// A header with every numeric field set, as real tar writers do.
    fn header(kind: EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_size(0);
        h
    }

    /// A tar entry written by hand, so that names the `tar` crate's
    /// builder refuses (absolute, `..`) can be tested.
    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: EntryType,
        data: &[u8],
        link: &[u8],
    ) {
        let mut h = header(kind);
        copy_field(&mut h.as_old_mut().name, name);
        copy_field(&mut h.as_old_mut().linkname, link);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    /// Name, type, content and link target of a hand-written entry.
    type RawEntry<'a> = (&'a [u8], EntryType, &'a [u8], &'a [u8]);

    fn tar_of(entries: &[RawEntry<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            raw_entry(&mut b, name, *kind, data, link);
        }
        b.into_inner().unwrap()
    }

    fn id() -> BackupId {
        BackupId::parse("20240102T030405Z-0a1b2c3d").unwrap()
    }

    #[derive(Debug)]
    struct Spooled {
        ingested: Ingested,
        manifest: Vec<ManifestEntry>,
        archive: File,
    }

    fn ingest_with(
        tar: &[u8],
        previous: Option<&HashMap<Vec<u8>, ManifestEntry>>,
        id: &BackupId,
        limits: &Limits,
    ) -> Result<Spooled> {
        let archive = tempfile::tempfile().unwrap();
        let mut manifest_file = tempfile::tempfile().unwrap();
        let ingested = ingest(tar, previous, id, limits, None, &archive, &manifest_file)?;
        manifest_file.seek(SeekFrom::Start(0)).unwrap();
        let mut lines = io::BufReader::new(GzDecoder::new(manifest_file));
        let manifest = manifest::read_manifest(&mut lines, "m", 1 << 24, 1 << 20).unwrap();
        Ok(Spooled {
            ingested,
            manifest,
            archive,
        })
    }

    fn refused(tar: &[u8]) -> String {
        match ingest_with(tar, None, &id(), &Limits::default()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    const FILE: EntryType = EntryType::Regular;

    #[test]
    fn unsafe_entries_are_refused() {
        let err = refused(&tar_of(&[(b"/etc/passwd", FILE, b"x", b"")]));
        assert!(
            err.contains("`/etc/passwd`") && err.contains("absolute"),
            "{err}"
        );
        let err = refused(&tar_of(&[(b"data/../../x", FILE, b"x", b"")]));
        assert!(err.contains("`..`"), "{err}");
        let err = refused(&tar_of(&[
            (b"a", FILE, b"x", b""),
            (b"./a", FILE, b"y", b""),
        ]));
        assert!(err.contains("twice"), "{err}");
        let err = refused(&tar_of(&[
            (b"l", EntryType::Link, b"", b"a"),
            (b"a", FILE, b"x", b""),
        ]));
        assert!(err.contains("not earlier"), "{err}");
        let err = refused(&tar_of(&[(
            b"l",
            EntryType::Link,
            b"",
            b"../../etc/shadow",
        )]));
        assert!(
            err.contains("hard link target") && err.contains("`..`"),
            "{err}"
        );
        let err = refused(&tar_of(&[(b"s", EntryType::Symlink, b"", b"")]));
        assert!(err.contains("no target"), "{err}");
        let err = refused(&tar_of(&[(b"v", EntryType::new(b'V'), b"", b"")]));
        assert!(err.contains("not supported"), "{err}");
        let err = refused(&tar_of(&[(b"./", FILE, b"x", b"")]));
        assert!(err.contains("only a directory"), "{err}");
        // Symlinks may point anywhere: they are data, never followed here.
        let ok = tar_of(&[(b"s", EntryType::Symlink, b"", b"/etc/passwd")]);
        ingest_with(&ok, None, &id(), &Limits::default()).unwrap();
    }

    #[test]
    fn cut_off_streams_are_refused() {
        let whole = tar_of(&[(b"a", FILE, &[7; 600], b""), (b"b", FILE, b"x", b"")]);
        ingest_with(&whole, None, &id(), &Limits::default()).unwrap();
        // Cut between two entries: a valid-looking tar without its end.
        let err = refused(&whole[..512 + 1024]);
        assert!(err.contains("cut short"), "{err}");
        // Cut inside a file's content.
        let err = refused(&whole[..512 + 300]);
        assert!(err.contains("cut short") || err.contains("`a`"), "{err}");
        // Cut inside a header.
        refused(&whole[..512 + 1024 + 100]);
        refused(b"");
        refused(b"not a tar stream at all");
    }

    #[test]
    fn limits_hold() {
        let limits = Limits {
            max_entries: 2,
            max_volume_bytes: 1000,
            max_header_bytes: 4096,
            ..Limits::default()
        };
        let three = tar_of(&[
            (b"a", FILE, b"", b""),
            (b"b", FILE, b"", b""),
            (b"c", FILE, b"", b""),
        ]);
        let err = ingest_with(&three, None, &id(), &limits)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 entries") && err.contains("max_entries"),
            "{err}"
        );
        let big = tar_of(&[(b"a", FILE, &[1; 600], b""), (b"b", FILE, &[1; 600], b"")]);
        let err = ingest_with(&big, None, &id(), &limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_volume_bytes"), "{err}");
        // A long name (GNU `L` entry) is read into memory whole: bounded.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(FILE);
        b.append_data(&mut h, "x".repeat(10_000), io::empty())
            .unwrap();
        let err = ingest_with(&b.into_inner().unwrap(), None, &id(), &limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_header_bytes"), "{err}");
    }

    /// Everything a tar reader sees of an entry.
    #[derive(Debug, PartialEq)]
    struct Seen {
        path: Vec<u8>,
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        uname: Option<Vec<u8>>,
        link: Option<Vec<u8>>,
        pax: Vec<(Vec<u8>, Vec<u8>)>,
        data: Vec<u8>,
    }

    fn read_all(tar: &[u8]) -> Vec<Seen> {
        let mut a = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let pax = match e.pax_extensions().unwrap() {
                Some(p) => p
                    .map(|r| r.unwrap())
                    .filter(|r| !matches!(r.key_bytes(), b"path" | b"linkpath" | b"size"))
                    .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
                    .collect(),
                None => Vec::new(),
            };
            let h = e.header().clone();
            let path = e.path_bytes().into_owned();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push(Seen {
                path,
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                uname: h.username_bytes().map(|u| u.to_vec()),
                link,
                pax,
                data,
            });
        }
        out
    }

    fn restore_from(spooled: &mut Spooled) -> Vec<u8> {
        let wanted: HashMap<Vec<u8>, usize> = spooled
            .manifest
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has_content())
            .map(|(i, e)| (e.path.0.clone(), i))
            .collect();
        let mut spool = tempfile::tempfile().unwrap();
        let mut offsets = vec![None; spooled.manifest.len()];
        spooled.archive.seek(SeekFrom::Start(0)).unwrap();
        let digest = collect(
            &spooled.archive,
            "archive",
            &wanted,
            &spooled.manifest,
            &Limits::default(),
            &mut spool,
            &mut offsets,
        )
        .unwrap();
        assert_eq!(digest, spooled.ingested.archive);
        let mut out = Vec::new();
        emit(&mut out, &spooled.manifest, &offsets, &mut spool).unwrap();
        out
    }

    #[test]
    fn odd_entries_come_back_exactly() {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = header(EntryType::Directory);
        dir.set_mode(0o2750);
        dir.set_uid(3_000_000); // beyond octal: base-256
        dir.set_gid(7);
        dir.set_mtime(1_600_000_000);
        dir.set_username("redis").unwrap();
        dir.set_size(0);
        b.append_data(&mut dir, "./", io::empty()).unwrap();
        let long_dir = format!("{}/", "d".repeat(150));
        b.append_data(&mut dir, &long_dir, io::empty()).unwrap();
        let mut file = header(FILE);
        file.set_mode(0o4711);
        file.set_mtime(1_234_567_890);
        let content: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.set_size(content.len() as u64);
        let long_file = format!("{}/{}", "d".repeat(150), "f".repeat(120));
        b.append_data(&mut file, &long_file, content.as_slice())
            .unwrap();
        // PAX records: an xattr with binary value, a fine mtime.
        let mut records = Vec::new();
        pax_record(&mut records, b"SCHILY.xattr.user.tag", &[0, 1, 255]);
        pax_record(&mut records, b"mtime", b"1234567890.25");
        b.append(
            &extension_header(EntryType::XHeader, records.len()),
            records.as_slice(),
        )
        .unwrap();
        file.set_size(3);
        b.append_data(&mut file, "tagged", &b"abc"[..]).unwrap();
        raw_entry(&mut b, b"caf\xe9", FILE, b"latin-1 name", b"");
        let mut link = header(EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        b.append_link(&mut link, "lnk", "t".repeat(300)).unwrap();
        let mut hard = header(EntryType::Link);
        hard.set_size(0);
        b.append_link(&mut hard, "hard", "tagged").unwrap();
        raw_entry(&mut b, b"fifo", EntryType::Fifo, b"", b"");
        raw_entry(&mut b, b"empty", FILE, b"", b"");
        let source = b.into_inner().unwrap();

        let mut spooled = ingest_with(&source, None, &id(), &Limits::default()).unwrap();
        assert_eq!(spooled.ingested.entries, 9);
        assert_eq!(spooled.ingested.stored, 9);
        let restored = restore_from(&mut spooled);
        let (want, got) = (read_all(&source), read_all(&restored));
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w, g);
        }
        let tagged = spooled
            .manifest
            .iter()
            .find(|e| e.path.0 == b"tagged")
            .unwrap();
        assert_eq!(tagged.pax.len(), 2);
    }

    #[test]
    fn increments_store_only_changes() {
        let v1 = tar_of(&[
            (b"./", EntryType::Directory, b"", b""),
            (b"same", FILE, b"unchanged", b""),
            (b"edit", FILE, b"before", b""),
            (b"gone", FILE, b"deleted later", b""),
            (b"sneaky", FILE, b"aaaa", b""),
        ]);
        let first = ingest_with(&v1, None, &id(), &Limits::default()).unwrap();
        let previous: HashMap<_, _> = first
            .manifest
            .iter()
            .map(|e| (e.path.0.clone(), e.clone()))
            .collect();
        let v2 = tar_of(&[
            (b"./", EntryType::Directory, b"", b""),
            (b"same", FILE, b"unchanged", b""),
            (b"edit", FILE, b"after!", b""),
            // Same size and mtime: only the content hash tells.
            (b"sneaky", FILE, b"bbbb", b""),
            (b"new", FILE, b"added", b""),
        ]);
        let second_id = BackupId::parse("20240102T030406Z-00000001").unwrap();
        let mut second = ingest_with(&v2, Some(&previous), &second_id, &Limits::default()).unwrap();
        assert_eq!(second.ingested.entries, 5);
        assert_eq!(second.ingested.stored, 3, "edit, sneaky and new");
        assert_eq!(
            second.ingested.depends_on.iter().collect::<Vec<_>>(),
            vec![&id()]
        );
        let origin = |p: &[u8]| {
            second
                .manifest
                .iter()
                .find(|e| e.path.0 == p)
                .unwrap()
                .origin
                .clone()
        };
        assert_eq!(origin(b"same"), id());
        assert_eq!(origin(b"."), id());
        assert_eq!(origin(b"sneaky"), second_id);
        assert!(second.manifest.iter().all(|e| e.path.0 != b"gone"));
        // The increment's own archive holds just the changed entries.
        second.archive.seek(SeekFrom::Start(0)).unwrap();
        let mut gz = Vec::new();
        GzDecoder::new(&second.archive)
            .read_to_end(&mut gz)
            .unwrap();
        let names: Vec<Vec<u8>> = read_all(&gz).into_iter().map(|s| s.path).collect();
        assert_eq!(
            names,
            vec![b"edit".to_vec(), b"sneaky".to_vec(), b"new".to_vec()]
        );
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        pax_record(&mut out, b"mtime", b"1.5");
        assert_eq!(out, b"13 mtime=1.5\n");
        for n in 80..120 {
            let mut out = Vec::new();
            let value = vec![b'x'; n];
            pax_record(&mut out, b"k", &value);
            let (len, _) = std::str::from_utf8(&out).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{n}");
        }
    }
}
