//! Local commands: `lain init`, `lain build`, `lain test`, `lain tag`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::fail;
use crate::local;

/// The commands that work on the developer's machine.
#[derive(Debug, clap::Subcommand)]
pub enum LocalCommand {
    /// Write a commented lain.yaml to start from.
    ///
    /// Never overwrites an existing lain.yaml. The app name defaults to the
    /// directory's name.
    Init {
        /// The app's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The app's name (letters and digits, words joined by `-`).
        #[arg(long, value_name = "APP")]
        name: Option<String>,
    },
    /// Build the app's images through the Docker engine.
    ///
    /// Makes `{app}:prepare-{prepare version}-{hash}` (when lain.yaml has
    /// build.prepare; reused while it exists), `{app}:build-{version}` and
    /// `{app}:release-{version}`, where the version is
    /// `<commit unix time>-<full git sha>` of the app's repository. Docker's
    /// layer cache makes a build with nothing changed take seconds. The
    /// engine is DOCKER_HOST's (default: the local unix socket).
    Build {
        /// Build uncommitted changes under the last commit's version.
        #[arg(long)]
        allow_dirty: bool,
        /// The app's directory (holding lain.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run lain.yaml's test.script in the build image.
    ///
    /// Builds the image first when it is missing. The script's output is
    /// streamed; exits 0 when it passes and 1 when it fails.
    Test {
        /// Test uncommitted changes under the last commit's version.
        #[arg(long)]
        allow_dirty: bool,
        /// The app's directory (holding lain.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Tag the release image for the cluster's registry.
    ///
    /// Tags `{app}:release-{version}` as
    /// `{registry}/{app}:release-{version}` and prints the reference.
    Tag {
        /// The app's directory (holding lain.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The registry, HOST:PORT (default: the cluster's).
        #[arg(long, value_name = "HOST")]
        registry: Option<String>,
        /// Tag a build of uncommitted changes.
        #[arg(long)]
        allow_dirty: bool,
    },
}

impl LocalCommand {
    pub async fn run(self, g: &crate::Globals) -> anyhow::Result<ExitCode> {
        match self {
            LocalCommand::Init { dir, name } => {
                let path = local::init::init(&dir, name.as_deref())?;
                println!("wrote {}; check it with `lain validate`", path.display());
                Ok(ExitCode::SUCCESS)
            }
            LocalCommand::Build { allow_dirty, dir } => {
                // The file and the version are checked before the engine.
                let conf = local::load_conf(&dir)?;
                let version = local::release_version(&dir, allow_dirty)?;
                let docker = local::docker().await?;
                let built = local::build_conf(&docker, &dir, &conf, &version, &g.progress).await?;
                println!("built {}", built.release);
                Ok(ExitCode::SUCCESS)
            }
            LocalCommand::Test { allow_dirty, dir } => {
                let conf = local::load_conf(&dir)?;
                let docker = local::docker().await?;
                let code = local::run_tests(&docker, &dir, &conf, allow_dirty, &g.progress).await?;
                if code == 0 {
                    println!("tests passed");
                    Ok(ExitCode::SUCCESS)
                } else {
                    Err(fail(
                        format!("test.script failed with exit code {code}"),
                        "see its output above",
                    ))
                }
            }
            LocalCommand::Tag {
                dir,
                registry,
                allow_dirty,
            } => {
                let conf = local::load_conf(&dir)?;
                let version = local::release_version(&dir, allow_dirty)?;
                let registry = match registry {
                    Some(r) => r,
                    None => g.registry()?,
                };
                let docker = local::docker().await?;
                let reference =
                    local::tag_release(&docker, &registry, &conf.appname, &version).await?;
                println!("{reference}");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
