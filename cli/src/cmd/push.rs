//! `lain push`: the built release image to the cluster's registry (with a
//! push token console grants to the app's maintainers), then the release
//! registered with console: version, digest and lain.yaml.

use std::path::PathBuf;
use std::process::ExitCode;

use bollard::auth::DockerCredentials;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{enc, Console};
use crate::error::fail;
use crate::local;
use crate::Globals;

/// Push the release image built by `lain build` and register the release.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The app's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Push even though the work tree has uncommitted changes.
    #[arg(long)]
    allow_dirty: bool,
}

pub async fn push(a: PushArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let conf = local::load_conf(&a.dir)?;
    let version = local::release_version(&a.dir, a.allow_dirty)?;
    let app = conf.appname.clone();
    let docker = local::docker().await?;
    let console = Console::connect(g).await?;
    let registry = crate::registry_of(&console.name, &console.cluster)?;
    // Refuses a release that is not built, with the hint to build it.
    let image = local::tag_release(&docker, &registry, &app, &version).await?;
    // The registry sends the engine to console's token endpoint with
    // these: the sso access token as the password.
    let credentials = DockerCredentials {
        username: Some("lain".into()),
        password: Some(console.token().to_owned()),
        serveraddress: Some(registry.clone()),
        ..Default::default()
    };
    let digest = local::push_image(&docker, &image, Some(credentials), &g.progress).await?;
    let lain_yaml = std::fs::read_to_string(a.dir.join("lain.yaml")).map_err(|e| {
        fail(
            format!("cannot read lain.yaml: {e}"),
            "run the command in the app's directory",
        )
    })?;
    let r: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/releases", enc(&app)),
            &json!({"version": version, "image": image, "digest": digest, "lain_yaml": lain_yaml}),
        )
        .await?;
    for w in r["warnings"].as_array().into_iter().flatten() {
        g.progress
            .line(format!("warning: {}", w.as_str().unwrap_or_default()));
    }
    g.progress.line(format!(
        "{} release {version} of `{app}` ({digest}); deploy it with `lain deploy -v {version}`",
        if r["created"] == false {
            "Already registered:"
        } else {
            "Registered"
        }
    ));
    Ok(ExitCode::SUCCESS)
}
