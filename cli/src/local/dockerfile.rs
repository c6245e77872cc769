//! The Dockerfiles of a build: prepare, build and release stages, made
//! from lain.yaml the way LAIN builds them.

use lain_spec::LainConf;
use sha2::{Digest as _, Sha256};

/// Where the app's source and build live in the images.
pub const APP_DIR: &str = "/lain/app";

/// Which image a stage makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    Prepare,
    Build,
    Release,
}

impl std::fmt::Display for StageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StageKind::Prepare => "prepare",
            StageKind::Build => "build",
            StageKind::Release => "release",
        })
    }
}

/// One `docker build`: its Dockerfile, what its steps do, and its tag.
#[derive(Debug, Clone)]
pub struct Stage {
    pub kind: StageKind,
    /// `{app}:{kind}-...`.
    pub tag: String,
    pub dockerfile: String,
    /// A short description of each instruction, in order (Docker's
    /// `Step N/M` is `steps[N-1]`).
    pub steps: Vec<String>,
    /// Whether the context holds the app's source.
    pub with_source: bool,
    /// `--build-arg` values, as `(name, value)`.
    pub build_args: Vec<(String, String)>,
}

/// The stages of one build.
#[derive(Debug, Clone)]
pub struct Plan {
    pub prepare: Option<Stage>,
    pub build: Stage,
    pub release: Stage,
}

/// The stages for `conf` at `version`.
pub fn plan(conf: &LainConf, version: &str) -> Plan {
    let app = &conf.appname;
    let b = &conf.build;
    let prepare = b.prepare.as_ref().map(|p| {
        let mut d = Dockerfile::default();
        d.push(format!("FROM {}", b.base), format!("FROM {}", b.base));
        args(&mut d, &p.build_arg);
        d.push(
            format!("COPY [\"app/\", \"{APP_DIR}/\"]"),
            "copy the source to /lain/app",
        );
        d.push(format!("WORKDIR {APP_DIR}"), format!("WORKDIR {APP_DIR}"));
        for line in &p.script {
            d.push(run(line), format!("prepare: {}", one_line(line)));
        }
        d.push(
            run(&clean_except(&p.keep)),
            format!(
                "keep only {}",
                if p.keep.is_empty() {
                    "nothing".into()
                } else {
                    p.keep.join(", ")
                }
            ),
        );
        Stage {
            kind: StageKind::Prepare,
            tag: format!(
                "{app}:prepare-{}-{}",
                tag_safe(&p.version),
                prepare_hash(&b.base, &p.script, &p.keep)
            ),
            dockerfile: d.text,
            steps: d.steps,
            with_source: true,
            build_args: build_args(&p.build_arg),
        }
    });
    let from = prepare.as_ref().map_or(b.base.clone(), |p| p.tag.clone());
    let mut d = Dockerfile::default();
    d.push(format!("FROM {from}"), format!("FROM {from}"));
    args(&mut d, &b.build_arg);
    d.push(
        format!("COPY [\"app/\", \"{APP_DIR}/\"]"),
        "copy the source to /lain/app",
    );
    d.push(format!("WORKDIR {APP_DIR}"), format!("WORKDIR {APP_DIR}"));
    for line in &b.script {
        d.push(run(line), format!("build: {}", one_line(line)));
    }
    let build = Stage {
        kind: StageKind::Build,
        tag: format!("{app}:build-{version}"),
        dockerfile: d.text,
        steps: d.steps,
        with_source: true,
        build_args: build_args(&b.build_arg),
    };

    let mut d = Dockerfile::default();
    match conf.release.as_ref().filter(|r| !r.dest_base.is_empty()) {
        Some(r) => {
            d.push(
                format!("FROM {}", r.dest_base),
                format!("FROM {}", r.dest_base),
            );
            d.push(format!("WORKDIR {APP_DIR}"), format!("WORKDIR {APP_DIR}"));
            for c in &r.copy {
                let src = if c.src.starts_with('/') {
                    c.src.clone()
                } else {
                    format!("{APP_DIR}/{}", c.src.trim_start_matches("./"))
                };
                d.push(
                    format!("COPY --from={} {}", build.tag, json(&[&src, &c.dest])),
                    format!("copy {} to {}", c.src, c.dest),
                );
            }
        }
        None => d.push(format!("FROM {}", build.tag), format!("FROM {}", build.tag)),
    }
    for line in conf.release.iter().flat_map(|r| &r.script) {
        d.push(run(line), format!("release: {}", one_line(line)));
    }
    d.push(
        format!(
            "LABEL lain.app={} lain.version={}",
            json(&[app]).trim_matches(['[', ']']),
            json(&[version]).trim_matches(['[', ']'])
        ),
        "label the release",
    );
    let release = Stage {
        kind: StageKind::Release,
        tag: format!("{app}:release-{version}"),
        dockerfile: d.text,
        steps: d.steps,
        with_source: false,
        build_args: Vec::new(),
    };
    Plan {
        prepare,
        build,
        release,
    }
}

#[derive(Default)]
struct Dockerfile {
    text: String,
    steps: Vec<String>,
}

impl Dockerfile {
    fn push(&mut self, instruction: String, step: impl Into<String>) {
        self.text.push_str(&instruction);
        self.text.push('\n');
        self.steps.push(step.into());
    }
}

fn args(d: &mut Dockerfile, build_arg: &[String]) {
    for (name, _) in build_args(build_arg) {
        d.push(format!("ARG {name}"), format!("ARG {name}"));
    }
}

/// `NAME=VALUE` entries as given; a bare `NAME` takes the value of the
/// environment variable (as `docker build --build-arg NAME` does), and is
/// left out when it is not set.
pub fn build_args(entries: &[String]) -> Vec<(String, String)> {
    entries
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some((k, v)) => Some((k.trim().to_owned(), v.to_owned())),
            None => std::env::var(e.trim())
                .ok()
                .map(|v| (e.trim().to_owned(), v)),
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// A JSON array of strings, the exec form of Dockerfile instructions.
fn json(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// One script line as a step of its own: a `set -e` shell.
fn run(line: &str) -> String {
    format!(
        "RUN {}",
        json(&["/bin/sh", "-c", &format!("set -e\n{line}")])
    )
}

/// The first line of a script line, for progress.
fn one_line(line: &str) -> String {
    let first = line
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.trim().lines().count() > 1 {
        format!("{first} ...")
    } else {
        first.to_owned()
    }
}

/// A shell command removing everything under /lain/app but the top-level
/// entries named by `keep` (a nested `a/b` keeps all of `a`).
fn clean_except(keep: &[String]) -> String {
    let names: Vec<String> = keep
        .iter()
        .filter_map(|k| {
            k.trim_start_matches("./")
                .split('/')
                .find(|s| !s.is_empty())
                .map(shell_quote)
        })
        .collect();
    let case = if names.is_empty() {
        String::new()
    } else {
        format!("{}) ;; ", names.join("|"))
    };
    format!(
        "cd {APP_DIR} && for f in * .[!.]* ..?*; do \
         if [ -e \"$f\" ] || [ -L \"$f\" ]; then case \"$f\" in {case}*) rm -rf \"$f\" ;; esac; fi; done"
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A tag part: Docker allows `[A-Za-z0-9_.-]`, starting with neither `.` nor `-`.
fn tag_safe(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if t.is_empty() {
        "0".into()
    } else {
        t
    }
}

/// 12 hex digits of SHA-256 over the prepare image's inputs.
pub fn prepare_hash(base: &str, script: &[String], keep: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [base.to_owned(), script.join("\n"), keep.join("\n")] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn conf(yaml: &str) -> LainConf {
        lain_spec::parse("lain.yaml", yaml, &Default::default())
            .expect("valid")
            .conf
    }

    #[test]
    fn prepare_build_and_release_with_dest_base() {
        let c = conf(
            "appname: hello\nbuild:\n  base: golang:1.22\n  prepare:\n    version: \"3\"\n    script:\n      - go mod download\n    keep:\n      - vendor\n      - bin/x\n  script:\n    - go build -o hello\n  build_arg:\n    - GOFLAGS=-mod=vendor\nrelease:\n  dest_base: alpine\n  copy:\n    - src: hello\n      dest: /usr/bin/hello\n    - /etc/x.conf\n  script:\n    - chmod +x /usr/bin/hello\nweb:\n  cmd: hello\n",
        );
        let v = format!("1700000000-{SHA}");
        let p = plan(&c, &v);
        let prep = p.prepare.expect("prepare stage");
        let hash = prepare_hash(
            "golang:1.22",
            &["go mod download".into()],
            &["vendor".into(), "bin/x".into()],
        );
        assert_eq!(prep.tag, format!("hello:prepare-3-{hash}"));
        assert_eq!(hash.len(), 12);
        assert_eq!(
            prep.dockerfile,
            "FROM golang:1.22\nCOPY [\"app/\", \"/lain/app/\"]\nWORKDIR /lain/app\n\
             RUN [\"/bin/sh\",\"-c\",\"set -e\\ngo mod download\"]\n\
             RUN [\"/bin/sh\",\"-c\",\"set -e\\ncd /lain/app && for f in * .[!.]* ..?*; do if [ -e \\\"$f\\\" ] || [ -L \\\"$f\\\" ]; then case \\\"$f\\\" in 'vendor'|'bin') ;; *) rm -rf \\\"$f\\\" ;; esac; fi; done\"]\n"
        );
        assert_eq!(prep.steps.len(), 5);
        assert_eq!(prep.steps[3], "prepare: go mod download");
        assert_eq!(p.build.tag, format!("hello:build-{v}"));
        assert_eq!(
            p.build.dockerfile,
            format!(
                "FROM {}\nARG GOFLAGS\nCOPY [\"app/\", \"/lain/app/\"]\nWORKDIR /lain/app\nRUN [\"/bin/sh\",\"-c\",\"set -e\\ngo build -o hello\"]\n",
                prep.tag
            )
        );
        assert_eq!(
            p.build.build_args,
            [("GOFLAGS".to_owned(), "-mod=vendor".to_owned())]
        );
        assert_eq!(p.release.tag, format!("hello:release-{v}"));
        assert_eq!(
            p.release.dockerfile,
            format!(
                "FROM alpine\nWORKDIR /lain/app\n\
                 COPY --from=hello:build-{v} [\"/lain/app/hello\",\"/usr/bin/hello\"]\n\
                 COPY --from=hello:build-{v} [\"/etc/x.conf\",\"/etc/x.conf\"]\n\
                 RUN [\"/bin/sh\",\"-c\",\"set -e\\nchmod +x /usr/bin/hello\"]\n\
                 LABEL lain.app=\"hello\" lain.version=\"{v}\"\n"
            )
        );
        assert!(!p.release.with_source);
        // The hash follows its inputs.
        assert_ne!(
            hash,
            prepare_hash(
                "golang:1.23",
                &["go mod download".into()],
                &["vendor".into(), "bin/x".into()]
            )
        );
        assert_ne!(
            hash,
            prepare_hash("golang:1.22", &["go mod download".into()], &[])
        );
    }

    #[test]
    fn without_prepare_or_dest_base_the_release_is_the_build_image() {
        let c = conf("appname: hello\nbuild:\n  base: busybox\n  script: [make, \"echo 'a' && echo b\"]\nweb:\n  cmd: ./app\n");
        let p = plan(&c, "1-x");
        assert!(p.prepare.is_none());
        assert!(p.build.dockerfile.starts_with("FROM busybox\nCOPY"));
        assert_eq!(p.build.steps[3], "build: make");
        assert_eq!(
            p.release.dockerfile,
            "FROM hello:build-1-x\nLABEL lain.app=\"hello\" lain.version=\"1-x\"\n"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(tag_safe("1.2 beta/x"), "1.2_beta_x");
        assert_eq!(tag_safe(""), "0");
        assert_eq!(one_line("a\nb"), "a ...");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert!(clean_except(&[]).contains("case \"$f\" in *) rm -rf"));
    }
}
