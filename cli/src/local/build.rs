//! `lain build` and `lain test`: the stages through the engine's build
//! API, with Docker's layer cache doing the incremental work.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::container::{
    Config, CreateContainerOptions, LogOutput, LogsOptions, RemoveContainerOptions,
    WaitContainerOptions,
};
use bollard::image::BuildImageOptions;
use bollard::Docker;
use futures::StreamExt as _;
use lain_spec::{LainConf, ParseOptions, SpecError};

use super::context::context_tar;
use super::docker::{image_exists, image_id};
use super::dockerfile::{plan, Stage, StageKind, APP_DIR};
use super::version::release_version;
use crate::error::fail;
use crate::progress::Progress;

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    pub app: String,
    /// `<commit unix time>-<full git sha>`.
    pub version: String,
    /// `{app}:prepare-...`, when lain.yaml has `build.prepare`.
    pub prepare: Option<String>,
    /// `{app}:build-{version}`.
    pub build: String,
    /// `{app}:release-{version}`.
    pub release: String,
    /// The release image's id, `sha256:...`.
    pub release_id: String,
}

/// The path of lain.yaml in `dir`, as diagnostics name it: `lain.yaml`
/// for the current directory.
fn conf_path(dir: &Path) -> PathBuf {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        PathBuf::from("lain.yaml")
    } else {
        dir.join("lain.yaml")
    }
}

/// Reads and validates `dir/lain.yaml`. An invalid file prints its
/// diagnostics (`lain.yaml:LINE:COL: message`) on stderr and fails.
pub fn load_conf(dir: &Path) -> anyhow::Result<LainConf> {
    let path = conf_path(dir);
    match lain_spec::parse_file(&path, &ParseOptions::default()) {
        Ok(v) => {
            for w in &v.warnings {
                eprintln!("{w}");
            }
            Ok(v.conf)
        }
        Err(SpecError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags.errors().count();
            Err(fail(
                format!(
                    "{} is not valid: {n} problem{}",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                ),
                "fix the lines above; `lain validate` checks the file",
            ))
        }
        Err(SpecError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(fail(
                format!("no lain.yaml in {}", dir.display()),
                "run the command in the app's directory, give it, or create one with `lain init`",
            ))
        }
        Err(e) => Err(fail(e.to_string(), "check the file's permissions")),
    }
}

/// Builds the app in `dir` from `conf` as release `version`: its prepare
/// image (unless one for this prepare version and recipe exists), build
/// image and release image.
pub async fn build_conf(
    docker: &Docker,
    dir: &Path,
    conf: &LainConf,
    version: &str,
    progress: &Progress,
) -> anyhow::Result<Built> {
    if !conf.build.volumes.is_empty() {
        eprintln!(
            "warning: build.volumes ({}) cannot be mounted by Docker's builder; building without them",
            conf.build.volumes.join(", ")
        );
    }
    let plan = plan(conf, version);
    if let Some(p) = &plan.prepare {
        if image_exists(docker, &p.tag).await? {
            progress.line(format!("prepare  reusing {}", p.tag));
        } else {
            run_stage(docker, dir, p, progress).await?;
        }
    }
    run_stage(docker, dir, &plan.build, progress).await?;
    let release_id = run_stage(docker, dir, &plan.release, progress).await?;
    Ok(Built {
        app: conf.appname.clone(),
        version: version.to_owned(),
        prepare: plan.prepare.map(|p| p.tag),
        build: plan.build.tag,
        release: plan.release.tag,
        release_id,
    })
}

/// What a build's output stream said, as far as progress and errors need.
#[derive(Debug, Default)]
pub struct StepTracker {
    /// The step running, 1-based, and the total.
    pub step: Option<(usize, usize)>,
    /// The last line the step's command printed.
    pub last_output: Option<String>,
    pub cached: usize,
}

impl StepTracker {
    /// Takes one line of Docker's build output; returns the new step
    /// number and total when the line starts one.
    pub fn line(&mut self, line: &str) -> Option<(usize, usize)> {
        let trimmed = line.trim_end();
        if let Some(rest) = trimmed.strip_prefix("Step ") {
            let (counts, _) = rest.split_once(" : ").unwrap_or((rest, ""));
            if let Some((n, m)) = counts.split_once('/') {
                if let (Ok(n), Ok(m)) = (n.parse(), m.parse()) {
                    self.step = Some((n, m));
                    self.last_output = None;
                    return Some((n, m));
                }
            }
        }
        let t = trimmed.trim();
        if t == "---> Using cache" {
            self.cached += 1;
        } else if !(t.is_empty()
            || t.starts_with("---> ")
            || t.starts_with("Removing intermediate container")
            || t.starts_with("Successfully built")
            || t.starts_with("Successfully tagged"))
        {
            self.last_output = Some(t.to_owned());
        }
        None
    }
}

/// Runs one stage; returns the image id.
async fn run_stage(
    docker: &Docker,
    dir: &Path,
    stage: &Stage,
    progress: &Progress,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let tar = context_tar(&stage.dockerfile, stage.with_source.then_some(dir)).map_err(|e| {
        fail(
            format!("cannot read the source in {}: {e}", dir.display()),
            "check the files' permissions, or exclude them in .dockerignore",
        )
    })?;
    let options = BuildImageOptions::<String> {
        dockerfile: "Dockerfile".into(),
        t: stage.tag.clone(),
        rm: true,
        forcerm: true,
        buildargs: stage.build_args.iter().cloned().collect::<HashMap<_, _>>(),
        ..Default::default()
    };
    let spinner = progress.spinner(format!("{:<8}", stage.kind.to_string()));
    let mut stream = docker.build_image(options, None, Some(tar.into()));
    let mut t = StepTracker::default();
    let mut pending = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                let Some(text) = info.stream else { continue };
                pending.push_str(&text);
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    if let Some((n, m)) = t.line(&line) {
                        let what = stage.steps.get(n - 1).map_or("", String::as_str);
                        spinner.message(format!("step {n}/{m}: {what}"));
                    }
                }
            }
            Err(e) => {
                if !pending.is_empty() {
                    t.line(&pending);
                }
                return Err(step_failed(stage, &t, e));
            }
        }
    }
    let id = image_id(docker, &stage.tag).await?;
    let total = t.step.map_or(0, |(_, m)| m);
    spinner.finish(format!(
        "{} ({}) in {:.1}s, {}/{} steps cached",
        stage.tag,
        short_id(&id),
        started.elapsed().as_secs_f64(),
        t.cached,
        total.saturating_sub(1)
    ));
    Ok(id)
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// The one-line error for a failed stage.
fn step_failed(stage: &Stage, t: &StepTracker, e: bollard::errors::Error) -> anyhow::Error {
    let what = match t.step {
        Some((n, m)) => format!(
            "step {n}/{m} `{}`",
            stage.steps.get(n - 1).map_or("?", String::as_str)
        ),
        None => "its start".to_owned(),
    };
    match e {
        bollard::errors::Error::DockerStreamError { error } => {
            let why = match error.rsplit_once("returned a non-zero code: ") {
                Some((_, code)) => format!("exited with code {}", code.trim()),
                None => error.lines().last().unwrap_or("").trim().to_owned(),
            };
            let hint = match stage.kind {
                StageKind::Prepare => {
                    "fix build.prepare in lain.yaml (or build.base), then build again"
                }
                StageKind::Build => {
                    "fix build.script in lain.yaml (or the source), then build again"
                }
                StageKind::Release => "fix release in lain.yaml, then build again",
            };
            let last = match &t.last_output {
                Some(l) if !why.contains(l.as_str()) => format!("; last output: {l}"),
                _ => String::new(),
            };
            fail(
                format!("the {} image failed at {what}: {why}{last}", stage.kind),
                hint,
            )
        }
        e => fail(
            format!("building the {} image failed at {what}: {e}", stage.kind),
            "check that the Docker daemon is running (or DOCKER_HOST)",
        ),
    }
}

/// `lain test`: runs test.script in the build image (built first when
/// missing), streaming its output. Returns the script's exit code.
pub async fn run_tests(
    docker: &Docker,
    dir: &Path,
    conf: &LainConf,
    allow_dirty: bool,
    progress: &Progress,
) -> anyhow::Result<i64> {
    let Some(test) = conf.test.as_ref().filter(|t| !t.script.is_empty()) else {
        return Err(fail(
            format!("{} has no test section", conf_path(dir).display()),
            "add `test: {script: [...]}` to lain.yaml",
        ));
    };
    let version = release_version(dir, allow_dirty)?;
    let image = format!("{}:build-{version}", conf.appname);
    if !image_exists(docker, &image).await? {
        build_conf(docker, dir, conf, &version, progress).await?;
    }
    let script = format!("set -e\n{}", test.script.join("\n"));
    let unreachable = |e: bollard::errors::Error| {
        fail(
            format!("cannot run the tests in {image}: {e}"),
            "check that the Docker daemon is running (or DOCKER_HOST)",
        )
    };
    let name = format!("lain-test-{}-{}", conf.appname, std::process::id());
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: name.as_str(),
                platform: None,
            }),
            Config {
                image: Some(image.clone()),
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
                working_dir: Some(APP_DIR.into()),
                entrypoint: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .map_err(unreachable)?;
    let result = async {
        docker
            .start_container::<String>(&created.id, None)
            .await
            .map_err(unreachable)?;
        let mut logs = docker.logs::<String>(
            &created.id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        use std::io::Write as _;
        while let Some(chunk) = logs.next().await {
            match chunk.map_err(unreachable)? {
                LogOutput::StdErr { message } => {
                    let _ = std::io::stderr().write_all(&message);
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let _ = std::io::stdout().write_all(&message);
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        let _ = std::io::stdout().flush();
        let mut wait = docker.wait_container(&created.id, None::<WaitContainerOptions<String>>);
        let mut code = 0;
        while let Some(w) = wait.next().await {
            match w {
                Ok(r) => code = r.status_code,
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(unreachable(e)),
            }
        }
        Ok(code)
    }
    .await;
    let _ = docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_steps_and_last_output() {
        let mut t = StepTracker::default();
        assert_eq!(t.line("Step 1/3 : FROM busybox\n"), Some((1, 3)));
        assert_eq!(t.line(" ---> Using cache\n"), None);
        assert_eq!(t.line(" ---> 1234abcd\n"), None);
        assert_eq!(t.line("Step 3/3 : RUN [\"/bin/sh\"]\n"), Some((3, 3)));
        t.line(" ---> Running in abc\n");
        t.line("compiling\n");
        t.line("make: *** [all] Error 2\n");
        t.line("Removing intermediate container abc\n");
        assert_eq!(t.step, Some((3, 3)));
        assert_eq!(t.last_output.as_deref(), Some("make: *** [all] Error 2"));
        assert_eq!(t.cached, 1);
    }

    #[test]
    fn conf_path_names_lain_yaml_in_the_current_dir() {
        assert_eq!(conf_path(Path::new(".")), PathBuf::from("lain.yaml"));
        assert_eq!(conf_path(Path::new("app")), PathBuf::from("app/lain.yaml"));
    }
}
