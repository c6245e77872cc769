//! Test helpers: volume trees, their snapshots, and a real S3-compatible
//! server (moto) on loopback.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filetime::FileTime;
use lain_backup::{S3Config, SecretString};

/// What a restore must reproduce of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub mtime: i64,
    pub uid: u32,
    pub gid: u32,
}

/// Every entry under a directory, by path relative to it (`.` for itself).
pub type Snapshot = BTreeMap<PathBuf, Node>;

pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, Path::new("."), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Snapshot) {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path).unwrap();
    let kind = if meta.file_type().is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        Kind::Symlink(
            fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec(),
        )
    } else if meta.is_dir() {
        Kind::Dir
    } else {
        Kind::File(fs::read(&path).unwrap())
    };
    let is_dir = kind == Kind::Dir;
    out.insert(
        normal(rel),
        Node {
            kind,
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
            uid: meta.uid(),
            gid: meta.gid(),
        },
    );
    if is_dir {
        let mut names: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            walk(root, &rel.join(name), out);
        }
    }
}

fn normal(rel: &Path) -> PathBuf {
    let stripped = rel.strip_prefix(".").unwrap_or(rel);
    if stripped.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        stripped.to_path_buf()
    }
}

/// The snapshot a tar stream describes, for the entries under `top/`
/// (Docker names entries after the volume directory's last component).
pub fn snapshot_of_tar(tar: &[u8], top: &str) -> Snapshot {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Snapshot::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let rel = path.strip_prefix(top).unwrap().to_path_buf();
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(
                entry
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            ),
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                Kind::File(data)
            }
            other => panic!("unexpected entry type {other:?} for {}", path.display()),
        };
        let previous = out.insert(
            normal(&rel),
            Node {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                mtime: h.mtime().unwrap() as i64,
                uid: h.uid().unwrap() as u32,
                gid: h.gid().unwrap() as u32,
            },
        );
        assert!(previous.is_none(), "{} twice in the stream", path.display());
    }
    out
}

/// Asserts two snapshots are the same, naming the first difference.
pub fn assert_same(what: &str, want: &Snapshot, got: &Snapshot) {
    for (path, w) in want {
        let Some(g) = got.get(path) else {
            panic!("{what}: {} is missing", path.display());
        };
        if w != g {
            let short = |n: &Node| match &n.kind {
                Kind::File(d) if d.len() > 64 => format!(
                    "File({} bytes, sha {}) mode {:o} mtime {} uid {} gid {}",
                    d.len(),
                    sha(d),
                    n.mode,
                    n.mtime,
                    n.uid,
                    n.gid
                ),
                _ => format!("{n:?}"),
            };
            panic!(
                "{what}: {} differs:\n want {}\n  got {}",
                path.display(),
                short(w),
                short(g)
            );
        }
    }
    for path in got.keys() {
        assert!(
            want.contains_key(path),
            "{what}: {} should not be there",
            path.display()
        );
    }
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The tar stream of a volume directory, as Docker's archive endpoint
/// gives it: every entry under the directory's own name.
pub fn tar_volume(dir: &Path, out: &Path) -> PathBuf {
    let name = dir.file_name().unwrap();
    let file = fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.follow_symlinks(false);
    b.append_dir_all(name, dir).unwrap();
    b.into_inner().unwrap().flush().unwrap();
    out.to_path_buf()
}

/// Unpacks a tar stream as Docker would into an empty directory: modes,
/// owners and times included.
pub fn unpack(tar: &[u8], dest: &Path) {
    let mut a = tar::Archive::new(tar);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_preserve_ownerships(true);
    a.set_overwrite(false);
    a.unpack(dest).unwrap();
    // The tar crate leaves directory mtimes alone; Docker sets them, last.
    let mut a = tar::Archive::new(tar);
    for entry in a.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.header().entry_type() == tar::EntryType::Directory {
            let mtime = entry.header().mtime().unwrap() as i64;
            set_mtime(&dest.join(entry.path().unwrap()), mtime);
        }
    }
}

/// Deterministic bytes that do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn write(path: &Path, data: &[u8], mode: u32, mtime: i64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, mtime);
}

pub fn set_mtime(path: &Path, mtime: i64) {
    let t = FileTime::from_unix_time(mtime, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

pub fn symlink(target: &str, path: &Path, mtime: i64) {
    std::os::unix::fs::symlink(target, path).unwrap();
    set_mtime(path, mtime);
}

pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A moto S3 server on 127.0.0.1, stopped (and waited for) when dropped,
/// panics included.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where moto_server is: `LAIN_TEST_MOTO_SERVER`, else the venv
/// scripts/test makes.
fn moto_server_path() -> PathBuf {
    match std::env::var_os("LAIN_TEST_MOTO_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("/opt/lain-test-venv/bin/moto_server"),
    }
}

impl Moto {
    /// Starts moto; fails the test, saying why, if it cannot.
    pub fn start() -> Moto {
        let bin = moto_server_path();
        assert!(
            bin.exists(),
            "moto_server not found at {}: run scripts/test, which installs moto[server] into /opt/lain-test-venv, or set LAIN_TEST_MOTO_SERVER to a moto_server binary",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        // A free port: bind to port 0, read the port, let it go.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_file = fs::File::create(&log).unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto_server exited ({status}) before serving; its log:\n{}",
                    fs::read_to_string(&moto.log).unwrap_or_default()
                );
            }
            if moto.request("GET", "/moto-api/").is_some() {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on 127.0.0.1:{port} within 60 s; its log:\n{}",
                fs::read_to_string(&moto.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A bare HTTP/1.1 request; the status code, or `None` when the
    /// server does not answer.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response.split_whitespace().nth(1)?.parse().ok()
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, Some(200), "creating bucket {bucket} on moto");
    }

    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            endpoint: format!("http://127.0.0.1:{}", self.port),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            access_key_id: "testing".into(),
            secret_access_key: Some(SecretString::new("testing-secret")),
            secret_access_key_file: None,
            allow_http: true,
            prefix: prefix.into(),
            virtual_hosted_style: false,
        }
    }
}
