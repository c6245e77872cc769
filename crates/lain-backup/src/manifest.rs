//! The manifest: every entry of a volume at one backup, with all of its
//! metadata and which backup's archive holds its content.
//!
//! Stored as gzip'd JSON lines, one entry per line in the order of the
//! volume's tar stream, so it is written and read as a stream.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::BackupId;

/// Bytes that are usually, but not always, UTF-8 (paths, link targets,
/// PAX values). JSON holds them as a string when they are UTF-8 and as
/// `{"hex": "..."}` when they are not, so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RawBytes(pub Vec<u8>);

impl RawBytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// For messages: lossy UTF-8.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl Serialize for RawBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => Hex {
                hex: hex::encode(&self.0),
            }
            .serialize(s),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hex {
    hex: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRepr {
    Text(String),
    Hex(Hex),
}

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawRepr::deserialize(d)? {
            RawRepr::Text(t) => Ok(Self(t.into_bytes())),
            RawRepr::Hex(h) => hex::decode(h.hex)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A hard link to an earlier path of the same volume.
    Hardlink,
    Fifo,
    Char,
    Block,
}

impl EntryKind {
    pub(crate) fn tar_type(self) -> tar::EntryType {
        match self {
            EntryKind::File => tar::EntryType::Regular,
            EntryKind::Dir => tar::EntryType::Directory,
            EntryKind::Symlink => tar::EntryType::Symlink,
            EntryKind::Hardlink => tar::EntryType::Link,
            EntryKind::Fifo => tar::EntryType::Fifo,
            EntryKind::Char => tar::EntryType::Char,
            EntryKind::Block => tar::EntryType::Block,
        }
    }
}

/// One entry of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Relative, without `./` in front or `/` behind; `.` is the volume's
    /// own directory when the stream has an entry for it.
    pub path: RawBytes,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uname: Option<RawBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gname: Option<RawBytes>,
    /// Seconds since the epoch, as in the tar header (finer times, when
    /// the stream had them, are among the PAX records).
    pub mtime: u64,
    /// Content bytes (files only; 0 for everything else).
    pub size: u64,
    /// sha256 of the content, hex (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Symlink target as written, or the path a hard link points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<RawBytes>,
    /// Device numbers (character and block devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<(u32, u32)>,
    /// PAX records of the entry as they came (xattrs, sub-second times),
    /// but path, linkpath and size, which the archive format carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pax: Vec<(RawBytes, RawBytes)>,
    /// The backup whose archive holds this entry as it is here.
    pub origin: BackupId,
}

/// PAX keys that change without the file changing (reading a file sets
/// its atime); they are kept, but not compared.
const VOLATILE_PAX: &[&[u8]] = &[b"atime", b"ctime"];

impl ManifestEntry {
    /// Whether `self` and `other` describe the same entry, content hash
    /// and origin aside: size, mtime, mode, owner, type, link target,
    /// device and PAX records.
    pub(crate) fn same_metadata(&self, other: &ManifestEntry) -> bool {
        let stable = |e: &ManifestEntry| {
            e.pax
                .iter()
                .filter(|(k, _)| !VOLATILE_PAX.contains(&k.as_bytes()))
                .cloned()
                .collect::<Vec<_>>()
        };
        self.path == other.path
            && self.kind == other.kind
            && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.uname == other.uname
            && self.gname == other.gname
            && self.mtime == other.mtime
            && self.size == other.size
            && self.link == other.link
            && self.dev == other.dev
            && stable(self) == stable(other)
    }

    /// Whether restoring needs content from an archive.
    pub(crate) fn has_content(&self) -> bool {
        self.kind == EntryKind::File && self.size > 0
    }
}

/// Writes manifest entries as JSON lines.
pub(crate) fn write_entry(out: &mut impl Write, entry: &ManifestEntry) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, entry)?;
    out.write_all(b"\n")
}

/// Reads a whole manifest. Lines are bounded (`max_line`), and so is the
/// number of entries.
pub(crate) fn read_manifest(
    input: &mut impl BufRead,
    location: &str,
    max_line: u64,
    max_entries: u64,
) -> Result<Vec<ManifestEntry>> {
    let corrupt = |reason: String| Error::Corrupt {
        location: location.to_owned(),
        reason,
    };
    let mut entries = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::Read::take(&mut *input, max_line + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| corrupt(format!("reading it failed: {e}")))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            return Err(corrupt(if n as u64 > max_line {
                format!("line {} is longer than {max_line} bytes", entries.len() + 1)
            } else {
                "it ends in the middle of a line".to_owned()
            }));
        }
        if entries.len() as u64 >= max_entries {
            return Err(corrupt(format!("it has more than {max_entries} entries")));
        }
        let entry: ManifestEntry = serde_json::from_slice(&line)
            .map_err(|e| corrupt(format!("line {}: {e}", entries.len() + 1)))?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[u8]) -> ManifestEntry {
        ManifestEntry {
            path: RawBytes(path.to_vec()),
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            mtime: 1,
            size: 3,
            sha256: Some("ab".into()),
            link: None,
            dev: None,
            pax: vec![(
                RawBytes(b"SCHILY.xattr.user.x".to_vec()),
                RawBytes(vec![0, 255]),
            )],
            origin: BackupId::parse("20240102T030405Z-0a1b2c3d").unwrap(),
        }
    }

    #[test]
    fn non_utf8_bytes_round_trip() {
        let e = entry(b"caf\xe9/x");
        let mut out = Vec::new();
        write_entry(&mut out, &e).unwrap();
        write_entry(&mut out, &entry(b"plain")).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains(r#""path":{"hex":"636166e92f78"}"#), "{text}");
        assert!(text.contains(r#""path":"plain""#), "{text}");
        let back = read_manifest(&mut out.as_slice(), "m", 1 << 20, 10).unwrap();
        assert_eq!(back, vec![e, entry(b"plain")]);
    }

    #[test]
    fn bounds_and_truncation() {
        let mut out = Vec::new();
        write_entry(&mut out, &entry(b"a")).unwrap();
        write_entry(&mut out, &entry(b"b")).unwrap();
        let err = read_manifest(&mut out.as_slice(), "m", 1 << 20, 1).unwrap_err();
        assert!(err.to_string().contains("more than 1 entries"), "{err}");
        let err = read_manifest(&mut out.as_slice(), "m", 10, 10).unwrap_err();
        assert!(err.to_string().contains("longer than 10 bytes"), "{err}");
        let cut = &out[..out.len() - 5];
        let err = read_manifest(&mut &cut[..], "m", 1 << 20, 10).unwrap_err();
        assert!(err.to_string().contains("middle of a line"), "{err}");
    }

    #[test]
    fn volatile_pax_is_not_a_change() {
        let a = entry(b"a");
        let mut b = a.clone();
        b.pax
            .push((RawBytes(b"atime".to_vec()), RawBytes(b"123.5".to_vec())));
        assert!(a.same_metadata(&b));
        b.mode = 0o600;
        assert!(!a.same_metadata(&b));
    }
}
