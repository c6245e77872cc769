//! `lain init`: a commented lain.yaml to start from.

use std::path::Path;

use crate::error::fail;

/// The starting lain.yaml for `app`.
pub fn template(app: &str) -> String {
    format!(
        r#"# lain.yaml of {app}: how LAIN builds, releases and runs it.
# Reference: docs/lain-yaml.md; check it with `lain validate`.

appname: {app}

build:
  # The image the build runs in.
  base: busybox
  # Optional: a cached layer under the build, rebuilt only when its
  # version (or base, script, keep) changes.
  # prepare:
  #   version: "1"
  #   script:
  #     - echo fetch dependencies here
  #   keep:
  #     - node_modules
  # Run in /lain/app, which holds the source; each line a `set -e` shell.
  script:
    - echo build {app} here

# Optional: a smaller image holding only what runs.
# release:
#   dest_base: busybox
#   copy:
#     - src: app        # relative sources are under /lain/app
#       dest: /usr/bin/app

# Optional: `lain test` runs this in the build image.
test:
  script:
    - echo test {app} here

# The web proc answers on {app}.DOMAIN (port 80 by default).
web:
  cmd: httpd -f -p 80 -h /lain/app
  memory: 32m
  # num_instances: 1
  # healthcheck: /
"#
    )
}

/// An app name derived from a directory name: lowercase letters and digits
/// joined by single `-`, starting with a letter.
pub fn name_from_dir(dir: &Path) -> Option<String> {
    let base = std::fs::canonicalize(dir).ok()?;
    let raw = base.file_name()?.to_str()?.to_ascii_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    out.chars()
        .next()
        .filter(char::is_ascii_alphabetic)
        .map(|_| out.clone())
}

/// Writes `dir/lain.yaml` for `name` (default: from the directory's name);
/// returns the path. Never overwrites.
pub fn init(dir: &Path, name: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("lain.yaml");
    if path.exists() {
        return Err(fail(
            format!("{} already exists", path.display()),
            "edit it, or remove it first to start over",
        ));
    }
    let app = match name {
        Some(n) => n.to_owned(),
        None => name_from_dir(dir).ok_or_else(|| {
            fail(
                format!("cannot derive an app name from {}", dir.display()),
                "give one with --name APP",
            )
        })?,
    };
    let text = template(&app);
    if let Err(diags) = lain_spec::parse("lain.yaml", &text, &Default::default()) {
        let why = diags
            .errors()
            .next()
            .map_or_else(String::new, |d| d.message.clone());
        return Err(fail(
            format!("`{app}` cannot be an app name: {why}"),
            "give another with --name APP (letters and digits, words joined by `-`)",
        ));
    }
    std::fs::write(&path, text).map_err(|e| {
        fail(
            format!("cannot write {}: {e}", path.display()),
            "check the directory exists and is writable",
        )
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_valid() {
        let v = lain_spec::parse("lain.yaml", &template("hello-world"), &Default::default())
            .expect("valid");
        assert_eq!(v.conf.appname, "hello-world");
        assert!(v.conf.test.is_some());
    }

    #[test]
    fn init_refuses_to_overwrite_and_checks_names() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("My_App 2");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(name_from_dir(&dir).as_deref(), Some("my-app-2"));
        let e = init(&dir, Some("9bad")).unwrap_err();
        assert!(crate::error::one_line(&e).contains("--name"));
        let p = init(&dir, None).unwrap();
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("appname: my-app-2"));
        let e = init(&dir, None).unwrap_err();
        assert!(crate::error::one_line(&e).contains("already exists"));
    }
}
