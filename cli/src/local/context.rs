//! The build context sent to the engine: a tar of the app's source under
//! `app/` (without `.git` and what `.dockerignore` excludes) plus the
//! generated `Dockerfile` at its root. Entries are sorted, owned by root
//! and carry a fixed mtime, so the same tree always gives the same bytes.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// The mtime of every entry (2000-01-01T00:00:00Z).
pub const FIXED_MTIME: u64 = 946_684_800;

/// Where the app's source sits inside the context.
pub const SOURCE_DIR: &str = "app";

/// `.dockerignore` rules: Docker's pattern syntax (`*`, `?`, `**`, a
/// leading `!` re-includes, the last matching rule wins); a rule that
/// matches a directory excludes everything under it.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<(bool, String)>,
}

impl Ignore {
    /// Parses a `.dockerignore` text; `.git` is always excluded.
    pub fn parse(text: &str) -> Ignore {
        let mut rules = vec![(false, ".git".to_owned())];
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let pat = clean(pat);
            if !pat.is_empty() {
                rules.push((negate, pat));
            }
        }
        Ignore { rules }
    }

    /// Reads `dir/.dockerignore` (none: only `.git` is excluded).
    pub fn load(dir: &Path) -> io::Result<Ignore> {
        match fs::read_to_string(dir.join(".dockerignore")) {
            Ok(text) => Ok(Ignore::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ignore::parse("")),
            Err(e) => Err(e),
        }
    }

    /// Whether `path` (relative, `/`-separated) is left out.
    pub fn excluded(&self, path: &str) -> bool {
        let mut out = false;
        for (negate, pat) in &self.rules {
            if matches_or_parent(pat, path) {
                out = !negate;
            }
        }
        out
    }

    fn has_negations(&self) -> bool {
        self.rules.iter().any(|(n, _)| *n)
    }
}

/// A pattern as Docker cleans it: no leading `/` or `./`, no trailing `/`.
fn clean(pat: &str) -> String {
    let mut p = pat.trim_start_matches('/');
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/').to_owned()
}

/// The pattern matches the path or one of its parent directories.
fn matches_or_parent(pat: &str, path: &str) -> bool {
    if glob(pat.as_bytes(), path.as_bytes()) {
        return true;
    }
    path.match_indices('/')
        .any(|(i, _)| glob(pat.as_bytes(), &path.as_bytes()[..i]))
}

/// Glob over whole paths: `*` and `?` stay within a segment, `**` spans
/// any number of segments.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') if pat.get(1) == Some(&b'*') => {
            // `**/x` also matches `x`; `**` matches everything.
            let rest = &pat[2..];
            let rest_no_slash = rest.strip_prefix(b"/").unwrap_or(rest);
            if glob(rest_no_slash, s) {
                return true;
            }
            (0..s.len()).any(|i| glob(rest, &s[i + 1..]) || glob(rest_no_slash, &s[i + 1..]))
        }
        Some(b'*') => {
            let rest = &pat[1..];
            let mut i = 0;
            loop {
                if glob(rest, &s[i..]) {
                    return true;
                }
                if i == s.len() || s[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob(&pat[1..], &s[1..]),
        Some(b'\\') if pat.len() > 1 => s.first() == Some(&pat[1]) && glob(&pat[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&pat[1..], &s[1..]),
    }
}

/// A tar holding `Dockerfile` and, when `source` is given, that directory's
/// files under `app/`.
pub fn context_tar(dockerfile: &str, source: Option<&Path>) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut h = header(tar::EntryType::Regular, 0o644, dockerfile.len() as u64);
    tar.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())?;
    if let Some(dir) = source {
        let ignore = Ignore::load(dir)?;
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, format!("{SOURCE_DIR}/"), io::empty())?;
        add_dir(&mut tar, dir, "", &ignore)?;
    }
    tar.into_inner()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(FIXED_MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn add_dir(
    tar: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    rel: &str,
    ignore: &Ignore,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: the file name is not UTF-8", entry.path().display()),
            ));
        };
        let path = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(entry.path())?;
        let excluded = ignore.excluded(&path);
        let in_tar = format!("{SOURCE_DIR}/{path}");
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if excluded && !ignore.has_negations() {
                continue;
            }
            if !excluded {
                let mut h = header(tar::EntryType::Directory, mode, 0);
                tar.append_data(&mut h, format!("{in_tar}/"), io::empty())?;
            }
            add_dir(tar, root, &path, ignore)?;
        } else if excluded {
            continue;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(entry.path())?;
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            tar.append_link(&mut h, &in_tar, target)?;
        } else if meta.is_file() {
            let data = fs::read(entry.path())?;
            let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
            tar.append_data(&mut h, &in_tar, data.as_slice())?;
        }
        // Sockets, fifos and devices are not part of a source tree.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        let ig = Ignore::parse("# comment\n\n*.log\n/target/\nnode_modules\ndocs/**/*.md\n!docs/keep.md\n!important.log\n");
        assert!(ig.excluded(".git"));
        assert!(ig.excluded(".git/config"));
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("sub/a.log"), "`*` stays in one segment");
        assert!(!ig.excluded("important.log"));
        assert!(ig.excluded("target"));
        assert!(ig.excluded("target/debug/x"));
        assert!(ig.excluded("node_modules/a/b.js"));
        assert!(!ig.excluded("src/node_modules"));
        assert!(ig.excluded("docs/a/b/c.md"));
        assert!(ig.excluded("docs/c.md"));
        assert!(!ig.excluded("docs/keep.md"));
        assert!(!ig.excluded("main.go"));
        let all = Ignore::parse("**/*.tmp\nb?d\n");
        assert!(all.excluded("x.tmp") && all.excluded("a/b/x.tmp"));
        assert!(all.excluded("bad") && !all.excluded("baad"));
    }

    fn names(tar: &[u8]) -> Vec<(String, u64)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn context_is_filtered_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join(".git/objects")).unwrap();
        fs::write(d.join(".git/HEAD"), "ref").unwrap();
        fs::create_dir_all(d.join("src")).unwrap();
        fs::write(d.join("src/main.c"), "int main;").unwrap();
        fs::write(d.join("build.log"), "x").unwrap();
        fs::write(d.join(".dockerignore"), "*.log\n").unwrap();
        std::os::unix::fs::symlink("src/main.c", d.join("link")).unwrap();
        let one = context_tar("FROM x\n", Some(d)).unwrap();
        let got = names(&one);
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Dockerfile",
                "app/",
                "app/.dockerignore",
                "app/link",
                "app/src/",
                "app/src/main.c"
            ]
        );
        assert!(got.iter().all(|(_, m)| *m == FIXED_MTIME));
        // Touching files changes nothing.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(d.join("src/main.c"), "int main;").unwrap();
        assert_eq!(context_tar("FROM x\n", Some(d)).unwrap(), one);
        // Without source: only the Dockerfile.
        let bare = context_tar("FROM x\n", None).unwrap();
        assert_eq!(names(&bare).len(), 1);
    }
}
