//! Work on the developer's machine through the Docker Engine API: build,
//! test, tag and push release images.
//!
//! `lain push` (and anything else that needs an image) reuses these:
//! [`docker`], [`release_version`], [`build_conf`] and
//! [`push_image`].

pub mod build;
pub mod context;
pub mod docker;
pub mod dockerfile;
pub mod init;
pub mod push;
pub mod version;

pub use build::{build_conf, load_conf, run_tests, Built};
pub use docker::{docker, image_exists, image_id};
pub use push::push_image;
pub use version::release_version;

use crate::error::fail;

/// Tags `{app}:release-{version}` as `{registry}/{app}:release-{version}`
/// and returns the new reference.
pub async fn tag_release(
    docker: &bollard::Docker,
    registry: &str,
    app: &str,
    version: &str,
) -> anyhow::Result<String> {
    let local = format!("{app}:release-{version}");
    let target = lain_spec::release_image(registry, app, version);
    if !image_exists(docker, &local).await? {
        return Err(fail(
            format!("the release image {local} does not exist"),
            "build it first with `lain build`",
        ));
    }
    let (repo, tag) = push::split_reference(&target);
    docker
        .tag_image(&local, Some(bollard::image::TagImageOptions { repo, tag }))
        .await
        .map_err(|e| {
            fail(
                format!("cannot tag {local} as {target}: {e}"),
                "check the registry address (HOST:PORT)",
            )
        })?;
    Ok(target)
}
