//! The base image for tests: no registry is reachable offline, so it is
//! made from Debian's static busybox (`busybox-static`) and `docker import`ed.
//!
//! The root filesystem holds `/bin/busybox` with a link for every applet
//! (`busybox --list`: sh, httpd, wget, nc, sleep, ...), `/etc/passwd` and
//! `/etc/group` (root, nobody), `/root`, an empty `/www` (for `httpd -h
//! /www`) and a world-writable `/tmp`. Its
//! tarball is built once per busybox binary and cached in the temp dir
//! (shared by test processes, rebuilt when busybox changes).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

use crate::docker::Dockerd;
use crate::nodes::DockerNodes;
use crate::process::run_timeout;
use crate::{KitError, Result};

/// The tag [`import_base_image`] gives the image.
pub const BASE_IMAGE: &str = "lain-busybox:latest";

const BUSYBOX: &str = "/bin/busybox";

/// Bump when the root filesystem's recipe changes, to invalidate caches.
const RECIPE: u32 = 1;

/// Path of the base image tarball, built on first use in this process.
pub fn base_tarball() -> Result<&'static Path> {
    static TARBALL: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    TARBALL
        .get_or_init(|| build_tarball().map_err(|e| e.to_string()))
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(|e| KitError::Command {
            cmd: "build the busybox base image".into(),
            detail: e.clone(),
        })
}

fn build_tarball() -> Result<PathBuf> {
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    let meta = std::fs::metadata(BUSYBOX).map_err(|e| KitError::Command {
        cmd: format!("stat {BUSYBOX}"),
        detail: format!("{e}; install Debian's busybox-static (scripts/test installs it)"),
    })?;
    let key = format!("{RECIPE}-{}-{}", meta.size(), meta.mtime());
    let tarball = std::env::temp_dir().join(format!("lain-testkit-busybox-{key}.tar"));
    if tarball.exists() {
        return Ok(tarball);
    }

    let work = tempfile::Builder::new()
        .prefix("lain-testkit-rootfs-")
        .tempdir()?;
    let root = work.path().join("rootfs");
    for d in ["bin", "etc", "root", "tmp", "var", "www"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    let list = run_timeout(
        Command::new(BUSYBOX).arg("--list"),
        std::time::Duration::from_secs(10),
    )?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

    // Written under a private name and renamed, so parallel test processes
    // never see a half-written tarball.
    let partial = work.path().join("rootfs.tar");
    run_timeout(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
            .arg(&partial)
            .arg("."),
        std::time::Duration::from_secs(60),
    )?;
    let staged = tarball.with_extension(format!("tar.{}", std::process::id()));
    std::fs::copy(&partial, &staged)?;
    std::fs::rename(&staged, &tarball)?;
    Ok(tarball)
}

/// Imports the base image into `engine` as [`BASE_IMAGE`] and returns its
/// id (`sha256:...`). Its default command is `sh`.
pub fn import_base_image(engine: &Dockerd) -> Result<String> {
    let tarball = base_tarball()?;
    let out = engine.docker(&[
        "import",
        "--change",
        "CMD [\"sh\"]",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        &tarball.to_string_lossy(),
        BASE_IMAGE,
    ])?;
    let id = out.trim().to_owned();
    if !id.starts_with("sha256:") {
        return Err(KitError::Command {
            cmd: format!("docker import {}", tarball.display()),
            detail: format!("expected an image id, got {id:?}"),
        });
    }
    Ok(id)
}

/// Imports the base image into every node, in parallel; returns the ids in
/// node order. (They differ between engines: `docker import` stamps the
/// creation time into the image config.)
pub fn import_base_image_all(nodes: &DockerNodes) -> Result<Vec<String>> {
    base_tarball()?;
    thread::scope(|s| {
        let handles: Vec<_> = nodes
            .nodes()
            .iter()
            .map(|n| s.spawn(move || import_base_image(n.engine())))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(KitError::Command {
                        cmd: "docker import".into(),
                        detail: "the importing thread panicked".into(),
                    })
                })
            })
            .collect()
    })
}
