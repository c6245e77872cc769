//! A warm `lain build` against plain `docker build` of the same generated
//! Dockerfiles and contexts on the same daemon (goal: at most 1.1x).
//!
//! `cargo bench -p lain-cli --bench build` runs the rounds and writes the
//! figures into docs/benchmarks.md ("lain build"); without `--bench` in
//! argv (`cargo test --all-targets`) it does one quick round and exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lain_cli::local::{context::context_tar, dockerfile::plan, load_conf, release_version};
use lain_testkit::docker::Dockerd;
use lain_testkit::image::{import_base_image, BASE_IMAGE};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 9 } else { 1 };
    let dockerd = Dockerd::start().expect("start dockerd");
    import_base_image(&dockerd).expect("import the base image");
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    std::fs::create_dir(&app).unwrap();
    example_app(&app);
    let config = work.path().join("config");

    let lain = || {
        let t = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_lain"))
            .arg("build")
            .current_dir(&app)
            .env("DOCKER_HOST", dockerd.docker_host())
            .env("LAIN_CONFIG_DIR", &config)
            .output()
            .expect("run lain");
        assert!(
            o.status.success(),
            "lain build: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        t.elapsed()
    };
    // Cold build: makes the prepare image and fills the layer cache.
    let cold = lain();

    // The same Dockerfiles and contexts, unpacked for the docker CLI.
    let conf = load_conf(&app).expect("lain.yaml");
    let version = release_version(&app, false).expect("version");
    let p = plan(&conf, &version);
    let stages: Vec<(PathBuf, String, Vec<String>)> = [&p.build, &p.release]
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let dir = work.path().join(format!("ctx{i}"));
            let tar = context_tar(&s.dockerfile, s.with_source.then_some(app.as_path())).unwrap();
            tar::Archive::new(tar.as_slice()).unpack(&dir).unwrap();
            let args = s
                .build_args
                .iter()
                .flat_map(|(k, v)| ["--build-arg".to_owned(), format!("{k}={v}")])
                .collect();
            (dir, s.tag.clone(), args)
        })
        .collect();
    let docker_build = || {
        let t = Instant::now();
        for (dir, tag, args) in &stages {
            let o = dockerd
                .docker_cmd()
                .env("DOCKER_BUILDKIT", "0")
                .args(["build", "-q", "-f"])
                .arg(dir.join("Dockerfile"))
                .args(["-t", tag])
                .args(args)
                .arg(dir)
                .output()
                .expect("run docker build");
            assert!(
                o.status.success(),
                "docker build: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        t.elapsed()
    };
    let release_before = image_id(&dockerd, &p.release.tag);
    // Both warm.
    docker_build();
    lain();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..rounds {
        ours.push(lain());
        theirs.push(docker_build());
    }
    assert_eq!(
        image_id(&dockerd, &p.release.tag),
        release_before,
        "warm builds must reuse every layer"
    );
    let (a, b) = (median(&mut ours), median(&mut theirs));
    let ratio = a.as_secs_f64() / b.as_secs_f64();
    println!(
        "lain build (cold, with prepare): {:.0} ms\nwarm lain build: median {:.0} ms over {rounds} rounds\n\
         warm docker build (same 2 Dockerfiles and contexts): median {:.0} ms\nratio: {ratio:.2}x (goal <= 1.1x)",
        ms(cold),
        ms(a),
        ms(b)
    );
    if full {
        write_doc(cold, a, b, ratio, rounds);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn image_id(d: &Dockerd, image: &str) -> String {
    d.docker(&["image", "inspect", "--format", "{{.Id}}", image])
        .expect("inspect")
        .trim()
        .to_owned()
}

fn git(dir: &Path, args: &[&str]) {
    let date = "2024-01-02T03:04:05Z";
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@lain.local")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@lain.local")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A small app: prepare, a two-line build, a release copy onto the base,
/// and 200 source files (about 1 MB) in the context.
fn example_app(dir: &Path) {
    std::fs::write(
        dir.join("lain.yaml"),
        format!(
            "appname: bench\nbuild:\n  base: {BASE_IMAGE}\n  prepare:\n    version: \"1\"\n    script:\n      - echo deps > deps.txt\n    keep:\n      - deps.txt\n  script:\n    - mkdir -p out && cat src/* > out/all\n    - cp run.sh out/run && chmod +x out/run\nrelease:\n  dest_base: {BASE_IMAGE}\n  copy:\n    - src: out\n      dest: /app\nweb:\n  cmd: /app/run\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\nexec httpd -f -p 80\n").unwrap();
    std::fs::create_dir(dir.join("src")).unwrap();
    for i in 0..200 {
        let body: String = (0..5000)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        std::fs::write(dir.join(format!("src/f{i:03}.txt")), body).unwrap();
    }
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "bench"]);
}

fn write_doc(cold: Duration, ours: Duration, theirs: Duration, ratio: f64, rounds: usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let Ok(doc) = std::fs::read_to_string(&path) else {
        eprintln!("{} not found; figures not written", path.display());
        return;
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let about = wrap(&format!(
        "Measured {} by `cargo bench -p lain-cli --bench build` ({cpus} CPUs, load average \
         {load} before the rounds): a private dockerd (Debian `docker.io` 20.10, classic \
         builder) and the busybox base image; the app has a prepare step, a two-line build \
         script, a release copy onto `dest_base` and 200 source files (1 MB) in its context. \
         Both sides are warm (every layer cached): `lain build` (the release binary, as a user \
         runs it: lain.yaml, git, the prepare image check, the build and release stages through \
         the engine API) against the docker CLI (`DOCKER_BUILDKIT=0 docker build`) on the same \
         generated Dockerfiles and contexts, alternating, {rounds} rounds.",
        today()
    ));
    let section = format!(
        "## lain build\n\n{about}\n\n\
         | what | median | goal |\n|---|---|---|\n\
         | `lain build`, cold (prepare, build and release images made) | {:.0} ms | |\n\
         | `lain build`, warm (nothing changed) | **{:.0} ms** | seconds |\n\
         | `docker build` of the same two stages, warm | {:.0} ms | |\n\
         | ratio | **{ratio:.2}x** | <= 1.1x |\n\n\
         Reproduce: `cargo bench -p lain-cli --bench build` (as root: it starts its\n\
         own dockerd); it rewrites this section.\n",
        ms(cold),
        ms(ours),
        ms(theirs)
    );
    let start = doc.find("\n## lain build\n").map(|i| i + 1);
    let new = match start {
        Some(s) => {
            let end = doc[s + 1..]
                .find("\n## ")
                .map_or(doc.len(), |e| s + 1 + e + 1);
            format!("{}{section}\n{}", &doc[..s], &doc[end..])
        }
        None => format!(
            "{}\n{section}",
            doc.trim_end_matches('\n').to_owned() + "\n"
        ),
    };
    std::fs::write(&path, new.trim_end().to_owned() + "\n").expect("write docs/benchmarks.md");
    println!("wrote {}", path.display());
}

/// `text` wrapped at 76 columns.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > 76 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

/// Today's date (UTC), `YYYY-MM-DD`.
fn today() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // `YYYY-MM-DD HH:MM:SS`: the date part.
    lain_cli::output::time_ms(ms)[..10].to_owned()
}
