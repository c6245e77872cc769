//! The container lifecycle on one node's engine: networks, images,
//! containers, health checks by exec, events and logs.
//!
//! Pure of etcd: the reconciler decides what to run and calls these
//! methods on a node's [`Engine`]. Every call is bounded by a timeout of its
//! own ([`RuntimeTimeouts`]), so a node whose link is cut costs one timeout,
//! never a hung task. Two streams have no overall bound by design:
//! [`Engine::events`] and [`Engine::logs`] when following; only the wait for
//! their response headers is bounded. Docker sends no heartbeat on them, so
//! a cut link leaves them silent: the caller drops them when the node
//! monitor says the node is no longer alive.
//!
//! Containers that deployd made carry the `lain.*` labels below; [`list`]
//! and [`events`] only see those. The event stream starts at subscription:
//! after (re)subscribing, [`list`] once to catch what happened meanwhile.
//!
//! Secrets never touch a disk in plaintext, neither the deployd host's nor
//! the node's (see [`container_config_with`]): a container with secrets
//! gets a tmpfs at [`SECRETS_DIR`], symlinks at the secret files' paths
//! pointing into it (uploaded before start; not secret), and an entrypoint
//! wrapper (`/bin/sh`) that reads the secret values from the container's
//! stdin into the tmpfs and into its environment, then execs the proc's
//! command. deployd writes them over an attach at every start
//! ([`Engine::start_with_secrets`]); the engine's container config holds
//! none of them.
//!
//! [`list`]: Engine::list
//! [`events`]: Engine::events

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::container::{
    Config, CreateContainerOptions, ListContainersOptions, LogOutput, LogsOptions,
    NetworkingConfig, RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions};
use bollard::image::CreateImageOptions;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, EndpointSettings,
    HostConfig, Mount, MountTypeEnum, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::network::{CreateNetworkOptions, ListNetworksOptions};
use bollard::system::EventsOptions;
use bollard::Docker;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use zeroize::Zeroizing;

use crate::docker::Engine;

/// The app a container runs.
pub const LABEL_APP: &str = "lain.app";
/// The proc within the app.
pub const LABEL_PROC: &str = "lain.proc";
/// The instance number, `1`, `2`, ...
pub const LABEL_INSTANCE: &str = "lain.instance";
/// The desired generation the container was made for, in decimal.
pub const LABEL_GENERATION: &str = "lain.generation";
/// The caller's hash of the container spec.
pub const LABEL_SPEC: &str = "lain.spec";
/// The observed key segment the container fills, e.g. `1-7`.
pub const LABEL_SLOT: &str = "lain.slot";
/// Marks containers deployd made; its value is [`MANAGED_BY`].
pub const LABEL_MANAGED: &str = "lain.managed";
/// The value of [`LABEL_MANAGED`].
pub const MANAGED_BY: &str = "deployd";

/// Set (to `stdin`) on containers whose secrets are written to their stdin
/// at each start ([`Engine::start_with_secrets`]).
pub const LABEL_SECRETS: &str = "lain.secrets";
/// `lain.managed` of a portal container: kept apart from instances, so
/// the per-proc machinery never adopts or removes one.
pub const PORTAL_MANAGED_BY: &str = "deployd-portal";
/// The client app a portal container serves.
pub const LABEL_PORTAL_CLIENT: &str = "lain.portal.client";

/// The mode of a secret file whose [`SecretFile::mode`] is 0.
pub const DEFAULT_SECRET_MODE: u32 = 0o400;

/// The tmpfs (RAM only) that holds a container's secret files; the files
/// at their paths are symlinks to `SECRETS_DIR/1`, `SECRETS_DIR/2`, ...
pub const SECRETS_DIR: &str = "/run/lain/secrets";

/// The entrypoint wrapper of a container with secrets, run as
/// `/bin/sh -c WRAPPER lain-secrets ARGV...`: it runs the script deployd
/// writes to its stdin ([`secret_payload`]), which writes the files into
/// [`SECRETS_DIR`] and exports the env secrets, checks that it arrived
/// whole, restores the umask and execs the proc's command. Only shell
/// builtins: the image needs a POSIX `/bin/sh` (dash, bash, busybox ash)
/// and nothing else.
pub const SECRETS_WRAPPER: &str = "lain_secrets_umask=$(umask); \
. /dev/stdin || exit 125; \
if [ \"${lain_secrets_ok-}\" != 1 ]; then \
echo 'lain-secrets: the secrets did not arrive whole on stdin; deployd writes them when it starts the container (start it through deployd, not docker start)' >&2; \
exit 125; fi; \
umask \"$lain_secrets_umask\"; unset lain_secrets_ok lain_secrets_umask; \
exec \"$@\"";

/// Bounds of the lifecycle calls, per engine ([`Engine::with_timeouts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeTimeouts {
    /// Each short call: inspect, list, create, start, remove, upload, exec
    /// steps, network calls, and the wait for a stream's headers.
    pub call: Duration,
    /// A whole image pull.
    pub pull: Duration,
    /// The longest silence between two progress messages of a pull.
    pub pull_idle: Duration,
    /// What `stop` may take beyond its kill timeout.
    pub stop_margin: Duration,
}

impl Default for RuntimeTimeouts {
    fn default() -> Self {
        RuntimeTimeouts {
            call: Duration::from_secs(15),
            pull: Duration::from_secs(15 * 60),
            pull_idle: Duration::from_secs(120),
            stop_margin: Duration::from_secs(10),
        }
    }
}

/// What failed in a lifecycle call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("Docker engine at {endpoint} did not finish {op} of {target} within {timeout:?} (is the node reachable and its dockerd responsive? the call is safe to retry)")]
    Timeout {
        endpoint: String,
        op: &'static str,
        target: String,
        timeout: Duration,
    },
    #[error("Docker engine at {endpoint} failed {op} of {target}: {detail} (check dockerd's log on the node)")]
    Call {
        endpoint: String,
        op: &'static str,
        target: String,
        /// The HTTP status, when the engine answered with one.
        status: Option<u16>,
        detail: String,
    },
    #[error(
        "a container named {name} already exists on {endpoint}; inspect it and adopt or remove it"
    )]
    NameConflict { endpoint: String, name: String },
    #[error("container {id} does not exist on {endpoint} (it was removed; recreate it)")]
    NotFound { endpoint: String, id: String },
    #[error("image {image} is not present on {endpoint}; pull it before creating the container")]
    ImageMissing { endpoint: String, image: String },
    #[error("network {network} does not exist on {endpoint}; create it before the container")]
    NetworkMissing { endpoint: String, network: String },
    #[error("pulling {image} on {endpoint} failed: {detail} (check that the image exists in the registry, that the node reaches the registry, and for a plain-HTTP registry that dockerd has --insecure-registry for it)")]
    Pull {
        endpoint: String,
        image: String,
        detail: String,
    },
    #[error("invalid container spec for {name}: {detail}")]
    InvalidSpec { name: String, detail: String },
}

impl RuntimeError {
    /// True for a timeout: the engine may be unreachable.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RuntimeError::Timeout { .. })
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// A container to create.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The container name chosen by the caller (deterministic).
    pub name: String,
    pub app: String,
    pub proc: String,
    pub instance: u32,
    pub slot: String,
    pub generation: u64,
    pub spec_hash: String,
    pub image: String,
    pub cmd: Vec<String>,
    /// Only set on the container when not empty.
    pub entrypoint: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// Complete environment (the caller adds `LAIN_APP` etc.).
    pub env: Vec<(String, String)>,
    /// 0 = no limit.
    pub cpu_millis: u64,
    /// 0 = no limit.
    pub memory_bytes: u64,
    /// The container port, published on `host_ip` with a dynamic host port.
    pub port: Option<u16>,
    /// The node's address, where the port is published.
    pub host_ip: String,
    /// The per-app network, e.g. `lain-{app}`.
    pub network: String,
    /// (docker named volume, container path).
    pub volumes: Vec<(String, String)>,
    /// Files in RAM in the container (symlinks into [`SECRETS_DIR`]),
    /// written at each start.
    pub secret_files: Vec<SecretFile>,
    /// Environment variables set by the wrapper at each start, never in
    /// the engine's container config.
    pub secret_env: Vec<SecretEnv>,
    /// More labels; the `lain.*` ones above win over these.
    pub extra_labels: BTreeMap<String, String>,
    /// Extra names the container answers to on `network`.
    pub aliases: Vec<String>,
    /// A portal container: the client app it serves (see
    /// [`PORTAL_MANAGED_BY`]).
    pub portal_client: Option<String>,
}

/// A file written into a container before it starts, never to the deployd
/// host's disk.
#[derive(Clone)]
pub struct SecretFile {
    /// Absolute path in the container.
    pub path: String,
    pub contents: Zeroizing<Vec<u8>>,
    /// Permission bits; 0 means [`DEFAULT_SECRET_MODE`]. Owned by root.
    pub mode: u32,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// An environment variable with a secret value.
#[derive(Clone)]
pub struct SecretEnv {
    /// A shell name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    pub value: Zeroizing<String>,
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEnv")
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

impl ContainerSpec {
    /// True when the container gets secrets (and so the wrapper).
    pub fn has_secrets(&self) -> bool {
        !self.secret_files.is_empty() || !self.secret_env.is_empty()
    }
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Removing,
    Other,
}

impl ContainerState {
    /// From the engine's state word (`running`, `exited`, ...).
    pub fn parse(s: &str) -> ContainerState {
        match s {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            "removing" => ContainerState::Removing,
            _ => ContainerState::Other,
        }
    }

    fn from_enum(s: ContainerStateStatusEnum) -> ContainerState {
        match s {
            ContainerStateStatusEnum::CREATED => ContainerState::Created,
            ContainerStateStatusEnum::RUNNING => ContainerState::Running,
            ContainerStateStatusEnum::PAUSED => ContainerState::Paused,
            ContainerStateStatusEnum::RESTARTING => ContainerState::Restarting,
            ContainerStateStatusEnum::EXITED => ContainerState::Exited,
            ContainerStateStatusEnum::DEAD => ContainerState::Dead,
            ContainerStateStatusEnum::REMOVING => ContainerState::Removing,
            ContainerStateStatusEnum::EMPTY => ContainerState::Other,
        }
    }
}

/// One container deployd made, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LainContainer {
    pub id: String,
    /// Without docker's leading `/`.
    pub name: String,
    pub app: String,
    pub proc: String,
    pub instance: u32,
    pub slot: String,
    pub generation: u64,
    pub spec_hash: String,
    pub state: ContainerState,
    /// Set once the container exited (from `list`: parsed from its status
    /// text).
    pub exit_code: Option<i64>,
    /// From `inspect` only; `list` leaves them `None`.
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// The published host port of the container port, once running.
    pub host_port: Option<u16>,
    /// From `inspect` only; `list` says `false`.
    pub oom_killed: bool,
    /// It was made with secrets: start it with
    /// [`Engine::start_with_secrets`].
    pub secrets: bool,
}

/// One progress message of a pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    pub status: String,
    /// The layer, when the message is about one.
    pub id: Option<String>,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// A container event of a deployd-made container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub id: String,
    /// `create`, `start`, `die`, `oom`, `kill`, `stop`, `destroy`,
    /// `exec_start: ...`, `health_status: ...`, as the engine says it.
    pub action: String,
    pub app: String,
    pub proc: String,
    pub slot: String,
    /// With `die`: the exit code.
    pub exit_code: Option<i64>,
    /// The engine's time of the event, in Unix milliseconds.
    pub time_ms: Option<u64>,
}

/// Which output a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// A piece of a container's output (usually one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: LogStream,
    pub bytes: Bytes,
}

// ---------------------------------------------------------------------
// Pure parts: spec -> engine config, labels -> LainContainer, tar.
// ---------------------------------------------------------------------

/// The labels deployd puts on a container for `spec`.
pub fn labels(spec: &ContainerSpec) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .extra_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (LABEL_APP, spec.app.clone()),
        (LABEL_PROC, spec.proc.clone()),
        (LABEL_INSTANCE, spec.instance.to_string()),
        (LABEL_GENERATION, spec.generation.to_string()),
        (LABEL_SPEC, spec.spec_hash.clone()),
        (LABEL_SLOT, spec.slot.clone()),
        (LABEL_MANAGED, MANAGED_BY.to_owned()),
    ] {
        labels.insert(k.to_owned(), v);
    }
    labels.remove(LABEL_PORTAL_CLIENT);
    if let Some(client) = &spec.portal_client {
        labels.insert(LABEL_MANAGED.to_owned(), PORTAL_MANAGED_BY.to_owned());
        labels.insert(LABEL_PORTAL_CLIENT.to_owned(), client.clone());
    }
    labels.remove(LABEL_SECRETS);
    if spec.has_secrets() {
        labels.insert(LABEL_SECRETS.to_owned(), "stdin".to_owned());
    }
    labels
}

fn invalid(spec: &ContainerSpec, detail: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        name: spec.name.clone(),
        detail: detail.into(),
    }
}

/// The engine's container config for `spec`, for an image without an
/// entrypoint or cmd of its own (see [`container_config_with`]).
pub fn container_config(spec: &ContainerSpec) -> Result<Config<String>> {
    container_config_with(spec, &[], &[])
}

/// The command a container runs: docker's rule for merging the spec's
/// entrypoint and cmd with the image's.
fn command(spec: &ContainerSpec, image_entrypoint: &[String], image_cmd: &[String]) -> Vec<String> {
    if !spec.entrypoint.is_empty() {
        return spec.entrypoint.iter().chain(&spec.cmd).cloned().collect();
    }
    let cmd = if spec.cmd.is_empty() {
        image_cmd
    } else {
        &spec.cmd[..]
    };
    image_entrypoint.iter().chain(cmd).cloned().collect()
}

/// True for a name the shell can export.
fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks the secrets of `spec`: file paths, modes and env names.
fn check_secrets(spec: &ContainerSpec) -> Result<()> {
    for f in &spec.secret_files {
        let rel = secret_path(&f.path).map_err(|d| invalid(spec, d))?;
        let dir = SECRETS_DIR.trim_start_matches('/');
        if rel == dir || rel.starts_with(&format!("{dir}/")) {
            return Err(invalid(
                spec,
                format!(
                    "secret file path {:?} is inside {SECRETS_DIR}, which deployd uses",
                    f.path
                ),
            ));
        }
        if f.mode & !0o777 != 0 {
            return Err(invalid(
                spec,
                format!("secret file {:?} has an invalid mode {:o}", f.path, f.mode),
            ));
        }
    }
    for e in &spec.secret_env {
        if !is_shell_name(&e.name) || e.value.contains('\0') {
            return Err(invalid(
                spec,
                format!(
                    "secret environment variable {:?} needs a name of letters, digits and _ (not starting with a digit) and a value without NUL",
                    e.name
                ),
            ));
        }
    }
    Ok(())
}

/// The engine's container config for `spec`; the image's own entrypoint
/// and cmd only matter for a spec with secrets and no entrypoint.
///
/// A spec with secrets runs through the wrapper: entrypoint
/// `/bin/sh -c` [`SECRETS_WRAPPER`] `lain-secrets`, cmd the proc's command
/// (as docker would merge it with the image's), stdin open once
/// (`OpenStdin`, `StdinOnce`) for [`Engine::start_with_secrets`], a tmpfs
/// at [`SECRETS_DIR`] (mode 0700, or 1777 for a proc with a `user` other
/// than root, which writes it itself), and the [`LABEL_SECRETS`] label.
/// No secret value is in the config.
pub fn container_config_with(
    spec: &ContainerSpec,
    image_entrypoint: &[String],
    image_cmd: &[String],
) -> Result<Config<String>> {
    if spec.name.is_empty() {
        return Err(invalid(spec, "the container name is empty"));
    }
    if spec.image.is_empty() {
        return Err(invalid(spec, "the image is empty"));
    }
    let mut env = Vec::with_capacity(spec.env.len());
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(invalid(
                spec,
                format!("environment variable {k:?} has an invalid name or value"),
            ));
        }
        env.push(format!("{k}={v}"));
    }
    let i64_of = |what: &str, v: u64| {
        i64::try_from(v).map_err(|_| invalid(spec, format!("{what} {v} is too large")))
    };
    let nano_cpus = match spec.cpu_millis {
        0 => None,
        m => Some(i64_of(
            "cpu",
            m.checked_mul(1_000_000)
                .ok_or_else(|| invalid(spec, "cpu is too large"))?,
        )?),
    };
    let memory = match spec.memory_bytes {
        0 => None,
        m => Some(i64_of("memory", m)?),
    };
    let mut mounts = Vec::with_capacity(spec.volumes.len());
    for (volume, target) in &spec.volumes {
        if volume.is_empty() || !target.starts_with('/') {
            return Err(invalid(
                spec,
                format!("volume {volume:?} at {target:?}: needs a volume name and an absolute container path"),
            ));
        }
        mounts.push(Mount {
            typ: Some(MountTypeEnum::VOLUME),
            source: Some(volume.clone()),
            target: Some(target.clone()),
            ..Default::default()
        });
    }
    let (exposed_ports, port_bindings) = match spec.port {
        Some(port) => {
            let key = format!("{port}/tcp");
            (
                Some(HashMap::from([(key.clone(), HashMap::new())])),
                Some(HashMap::from([(
                    key,
                    Some(vec![PortBinding {
                        host_ip: Some(spec.host_ip.clone()),
                        host_port: Some(String::new()),
                    }]),
                )])),
            )
        }
        None => (None, None),
    };
    let host_config = HostConfig {
        nano_cpus,
        memory,
        // The limit the user asked for, without as much swap again.
        memory_swap: memory,
        port_bindings,
        network_mode: (!spec.network.is_empty()).then(|| spec.network.clone()),
        mounts: (!mounts.is_empty()).then_some(mounts),
        // deployd restarts, so that it sees and counts every exit.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        ..Default::default()
    };
    let user = spec.user.clone().filter(|u| !u.is_empty());
    let mut config = Config {
        image: Some(spec.image.clone()),
        env: Some(env),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
        user: user.clone(),
        working_dir: spec.workdir.clone().filter(|w| !w.is_empty()),
        labels: Some(labels(spec)),
        exposed_ports,
        host_config: Some(host_config),
        networking_config: (!spec.aliases.is_empty() && !spec.network.is_empty()).then(|| {
            NetworkingConfig {
                endpoints_config: HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        aliases: Some(spec.aliases.clone()),
                        ..Default::default()
                    },
                )]),
            }
        }),
        ..Default::default()
    };
    if spec.has_secrets() {
        check_secrets(spec)?;
        let argv = command(spec, image_entrypoint, image_cmd);
        if argv.is_empty() {
            return Err(invalid(
                spec,
                "it has secrets but no command: give the proc a cmd, or use an image with an entrypoint or cmd",
            ));
        }
        let root = user
            .as_deref()
            .is_none_or(|u| matches!(u.split(':').next(), Some("root" | "0")));
        let bytes: usize = spec
            .secret_files
            .iter()
            .map(|f| f.contents.len() + 4096)
            .sum();
        let size = (1 << 20) + bytes;
        let mode = if root { "0700" } else { "1777" };
        config.entrypoint = Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            SECRETS_WRAPPER.into(),
            "lain-secrets".into(),
        ]);
        config.cmd = Some(argv);
        config.open_stdin = Some(true);
        config.stdin_once = Some(true);
        config.attach_stdin = Some(true);
        if let Some(h) = config.host_config.as_mut() {
            h.tmpfs = Some(HashMap::from([(
                SECRETS_DIR.to_owned(),
                format!("rw,noexec,nosuid,nodev,mode={mode},size={size}"),
            )]));
        }
    }
    Ok(config)
}

/// The identity labels of a deployd-made container; `None` when the
/// container is not one or its labels are unreadable.
struct Identity {
    app: String,
    proc: String,
    instance: u32,
    slot: String,
    generation: u64,
    spec_hash: String,
    secrets: bool,
}

fn identity(labels: Option<&HashMap<String, String>>) -> Option<Identity> {
    let labels = labels?;
    if labels.get(LABEL_MANAGED).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    Some(Identity {
        app: labels.get(LABEL_APP)?.clone(),
        proc: labels.get(LABEL_PROC)?.clone(),
        instance: labels.get(LABEL_INSTANCE)?.parse().ok()?,
        slot: labels.get(LABEL_SLOT)?.clone(),
        generation: labels.get(LABEL_GENERATION)?.parse().ok()?,
        spec_hash: labels.get(LABEL_SPEC)?.clone(),
        secrets: labels.contains_key(LABEL_SECRETS),
    })
}

/// The exit code in a list status such as `Exited (137) 5 seconds ago`.
fn exit_code_of_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

/// A container of a list answer; `None` when it is not deployd's or its
/// labels are unreadable.
pub fn from_summary(c: &ContainerSummary) -> Option<LainContainer> {
    let who = identity(c.labels.as_ref())?;
    let state = ContainerState::parse(c.state.as_deref().unwrap_or(""));
    let exit_code = match state {
        ContainerState::Exited | ContainerState::Dead => {
            c.status.as_deref().and_then(exit_code_of_status)
        }
        _ => None,
    };
    let host_port = c.ports.as_ref().and_then(|ports| {
        ports
            .iter()
            .filter(|p| p.typ.is_none_or(|t| t.to_string() == "tcp"))
            .find_map(|p| p.public_port.filter(|p| *p != 0))
    });
    Some(LainContainer {
        id: c.id.clone()?,
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        app: who.app,
        proc: who.proc,
        instance: who.instance,
        slot: who.slot,
        generation: who.generation,
        spec_hash: who.spec_hash,
        state,
        exit_code,
        started_at_ms: None,
        finished_at_ms: None,
        host_port,
        oom_killed: false,
        secrets: who.secrets,
    })
}

/// A portal container, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalContainer {
    pub id: String,
    pub name: String,
    /// The service app and its portal proc.
    pub app: String,
    pub proc: String,
    pub client: String,
    pub spec_hash: String,
    pub state: ContainerState,
}

/// A portal container of a list answer; `None` when it is not one.
pub fn portal_from_summary(c: &ContainerSummary) -> Option<PortalContainer> {
    let labels = c.labels.as_ref()?;
    if labels.get(LABEL_MANAGED).map(String::as_str) != Some(PORTAL_MANAGED_BY) {
        return None;
    }
    Some(PortalContainer {
        id: c.id.clone()?,
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        app: labels.get(LABEL_APP)?.clone(),
        proc: labels.get(LABEL_PROC)?.clone(),
        client: labels.get(LABEL_PORTAL_CLIENT)?.clone(),
        spec_hash: labels.get(LABEL_SPEC)?.clone(),
        state: ContainerState::parse(c.state.as_deref().unwrap_or("")),
    })
}

/// A tar of one file at absolute `path`, with its parent directories
/// (mode 0755), for [`Engine::put_file`].
pub fn file_tar(path: &str, contents: &[u8], mode: u32) -> std::result::Result<Vec<u8>, String> {
    let rel = path
        .strip_prefix('/')
        .filter(|r| !r.is_empty() && r.split('/').all(|p| !p.is_empty() && p != "." && p != ".."))
        .ok_or_else(|| format!("{path:?} is not a clean absolute file path"))?;
    let mut b = tar::Builder::new(Vec::new());
    let parts: Vec<&str> = rel.split('/').collect();
    for i in 1..parts.len() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, parts[..i].join("/"), std::io::empty())
            .map_err(|e| e.to_string())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_size(contents.len() as u64);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    b.append_data(&mut h, rel, contents)
        .map_err(|e| e.to_string())?;
    b.into_inner().map_err(|e| e.to_string())
}

/// A container of an inspect answer; `None` when it is not deployd's.
pub fn from_inspect(c: &ContainerInspectResponse) -> Option<LainContainer> {
    let who = identity(c.config.as_ref().and_then(|c| c.labels.as_ref()))?;
    let st = c.state.as_ref();
    let state = st
        .and_then(|s| s.status)
        .map(ContainerState::from_enum)
        .unwrap_or(ContainerState::Other);
    let exit_code = match state {
        ContainerState::Exited | ContainerState::Dead => st.and_then(|s| s.exit_code),
        _ => None,
    };
    let host_port = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .and_then(|ports| {
            let mut keys: Vec<&String> = ports.keys().filter(|k| k.ends_with("/tcp")).collect();
            keys.sort();
            keys.into_iter().find_map(|k| {
                ports.get(k)?.as_ref()?.iter().find_map(|b| {
                    b.host_port
                        .as_deref()
                        .and_then(|p| p.parse::<u16>().ok())
                        .filter(|p| *p != 0)
                })
            })
        });
    Some(LainContainer {
        id: c.id.clone()?,
        name: c
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_owned(),
        app: who.app,
        proc: who.proc,
        instance: who.instance,
        slot: who.slot,
        generation: who.generation,
        spec_hash: who.spec_hash,
        state,
        exit_code,
        started_at_ms: st
            .and_then(|s| s.started_at.as_deref())
            .and_then(rfc3339_ms),
        finished_at_ms: st
            .and_then(|s| s.finished_at.as_deref())
            .and_then(rfc3339_ms),
        host_port,
        oom_killed: st.and_then(|s| s.oom_killed).unwrap_or(false),
        secrets: who.secrets,
    })
}

/// Unix milliseconds of an engine timestamp (`2026-11-22T01:02:03.456789Z`,
/// or with a `+HH:MM` offset); `None` for docker's zero time (year 1) and
/// anything unreadable.
pub fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let ms: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let h: i64 = o.get(1..3)?.parse().ok()?;
            let m: i64 = o.get(4..6)?.parse().ok()?;
            let v = h * 3600 + m * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    u64::try_from(secs * 1000 + millis).ok()
}

/// The in-container path of a secret file, relative to `/`, checked.
fn secret_path(path: &str) -> std::result::Result<String, String> {
    let rel = path
        .strip_prefix('/')
        .ok_or_else(|| format!("secret file path {path:?} is not absolute"))?;
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(format!("secret file path {path:?} names no file"));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") || path.contains('\0') {
        return Err(format!(
            "secret file path {path:?} must not contain `.`, `..` or NUL"
        ));
    }
    if path.ends_with('/') {
        return Err(format!("secret file path {path:?} names a directory"));
    }
    Ok(parts.join("/"))
}

/// The tar to extract at `/` of a container with secret files: for file
/// `i` (from 1), a symlink at its path to `SECRETS_DIR/i`. Not secret.
///
/// It holds no directory entries: the engine creates missing parent
/// directories itself (mode 0755, root), while a directory entry would
/// reset the mode and owner of an existing one (e.g. `/tmp`).
pub fn secret_symlink_tar(files: &[SecretFile]) -> std::result::Result<Vec<u8>, String> {
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Complete);
    for (i, f) in files.iter().enumerate() {
        let rel = secret_path(&f.path)?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        builder
            .append_link(&mut header, &rel, format!("{SECRETS_DIR}/{}", i + 1))
            .map_err(|e| format!("cannot pack the link of secret file {:?}: {e}", f.path))?;
    }
    builder
        .into_inner()
        .map_err(|e| format!("cannot pack the links of the secret files: {e}"))
}

/// Input bytes per `printf` line of the payload.
const PAYLOAD_CHUNK: usize = 1024;

/// The script [`SECRETS_WRAPPER`] sources from stdin: for each file `i` a
/// umask for its mode and `printf` lines writing its bytes (octal escapes
/// for all but plain ASCII) to `SECRETS_DIR/i`, an `export NAME='value'`
/// per env secret, and `lain_secrets_ok=1` last. Only shell builtins, so
/// the image needs nothing but `/bin/sh`. The buffer is sized up front, so
/// that it never reallocates (which would leave copies behind), and is
/// zeroed when dropped.
pub fn secret_payload(files: &[SecretFile], env: &[SecretEnv]) -> Zeroizing<Vec<u8>> {
    let line = 64 + SECRETS_DIR.len();
    let mut capacity = 64;
    for f in files {
        capacity += line + f.contents.len() * 4 + f.contents.len().div_ceil(PAYLOAD_CHUNK) * line;
    }
    for e in env {
        capacity += 32 + e.name.len() + e.value.len() * 4;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    for (i, f) in files.iter().enumerate() {
        let n = i + 1;
        let mode = if f.mode == 0 {
            DEFAULT_SECRET_MODE
        } else {
            f.mode
        };
        out.extend_from_slice(format!("umask {:03o}\n", !mode & 0o777).as_bytes());
        if f.contents.is_empty() {
            out.extend_from_slice(format!(": > {SECRETS_DIR}/{n}\n").as_bytes());
        }
        for (k, chunk) in f.contents.chunks(PAYLOAD_CHUNK).enumerate() {
            out.extend_from_slice(b"printf '");
            for &b in chunk {
                if (b.is_ascii_graphic() || b == b' ') && !matches!(b, b'\'' | b'\\' | b'%') {
                    out.push(b);
                } else {
                    out.extend_from_slice(&[
                        b'\\',
                        b'0' + (b >> 6),
                        b'0' + ((b >> 3) & 7),
                        b'0' + (b & 7),
                    ]);
                }
            }
            let redirect = if k == 0 { ">" } else { ">>" };
            out.extend_from_slice(format!("' {redirect} {SECRETS_DIR}/{n}\n").as_bytes());
        }
    }
    for e in env {
        out.extend_from_slice(format!("export {}='", e.name).as_bytes());
        for &b in e.value.as_bytes() {
            if b == b'\'' {
                out.extend_from_slice(b"'\\''");
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(b"'\n");
    }
    out.extend_from_slice(b"lain_secrets_ok=1\n");
    debug_assert!(out.capacity() == capacity, "the secret payload reallocated");
    out
}

/// Splits an image reference into the `fromImage` and `tag` parameters of
/// a pull: `reg:5000/app:v1` -> (`reg:5000/app`, `v1`), `app@sha256:..`
/// -> (`app`, `sha256:..`), and `app` -> (`app`, `latest`) (an empty tag
/// would pull every tag).
pub fn split_image(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

// ---------------------------------------------------------------------
// Calls.
// ---------------------------------------------------------------------

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// The lock that serializes network creation on one endpoint.
fn network_lock(endpoint: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(endpoint.to_owned()).or_default().clone()
}

impl Engine {
    /// A client whose own (whole-second) timeout lies beyond `bound`, so
    /// that ours, finer, fires first.
    pub(crate) fn client(&self, bound: Duration) -> Docker {
        self.docker()
            .clone()
            .with_timeout(Duration::from_secs(bound.as_secs() + 2))
    }

    pub(crate) fn call_error(
        &self,
        op: &'static str,
        target: &str,
        e: &BollardError,
    ) -> RuntimeError {
        if matches!(e, BollardError::RequestTimeoutError) {
            return RuntimeError::Timeout {
                endpoint: self.endpoint().to_owned(),
                op,
                target: target.to_owned(),
                timeout: self.timeouts().call,
            };
        }
        RuntimeError::Call {
            endpoint: self.endpoint().to_owned(),
            op,
            target: target.to_owned(),
            status: status_of(e),
            detail: crate::docker::with_causes(e),
        }
    }

    pub(crate) fn timeout_error(
        &self,
        op: &'static str,
        target: &str,
        timeout: Duration,
    ) -> RuntimeError {
        RuntimeError::Timeout {
            endpoint: self.endpoint().to_owned(),
            op,
            target: target.to_owned(),
            timeout,
        }
    }

    /// Runs `call` bounded by `bound`; the engine's answer stays a bollard
    /// error for the caller to sort by status.
    pub(crate) async fn within<T>(
        &self,
        op: &'static str,
        target: &str,
        bound: Duration,
        call: impl Future<Output = std::result::Result<T, BollardError>>,
    ) -> Result<std::result::Result<T, BollardError>> {
        tokio::time::timeout(bound, call)
            .await
            .map_err(|_| self.timeout_error(op, target, bound))
    }

    /// Like [`Engine::within`] with the call bound, every engine error an
    /// error.
    pub(crate) async fn short<T>(
        &self,
        op: &'static str,
        target: &str,
        call: impl Future<Output = std::result::Result<T, BollardError>>,
    ) -> Result<T> {
        self.within(op, target, self.timeouts().call, call)
            .await?
            .map_err(|e| self.call_error(op, target, &e))
    }

    /// Creates the bridge network `name` (labelled as deployd's) unless it
    /// exists. Idempotent; concurrent calls are fine.
    ///
    /// The engine's duplicate-name check is racy (concurrent creates make
    /// several networks of one name, and then `NetworkMode: name` is
    /// ambiguous), so creates are serialized per endpoint within deployd,
    /// and duplicates deployd made are removed, keeping the one with the
    /// lowest id (the same one for every caller).
    pub async fn ensure_network(&self, name: &str) -> Result<()> {
        // Listed every time, not cached: Docker 20.10 creates a container
        // for a network that is gone and only fails its start, so a cache
        // would never learn that someone removed the network.
        if self.networks_named(name).await?.len() == 1 {
            return Ok(());
        }
        let lock = network_lock(self.endpoint());
        let _held = lock.lock().await;
        let mut found = self.networks_named(name).await?;
        if found.is_empty() {
            let docker = self.client(self.timeouts().call);
            let created = self
                .within(
                    "network create",
                    name,
                    self.timeouts().call,
                    docker.create_network(CreateNetworkOptions {
                        name: name.to_owned(),
                        check_duplicate: true,
                        driver: "bridge".to_owned(),
                        labels: HashMap::from([(LABEL_MANAGED.to_owned(), MANAGED_BY.to_owned())]),
                        ..Default::default()
                    }),
                )
                .await?;
            match created {
                Ok(_) => {}
                // Created meanwhile by someone else.
                Err(e) if status_of(&e) == Some(409) => {}
                Err(e) => return Err(self.call_error("network create", name, &e)),
            }
            found = self.networks_named(name).await?;
        }
        if found.len() > 1 {
            // Every caller keeps the same one.
            found.sort();
            let docker = self.client(self.timeouts().call);
            for (id, ours) in &found[1..] {
                if !ours {
                    continue;
                }
                let removed = self
                    .within(
                        "network remove",
                        name,
                        self.timeouts().call,
                        docker.remove_network(id),
                    )
                    .await?;
                if let Err(e) = removed {
                    tracing::warn!(endpoint = %self.endpoint(), network = name, id, error = %crate::docker::with_causes(&e), "cannot remove a duplicate network");
                }
            }
        }
        Ok(())
    }

    /// The networks named exactly `name`: (id, made by deployd).
    async fn networks_named(&self, name: &str) -> Result<Vec<(String, bool)>> {
        let docker = self.client(self.timeouts().call);
        let all = self
            .short(
                "network list",
                name,
                docker.list_networks(Some(ListNetworksOptions {
                    filters: HashMap::from([("name".to_owned(), vec![name.to_owned()])]),
                })),
            )
            .await?;
        Ok(all
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| {
                let ours = n
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_MANAGED))
                    .is_some_and(|v| v == MANAGED_BY);
                Some((n.id?, ours))
            })
            .collect())
    }

    /// True when the engine has `image`.
    pub async fn image_present(&self, image: &str) -> Result<bool> {
        let docker = self.client(self.timeouts().call);
        match self
            .within(
                "image inspect",
                image,
                self.timeouts().call,
                docker.inspect_image(image),
            )
            .await?
        {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.call_error("image inspect", image, &e)),
        }
    }

    /// Pulls `image`, calling `progress` with each message. Bounded by
    /// [`RuntimeTimeouts::pull`] overall and [`RuntimeTimeouts::pull_idle`]
    /// between messages; an error in the stream names the image.
    pub async fn pull(
        &self,
        image: &str,
        credentials: Option<bollard::auth::DockerCredentials>,
        mut progress: impl FnMut(PullProgress),
    ) -> Result<()> {
        let t = *self.timeouts();
        let (from_image, tag) = split_image(image);
        let docker = self.client(t.pull_idle);
        let mut stream = docker.create_image(
            Some(CreateImageOptions {
                from_image: from_image.to_owned(),
                tag: tag.to_owned(),
                ..Default::default()
            }),
            None,
            credentials,
        );
        let deadline = tokio::time::Instant::now() + t.pull;
        loop {
            let idle = tokio::time::Instant::now() + t.pull_idle;
            let next = tokio::time::timeout_at(idle.min(deadline), stream.next()).await;
            let item = match next {
                Err(_) => {
                    let bound = if idle < deadline { t.pull_idle } else { t.pull };
                    return Err(RuntimeError::Pull {
                        endpoint: self.endpoint().to_owned(),
                        image: image.to_owned(),
                        detail: format!(
                            "no progress within {bound:?} (the engine or the registry stopped answering)"
                        ),
                    });
                }
                Ok(None) => return Ok(()),
                Ok(Some(item)) => item,
            };
            match item {
                Ok(info) => {
                    if let Some(error) = info.error {
                        return Err(self.pull_error(image, error));
                    }
                    let detail = info.progress_detail.unwrap_or_default();
                    progress(PullProgress {
                        status: info.status.unwrap_or_default(),
                        id: info.id,
                        current: detail.current.and_then(|v| u64::try_from(v).ok()),
                        total: detail.total.and_then(|v| u64::try_from(v).ok()),
                    });
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(self.pull_error(image, error))
                }
                Err(BollardError::DockerResponseServerError { message, .. }) => {
                    return Err(self.pull_error(image, message))
                }
                Err(BollardError::RequestTimeoutError) => {
                    return Err(self.timeout_error("pull", image, t.pull_idle))
                }
                Err(e) => return Err(self.pull_error(image, crate::docker::with_causes(&e))),
            }
        }
    }

    fn pull_error(&self, image: &str, detail: String) -> RuntimeError {
        RuntimeError::Pull {
            endpoint: self.endpoint().to_owned(),
            image: image.to_owned(),
            detail,
        }
    }

    /// Creates the container of `spec` and, when it has secret files,
    /// uploads their symlinks into it (see [`container_config_with`]);
    /// returns its id. A name already taken is
    /// [`RuntimeError::NameConflict`] (inspect and adopt it). When the
    /// links cannot be written, the container is removed again.
    ///
    /// No secret value goes to the engine here: a container with secrets
    /// gets them at each start, from [`Engine::start_with_secrets`].
    ///
    /// Only start a container whose `create` returned `Ok`. A container
    /// found under the name in state [`ContainerState::Created`] (never
    /// started) may come from a `create` that timed out half-way: remove
    /// and recreate it rather than adopting it. One that was started went
    /// through a successful `create`.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let docker = self.client(self.timeouts().call);
        let config = if spec.has_secrets() && spec.entrypoint.is_empty() {
            // The wrapper runs the image's own command when the spec has
            // none: look it up.
            let image = match self
                .within(
                    "image inspect",
                    &spec.image,
                    self.timeouts().call,
                    docker.inspect_image(&spec.image),
                )
                .await?
            {
                Ok(i) => i,
                Err(e) if status_of(&e) == Some(404) => {
                    return Err(RuntimeError::ImageMissing {
                        endpoint: self.endpoint().to_owned(),
                        image: spec.image.clone(),
                    })
                }
                Err(e) => return Err(self.call_error("image inspect", &spec.image, &e)),
            };
            let c = image.config.unwrap_or_default();
            container_config_with(
                spec,
                c.entrypoint.as_deref().unwrap_or_default(),
                c.cmd.as_deref().unwrap_or_default(),
            )?
        } else {
            container_config(spec)?
        };
        let tar = if spec.secret_files.is_empty() {
            None
        } else {
            Some(secret_symlink_tar(&spec.secret_files).map_err(|d| invalid(spec, d))?)
        };
        let created = self
            .within(
                "container create",
                &spec.name,
                self.timeouts().call,
                docker.create_container(
                    Some(CreateContainerOptions {
                        name: spec.name.clone(),
                        platform: None,
                    }),
                    config,
                ),
            )
            .await?;
        let id = match created {
            Ok(r) => r.id,
            Err(e) if status_of(&e) == Some(409) => {
                return Err(RuntimeError::NameConflict {
                    endpoint: self.endpoint().to_owned(),
                    name: spec.name.clone(),
                })
            }
            // The network first: an app may be called `imagegen`.
            Err(e)
                if status_of(&e) == Some(404)
                    && e.to_string()
                        .contains(&format!("network {} not found", spec.network)) =>
            {
                return Err(RuntimeError::NetworkMissing {
                    endpoint: self.endpoint().to_owned(),
                    network: spec.network.clone(),
                });
            }
            Err(e) if status_of(&e) == Some(404) && e.to_string().contains("image") => {
                return Err(RuntimeError::ImageMissing {
                    endpoint: self.endpoint().to_owned(),
                    image: spec.image.clone(),
                })
            }
            Err(e) => return Err(self.call_error("container create", &spec.name, &e)),
        };
        if let Some(tar) = tar {
            let uploaded = self
                .short(
                    "secret file link upload",
                    &spec.name,
                    docker.upload_to_container(
                        &id,
                        Some(UploadToContainerOptions {
                            path: "/".to_owned(),
                            ..Default::default()
                        }),
                        Bytes::from(tar),
                    ),
                )
                .await;
            if let Err(e) = uploaded {
                if let Err(removal) = self.remove(&id).await {
                    tracing::warn!(container = %spec.name, error = %removal, "cannot remove a container whose secret file links failed to upload");
                }
                return Err(e);
            }
        }
        Ok(id)
    }

    /// Starts a created container; one already running is fine. A
    /// container made with secrets ([`LainContainer::secrets`]) needs
    /// [`Engine::start_with_secrets`] instead: started here, its wrapper
    /// would wait for them.
    pub async fn start(&self, id: &str) -> Result<()> {
        self.start_call(id).await.map(|_| ())
    }

    /// Starts; true when it started, false when it already ran.
    async fn start_call(&self, id: &str) -> Result<bool> {
        let docker = self.client(self.timeouts().call);
        match self
            .within(
                "container start",
                id,
                self.timeouts().call,
                docker.start_container(id, None::<StartContainerOptions<String>>),
            )
            .await?
        {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(304) => Ok(false),
            Err(e) if status_of(&e) == Some(404) => Err(RuntimeError::NotFound {
                endpoint: self.endpoint().to_owned(),
                id: id.to_owned(),
            }),
            Err(e) => {
                let mut err = self.call_error("container start", id, &e);
                if let RuntimeError::Call { detail, .. } = &mut err {
                    if detail.contains("/bin/sh") && detail.contains("no such file") {
                        detail.push_str(
                            "; the image has no /bin/sh; secrets need a shell in the image",
                        );
                    }
                }
                Err(err)
            }
        }
    }

    /// Starts a container made with secrets and hands them to its wrapper:
    /// attaches to its stdin, starts it, writes [`secret_payload`] and
    /// closes stdin; the wrapper then writes them into its tmpfs and
    /// environment and execs the proc's command. Give the secrets of the
    /// spec the container was made from, at every start (the tmpfs is
    /// empty again after a stop). Each step is bounded by the call bound.
    ///
    /// One already running is fine (nothing is written). When
    /// the secrets cannot be written after the start, the container is
    /// killed, so that it never runs without them.
    pub async fn start_with_secrets(
        &self,
        id: &str,
        files: &[SecretFile],
        env: &[SecretEnv],
    ) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        match self.inspect(id).await? {
            None => {
                return Err(RuntimeError::NotFound {
                    endpoint: self.endpoint().to_owned(),
                    id: id.to_owned(),
                })
            }
            Some(c) if c.state == ContainerState::Running => return Ok(()),
            Some(_) => {}
        }
        let call = self.timeouts().call;
        let docker = self.client(call);
        let attached = self
            .within(
                "secrets attach",
                id,
                call,
                docker.attach_container(
                    id,
                    Some(bollard::container::AttachContainerOptions::<String> {
                        stdin: Some(true),
                        stdout: Some(false),
                        stderr: Some(false),
                        stream: Some(true),
                        logs: Some(false),
                        detach_keys: None,
                    }),
                ),
            )
            .await?;
        let mut attached = match attached {
            Ok(a) => a,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(RuntimeError::NotFound {
                    endpoint: self.endpoint().to_owned(),
                    id: id.to_owned(),
                })
            }
            Err(e) => return Err(self.call_error("secrets attach", id, &e)),
        };
        if !self.start_call(id).await? {
            return Ok(());
        }
        let payload = secret_payload(files, env);
        let written = tokio::time::timeout(call, async {
            attached.input.write_all(&payload).await?;
            attached.input.shutdown().await
        })
        .await;
        drop(payload);
        let failed = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(RuntimeError::Call {
                endpoint: self.endpoint().to_owned(),
                op: "secrets write",
                target: id.to_owned(),
                status: None,
                detail: e.to_string(),
            }),
            Err(_) => Some(self.timeout_error("secrets write", id, call)),
        };
        if let Some(e) = failed {
            if let Err(stop) = self.stop(id, Duration::ZERO).await {
                tracing::warn!(container = %id, error = %stop, "cannot kill a container whose secrets could not be written");
            }
            return Err(e);
        }
        // The engine ends the attach once it has passed stdin on; wait for
        // that (bounded) rather than cutting the connection under it.
        let drained = tokio::time::timeout(call, async {
            while attached.output.next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!(container = %id, "the secrets attach did not end in time");
        }
        Ok(())
    }

    /// The container `id_or_name`; `None` when it does not exist or is not
    /// deployd's.
    pub async fn inspect(&self, id_or_name: &str) -> Result<Option<LainContainer>> {
        let docker = self.client(self.timeouts().call);
        match self
            .within(
                "container inspect",
                id_or_name,
                self.timeouts().call,
                docker.inspect_container(id_or_name, None),
            )
            .await?
        {
            Ok(c) => Ok(from_inspect(&c)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.call_error("container inspect", id_or_name, &e)),
        }
    }

    /// Every portal container on this engine, running or not, in one call.
    pub async fn list_portals(&self) -> Result<Vec<PortalContainer>> {
        let all = self
            .list_managed(PORTAL_MANAGED_BY, "portal containers")
            .await?;
        Ok(all.iter().filter_map(portal_from_summary).collect())
    }

    /// Every container, running or not, labelled `lain.managed={by}`.
    async fn list_managed(&self, by: &str, what: &str) -> Result<Vec<ContainerSummary>> {
        let docker = self.client(self.timeouts().call);
        let filter = format!("{LABEL_MANAGED}={by}");
        self.short(
            "container list",
            what,
            docker.list_containers(Some(ListContainersOptions {
                all: true,
                filters: HashMap::from([("label".to_owned(), vec![filter])]),
                ..Default::default()
            })),
        )
        .await
    }

    /// Writes one file (and its parent directories) into container `id`,
    /// running or not.
    pub async fn put_file(&self, id: &str, path: &str, contents: &[u8], mode: u32) -> Result<()> {
        let tar = file_tar(path, contents, mode).map_err(|detail| RuntimeError::InvalidSpec {
            name: id.to_owned(),
            detail,
        })?;
        let docker = self.client(self.timeouts().call);
        self.short(
            "file upload",
            id,
            docker.upload_to_container(
                id,
                Some(UploadToContainerOptions {
                    path: "/".to_owned(),
                    ..Default::default()
                }),
                Bytes::from(tar),
            ),
        )
        .await
    }

    /// Every container deployd made on this engine, running or not, in
    /// one call. Containers with unreadable `lain.*` labels are left out
    /// (and logged).
    pub async fn list(&self) -> Result<Vec<LainContainer>> {
        let all = self.list_managed(MANAGED_BY, "all containers").await?;
        let mut out = Vec::with_capacity(all.len());
        for c in &all {
            match from_summary(c) {
                Some(l) => out.push(l),
                None => tracing::warn!(
                    endpoint = %self.endpoint(),
                    container = ?c.names,
                    labels = ?c.labels,
                    "a container labelled {LABEL_MANAGED}={MANAGED_BY} has unreadable lain labels; left alone"
                ),
            }
        }
        Ok(out)
    }

    /// SIGTERM, then SIGKILL after `kill_timeout` (whole seconds, rounded
    /// up). A container already stopped or gone is fine. Bounded by
    /// `kill_timeout` plus [`RuntimeTimeouts::stop_margin`].
    pub async fn stop(&self, id: &str, kill_timeout: Duration) -> Result<()> {
        let secs = kill_timeout.as_secs() + u64::from(kill_timeout.subsec_nanos() > 0);
        let bound = Duration::from_secs(secs) + self.timeouts().stop_margin;
        let docker = self.client(bound);
        match self
            .within(
                "container stop",
                id,
                bound,
                docker.stop_container(
                    id,
                    Some(StopContainerOptions {
                        t: i64::try_from(secs).unwrap_or(i64::MAX),
                    }),
                ),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(304 | 404)) => Ok(()),
            Err(e) => Err(self.call_error("container stop", id, &e)),
        }
    }

    /// Removes a container, killing it if it runs, with its anonymous
    /// volumes (named volumes stay). A container already gone is fine.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let docker = self.client(self.timeouts().call);
        match self
            .within(
                "container remove",
                id,
                self.timeouts().call,
                docker.remove_container(
                    id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    }),
                ),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // "removal of container ... is already in progress"
            Err(e) if status_of(&e) == Some(409) && e.to_string().contains("in progress") => Ok(()),
            Err(e) => Err(self.call_error("container remove", id, &e)),
        }
    }

    /// Runs `cmd` in the container; true iff it exits with 0 within
    /// `timeout`. A command still running at the deadline is `false` (and
    /// keeps running: the API cannot kill an exec). Failing to reach the
    /// engine or to start the command is an error.
    pub async fn exec_check(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<bool> {
        let started = Instant::now();
        let call = self.timeouts().call;
        let docker = self.client(call);
        let exec = self
            .short(
                "exec create",
                id,
                docker.create_exec(
                    id,
                    CreateExecOptions {
                        cmd: Some(cmd.to_vec()),
                        attach_stdout: Some(false),
                        attach_stderr: Some(false),
                        attach_stdin: Some(false),
                        ..Default::default()
                    },
                ),
            )
            .await?;
        self.short(
            "exec start",
            id,
            docker.start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            ),
        )
        .await?;
        let mut pause = Duration::from_millis(20);
        loop {
            let state = self
                .short("exec inspect", id, docker.inspect_exec(&exec.id))
                .await?;
            if state.running != Some(true) {
                return Ok(state.exit_code == Some(0));
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Events of deployd's containers, from now on, with no overall bound
    /// (only the wait for the engine's answer is bounded). The stream ends
    /// when the engine closes it; drop it when the node is not alive.
    pub fn events(&self) -> impl Stream<Item = Result<ContainerEvent>> + Send + 'static {
        let docker = self.client(self.timeouts().call);
        let endpoint = self.endpoint().to_owned();
        let engine = self.clone();
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            // Not exec_* or health_status: command health checks would
            // flood the stream.
            (
                "event".to_owned(),
                [
                    "create", "start", "die", "oom", "stop", "kill", "destroy", "pause", "unpause",
                ]
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            ),
            (
                "label".to_owned(),
                vec![format!("{LABEL_MANAGED}={MANAGED_BY}")],
            ),
        ]);
        let stream: BoxStream<_> = Box::pin(docker.events(Some(EventsOptions {
            since: None,
            until: None,
            filters,
        })));
        stream.filter_map(move |item| {
            let out = match item {
                Ok(m) => {
                    let actor = m.actor.unwrap_or_default();
                    let attrs = actor.attributes.unwrap_or_default();
                    let get = |k: &str| attrs.get(k).cloned().unwrap_or_default();
                    Some(Ok(ContainerEvent {
                        id: actor.id.unwrap_or_default(),
                        action: m.action.unwrap_or_default(),
                        app: get(LABEL_APP),
                        proc: get(LABEL_PROC),
                        slot: get(LABEL_SLOT),
                        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                        time_ms: m
                            .time_nano
                            .and_then(|n| u64::try_from(n / 1_000_000).ok())
                            .or_else(|| m.time.and_then(|t| u64::try_from(t * 1000).ok())),
                    }))
                }
                Err(e) => {
                    tracing::debug!(endpoint = %endpoint, error = %e, "event stream error");
                    Some(Err(engine.call_error("event stream", "events", &e)))
                }
            };
            std::future::ready(out)
        })
    }

    /// A container's output: the last `tail` lines (all when `None`), then,
    /// when `follow`, what it writes until it stops (no overall bound).
    /// Without `follow`, a silence longer than the call bound ends the
    /// stream with a timeout error.
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<u64>,
        timestamps: bool,
    ) -> impl Stream<Item = Result<LogChunk>> + Send + 'static {
        let call = self.timeouts().call;
        let docker = self.client(call);
        let engine = self.clone();
        let target = id.to_owned();
        let inner: BoxStream<_> = Box::pin(docker.logs(
            id,
            Some(LogsOptions {
                follow,
                stdout: true,
                stderr: true,
                since: 0,
                until: 0,
                timestamps,
                tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            }),
        ));
        let idle = (!follow).then_some(call);
        futures::stream::unfold(Some(inner), move |state| {
            let engine = engine.clone();
            let target = target.clone();
            async move {
                let mut inner = state?;
                loop {
                    let next = match idle {
                        Some(bound) => match tokio::time::timeout(bound, inner.next()).await {
                            Ok(n) => n,
                            Err(_) => {
                                let e = engine.timeout_error("logs", &target, bound);
                                return Some((Err(e), None));
                            }
                        },
                        None => inner.next().await,
                    };
                    let chunk = match next? {
                        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                            LogChunk {
                                stream: LogStream::Stdout,
                                bytes: message,
                            }
                        }
                        Ok(LogOutput::StdErr { message }) => LogChunk {
                            stream: LogStream::Stderr,
                            bytes: message,
                        },
                        Ok(LogOutput::StdIn { .. }) => continue,
                        Err(e) if status_of(&e) == Some(404) => {
                            let e = RuntimeError::NotFound {
                                endpoint: engine.endpoint().to_owned(),
                                id: target.clone(),
                            };
                            return Some((Err(e), None));
                        }
                        Err(e) => {
                            let e = engine.call_error("logs", &target, &e);
                            return Some((Err(e), None));
                        }
                    };
                    return Some((Ok(chunk), Some(inner)));
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "lain-hello-web-1-7".into(),
            app: "hello".into(),
            proc: "web".into(),
            instance: 1,
            slot: "1-7".into(),
            generation: 7,
            spec_hash: "abc123".into(),
            image: "reg:5000/hello:release-1".into(),
            cmd: vec!["httpd".into(), "-f".into()],
            env: vec![
                ("LAIN_APP".into(), "hello".into()),
                ("A".into(), "x=y".into()),
            ],
            cpu_millis: 500,
            memory_bytes: 64 << 20,
            port: Some(80),
            host_ip: "10.0.0.2".into(),
            network: "lain-hello".into(),
            volumes: vec![("hello-data".into(), "/data".into())],
            extra_labels: BTreeMap::from([
                ("team".into(), "a".into()),
                (LABEL_APP.into(), "spoofed".into()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn spec_maps_to_the_engine_config() {
        let config = container_config(&spec()).unwrap();
        let v = serde_json::to_value(&config).unwrap();
        assert_eq!(v["Image"], "reg:5000/hello:release-1");
        assert_eq!(v["Env"], serde_json::json!(["LAIN_APP=hello", "A=x=y"]));
        assert_eq!(v["Cmd"], serde_json::json!(["httpd", "-f"]));
        assert!(v.get("Entrypoint").is_none(), "{v}");
        assert!(v.get("User").is_none(), "{v}");
        assert_eq!(v["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        let labels = &v["Labels"];
        assert_eq!(labels["lain.app"], "hello");
        assert_eq!(labels["lain.proc"], "web");
        assert_eq!(labels["lain.instance"], "1");
        assert_eq!(labels["lain.generation"], "7");
        assert_eq!(labels["lain.spec"], "abc123");
        assert_eq!(labels["lain.slot"], "1-7");
        assert_eq!(labels["lain.managed"], "deployd");
        assert_eq!(labels["team"], "a");
        let h = &v["HostConfig"];
        assert_eq!(h["NanoCpus"], 500_000_000);
        assert_eq!(h["Memory"], 64 << 20);
        assert_eq!(h["MemorySwap"], 64 << 20);
        assert_eq!(h["NetworkMode"], "lain-hello");
        assert_eq!(
            h["PortBindings"],
            serde_json::json!({"80/tcp": [{"HostIp": "10.0.0.2", "HostPort": ""}]})
        );
        assert_eq!(
            h["Mounts"],
            serde_json::json!([{"Type": "volume", "Source": "hello-data", "Target": "/data"}])
        );
        assert_eq!(h["RestartPolicy"]["Name"], "no");

        let mut s = spec();
        s.entrypoint = vec!["/bin/sh".into(), "-c".into()];
        s.user = Some("nobody".into());
        s.workdir = Some("/www".into());
        s.cpu_millis = 0;
        s.memory_bytes = 0;
        s.port = None;
        s.volumes.clear();
        let v = serde_json::to_value(container_config(&s).unwrap()).unwrap();
        assert_eq!(v["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
        assert_eq!(v["User"], "nobody");
        assert_eq!(v["WorkingDir"], "/www");
        let h = &v["HostConfig"];
        assert!(
            h.get("NanoCpus").is_none() && h.get("Memory").is_none(),
            "{h}"
        );
        assert!(
            h.get("PortBindings").is_none() && h.get("Mounts").is_none(),
            "{h}"
        );
        assert!(v.get("ExposedPorts").is_none(), "{v}");
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let mut s = spec();
        s.env.push(("BAD=KEY".into(), "v".into()));
        let e = container_config(&s).unwrap_err().to_string();
        assert!(
            e.contains("BAD=KEY") && e.contains("lain-hello-web-1-7"),
            "{e}"
        );
        let mut s = spec();
        s.volumes = vec![("v".into(), "relative".into())];
        assert!(container_config(&s).is_err());
        let mut s = spec();
        s.image.clear();
        assert!(container_config(&s).is_err());
    }

    fn summary(labels: serde_json::Value, state: &str, status: &str) -> ContainerSummary {
        serde_json::from_value(serde_json::json!({
            "Id": "c0ffee",
            "Names": ["/lain-hello-web-1-7"],
            "Labels": labels,
            "State": state,
            "Status": status,
            "Ports": [
                {"PrivatePort": 80, "Type": "tcp"},
                {"IP": "10.0.0.2", "PrivatePort": 80, "PublicPort": 49153, "Type": "tcp"}
            ]
        }))
        .unwrap()
    }

    fn lain_labels() -> serde_json::Value {
        serde_json::json!({
            "lain.app": "hello", "lain.proc": "web", "lain.instance": "2",
            "lain.generation": "7", "lain.spec": "abc", "lain.slot": "2-7",
            "lain.managed": "deployd", "other": "x"
        })
    }

    #[test]
    fn list_entries_parse_into_lain_containers() {
        let c = from_summary(&summary(lain_labels(), "running", "Up 3 seconds")).unwrap();
        assert_eq!(
            c,
            LainContainer {
                id: "c0ffee".into(),
                name: "lain-hello-web-1-7".into(),
                app: "hello".into(),
                proc: "web".into(),
                instance: 2,
                slot: "2-7".into(),
                generation: 7,
                spec_hash: "abc".into(),
                state: ContainerState::Running,
                exit_code: None,
                started_at_ms: None,
                finished_at_ms: None,
                host_port: Some(49153),
                oom_killed: false,
                secrets: false,
            }
        );
        let c = from_summary(&summary(
            lain_labels(),
            "exited",
            "Exited (137) 5 seconds ago",
        ))
        .unwrap();
        assert_eq!(c.state, ContainerState::Exited);
        assert_eq!(c.exit_code, Some(137));

        // Not deployd's, or unreadable labels: not a lain container.
        let mut foreign = lain_labels();
        foreign["lain.managed"] = "someone-else".into();
        assert!(from_summary(&summary(foreign, "running", "Up")).is_none());
        let mut garbled = lain_labels();
        garbled["lain.generation"] = "seven".into();
        assert!(from_summary(&summary(garbled, "running", "Up")).is_none());
        let mut missing = lain_labels();
        missing.as_object_mut().unwrap().remove("lain.slot");
        assert!(from_summary(&summary(missing, "running", "Up")).is_none());
        assert_eq!(ContainerState::parse("weird"), ContainerState::Other);
    }

    #[test]
    fn inspect_answers_parse_into_lain_containers() {
        let answer: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "c0ffee",
            "Name": "/lain-hello-web-2-7",
            "Config": {"Labels": lain_labels()},
            "State": {
                "Status": "exited", "Running": false, "OOMKilled": true, "ExitCode": 137,
                "StartedAt": "2026-11-22T01:02:03.456789012Z",
                "FinishedAt": "2026-11-22T01:02:04Z"
            },
            "NetworkSettings": {"Ports": {
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40001"}],
                "81/udp": null
            }}
        }))
        .unwrap();
        let c = from_inspect(&answer).unwrap();
        assert_eq!(c.name, "lain-hello-web-2-7");
        assert_eq!(c.instance, 2);
        assert_eq!(c.state, ContainerState::Exited);
        assert_eq!(c.exit_code, Some(137));
        assert!(c.oom_killed);
        assert_eq!(c.host_port, Some(40001));
        assert_eq!(c.started_at_ms, Some(1_795_309_323_456));
        assert_eq!(c.finished_at_ms, Some(1_795_309_324_000));

        let created: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "c0ffee", "Name": "/x",
            "Config": {"Labels": lain_labels()},
            "State": {"Status": "created", "ExitCode": 0,
                      "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
            "NetworkSettings": {"Ports": {}}
        }))
        .unwrap();
        let c = from_inspect(&created).unwrap();
        assert_eq!(c.state, ContainerState::Created);
        assert_eq!(
            (c.exit_code, c.started_at_ms, c.host_port),
            (None, None, None)
        );

        let foreign: ContainerInspectResponse = serde_json::from_value(serde_json::json!({
            "Id": "c0ffee", "Config": {"Labels": {"a": "b"}}
        }))
        .unwrap();
        assert!(from_inspect(&foreign).is_none());
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("2000-03-01T00:00:00.5Z"), Some(951_868_800_500));
        assert_eq!(
            rfc3339_ms("2000-03-01T01:00:00+01:00"),
            Some(951_868_800_000)
        );
        assert_eq!(rfc3339_ms("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_ms("garbage"), None);
    }

    #[test]
    fn images_split_into_name_and_tag() {
        assert_eq!(
            split_image("reg:5000/app:release-1"),
            ("reg:5000/app", "release-1")
        );
        assert_eq!(split_image("reg:5000/app"), ("reg:5000/app", "latest"));
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
        assert_eq!(split_image("app@sha256:0123"), ("app", "sha256:0123"));
    }

    fn secret_spec() -> ContainerSpec {
        let mut s = spec();
        s.cmd.clear();
        s.secret_files = vec![
            SecretFile {
                path: "/etc/lain/secret.conf".into(),
                contents: Zeroizing::new(b"password=hunter2\n".to_vec()),
                mode: 0,
            },
            SecretFile {
                path: format!("/{}/key", "d".repeat(150)),
                contents: Zeroizing::new(vec![7u8; 2000]),
                mode: 0o640,
            },
        ];
        s.secret_env = vec![SecretEnv {
            name: "TOKEN".into(),
            value: Zeroizing::new("t0ken".into()),
        }];
        s
    }

    #[test]
    fn secrets_run_through_the_wrapper_and_stay_out_of_the_config() {
        let s = secret_spec();
        let image_ep = vec!["/entry".to_owned()];
        let image_cmd = vec!["serve".to_owned(), "-v".to_owned()];
        let config = container_config_with(&s, &image_ep, &image_cmd).unwrap();
        let v = serde_json::to_value(&config).unwrap();
        assert_eq!(
            v["Entrypoint"],
            serde_json::json!(["/bin/sh", "-c", SECRETS_WRAPPER, "lain-secrets"])
        );
        assert_eq!(v["Cmd"], serde_json::json!(["/entry", "serve", "-v"]));
        assert_eq!(
            (&v["OpenStdin"], &v["StdinOnce"], &v["AttachStdin"]),
            (
                &serde_json::json!(true),
                &serde_json::json!(true),
                &serde_json::json!(true)
            )
        );
        let tmpfs = v["HostConfig"]["Tmpfs"][SECRETS_DIR].as_str().unwrap();
        assert!(
            tmpfs.contains("mode=0700") && tmpfs.contains("noexec"),
            "{tmpfs}"
        );
        assert_eq!(v["Labels"][LABEL_SECRETS], "stdin");
        let text = v.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("t0ken"),
            "a secret in the config: {text}"
        );
        // The spec's own command wins, as docker merges them.
        let mut own = s.clone();
        own.cmd = vec!["run".into()];
        let v = serde_json::to_value(container_config_with(&own, &image_ep, &image_cmd).unwrap())
            .unwrap();
        assert_eq!(v["Cmd"], serde_json::json!(["/entry", "run"]));
        own.entrypoint = vec!["/bin/app".into()];
        let v = serde_json::to_value(container_config_with(&own, &image_ep, &image_cmd).unwrap())
            .unwrap();
        assert_eq!(v["Cmd"], serde_json::json!(["/bin/app", "run"]));
        // Another user writes the tmpfs itself.
        own.user = Some("nobody".into());
        let v = serde_json::to_value(container_config(&own).unwrap()).unwrap();
        let tmpfs = v["HostConfig"]["Tmpfs"][SECRETS_DIR].as_str().unwrap();
        assert!(tmpfs.contains("mode=1777"), "{tmpfs}");

        // Nothing to run, a bad env name, a path inside the tmpfs.
        let e = container_config(&s).unwrap_err().to_string();
        assert!(e.contains("no command"), "{e}");
        let mut bad = own.clone();
        bad.secret_env[0].name = "NOT-A-NAME".into();
        assert!(container_config(&bad).is_err());
        let mut bad = own.clone();
        bad.secret_files[0].path = format!("{SECRETS_DIR}/1");
        assert!(container_config(&bad).is_err());

        // Without secrets: no wrapper, no tmpfs, no stdin, no label.
        let mut plain = spec();
        plain
            .extra_labels
            .insert(LABEL_SECRETS.into(), "spoofed".into());
        let v = serde_json::to_value(container_config(&plain).unwrap()).unwrap();
        assert!(
            v.get("OpenStdin").is_none() && v.get("Entrypoint").is_none(),
            "{v}"
        );
        assert!(v["HostConfig"].get("Tmpfs").is_none(), "{v}");
        assert!(v["Labels"].get(LABEL_SECRETS).is_none(), "{v}");
    }

    #[test]
    fn secret_links_point_into_the_tmpfs() {
        let tar = secret_symlink_tar(&secret_spec().secret_files).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header().clone();
            assert_eq!(h.entry_type(), tar::EntryType::Symlink);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let target = entry
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            seen.push((path, target));
        }
        assert_eq!(
            seen,
            [
                (
                    "etc/lain/secret.conf".to_owned(),
                    format!("{SECRETS_DIR}/1")
                ),
                (
                    format!("{}/key", "d".repeat(150)),
                    format!("{SECRETS_DIR}/2")
                ),
            ]
        );
        assert!(!tar.windows(7).any(|w| w == b"hunter2"));
        for bad in ["relative/path", "/", "/etc/../shadow", "/dir/"] {
            let f = SecretFile {
                path: bad.into(),
                contents: Zeroizing::new(vec![1]),
                mode: 0,
            };
            let e = secret_symlink_tar(&[f]).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    /// The payload through the wrapper in the host's `/bin/sh`, with the
    /// tmpfs path swapped for a temporary directory.
    #[test]
    fn the_wrapper_writes_every_byte_and_exports_every_value() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("lain-secrets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let all_bytes: Vec<u8> = (0..=255u8).chain(b"\\0%%s'\n".iter().copied()).collect();
        let files = vec![
            SecretFile {
                path: "/a".into(),
                contents: Zeroizing::new(all_bytes.repeat(9)),
                mode: 0,
            },
            SecretFile {
                path: "/b".into(),
                contents: Zeroizing::new(Vec::new()),
                mode: 0o644,
            },
        ];
        let env = vec![
            SecretEnv {
                name: "TOKEN".into(),
                value: Zeroizing::new("it's $HOME `x` \\ \"q\"\nline 2 %s".into()),
            },
            SecretEnv {
                name: "EMPTY".into(),
                value: Zeroizing::new(String::new()),
            },
        ];
        let payload = secret_payload(&files, &env);
        let here = dir.display().to_string();
        let payload = String::from_utf8(payload.to_vec())
            .unwrap()
            .replace(SECRETS_DIR, &here);
        let mut child = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                SECRETS_WRAPPER,
                "lain-secrets",
                "/bin/sh",
                "-c",
                "test \"$(umask)\" != 0133 && printf '%s' \"$TOKEN\" > \"$0/env\"; test -n \"${EMPTY+set}\" && test -z \"${lain_secrets_ok-}\"",
            ])
            .arg(&here)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(payload.as_bytes())
            .unwrap();
        let status = child.wait().unwrap();
        let a = std::fs::read(dir.join("1")).unwrap();
        let b = std::fs::metadata(dir.join("2")).unwrap();
        let token = std::fs::read_to_string(dir.join("env")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let a_mode = std::fs::metadata(dir.join("1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(status.success(), "{status}");
        assert!(a == all_bytes.repeat(9), "file 1 differs");
        assert_eq!(a_mode, 0o400);
        assert_eq!((b.len(), b.permissions().mode() & 0o777), (0, 0o644));
        assert_eq!(token, *env[0].value);

        // A payload cut short: the wrapper refuses to run the command.
        let cut = std::process::Command::new("/bin/sh")
            .args(["-c", SECRETS_WRAPPER, "lain-secrets", "true"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(cut.status.code(), Some(125), "{cut:?}");
        assert!(
            String::from_utf8_lossy(&cut.stderr).contains("did not arrive"),
            "{cut:?}"
        );
    }

    #[test]
    fn secret_env_values_stay_out_of_debug_output() {
        let s = secret_spec();
        let text = format!("{s:?}");
        assert!(
            !text.contains("t0ken") && !text.contains("hunter2") && text.contains("TOKEN"),
            "{text}"
        );
    }

    #[test]
    fn secret_contents_stay_out_of_debug_output() {
        let f = SecretFile {
            path: "/s".into(),
            contents: Zeroizing::new(b"hunter2".to_vec()),
            mode: 0,
        };
        let text = format!("{f:?}");
        assert!(
            !text.contains("hunter2") && text.contains("7 bytes"),
            "{text}"
        );
    }

    /// A listener that accepts and never answers, and an engine on it
    /// with short bounds.
    async fn silent_engine() -> (Engine, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let engine = Engine::connect(
            &lain_store::DockerEndpoint::Tcp {
                address: addr.to_string(),
                tls: None,
            },
            Duration::from_millis(200),
        )
        .unwrap()
        .with_timeouts(RuntimeTimeouts {
            call: Duration::from_millis(300),
            pull: Duration::from_secs(1),
            pull_idle: Duration::from_millis(400),
            stop_margin: Duration::from_millis(300),
        });
        (engine, hold)
    }

    #[tokio::test]
    async fn an_unanswering_engine_costs_one_timeout_per_call() {
        let (engine, _hold) = silent_engine().await;
        let started = Instant::now();
        let e = engine.list().await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(e.to_string().contains("tcp://127.0.0.1:"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));

        let started = Instant::now();
        assert!(engine.inspect("x").await.unwrap_err().is_timeout());
        assert!(engine.create(&spec()).await.unwrap_err().is_timeout());
        assert!(engine.ensure_network("n").await.unwrap_err().is_timeout());
        assert!(engine
            .exec_check("x", &["true".into()], Duration::from_secs(5))
            .await
            .unwrap_err()
            .is_timeout());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // stop: its kill timeout plus the margin.
        let started = Instant::now();
        let e = engine
            .stop("x", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        // A pull that hears nothing ends at its idle bound, naming the image.
        let started = Instant::now();
        let e = engine.pull("reg/app:1", None, |_| {}).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Pull { .. }), "{e}");
        assert!(e.to_string().contains("reg/app:1"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        // Logs without follow end with a timeout too.
        let started = Instant::now();
        let items: Vec<_> = tokio::time::timeout(
            Duration::from_secs(10),
            engine.logs("x", false, None, false).collect::<Vec<_>>(),
        )
        .await
        .expect("the log stream ends");
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err(), "{items:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
