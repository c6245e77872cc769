//! Files that hold a secret (keys, client secrets): read only when no one
//! but the owner can read or write them, written with mode 0600.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a private file could not be read or written. `what` names the
/// config key that points at it.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("cannot read {what} {path}: {detail}")]
    Read {
        what: String,
        path: PathBuf,
        detail: String,
    },
    #[error("{what} {path} has mode {mode:04o}: others may read it; run `chmod 600 {path}`")]
    Permissions {
        what: String,
        path: PathBuf,
        mode: u32,
    },
    #[error("{what} {path} is larger than {max} bytes: it should hold only the key or secret")]
    TooLarge {
        what: String,
        path: PathBuf,
        max: u64,
    },
    #[error("cannot write {what} {path}: {detail}")]
    Write {
        what: String,
        path: PathBuf,
        detail: String,
    },
}

/// Reads `path` when it is not readable or writable by group or others
/// (mode 0600 or stricter) and at most `max` bytes long.
pub fn read_private_file(
    path: &Path,
    what: &str,
    max: u64,
) -> Result<Zeroizing<Vec<u8>>, PrivateFileError> {
    let read_err = |e: std::io::Error| PrivateFileError::Read {
        what: what.to_owned(),
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Permissions {
            what: what.to_owned(),
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > max {
        return Err(PrivateFileError::TooLarge {
            what: what.to_owned(),
            path: path.to_owned(),
            max,
        });
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(read_err)?))
}

/// Creates `path` with mode 0600 and writes `bytes`; refuses to replace
/// an existing file (two replicas starting at once must not overwrite
/// each other's key).
pub fn create_private_file(path: &Path, what: &str, bytes: &[u8]) -> Result<(), PrivateFileError> {
    let write_err = |e: std::io::Error| PrivateFileError::Write {
        what: what.to_owned(),
        path: path.to_owned(),
        detail: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    f.write_all(bytes).map_err(write_err)?;
    f.sync_all().map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_sizes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/k");
        create_private_file(&p, "key_file", b"secret").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(&*read_private_file(&p, "key_file", 64).unwrap(), b"secret");
        // Never replaced.
        let e = create_private_file(&p, "key_file", b"other").unwrap_err();
        assert!(e.to_string().contains("cannot write key_file"), "{e}");
        let e = read_private_file(&p, "key_file", 3).unwrap_err();
        assert!(e.to_string().contains("larger than 3 bytes"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_private_file(&p, "key_file", 64).unwrap_err();
        assert!(
            e.to_string().contains("mode 0640") && e.to_string().contains("chmod 600"),
            "{e}"
        );
        let e = read_private_file(&dir.path().join("none"), "key_file", 64).unwrap_err();
        assert!(e.to_string().starts_with("cannot read key_file"), "{e}");
    }
}
