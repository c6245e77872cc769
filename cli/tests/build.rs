//! `lain build`, `lain test` and `lain tag` as a user runs them: the real
//! binary against a private dockerd, an example app in a git repository,
//! and `push_image` to a real registry.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use lain_testkit::docker::Dockerd;
use lain_testkit::image::{import_base_image, BASE_IMAGE};
use lain_testkit::registry::Registry;

/// The commit date of the example app: 2024-01-02T03:04:05Z.
const COMMIT_TIME: &str = "1704164645";

struct Lain<'a> {
    docker_host: String,
    config: &'a Path,
}

impl Lain<'_> {
    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lain"))
            .args(args)
            .current_dir(dir)
            .env("DOCKER_HOST", &self.docker_host)
            .env("LAIN_CONFIG_DIR", self.config)
            .env_remove("LAIN_CLUSTER")
            .output()
            .expect("run lain")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// Fails with one `error: ...; hint: ...` line on stderr, exit 1.
fn assert_one_line_error(o: &Output, wanted: &str) -> String {
    assert_eq!(o.status.code(), Some(1), "{}", show(o));
    let err = text(&o.stderr);
    let last = err.lines().last().unwrap_or("").to_owned();
    assert!(
        last.starts_with("error: ") && last.contains("; hint: "),
        "{}",
        show(o)
    );
    assert!(last.contains(wanted), "wanted {wanted:?} in {last:?}");
    last
}

fn git(dir: &Path, args: &[&str]) -> String {
    let date = "2024-01-02T03:04:05Z";
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Lain Test")
        .env("GIT_AUTHOR_EMAIL", "test@lain.local")
        .env("GIT_COMMITTER_NAME", "Lain Test")
        .env("GIT_COMMITTER_EMAIL", "test@lain.local")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn commit_all(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    let sha = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
    format!("{COMMIT_TIME}-{sha}")
}

/// The example app: a prepare step that writes deps.txt (kept) and a
/// marker (removed), a build that makes out/hello, a release that copies
/// it onto the busybox base, and a test script.
fn example_app(dir: &Path) {
    let yaml = format!(
        r#"appname: hello
build:
  base: {BASE_IMAGE}
  prepare:
    version: "1"
    script:
      - echo prepared > deps.txt
      - echo scratch > marker.txt
      - echo PREPARE-RAN
    keep:
      - deps.txt
  script:
    - test -f deps.txt && test ! -f marker.txt
    - mkdir -p out && cp hello.sh out/hello && chmod +x out/hello
release:
  dest_base: {BASE_IMAGE}
  copy:
    - src: out/hello
      dest: /usr/bin/hello
test:
  script:
    - test -f deps.txt
    - sh check.sh
web:
  cmd: hello
"#
    );
    std::fs::write(dir.join("lain.yaml"), yaml).unwrap();
    std::fs::write(
        dir.join("hello.sh"),
        "#!/bin/sh\necho \"hello from $(cat /lain/app/deps.txt 2>/dev/null || echo lain)\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("check.sh"), "echo checking; exit 0\n").unwrap();
    std::fs::write(dir.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(dir.join("debug.log"), "not in the context\n").unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
}

fn image_id(d: &Dockerd, image: &str) -> String {
    d.docker(&["image", "inspect", "--format", "{{.Id}}", image])
        .unwrap_or_else(|e| panic!("inspect {image}: {e}"))
        .trim()
        .to_owned()
}

/// `Docker-Content-Digest` of the registry's manifest for `app:tag`.
fn registry_digest(registry: &Registry, app: &str, tag: &str) -> String {
    let mut s = TcpStream::connect(registry.addr()).expect("connect registry");
    write!(
        s,
        "GET /v2/{app}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\n\
         Accept: application/vnd.docker.distribution.manifest.v2+json\r\n\r\n",
        registry.addr()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    resp.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
        .expect("Docker-Content-Digest header")
}

#[test]
fn build_rebuild_test_tag_and_push_an_app() {
    let dockerd = Dockerd::start().expect("start dockerd");
    import_base_image(&dockerd).expect("import the base image");
    let config = tempfile::tempdir().unwrap();
    let lain = Lain {
        docker_host: dockerd.docker_host(),
        config: config.path(),
    };
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();
    example_app(dir);
    let version = commit_all(dir, "first");

    // First build: every stage runs.
    let o = lain.run(dir, &["build"]);
    assert!(o.status.success(), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!("built hello:release-{version}")),
        "{out}"
    );
    assert!(
        out.contains("prepare: echo PREPARE-RAN"),
        "the prepare step shows: {out}"
    );
    let prepare = out
        .split_whitespace()
        .find(|w| w.starts_with("hello:prepare-1-"))
        .expect("prepare tag in the output")
        .to_owned();
    let images = [
        prepare.clone(),
        format!("hello:build-{version}"),
        format!("hello:release-{version}"),
    ];
    let ids: Vec<String> = images.iter().map(|i| image_id(&dockerd, i)).collect();

    // The release image holds the copied artifact, runs, and is labelled.
    let run = dockerd
        .docker(&["run", "--rm", &images[2], "hello"])
        .expect("run the release image");
    assert_eq!(
        run.trim(),
        "hello from lain",
        "deps.txt is not in the release image"
    );
    let run = dockerd
        .docker(&[
            "run",
            "--rm",
            &images[1],
            "sh",
            "-c",
            "ls -A /lain/app | sort | tr '\\n' ' '",
        ])
        .expect("run the build image");
    assert!(
        run.contains("deps.txt") && run.contains("out") && !run.contains("marker.txt"),
        "{run}"
    );
    assert!(
        !run.contains("debug.log") && !run.contains(".git "),
        ".dockerignore and .git: {run}"
    );
    let labels = dockerd
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &images[2],
        ])
        .unwrap();
    assert!(labels.contains("\"lain.app\":\"hello\""), "{labels}");
    assert!(
        labels.contains(&format!("\"lain.version\":\"{version}\"")),
        "{labels}"
    );

    // Second build, nothing changed: the same images, prepare reused.
    let o = lain.run(dir, &["build"]);
    assert!(o.status.success(), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(out.contains(&format!("reusing {prepare}")), "{out}");
    assert!(!out.contains("PREPARE-RAN"), "prepare ran again: {out}");
    let again: Vec<String> = images.iter().map(|i| image_id(&dockerd, i)).collect();
    assert_eq!(ids, again, "a rebuild with nothing changed made new images");

    // A dirty tree is refused, and built with --allow-dirty.
    std::fs::write(dir.join("new.txt"), "x").unwrap();
    let o = lain.run(dir, &["build"]);
    assert_one_line_error(&o, "uncommitted changes");
    assert!(text(&o.stderr).lines().count() == 1, "{}", show(&o));
    let o = lain.run(dir, &["build", "--allow-dirty"]);
    assert!(o.status.success(), "{}", show(&o));
    std::fs::remove_file(dir.join("new.txt")).unwrap();

    // lain test: passes, streams the script's output.
    let o = lain.run(dir, &["test"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(text(&o.stdout).contains("checking"), "{}", show(&o));

    // lain tag + push_image to a registry: the digest is the registry's.
    let registry = Registry::start().expect("start registry");
    let o = lain.run(dir, &["tag", "--registry", &registry.host()]);
    assert!(o.status.success(), "{}", show(&o));
    let reference = format!("{}/hello:release-{version}", registry.host());
    assert_eq!(text(&o.stdout).trim(), reference);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = rt.block_on(async {
        let docker = bollard::Docker::connect_with_unix(
            &dockerd.docker_host(),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("connect");
        lain_cli::local::push_image(
            &docker,
            &reference,
            None,
            &lain_cli::progress::Progress::plain(),
        )
        .await
        .expect("push")
    });
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        digest,
        registry_digest(&registry, "hello", &format!("release-{version}"))
    );

    // A failing test: a new commit whose check fails.
    std::fs::write(dir.join("check.sh"), "echo about to fail; exit 3\n").unwrap();
    commit_all(dir, "break the tests");
    let o = lain.run(dir, &["test"]);
    assert_one_line_error(&o, "exit code 3");
    assert!(text(&o.stdout).contains("about to fail"), "{}", show(&o));

    // A failing build step names the step and its last output.
    let yaml = std::fs::read_to_string(dir.join("lain.yaml")).unwrap().replace(
        "    - mkdir -p out",
        "    - echo compiling; echo 'cc fatal error, bad.c not found' >&2; exit 2\n    - mkdir -p out",
    );
    std::fs::write(dir.join("lain.yaml"), yaml).unwrap();
    commit_all(dir, "break the build");
    let o = lain.run(dir, &["build"]);
    let line = assert_one_line_error(&o, "echo compiling");
    assert!(
        line.contains("exited with code 2") && line.contains("cc fatal error, bad.c not found"),
        "{line}"
    );
}

#[test]
fn refusals_before_the_engine() {
    let config = tempfile::tempdir().unwrap();
    let lain = Lain {
        docker_host: "unix:///nonexistent".into(),
        config: config.path(),
    };
    let app = tempfile::tempdir().unwrap();
    let dir = app.path();

    // Not a git repository.
    std::fs::write(
        dir.join("lain.yaml"),
        "appname: hello\nbuild:\n  base: busybox\n  script: [make]\nweb:\n  cmd: x\n",
    )
    .unwrap();
    let o = lain.run(dir, &["build"]);
    assert_one_line_error(&o, "not in a git repository");

    // Docker unreachable.
    git(dir, &["init", "-q"]);
    commit_all(dir, "first");
    let o = lain.run(dir, &["build"]);
    let line = assert_one_line_error(&o, "cannot reach the Docker daemon at unix:///nonexistent");
    assert!(
        line.ends_with("hint: start Docker or set DOCKER_HOST"),
        "{line}"
    );
    assert_eq!(text(&o.stderr).lines().count(), 1, "{}", show(&o));

    // No test section.
    let o = lain.run(dir, &["test"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));

    // An invalid lain.yaml: its diagnostics, exit 1.
    std::fs::write(
        dir.join("lain.yaml"),
        "appname: hello\nbuild:\n  base: busybox\nweb:\n  memory: lots\n",
    )
    .unwrap();
    commit_all(dir, "bad");
    let o = lain.run(dir, &["build"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = text(&o.stderr);
    assert!(
        err.lines().any(|l| l.starts_with("lain.yaml:5:")),
        "a lain.yaml:LINE:COL diagnostic: {err}"
    );

    // lain init writes a file `lain validate` accepts, and never overwrites.
    let fresh = tempfile::tempdir().unwrap();
    let o = lain.run(fresh.path(), &["init", "--name", "demo"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = lain.run(fresh.path(), &["validate"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = lain.run(fresh.path(), &["init", "--name", "demo"]);
    assert_one_line_error(&o, "already exists");
}
