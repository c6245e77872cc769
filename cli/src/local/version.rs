//! A release's version: `<commit unix time>-<full git sha>` of the app's
//! repository, as LAIN names releases.

use std::path::Path;
use std::process::Command;

use crate::error::fail;

/// The version of the commit checked out in `dir`'s repository. A dirty
/// tree (anything `git status --porcelain` lists) is refused unless
/// `allow_dirty`: the version would not describe what is built.
pub fn release_version(dir: &Path, allow_dirty: bool) -> anyhow::Result<String> {
    let shown = dir.display();
    let inside = git(dir, &["rev-parse", "--is-inside-work-tree"]);
    match inside {
        Ok(out) if out.trim() == "true" => {}
        Ok(_) | Err(GitError::Failed(_)) => {
            return Err(fail(
                format!("{shown} is not in a git repository; a release is named after its commit"),
                "run `git init` and commit the app, or give the app's directory",
            ))
        }
        Err(GitError::Missing(e)) => {
            return Err(fail(
                format!("cannot run git: {e}"),
                "install git; a release is named after its commit",
            ))
        }
    }
    let log = git(dir, &["log", "-1", "--format=%ct-%H"]).map_err(|_| {
        fail(
            format!("the repository at {shown} has no commit yet"),
            "commit the app first: `git add -A && git commit`",
        )
    })?;
    let version = parse_version(&log).ok_or_else(|| {
        fail(
            format!("unexpected `git log` output in {shown}: {:?}", log.trim()),
            "check the repository with `git log -1`",
        )
    })?;
    if !allow_dirty {
        let status = git(dir, &["status", "--porcelain"]).map_err(|e| {
            fail(
                format!("cannot read the git status of {shown}: {e}"),
                "check the repository with `git status`",
            )
        })?;
        if let Some(first) = status.lines().find(|l| !l.trim().is_empty()) {
            let n = status.lines().filter(|l| !l.trim().is_empty()).count();
            return Err(fail(
                format!(
                    "the working tree of {shown} has uncommitted changes ({n} path{}, e.g. `{}`)",
                    if n == 1 { "" } else { "s" },
                    first.get(3..).unwrap_or(first).trim()
                ),
                "commit or stash them, or pass --allow-dirty to build them under the last commit's version",
            ));
        }
    }
    Ok(version)
}

/// `1700000000-<40 hex>` from `git log -1 --format=%ct-%H` output.
pub fn parse_version(out: &str) -> Option<String> {
    let v = out.trim();
    let (time, sha) = v.split_once('-')?;
    let time_ok = !time.is_empty() && time.bytes().all(|b| b.is_ascii_digit());
    let sha_ok = (sha.len() == 40 || sha.len() == 64)
        && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (time_ok && sha_ok).then(|| v.to_owned())
}

#[derive(Debug)]
enum GitError {
    /// git could not be started.
    Missing(std::io::Error),
    /// git ran and failed (its stderr).
    Failed(String),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::Missing(e) => write!(f, "{e}"),
            GitError::Failed(e) => f.write_str(e.trim()),
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(GitError::Missing)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(GitError::Failed(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_log_output() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            parse_version(&format!("1700000000-{sha}\n")),
            Some(format!("1700000000-{sha}"))
        );
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("1700000000"), None);
        assert_eq!(parse_version(&format!("x-{sha}")), None);
        assert_eq!(parse_version("1700000000-abc"), None);
        assert_eq!(parse_version(&format!("1-{}", sha.to_uppercase())), None);
    }
}
