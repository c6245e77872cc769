//! Moving a named volume's data in and out of a node, through the Docker
//! Engine API only: deployd has no shell on nodes.
//!
//! Every transfer goes through a *helper container* that mounts the volume
//! at [`HELPER_MOUNT`]. It is created from an image already on the node
//! (the instance's own) and never started, so the image needs neither a
//! shell nor any tool: the engine's archive endpoints
//! (`GET`/`PUT /containers/{id}/archive`) work on a created container and
//! reach the volume through its mount. The helper is removed when the
//! transfer ends, fails or is dropped.
//!
//! **Tar layout.** [`Engine::export_volume`] yields the volume's contents
//! relative to its root, as `tar -C ROOT -cf - .` would: `./` first (the
//! root itself: its mode, owner and mtime), then `./dir/`, `./dir/file`,
//! ... [`Engine::import_volume`] takes the same layout (paths with or
//! without the `./`); when the first entry is the root directory (`./`), its
//! mode, owner and mtime are applied to the volume's root.
//!
//! The engine's tar keeps contents, permission bits (setuid, sticky, mode
//! 000 too), numeric owners, mtimes (whole seconds), symlinks (with their
//! own mtime), hard links within the volume, empty directories, fifos and
//! the `security.capability` xattr. It drops other xattrs, ACLs, atimes,
//! sub-second mtimes and sockets; sparse files come back dense.
//!
//! An export while the instance runs copies a moving target: stop the
//! instance first for a consistent copy.
//!
//! **Helpers** are labelled [`LABEL_HELPER`]`=`[`HELPER_VOLUME`] (not
//! [`LABEL_MANAGED`], so that [`Engine::list`] and the reconciler never see
//! them) and named [`helper_name`] from the volume, so that one node runs
//! one transfer per volume at a time: a second one fails with
//! [`VolumeError::HelperBusy`]. [`Engine::gc_volume_helpers`] removes those
//! a crash left behind.
//!
//! [`Engine::list`]: crate::docker::Engine::list

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Component;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::container::{
    Config, CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    UploadToContainerOptions,
};
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerSummary, HostConfig, Mount, MountTypeEnum, MountVolumeOptions, RestartPolicy,
    RestartPolicyNameEnum, Volume,
};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions, RemoveVolumeOptions};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::docker::Engine;
use crate::runtime::{
    RuntimeError, LABEL_APP, LABEL_INSTANCE, LABEL_MANAGED, LABEL_PROC, MANAGED_BY,
};

/// Marks the helper containers of this module; its value is
/// [`HELPER_VOLUME`].
pub const LABEL_HELPER: &str = "lain.helper";
/// The value of [`LABEL_HELPER`].
pub const HELPER_VOLUME: &str = "volume";
/// On a helper: the volume it mounts.
pub const LABEL_HELPER_OF: &str = "lain.helper.volume";
/// On a helper: `export` or `import`.
pub const LABEL_HELPER_OP: &str = "lain.helper.op";
/// Where a helper mounts the volume.
pub const HELPER_MOUNT: &str = "/lain-volume";

/// The entrypoint of a helper. Never run: docker only needs a command to
/// create a container, whatever the image has.
const NEVER_RUN: &str = "/lain-volume-helper-is-never-started";

/// How much of an import's start is kept to read its root entry from (a
/// directory entry, after at most a few extension headers).
const HEAD_BYTES: usize = 64 << 10;

/// The bound of bollard's own timeout on an upload. An upload's response
/// comes only after its whole body, so bollard's bound (on the whole
/// request) must not cut a large one short; the idle watchdog bounds it.
const UPLOAD_CLIENT_BOUND: Duration = Duration::from_secs(30 * 24 * 3600);

/// What failed in a volume operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("invalid volume name {volume:?}: docker volume names are [a-zA-Z0-9][a-zA-Z0-9_.-]* (an instance's volume is lain.{{app}}.{{proc}}.{{instance}}.{{path}})")]
    InvalidName { volume: String },
    #[error("volume {volume} does not exist on {endpoint} (check the node and the name: an instance's volume is lain.{{app}}.{{proc}}.{{instance}}.{{path}})")]
    NotFound { endpoint: String, volume: String },
    #[error("volume {volume} on {endpoint} is used by {}; stop and remove those containers first (for an instance: scale its proc down or stop the app), then retry", .containers.join(", "))]
    InUse {
        endpoint: String,
        volume: String,
        /// `name (state)` of each container that mounts it.
        containers: Vec<String>,
    },
    #[error("a helper container {helper} for volume {volume} already exists on {endpoint}: another export or import of this volume is under way there, or one was cut short by a crash; wait for it, or once none runs remove it (Engine::gc_volume_helpers, or `docker rm -f {helper}` on the node) and retry")]
    HelperBusy {
        endpoint: String,
        volume: String,
        helper: String,
    },
    #[error("cannot replace volume {volume} on {endpoint}: it uses driver {driver} with options {options}, and removing such a volume need not delete its data; empty it on the node, then import without replace")]
    CannotReplace {
        endpoint: String,
        volume: String,
        driver: String,
        options: String,
    },
    #[error("reading the tar to import into volume {volume} failed: {detail}; the volume may now hold part of it (import it again with replace)")]
    Input { volume: String, detail: String },
    #[error("Docker engine at {endpoint} refused the tar for volume {volume}: {detail} (is it a tar? the volume may now hold part of it: fix the tar and import it again with replace)")]
    Upload {
        endpoint: String,
        volume: String,
        detail: String,
    },
}

impl VolumeError {
    /// True for a timeout: the engine may be unreachable.
    pub fn is_timeout(&self) -> bool {
        matches!(self, VolumeError::Runtime(e) if e.is_timeout())
    }
}

pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// A volume's tar, as [`Engine::export_volume`] yields it.
pub type TarStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A volume on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    pub labels: HashMap<String, String>,
}

/// The name of the helper container of `volume`.
pub fn helper_name(volume: &str) -> String {
    format!("lain-volume-helper.{volume}")
}

/// The labels deployd puts on a volume it creates: [`LABEL_MANAGED`], and
/// for an instance's volume (`lain.{app}.{proc}.{instance}.{path}`, see
/// `reconcile::spec::volume_name`) its app, proc and instance.
pub fn volume_labels(volume: &str) -> HashMap<String, String> {
    let mut labels = HashMap::from([(LABEL_MANAGED.to_owned(), MANAGED_BY.to_owned())]);
    let parts: Vec<&str> = volume.splitn(5, '.').collect();
    // The path part has no dots (volume_name replaces them), so a name
    // with more dots is not one deployd made: then no app labels.
    if let ["lain", app, proc, instance, path] = parts[..] {
        if !app.is_empty()
            && !proc.is_empty()
            && !path.is_empty()
            && !path.contains('.')
            && instance.parse::<u32>().is_ok()
        {
            labels.insert(LABEL_APP.to_owned(), app.to_owned());
            labels.insert(LABEL_PROC.to_owned(), proc.to_owned());
            labels.insert(LABEL_INSTANCE.to_owned(), instance.to_owned());
        }
    }
    labels
}

fn check_name(volume: &str) -> Result<()> {
    let mut chars = volume.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::InvalidName {
            volume: volume.to_owned(),
        })
    }
}

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The tar that gives the mount point the root entry of an import's tar
/// (`head`, its first bytes): its mode, owner and mtime. `None` when the
/// tar does not start with a `./` directory entry.
///
/// The engine skips a `.` entry when extracting into an existing
/// directory, so the root is set by extracting a `lain-volume/` entry at
/// `/` instead; an existing directory there only gets the metadata.
fn root_tar(head: &[u8]) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(head);
    let entry = archive.entries().ok()?.next()?.ok()?;
    let src = entry.header();
    if src.entry_type() != tar::EntryType::Directory {
        return None;
    }
    let path = entry.path().ok()?;
    if !path.components().all(|c| c == Component::CurDir) {
        return None;
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    // Go's tar (docker's) adds the file type bits (0o40000) to the mode.
    header.set_mode(src.mode().ok()? & 0o7777);
    header.set_uid(src.uid().ok()?);
    header.set_gid(src.gid().ok()?);
    header.set_mtime(src.mtime().ok()?);
    header.set_size(0);
    let mut builder = tar::Builder::new(Vec::new());
    let name = format!("{}/", HELPER_MOUNT.trim_start_matches('/'));
    builder
        .append_data(&mut header, name, std::io::empty())
        .ok()?;
    builder.into_inner().ok()
}

/// A helper container; removed in the background when dropped before
/// [`Helper::finish`] removed it (a dropped export stream, a cancelled
/// import).
struct Helper {
    engine: Engine,
    id: String,
    name: String,
    removed: bool,
}

impl Helper {
    /// Removes the helper; a failure is logged (the drop tries once more,
    /// and [`Engine::gc_volume_helpers`] catches what is left).
    async fn finish(mut self) {
        match self.engine.remove(&self.id).await {
            Ok(()) => self.removed = true,
            Err(e) => {
                tracing::warn!(endpoint = %self.engine.endpoint(), helper = %self.name, error = %e, "cannot remove a volume helper container")
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let engine = self.engine.clone();
        let id = std::mem::take(&mut self.id);
        let name = std::mem::take(&mut self.name);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = engine.remove(&id).await {
                        tracing::warn!(endpoint = %engine.endpoint(), helper = %name, error = %e, "cannot remove a volume helper container; Engine::gc_volume_helpers will");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(endpoint = %engine.endpoint(), helper = %name, "a volume helper container is left behind (no runtime to remove it); Engine::gc_volume_helpers will")
            }
        }
    }
}

#[derive(Clone, Copy)]
enum HelperOp {
    Export,
    Import,
}

/// The engine's side of an export.
type Download = Pin<Box<dyn Stream<Item = Result<Bytes, BollardError>> + Send>>;

/// The state of an export stream. `inner` is dropped before `helper`, so
/// the engine sees the download end before the helper's removal.
struct Export {
    inner: Option<Download>,
    helper: Option<Helper>,
}

/// An import's progress, shared by its body stream and its watchdog.
struct Flow {
    /// Since when the engine has had what we sent (the request, or a
    /// chunk) without asking for more; `None` while we wait for our input,
    /// whose pace is the caller's.
    engine_since: Option<Instant>,
    input_error: Option<String>,
    head: Vec<u8>,
    bytes: u64,
}

fn lock(flow: &Mutex<Flow>) -> MutexGuard<'_, Flow> {
    flow.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// True when the node has `volume`.
    pub async fn volume_exists(&self, volume: &str) -> Result<bool> {
        check_name(volume)?;
        Ok(self.inspect_volume(volume).await?.is_some())
    }

    async fn inspect_volume(&self, volume: &str) -> Result<Option<Volume>, RuntimeError> {
        let docker = self.client(self.timeouts().call);
        match self
            .within(
                "volume inspect",
                volume,
                self.timeouts().call,
                docker.inspect_volume(volume),
            )
            .await?
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.call_error("volume inspect", volume, &e)),
        }
    }

    /// The volumes on the node with every label in `labels` (each `key` or
    /// `key=value`); all of them when empty.
    pub async fn list_volumes(&self, labels: &[&str]) -> Result<Vec<VolumeInfo>> {
        let docker = self.client(self.timeouts().call);
        let mut filters = HashMap::new();
        if !labels.is_empty() {
            filters.insert("label", labels.to_vec());
        }
        let listed = self
            .short(
                "volume list",
                "volumes",
                docker.list_volumes(Some(ListVolumesOptions { filters })),
            )
            .await?;
        let mut out: Vec<VolumeInfo> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                driver: v.driver,
                labels: v.labels,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates `volume` (local driver, [`volume_labels`]) unless it exists.
    pub async fn ensure_volume(&self, volume: &str) -> Result<()> {
        check_name(volume)?;
        self.create_volume(volume, "local", HashMap::new(), volume_labels(volume))
            .await
    }

    async fn create_volume(
        &self,
        volume: &str,
        driver: &str,
        driver_opts: HashMap<String, String>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let docker = self.client(self.timeouts().call);
        // The engine returns the existing volume for an existing name.
        self.short(
            "volume create",
            volume,
            docker.create_volume(CreateVolumeOptions {
                name: volume.to_owned(),
                driver: driver.to_owned(),
                driver_opts,
                labels,
            }),
        )
        .await?;
        Ok(())
    }

    /// Removes `volume` and its data. One that is gone is fine; one that a
    /// container mounts (running or not) is [`VolumeError::InUse`].
    pub async fn remove_volume(&self, volume: &str) -> Result<()> {
        check_name(volume)?;
        let docker = self.client(self.timeouts().call);
        match self
            .within(
                "volume remove",
                volume,
                self.timeouts().call,
                docker.remove_volume(volume, Some(RemoveVolumeOptions { force: false })),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => {
                let holders = self.holders(volume).await?;
                if holders.is_empty() {
                    return Err(self.call_error("volume remove", volume, &e).into());
                }
                Err(self.in_use(volume, holders))
            }
            Err(e) => Err(self.call_error("volume remove", volume, &e).into()),
        }
    }

    /// The containers that mount `volume`: (name, state).
    async fn holders(&self, volume: &str) -> Result<Vec<(String, String)>, RuntimeError> {
        let docker = self.client(self.timeouts().call);
        let listed = self
            .short(
                "container list",
                volume,
                docker.list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: HashMap::from([("volume", vec![volume])]),
                    ..Default::default()
                })),
            )
            .await?;
        let mounts_it = |c: &ContainerSummary| {
            c.mounts
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m.name.as_deref() == Some(volume)))
        };
        Ok(listed
            .iter()
            .filter(|c| mounts_it(c))
            .map(|c| {
                let name = c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .or_else(|| c.id.clone())
                    .unwrap_or_default();
                (name, c.state.clone().unwrap_or_default())
            })
            .collect())
    }

    fn in_use(&self, volume: &str, holders: Vec<(String, String)>) -> VolumeError {
        let helper = helper_name(volume);
        if holders.iter().any(|(name, _)| *name == helper) {
            return self.helper_busy(volume);
        }
        VolumeError::InUse {
            endpoint: self.endpoint().to_owned(),
            volume: volume.to_owned(),
            containers: holders
                .into_iter()
                .map(|(name, state)| format!("{name} ({state})"))
                .collect(),
        }
    }

    fn helper_busy(&self, volume: &str) -> VolumeError {
        VolumeError::HelperBusy {
            endpoint: self.endpoint().to_owned(),
            volume: volume.to_owned(),
            helper: helper_name(volume),
        }
    }

    async fn need_image(&self, image: &str) -> Result<()> {
        if self.image_present(image).await? {
            return Ok(());
        }
        Err(RuntimeError::ImageMissing {
            endpoint: self.endpoint().to_owned(),
            image: image.to_owned(),
        }
        .into())
    }

    /// Creates the (never started) helper container of `volume`.
    async fn create_helper(&self, volume: &str, image: &str, op: HelperOp) -> Result<Helper> {
        let name = helper_name(volume);
        let (op_name, read_only) = match op {
            HelperOp::Export => ("export", true),
            HelperOp::Import => ("import", false),
        };
        let config = Config {
            image: Some(image.to_owned()),
            entrypoint: Some(vec![NEVER_RUN.to_owned()]),
            labels: Some(HashMap::from([
                (LABEL_HELPER.to_owned(), HELPER_VOLUME.to_owned()),
                (LABEL_HELPER_OF.to_owned(), volume.to_owned()),
                (LABEL_HELPER_OP.to_owned(), op_name.to_owned()),
            ])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_owned()),
                mounts: Some(vec![Mount {
                    typ: Some(MountTypeEnum::VOLUME),
                    source: Some(volume.to_owned()),
                    target: Some(HELPER_MOUNT.to_owned()),
                    read_only: Some(read_only),
                    // Never copy the image's files at the mount path into
                    // the volume.
                    volume_options: Some(MountVolumeOptions {
                        no_copy: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let call = self.timeouts().call;
        let docker = self.client(call);
        let created = self
            .within(
                "volume helper create",
                &name,
                call,
                docker.create_container(
                    Some(CreateContainerOptions {
                        name: name.clone(),
                        platform: None,
                    }),
                    config,
                ),
            )
            .await;
        let created = match created {
            Ok(c) => c,
            Err(timeout) => {
                // It may have been made all the same: do not leave it to
                // block the next attempt.
                if let Err(e) = self.remove(&name).await {
                    tracing::warn!(endpoint = %self.endpoint(), helper = %name, error = %e, "cannot remove a volume helper whose create timed out");
                }
                return Err(timeout.into());
            }
        };
        match created {
            Ok(r) => Ok(Helper {
                engine: self.clone(),
                id: r.id,
                name,
                removed: false,
            }),
            Err(e) if status_of(&e) == Some(409) => Err(self.helper_busy(volume)),
            Err(e) if status_of(&e) == Some(404) && e.to_string().contains("image") => {
                Err(RuntimeError::ImageMissing {
                    endpoint: self.endpoint().to_owned(),
                    image: image.to_owned(),
                }
                .into())
            }
            Err(e) => Err(self.call_error("volume helper create", &name, &e).into()),
        }
    }

    /// The contents of `volume` as a tar stream (layout: see the module
    /// docs), read through a helper container made from `helper_image`
    /// (an image on the node; it is never started). The helper is removed
    /// when the stream ends, fails or is dropped.
    ///
    /// Streamed, never spooled: the caller decides where the bytes go and
    /// its pace is the pace of the transfer. Waiting for the engine is
    /// bounded by the call bound per chunk ([`crate::runtime::RuntimeTimeouts::call`]);
    /// a stall ends the stream with a timeout error. Errors before the
    /// first chunk (a missing volume or image, a busy helper) are this
    /// call's; later ones end the stream.
    pub async fn export_volume(&self, volume: &str, helper_image: &str) -> Result<TarStream> {
        check_name(volume)?;
        self.need_image(helper_image).await?;
        // Checked first: mounting a missing volume would create it.
        if self.inspect_volume(volume).await?.is_none() {
            return Err(VolumeError::NotFound {
                endpoint: self.endpoint().to_owned(),
                volume: volume.to_owned(),
            });
        }
        let helper = self
            .create_helper(volume, helper_image, HelperOp::Export)
            .await?;
        let call = self.timeouts().call;
        let docker = self.client(call);
        let inner = Box::pin(docker.download_from_container(
            &helper.id,
            Some(DownloadFromContainerOptions {
                // `/.` makes the entries relative to the volume's root.
                path: format!("{HELPER_MOUNT}/."),
            }),
        ));
        let mut export = Export {
            inner: Some(inner),
            helper: Some(helper),
        };
        let engine = self.clone();
        let target = volume.to_owned();
        let first = match next_chunk(&engine, &target, &mut export, call).await {
            Some(Ok(first)) => first,
            Some(Err(e)) => return Err(e),
            None => {
                return Err(RuntimeError::Call {
                    endpoint: self.endpoint().to_owned(),
                    op: "volume download",
                    target,
                    status: None,
                    detail: "the engine sent an empty archive".to_owned(),
                }
                .into())
            }
        };
        let rest = futures::stream::unfold(Some(export), move |state| {
            let engine = engine.clone();
            let target = target.clone();
            async move {
                let mut export = state?;
                match next_chunk(&engine, &target, &mut export, call).await {
                    Some(Ok(chunk)) => Some((Ok(chunk), Some(export))),
                    Some(Err(e)) => Some((Err(e), None)),
                    None => None,
                }
            }
        });
        Ok(Box::pin(
            futures::stream::once(async move { Ok(first) }).chain(rest),
        ))
    }

    /// Extracts the tar `tar` (layout: see the module docs) into `volume`,
    /// through a helper container made from `helper_image` (an image on the
    /// node; it is never started); returns the bytes read. The volume is
    /// created (labelled with [`volume_labels`]) when missing. Entries
    /// overwrite what is there; with `replace`, the volume is emptied first,
    /// by removing and re-creating it (same driver and labels), which needs
    /// that no container mounts it ([`VolumeError::InUse`] names those that
    /// do). Without `replace` nothing stops a running container that mounts
    /// it from seeing its files change: stop the instance first.
    ///
    /// Waiting for the engine is bounded by the call bound at each step;
    /// waiting for `tar` is not (its pace is the caller's). On an error the
    /// volume may hold part of the tar; the helper is removed in every case
    /// (in the background when this future is dropped).
    pub async fn import_volume<S, E>(
        &self,
        volume: &str,
        helper_image: &str,
        tar: S,
        replace: bool,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        check_name(volume)?;
        // Checked first, so that a missing image leaves no volume behind.
        self.need_image(helper_image).await?;
        match self.inspect_volume(volume).await? {
            Some(existing) if replace => self.recreate(volume, existing).await?,
            Some(_) => {}
            None => {
                self.create_volume(volume, "local", HashMap::new(), volume_labels(volume))
                    .await?
            }
        }
        let helper = self
            .create_helper(volume, helper_image, HelperOp::Import)
            .await?;
        let uploaded = self.upload(&helper.id, volume, tar).await;
        helper.finish().await;
        uploaded
    }

    /// Empties `volume` by removing and re-creating it.
    async fn recreate(&self, volume: &str, existing: Volume) -> Result<()> {
        if existing.driver != "local" || !existing.options.is_empty() {
            let mut options: Vec<String> = existing
                .options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            options.sort();
            return Err(VolumeError::CannotReplace {
                endpoint: self.endpoint().to_owned(),
                volume: volume.to_owned(),
                driver: existing.driver,
                options: format!("[{}]", options.join(", ")),
            });
        }
        // Asked first for a clear error; the engine checks again at removal.
        let holders = self.holders(volume).await?;
        if !holders.is_empty() {
            return Err(self.in_use(volume, holders));
        }
        self.remove_volume(volume).await?;
        let mut labels = existing.labels;
        labels.extend(volume_labels(volume));
        self.create_volume(volume, &existing.driver, existing.options, labels)
            .await
    }

    /// Streams `tar` into the helper's mount, then sets the mount's root
    /// from the tar's root entry.
    async fn upload<S, E>(&self, helper: &str, volume: &str, tar: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let idle = self.timeouts().call;
        let flow = Arc::new(Mutex::new(Flow {
            engine_since: Some(Instant::now()),
            input_error: None,
            head: Vec::new(),
            bytes: 0,
        }));
        // Shared so that an abort drops the caller's stream at once: the
        // body itself lives in the client's connection task, which a
        // stalled engine may keep for long after the request is dropped.
        let input = Arc::new(Mutex::new(Some(Box::pin(tar))));
        let body = {
            let (flow, input) = (flow.clone(), input.clone());
            futures::stream::poll_fn(move |cx| {
                let mut slot = input.lock().unwrap_or_else(|e| e.into_inner());
                // Gone: aborted, failed or done. Ending the body (rather
                // than leaving it pending) lets the engine finish the
                // request and release the helper; a tar cut short is
                // reported by the abort, never taken for a whole one.
                let Some(tar) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                lock(&flow).engine_since = None;
                let item = ready!(tar.as_mut().poll_next(cx));
                let mut f = lock(&flow);
                f.engine_since = Some(Instant::now());
                match item {
                    Some(Ok(chunk)) => {
                        f.bytes += chunk.len() as u64;
                        let room = HEAD_BYTES.saturating_sub(f.head.len());
                        f.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
                        Poll::Ready(Some(chunk))
                    }
                    Some(Err(e)) => {
                        f.input_error = Some(e.to_string());
                        *slot = None;
                        Poll::Ready(None)
                    }
                    None => {
                        *slot = None;
                        Poll::Ready(None)
                    }
                }
            })
        };
        let input_failed = |flow: &Mutex<Flow>| {
            lock(flow)
                .input_error
                .take()
                .map(|detail| VolumeError::Input {
                    volume: volume.to_owned(),
                    detail,
                })
        };
        let tick = (idle / 8).max(Duration::from_millis(20));
        let watchdog = async {
            loop {
                tokio::time::sleep(tick).await;
                if let Some(e) = input_failed(&flow) {
                    return e;
                }
                if lock(&flow)
                    .engine_since
                    .is_some_and(|t| t.elapsed() >= idle)
                {
                    return self.timeout_error("volume upload", volume, idle).into();
                }
            }
        };
        let docker = self.client(UPLOAD_CLIENT_BOUND);
        let upload = docker.upload_to_container_streaming(
            helper,
            Some(UploadToContainerOptions {
                path: HELPER_MOUNT.to_owned(),
                ..Default::default()
            }),
            body,
        );
        let uploaded = tokio::select! {
            r = upload => r,
            e = watchdog => {
                input.lock().unwrap_or_else(|e| e.into_inner()).take();
                return Err(e);
            }
        };
        // The engine may have taken a tar cut short by a failed input for
        // a whole one: the input's error wins.
        if let Some(e) = input_failed(&flow) {
            return Err(e);
        }
        if let Err(e) = uploaded {
            return Err(match e {
                BollardError::DockerResponseServerError { message, .. } => VolumeError::Upload {
                    endpoint: self.endpoint().to_owned(),
                    volume: volume.to_owned(),
                    detail: message,
                },
                e => self.call_error("volume upload", volume, &e).into(),
            });
        }
        let (head, bytes) = {
            let mut f = lock(&flow);
            (std::mem::take(&mut f.head), f.bytes)
        };
        if let Some(root) = root_tar(&head) {
            let docker = self.client(self.timeouts().call);
            self.short(
                "volume root upload",
                volume,
                docker.upload_to_container(
                    helper,
                    Some(UploadToContainerOptions {
                        path: "/".to_owned(),
                        ..Default::default()
                    }),
                    Bytes::from(root),
                ),
            )
            .await?;
        }
        Ok(bytes)
    }

    /// Removes the helper containers on this node created at least
    /// `min_age` ago, and returns their names. Helpers outlive a transfer
    /// only when deployd died during one; give `min_age` longer than any
    /// transfer may take, or zero when no transfer runs on the node.
    pub async fn gc_volume_helpers(&self, min_age: Duration) -> Result<Vec<String>> {
        let docker = self.client(self.timeouts().call);
        let filter = format!("{LABEL_HELPER}={HELPER_VOLUME}");
        let listed = self
            .short(
                "container list",
                "volume helpers",
                docker.list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: HashMap::from([("label".to_owned(), vec![filter])]),
                    ..Default::default()
                })),
            )
            .await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut removed = Vec::new();
        for c in listed {
            let created = c.created.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
            if Duration::from_secs(now.saturating_sub(created)) < min_age {
                continue;
            }
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            self.remove(&id).await?;
            tracing::info!(endpoint = %self.endpoint(), helper = %name, "removed a leftover volume helper container");
            removed.push(name);
        }
        Ok(removed)
    }
}

/// The next chunk of an export, bounded by `idle`; at the end or on an
/// error the download is dropped and the helper removed before returning.
async fn next_chunk(
    engine: &Engine,
    volume: &str,
    export: &mut Export,
    idle: Duration,
) -> Option<Result<Bytes>> {
    let inner = export.inner.as_mut()?;
    let outcome = loop {
        match tokio::time::timeout(idle, inner.next()).await {
            Ok(Some(Ok(chunk))) if chunk.is_empty() => continue,
            Ok(Some(Ok(chunk))) => return Some(Ok(chunk)),
            Ok(Some(Err(e))) => {
                break Some(Err(engine.call_error("volume download", volume, &e).into()))
            }
            Ok(None) => break None,
            Err(_) => {
                break Some(Err(engine
                    .timeout_error("volume download", volume, idle)
                    .into()))
            }
        }
    };
    export.inner = None;
    if let Some(helper) = export.helper.take() {
        helper.finish().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_volumes_get_their_identity_labels() {
        let l = volume_labels("lain.db.worker.1.var_lib_data");
        assert_eq!(l[LABEL_MANAGED], MANAGED_BY);
        assert_eq!(
            (
                l[LABEL_APP].as_str(),
                l[LABEL_PROC].as_str(),
                l[LABEL_INSTANCE].as_str()
            ),
            ("db", "worker", "1")
        );
        for other in ["data", "lain.a.b.x.p", "lain.a.b.1.p.q", "lain..b.1.p"] {
            let l = volume_labels(other);
            assert_eq!(l.len(), 1, "{other}: {l:?}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("lain.db.worker.1.data").is_ok());
        for bad in ["", ".x", "a/b", "a b", "../x", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    fn tar_of(entries: &[(&str, tar::EntryType, u32, u64)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, uid) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_uid(*uid);
            h.set_gid(*uid + 1);
            h.set_mtime(978_307_200);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn the_root_entry_becomes_the_mount_point() {
        use tar::EntryType::{Directory, Regular};
        for root in ["./", "."] {
            // With the type bits Go's tar (docker's) adds to the mode.
            let t = tar_of(&[(root, Directory, 0o40750, 999), ("./a", Regular, 0o644, 0)]);
            let out = root_tar(&t).unwrap();
            let mut archive = tar::Archive::new(&out[..]);
            let entries: Vec<_> = archive
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    (
                        e.path().unwrap().display().to_string(),
                        h.mode().unwrap(),
                        h.uid().unwrap(),
                        h.gid().unwrap(),
                        h.mtime().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                entries,
                [("lain-volume/".to_owned(), 0o750, 999, 1000, 978_307_200)]
            );
        }
        // No root entry, or a file first: nothing to apply.
        assert!(root_tar(&tar_of(&[("a/", Directory, 0o755, 0)])).is_none());
        assert!(root_tar(&tar_of(&[("./a", Regular, 0o644, 0)])).is_none());
        assert!(root_tar(b"not a tar").is_none());
        assert!(root_tar(&[]).is_none());
    }

    /// The transfers run in spawned tasks (deployd's backups do): their
    /// futures and streams must be `Send + 'static` for any caller.
    #[allow(dead_code)]
    fn transfers_can_be_spawned(engine: Engine) {
        let e = engine.clone();
        tokio::spawn(async move {
            let mut tar = e.export_volume("v", "i").await?;
            while let Some(chunk) = tar.next().await {
                chunk?;
            }
            Ok::<_, VolumeError>(())
        });
        tokio::spawn(async move {
            let tar = engine.export_volume("v", "i").await?;
            engine.import_volume("w", "i", tar, true).await
        });
    }

    #[test]
    fn helpers_are_named_after_their_volume() {
        assert_eq!(
            helper_name("lain.db.worker.1.data"),
            "lain-volume-helper.lain.db.worker.1.data"
        );
    }
}
