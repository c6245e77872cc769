//! Certificates, read from a directory (interim).
//!
//! The etcd schema has no key for TLS certificates yet, so until it does
//! (asked of lain-store's owner) webrouter reads them from `certs_dir`:
//! `{domain}.crt` (PEM chain) with `{domain}.key` (PEM private key), and
//! `_.{domain}.crt` / `_.{domain}.key` for the wildcard `*.{domain}`
//! (`_` cannot start a DNS label, so the name is unambiguous). The
//! directory is re-read every `certs_poll_ms`; a change triggers a render.

use std::collections::BTreeMap;
use std::path::Path;

use crate::render::{valid_host, CertPair};

/// Larger files are not certificates; refuse rather than load them.
const MAX_FILE: u64 = 1 << 20;

/// Reads every complete pair in `dir`, keyed by the name it serves.
/// Problems (unreadable files, a `.crt` without its `.key`) come back as
/// warnings and leave that name out; a missing dir reads as empty.
pub fn load_dir(dir: &Path) -> (BTreeMap<String, CertPair>, Vec<String>) {
    let mut certs = BTreeMap::new();
    let mut warnings = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (certs, warnings),
        Err(e) => {
            warnings.push(format!("cannot read certs_dir {}: {e}", dir.display()));
            return (certs, warnings);
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".crt")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    for file_name in names {
        let name = match file_name.strip_prefix("_.") {
            Some(rest) => format!("*.{rest}"),
            None => file_name.clone(),
        };
        if !valid_host(name.strip_prefix("*.").unwrap_or(&name)) {
            warnings.push(format!(
                "{}/{file_name}.crt: the file name is not a domain (or _.domain); ignored",
                dir.display()
            ));
            continue;
        }
        let read = |ext: &str| -> Result<Vec<u8>, String> {
            let p = dir.join(format!("{file_name}.{ext}"));
            let meta = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            if meta.len() > MAX_FILE {
                return Err(format!("{}: larger than 1 MiB", p.display()));
            }
            std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
        };
        match (read("crt"), read("key")) {
            (Ok(cert), Ok(key)) => {
                certs.insert(name, CertPair { cert, key });
            }
            (Err(e), _) | (_, Err(e)) => {
                warnings.push(format!("certificate {name} ignored: {e}"));
            }
        }
    }
    (certs, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_and_wildcards() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
        w("a.example.com.crt", "C1");
        w("a.example.com.key", "K1");
        w("_.example.com.crt", "C2");
        w("_.example.com.key", "K2");
        w("lonely.example.com.crt", "C3");
        w("bad name.crt", "C4");
        let (certs, warnings) = load_dir(dir.path());
        assert_eq!(
            certs.keys().collect::<Vec<_>>(),
            ["*.example.com", "a.example.com"]
        );
        assert_eq!(certs["*.example.com"].key, b"K2");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
