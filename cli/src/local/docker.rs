//! The connection to the Docker engine: `DOCKER_HOST`, or the default
//! unix socket.

use bollard::Docker;

use crate::error::fail;

/// Where the engine is expected, for messages.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

fn unreachable(detail: impl std::fmt::Display) -> anyhow::Error {
    fail(
        format!(
            "cannot reach the Docker daemon at {} ({detail})",
            docker_host()
        ),
        "start Docker or set DOCKER_HOST",
    )
}

/// A client for the engine named by `DOCKER_HOST` (default: the unix
/// socket). Does not talk to it yet; see [`ping`].
pub fn connect_docker() -> anyhow::Result<Docker> {
    Docker::connect_with_defaults().map_err(unreachable)
}

/// Checks that the engine answers.
pub async fn ping(docker: &Docker) -> anyhow::Result<()> {
    docker.ping().await.map(|_| ()).map_err(unreachable)
}

/// [`connect_docker`] and [`ping`].
pub async fn docker() -> anyhow::Result<Docker> {
    let d = connect_docker()?;
    ping(&d).await?;
    Ok(d)
}

/// Whether the engine has the image `name`.
pub async fn image_exists(docker: &Docker, name: &str) -> anyhow::Result<bool> {
    match docker.inspect_image(name).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(unreachable(e)),
    }
}

/// The id (`sha256:...`) of the image `name`.
pub async fn image_id(docker: &Docker, name: &str) -> anyhow::Result<String> {
    let i = docker.inspect_image(name).await.map_err(|e| match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => fail(
            format!("the image {name} does not exist"),
            "build it with `lain build`",
        ),
        e => unreachable(e),
    })?;
    Ok(i.id.unwrap_or_default())
}
