//! Certificates: from etcd (`/lain/certs/{name}`, private keys sealed
//! under the cluster secrets key) and, as a fallback for single-host
//! setups, from a directory.
//!
//! etcd: [`EtcdCerts`] opens each [`TlsCertificate`] with the secrets key
//! (`secrets_key_file`), bound to its key path. A certificate that does
//! not open or is malformed is left out with an error, and its last good
//! version, if any, keeps serving.
//!
//! Directory (`certs_dir`): `{domain}.crt` (PEM chain) with `{domain}.key`
//! (PEM private key), and `_.{domain}.crt` / `_.{domain}.key` for the
//! wildcard `*.{domain}` (`_` cannot start a DNS label, so the name is
//! unambiguous). The directory is re-read every `certs_poll_ms`; a change
//! triggers a render. A name that etcd also serves is taken from etcd.

use std::collections::BTreeMap;
use std::path::Path;

use lain_store::secret::{open_for, SecretsKey};
use lain_store::{CertKey, StoreKey, TlsCertificate};

use crate::render::{valid_host, CertPair};

/// Longest error text kept per certificate.
const MAX_ERROR: usize = 300;

/// The certificates held in etcd, opened.
#[derive(Debug)]
pub struct EtcdCerts {
    key: SecretsKey,
    /// Per certificate key: the stored value last opened successfully and
    /// what it opened to.
    good: BTreeMap<CertKey, (TlsCertificate, CertPair)>,
    /// Per certificate key path: why its current value is not served.
    errors: BTreeMap<String, String>,
}

/// What a stored certificate key currently holds.
pub type Stored = Result<TlsCertificate, String>;

impl EtcdCerts {
    pub fn new(key: SecretsKey) -> Self {
        Self {
            key,
            good: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Brings the opened set in line with `current` (every key under
    /// `/lain/certs/`, with its value or why it could not be decoded).
    /// Returns the errors that are new since the last update.
    pub fn update(&mut self, current: &BTreeMap<String, (Option<CertKey>, Stored)>) -> Vec<String> {
        self.good.retain(|k, _| current.contains_key(&k.path()));
        let mut errors = BTreeMap::new();
        for (path, (key, stored)) in current {
            let result = match (key, stored) {
                (Some(key), Ok(cert)) => {
                    if self.good.get(key).is_some_and(|(held, _)| held == cert) {
                        continue;
                    }
                    match self.open(key, cert) {
                        Ok(pair) => {
                            self.good.insert(key.clone(), (cert.clone(), pair));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                (_, Err(e)) => Err(e.clone()),
                (None, Ok(_)) => Err("not a certificate key".to_owned()),
            };
            if let Err(e) = result {
                let kept = if key.as_ref().is_some_and(|k| self.good.contains_key(k)) {
                    "; its previous version keeps serving"
                } else {
                    "; not served"
                };
                let mut msg = format!("certificate {path}: {e}");
                if msg.len() > MAX_ERROR {
                    msg = msg.chars().take(MAX_ERROR).collect::<String>() + "…";
                }
                errors.insert(path.clone(), msg + kept);
            }
        }
        let fresh = errors
            .iter()
            .filter(|(p, e)| self.errors.get(*p) != Some(*e))
            .map(|(_, e)| e.clone())
            .collect();
        self.errors = errors;
        fresh
    }

    fn open(&self, key: &CertKey, cert: &TlsCertificate) -> Result<CertPair, String> {
        if cert.domains.is_empty() {
            return Err("names no domain".to_owned());
        }
        if let Some(d) = cert
            .domains
            .iter()
            .find(|d| !valid_host(d.strip_prefix("*.").unwrap_or(d)))
        {
            return Err(format!(
                "domain {:?} is not a DNS name or *.name",
                d.chars().take(64).collect::<String>()
            ));
        }
        if !cert.cert_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err("cert_pem holds no PEM certificate".to_owned());
        }
        let plain = open_for(&self.key, key, &cert.key).map_err(|e| e.to_string())?;
        if !plain
            .windows(b"PRIVATE KEY-----".len())
            .any(|w| w == b"PRIVATE KEY-----")
        {
            return Err("the sealed key is not a PEM private key".to_owned());
        }
        Ok(CertPair {
            cert: cert.cert_pem.as_bytes().to_vec(),
            key: plain.to_vec(),
        })
    }

    /// The served certificates by the name they serve. Two certificates
    /// naming the same domain: the one under the first key (in path
    /// order) serves it.
    pub fn served(&self) -> BTreeMap<String, CertPair> {
        let mut out = BTreeMap::new();
        for (cert, pair) in self.good.values() {
            for d in &cert.domains {
                out.entry(d.to_ascii_lowercase())
                    .or_insert_with(|| pair.clone());
            }
        }
        out
    }

    /// Why certificates in etcd are not served (or not in their latest
    /// version), one line each.
    pub fn errors(&self) -> Vec<String> {
        self.errors.values().cloned().collect()
    }
}

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
    use lain_store::secret::seal_for;

    fn sealed(k: &SecretsKey, at: &CertKey, domains: &[&str]) -> TlsCertificate {
        TlsCertificate {
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n".into(),
            key: seal_for(
                k,
                at,
                b"-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n",
            )
            .unwrap(),
            not_after_ms: None,
        }
    }

    #[test]
    fn etcd_certs_open_and_keep_the_last_good_version() {
        let k = SecretsKey::generate();
        let a = CertKey::new("a").unwrap();
        let b = CertKey::new("b").unwrap();
        let mut certs = EtcdCerts::new(k.clone());
        let good = sealed(&k, &a, &["a.example.com", "*.w.example.com"]);
        let mut current = BTreeMap::from([(a.path(), (Some(a.clone()), Ok(good.clone())))]);
        assert!(certs.update(&current).is_empty());
        let served = certs.served();
        assert_eq!(
            served.keys().collect::<Vec<_>>(),
            ["*.w.example.com", "a.example.com"]
        );
        assert!(served["a.example.com"]
            .key
            .starts_with(b"-----BEGIN PRIVATE"));

        // A blob moved from another key does not open; `a` keeps serving.
        let moved = good.clone();
        current.insert(b.path(), (Some(b.clone()), Ok(moved)));
        let fresh = certs.update(&current);
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        assert!(fresh[0].contains("/lain/certs/b"), "{fresh:?}");
        assert!(fresh[0].contains("not served"), "{fresh:?}");
        // The same error is not new the second time.
        assert!(certs.update(&current).is_empty());

        // A tampered replacement of `a`: its previous version keeps serving.
        let mut tampered = good.clone();
        tampered.key.ciphertext_b64 = seal_for(&k, &a, b"other").unwrap().ciphertext_b64;
        current.insert(a.path(), (Some(a.clone()), Ok(tampered)));
        let fresh = certs.update(&current);
        assert!(
            fresh
                .iter()
                .any(|e| e.contains("previous version keeps serving")),
            "{fresh:?}"
        );
        assert_eq!(certs.served()["a.example.com"], served["a.example.com"]);
        assert_eq!(certs.errors().len(), 2);

        // Deleted keys stop serving and their errors clear.
        current.clear();
        assert!(certs.update(&current).is_empty());
        assert!(certs.served().is_empty());
        assert!(certs.errors().is_empty());
    }

    #[test]
    fn etcd_certs_refuse_bad_domains_and_wrong_keys() {
        let k = SecretsKey::generate();
        let a = CertKey::new("a").unwrap();
        let mut certs = EtcdCerts::new(k.clone());
        let bad = sealed(&k, &a, &["bad name"]);
        let other = sealed(&SecretsKey::generate(), &a, &["a.example.com"]);
        for value in [bad, other] {
            let current = BTreeMap::from([(a.path(), (Some(a.clone()), Ok(value)))]);
            assert_eq!(certs.update(&current).len(), 1);
            assert!(certs.served().is_empty());
        }
        let shown = format!("{certs:?}");
        assert!(!shown.contains(&*k.to_base64()), "{shown}");
    }

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
