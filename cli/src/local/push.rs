//! Pushing a release image to the cluster's registry.

use std::collections::HashMap;

use bollard::auth::DockerCredentials;
use bollard::image::PushImageOptions;
use bollard::Docker;
use futures::StreamExt as _;

use crate::error::fail;
use crate::progress::{Bar, Progress};

/// `repo` and `tag` of `host:port/app:tag` (the tag is after the last `:`
/// that follows the last `/`; none: `latest`).
pub fn split_reference(image: &str) -> (&str, &str) {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// The manifest digest in a push's last status line,
/// `TAG: digest: sha256:... size: N`.
pub fn digest_in_status(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_owned())
}

/// Pushes `image` (`host:port/app:tag`, already tagged locally) with
/// `credentials`, showing each layer's bytes on a terminal and plain lines
/// otherwise. Returns the manifest digest, `sha256:...`.
pub async fn push_image(
    docker: &Docker,
    image: &str,
    credentials: Option<DockerCredentials>,
    progress: &Progress,
) -> anyhow::Result<String> {
    let (repo, tag) = split_reference(image);
    let mut stream = docker.push_image(repo, Some(PushImageOptions { tag }), credentials);
    // The engine's typed push events carry no layer id, so layers are told
    // apart by their size (the `total` of their progress).
    let mut bars: HashMap<i64, Bar> = HashMap::new();
    let mut digest = None;
    let mut last_status = String::new();
    progress.line(format!("pushing {image}"));
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                for (_, bar) in bars.drain() {
                    bar.finish("stopped");
                }
                return Err(push_error(image, e));
            }
        };
        if let Some(e) = info.error {
            return Err(registry_error(image, &e));
        }
        let status = info.status.unwrap_or_default();
        if let Some(d) = digest_in_status(&status) {
            digest = Some(d);
        }
        match (status.as_str(), info.progress_detail) {
            ("Pushing", Some(p)) => {
                if let (Some(cur), Some(total)) = (p.current, p.total) {
                    let n = bars.len() + 1;
                    let bar = bars.entry(total).or_insert_with(|| {
                        let b = progress.bar(total.max(0) as u64, format!("layer {n}"));
                        if !progress.is_tty() {
                            b.message(format!("{} bytes", total));
                        }
                        b
                    });
                    bar.set_position(cur.max(0) as u64);
                }
            }
            _ => {
                if !status.is_empty()
                    && status != last_status
                    && !matches!(status.as_str(), "Preparing" | "Waiting" | "Pushing")
                {
                    if !progress.is_tty() || digest_in_status(&status).is_some() {
                        progress.line(&status);
                    }
                    last_status = status;
                }
            }
        }
    }
    let mut rest: Vec<(i64, Bar)> = bars.into_iter().collect();
    rest.sort_by_key(|(t, _)| *t);
    for (total, bar) in rest {
        bar.set_position(total.max(0) as u64);
        bar.finish("pushed");
    }
    digest.ok_or_else(|| {
        fail(
            format!("the push of {image} ended without a manifest digest"),
            "check the registry's logs, then push again",
        )
    })
}

fn push_error(image: &str, e: bollard::errors::Error) -> anyhow::Error {
    match e {
        bollard::errors::Error::DockerStreamError { error } => registry_error(image, &error),
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => fail(
            format!("cannot push {image}: {message}"),
            "build and tag it first: `lain build`, then `lain tag`",
        ),
        e => fail(
            format!("cannot push {image}: {e}"),
            "check that the Docker daemon is running (or DOCKER_HOST)",
        ),
    }
}

/// A registry's refusal, as one line with what to do.
pub fn registry_error(image: &str, error: &str) -> anyhow::Error {
    let lower = error.to_ascii_lowercase();
    let hint = if lower.contains("denied")
        || lower.contains("unauthorized")
        || lower.contains("authentication required")
    {
        "pushing needs maintainer rights on the app: run `lain login`, and ask a maintainer to add you"
    } else if lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("timeout")
        || lower.contains("dial tcp")
    {
        "check that the cluster's registry is up and reachable from this machine"
    } else if lower.contains("http response to https client")
        || lower.contains("server gave http response")
    {
        "the registry speaks plain HTTP: add it to the engine's insecure-registries"
    } else {
        "check the registry's address and logs, then push again"
    };
    fail(format!("cannot push {image}: {}", error.trim()), hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_digests() {
        assert_eq!(
            split_reference("127.0.0.1:5000/hello:release-1-abc"),
            ("127.0.0.1:5000/hello", "release-1-abc")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/hello"),
            ("127.0.0.1:5000/hello", "latest")
        );
        assert_eq!(split_reference("hello:x"), ("hello", "x"));
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_in_status(&format!("release-1: digest: {d} size: 527")),
            Some(d)
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("digest: sha256:xyz size: 1"), None);
    }

    #[test]
    fn registry_errors_have_hints() {
        let e = registry_error(
            "r/a:t",
            "denied: requested access to the resource is denied",
        );
        let line = crate::error::one_line(&e);
        assert!(line.contains("lain login"), "{line}");
        let e = registry_error(
            "r/a:t",
            "Get \"http://r/v2/\": dial tcp 1.2.3.4:5000: connection refused",
        );
        assert!(crate::error::one_line(&e).contains("reachable"));
    }
}
