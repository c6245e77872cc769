//! The values stored under each key: plain serde data, written as a JSON
//! object with a `schema_version` field.
//!
//! A reader accepts any `schema_version` up to the one it was built with
//! (older encodings go through [`Schema::upgrade`]) and refuses newer ones
//! with [`DecodeError::TooNew`]: a component that does not understand a
//! value must not act on a guess. Unknown fields are ignored, so adding an
//! optional field (with `#[serde(default)]`) does not need a new version;
//! removing or changing the meaning of one does.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The field every stored value carries.
pub const SCHEMA_VERSION_FIELD: &str = "schema_version";

/// A value type stored in etcd.
pub trait Schema:
    Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static
{
    /// The type's name in errors and docs.
    const KIND: &'static str;
    /// The version this build writes and the newest it reads.
    const SCHEMA_VERSION: u32;

    /// Rewrites the fields of an older encoding (`from` < `SCHEMA_VERSION`)
    /// into the current shape. The default reads them unchanged, which is
    /// right while every change has been additive.
    fn upgrade(from: u32, fields: Map<String, Value>) -> Result<Map<String, Value>, DecodeError> {
        let _ = from;
        Ok(fields)
    }
}

/// Why stored bytes could not be read as a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("has no schema_version field")]
    MissingVersion,
    #[error("schema_version {found} is not a positive integer")]
    BadVersion { found: String },
    #[error(
        "{kind} has schema_version {found}, newer than version {supported} that this build reads; \
         upgrade this component"
    )]
    TooNew {
        kind: &'static str,
        found: u64,
        supported: u32,
    },
    #[error("not a valid {kind}: {detail}")]
    Invalid { kind: &'static str, detail: String },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot serialize {kind}: {detail}")]
    Serialize { kind: &'static str, detail: String },
    #[error("{kind} does not serialize to a JSON object")]
    NotObject { kind: &'static str },
    #[error("{kind} has its own field named schema_version")]
    ReservedField { kind: &'static str },
}

/// Encodes `value` as `{"schema_version": N, ...fields}`.
pub fn encode<T: Schema>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let kind = T::KIND;
    let json = serde_json::to_value(value).map_err(|e| EncodeError::Serialize {
        kind,
        detail: e.to_string(),
    })?;
    let Value::Object(mut fields) = json else {
        return Err(EncodeError::NotObject { kind });
    };
    if fields.contains_key(SCHEMA_VERSION_FIELD) {
        return Err(EncodeError::ReservedField { kind });
    }
    fields.insert(
        SCHEMA_VERSION_FIELD.to_owned(),
        Value::from(T::SCHEMA_VERSION),
    );
    serde_json::to_vec(&fields).map_err(|e| EncodeError::Serialize {
        kind,
        detail: e.to_string(),
    })
}

/// Decodes bytes written by [`encode`], refusing newer schema versions and
/// anything that is not a valid value. Never panics on garbage.
pub fn decode<T: Schema>(bytes: &[u8]) -> Result<T, DecodeError> {
    let json: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(mut fields) = json else {
        return Err(DecodeError::NotObject);
    };
    let version = fields
        .remove(SCHEMA_VERSION_FIELD)
        .ok_or(DecodeError::MissingVersion)?;
    let version = match version.as_u64() {
        Some(v) if v >= 1 => v,
        _ => {
            return Err(DecodeError::BadVersion {
                found: version.to_string(),
            })
        }
    };
    if version > u64::from(T::SCHEMA_VERSION) {
        return Err(DecodeError::TooNew {
            kind: T::KIND,
            found: version,
            supported: T::SCHEMA_VERSION,
        });
    }
    // Lossless: version <= T::SCHEMA_VERSION, a u32.
    let version = u32::try_from(version).unwrap_or(T::SCHEMA_VERSION);
    if version < T::SCHEMA_VERSION {
        fields = T::upgrade(version, fields)?;
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| DecodeError::Invalid {
        kind: T::KIND,
        detail: e.to_string(),
    })
}

/// Milliseconds since the unix epoch, the time unit of every timestamp
/// field here (plain integers keep the values free of a time library).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn yes() -> bool {
    true
}

fn default_node_lost_after_ms() -> u64 {
    3000
}

fn default_kill_timeout_secs() -> u32 {
    10
}

/// `/lain/config/cluster`: cluster-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The cluster's name, as the CLI's cluster (phase) names it.
    pub name: String,
    /// The main domain; the proc `web` of app `a.b` is served at `b.a.{domain}`.
    pub domain: String,
    /// More domains that mountpoints are expanded onto.
    #[serde(default)]
    pub extra_domains: Vec<String>,
    /// The registry images are pushed to and pulled from, `host:port`.
    pub registry: String,
    /// Whether nodes reach the registry without TLS (tests only).
    #[serde(default)]
    pub registry_insecure: bool,
    /// How long a node's Docker engine may fail health pings before
    /// deployd declares it lost and reschedules its instances.
    #[serde(default = "default_node_lost_after_ms")]
    pub node_lost_after_ms: u64,
}

impl Schema for ClusterConfig {
    const KIND: &'static str = "ClusterConfig";
    const SCHEMA_VERSION: u32 = 1;
}

/// `/lain/nodes/{node}`: a node registered with the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// How deployd reaches the node's Docker engine.
    pub docker: DockerEndpoint,
    /// The node's address, which containers' published ports are reached at.
    pub address: String,
    /// Labels that `constraint:` filters match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    /// False when cordoned: running instances stay, new ones go elsewhere.
    #[serde(default = "yes")]
    pub schedulable: bool,
    /// True while draining: deployd moves the node's instances away.
    #[serde(default)]
    pub draining: bool,
    /// With `draining`: instances with volumes move too, their data
    /// copied to their new node first (`lain node drain --with-volumes`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain_volumes: bool,
    #[serde(default)]
    pub registered_at_ms: u64,
}

impl Schema for NodeRegistration {
    const KIND: &'static str = "NodeRegistration";
    const SCHEMA_VERSION: u32 = 1;
}

/// A Docker Engine API endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DockerEndpoint {
    /// A unix socket on the deployd host, e.g. `/var/run/docker.sock`.
    Unix { socket: String },
    /// A TCP endpoint `host:port`, with TLS in production.
    Tcp {
        address: String,
        #[serde(default)]
        tls: Option<DockerTls>,
    },
}

/// Paths, on the deployd host, of the TLS material for a Docker endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerTls {
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
}

/// What a node offers to instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Thousandths of a CPU core.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

/// `/lain/desired/{app}/{proc}`: what console wants running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredProc {
    pub app: String,
    /// The proc name as in lain.yaml, e.g. `web`, `web.admin`, `worker.q`.
    pub proc: String,
    pub proc_type: ProcType,
    /// The release, `<commit unix time>-<full git sha>`.
    pub release: String,
    /// The full image reference, `{registry}/{app}:release-{version}`.
    pub image: String,
    pub instances: u32,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// Thousandths of a CPU core; 0 means no limit.
    #[serde(default)]
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Plain environment. Secrets never go here; see `secrets`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// References to secrets kept by console, resolved by deployd when it
    /// creates a container, so no secret is written to etcd.
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    /// The port the proc listens on; routed by webrouter for web procs.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub healthcheck: Option<HealthCheck>,
    /// Expanded mountpoints, `domain/path` or `domain`.
    #[serde(default)]
    pub mountpoints: Vec<String>,
    #[serde(default)]
    pub https_only: bool,
    /// Persistent directories inside the container.
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds between SIGTERM and SIGKILL (lain.yaml: 10..60).
    #[serde(default = "default_kill_timeout_secs")]
    pub kill_timeout_secs: u32,
    /// Seconds a new instance gets before its health counts (lain.yaml: 0..120).
    #[serde(default)]
    pub setup_time_secs: u32,
    /// Stateful instances are not rescheduled off a lost node.
    #[serde(default)]
    pub stateful: bool,
    /// Placement filters as in lain.yaml, e.g. `constraint:node==n1`.
    #[serde(default)]
    pub filters: Vec<String>,
    /// The portals this proc's containers reach (`use_services`, and the
    /// services of `use_resources`), resolved and checked by console at
    /// deploy. deployd runs each on every node where the proc runs.
    #[serde(default)]
    pub services: Vec<ServiceUse>,
    /// Backup schedules of the persistent directories that have them
    /// (`backup_full`/`backup_increment` in lain.yaml).
    #[serde(default)]
    pub backups: Vec<VolumeBackup>,
    /// A restore this rollout makes: the named backup is written into an
    /// instance's volume before that instance's new container starts.
    #[serde(default)]
    pub restore: Option<RestoreRequest>,
    /// Portal procs only: what the portal fronts and who may use it.
    /// deployd runs a portal's containers per client node, not by
    /// `instances`.
    #[serde(default)]
    pub portal: Option<PortalSpec>,
    /// Bumped by console on every change of the app's desired procs.
    pub generation: u64,
}

/// A backup schedule of one persistent directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeBackup {
    /// The directory in the container, as in `volumes`.
    pub path: String,
    /// `full` or `increment`.
    pub mode: String,
    /// Cron, five fields, UTC.
    pub schedule: String,
    /// How long a backup is kept (`10d`, `12h`, `30m`); empty: forever.
    #[serde(default)]
    pub expire: String,
    /// Run in the instance's container (`sh -c`) before and after.
    #[serde(default)]
    pub pre_run: String,
    #[serde(default)]
    pub post_run: String,
}

/// Which backup to restore into which instance's volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub instance: u32,
    /// The directory in the container, as in `volumes`.
    pub path: String,
    /// The backup's id, as `lain backup list` shows it.
    pub backup: String,
    /// The deployment that asked for it (the restore happens once per
    /// request, however often the proc is rolled out after).
    pub request: String,
}

/// A portal a client proc uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceUse {
    /// The app serving it (a service app, or a resource instance
    /// `resource.RES.CLIENT`).
    pub app: String,
    /// The portal proc in `app`, e.g. `portal.portal-echo`.
    pub portal: String,
    /// The service name as the client wrote it, e.g. `echo`.
    pub service: String,
    /// The names the portal answers to on the client's network, e.g.
    /// `echo.echo-service.lain` and `echo`.
    pub aliases: Vec<String>,
}

/// What a portal proc fronts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSpec {
    /// The service name (`service_name`, or `NAME` of `service.NAME`).
    pub service: String,
    /// The proc serving it in the same app, e.g. `worker.echo`.
    pub service_proc: String,
    /// Client app patterns (`allow_clients`): app names, `*` within one
    /// dot-separated part, `**` across parts.
    pub allow_clients: Vec<String>,
}

impl PortalSpec {
    /// Whether `client` may use this portal.
    pub fn allows(&self, client: &str) -> bool {
        self.allow_clients.iter().any(|p| glob_match(p, client))
    }
}

/// `*` matches within one dot-separated part, `**` matches anything.
/// Dynamic programming over (pattern, name) positions: linear in their
/// product whatever the pattern, so a hostile pattern cannot blow up.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // ok[j]: the pattern so far matches name[..j].
    let mut ok = vec![false; n.len() + 1];
    ok[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; n.len() + 1];
        if p[i] == b'*' {
            let across = p.get(i + 1) == Some(&b'*');
            for j in 0..=n.len() {
                // Extend a match at j-1 by one more name byte.
                next[j] = ok[j] || (j > 0 && next[j - 1] && (across || n[j - 1] != b'.'));
            }
            i += if across { 2 } else { 1 };
        } else {
            for j in 1..=n.len() {
                next[j] = ok[j - 1] && n[j - 1] == p[i];
            }
            i += 1;
        }
        ok = next;
    }
    ok[n.len()]
}

impl Schema for DesiredProc {
    const KIND: &'static str = "DesiredProc";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcType {
    Web,
    Worker,
    Oneshot,
    Portal,
    /// A type this build does not know (written by a newer console).
    #[serde(other)]
    Unknown,
}

/// How deployd decides an instance is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthCheck {
    /// An HTTP GET on the proc's port answering 2xx/3xx.
    Http { path: String },
    /// A command run in the container exiting 0.
    Command { cmd: Vec<String> },
}

/// A secret, named in console's secret store, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub name: String,
    pub target: SecretTarget,
    /// The version console deployed (`/lain/secrets/{app}/{name}/{version}`);
    /// part of the spec, so a new secret value rolls the proc out.
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SecretTarget {
    Env { var: String },
    File { path: String },
}

/// `/lain/observed/{app}/{proc}/{instance}`: an instance as deployd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedInstance {
    pub node: String,
    /// Unset until the container exists.
    #[serde(default)]
    pub container_id: Option<String>,
    /// The desired generation this instance was created for.
    pub generation: u64,
    #[serde(default)]
    pub release: String,
    #[serde(default)]
    pub image: String,
    pub state: InstanceState,
    #[serde(default)]
    pub health: Health,
    /// `ip:port` that routers send traffic to, once known.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    #[serde(default)]
    pub updated_at_ms: u64,
    /// Why the instance is in this state, for `lain ps`.
    #[serde(default)]
    pub message: Option<String>,
    /// The instance number (`LAIN_INSTANCE`), 1-based. The key's last
    /// segment is `{instance}-{generation}`, so that an old and a new
    /// instance of the same number can run side by side in a rollout.
    #[serde(default)]
    pub instance: u32,
    /// Hash of the container-relevant fields of the desired proc it runs
    /// (see deployd's `spec_hash`); equal hashes need no rollout.
    #[serde(default)]
    pub spec: String,
    /// When deployd restarted it recently (unix ms), for crash-loop
    /// detection across deployd restarts.
    #[serde(default)]
    pub recent_restarts_ms: Vec<u64>,
    /// The node holding this instance's volumes, when they are still to
    /// be copied here before its container is made (a drain with
    /// volumes); cleared once copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<String>,
}

impl Schema for ObservedInstance {
    const KIND: &'static str = "ObservedInstance";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Pending,
    Creating,
    Starting,
    Running,
    /// Taken out of routing before it is stopped.
    Draining,
    Stopping,
    Stopped,
    Exited,
    Failed,
    /// Its node is lost.
    Lost,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
    /// Not checked yet, or a value this build does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// `/lain/rollouts/{app}/{proc}`: where deployd stands in rolling out a
/// proc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRollout {
    /// The desired generation last acted on.
    pub generation: u64,
    /// The spec hash being rolled out (or kept, after a rollback).
    pub spec: String,
    pub phase: RolloutPhase,
    /// The desired proc that last converged: what a failed rollout returns
    /// to. Unset until the first rollout converged.
    #[serde(default)]
    pub last_good: Option<DesiredProc>,
    /// A spec hash whose rollout failed; it is not retried until the
    /// desired proc changes again.
    #[serde(default)]
    pub failed_spec: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub updated_at_ms: u64,
    /// Stateful procs: the node holding each instance's volumes, kept
    /// while no instance record names it (between an old version's stop
    /// and its successor's placement).
    #[serde(default)]
    pub homes: BTreeMap<u32, String>,
}

impl Schema for ProcRollout {
    const KIND: &'static str = "ProcRollout";
    const SCHEMA_VERSION: u32 = 1;
}

/// `/lain/restores/{app}/{proc}/{instance}`: the last restore request
/// deployd carried out into an instance's volume. A desired proc whose
/// `restore` names this request again (a later rollout or rollback that
/// still carries it) restores nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// [`RestoreRequest::request`].
    pub request: String,
    /// The backup written, and into which directory.
    pub backup: String,
    pub path: String,
    /// The node whose volume holds it.
    pub node: String,
    pub restored_at_ms: u64,
}

impl Schema for RestoreRecord {
    const KIND: &'static str = "RestoreRecord";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    /// New instances are being started or old ones drained.
    Progressing,
    /// Every wanted instance runs the desired spec and is healthy.
    Converged,
    /// The new spec did not become healthy; the previous one runs.
    RolledBack,
    /// The new spec failed and there is nothing to return to.
    Failed,
    #[serde(other)]
    Unknown,
}

/// `/lain/secrets/{app}/{name}/{version}`: a version of an app secret set
/// through console, resolved by deployd when it creates a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSecret {
    /// The value, sealed under the cluster secrets key with this key's
    /// etcd path as associated data (see [`crate::secret`]).
    pub value: SealedSecret,
    #[serde(default)]
    pub updated_at_ms: u64,
}

impl Schema for AppSecret {
    const KIND: &'static str = "AppSecret";
    const SCHEMA_VERSION: u32 = 1;
}

/// `/lain/observed-nodes/{node}`: a node's liveness as deployd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNode {
    pub liveness: Liveness,
    /// When the node's engine last answered a ping.
    pub last_seen_ms: u64,
    /// When `liveness` last changed.
    #[serde(default)]
    pub since_ms: u64,
    #[serde(default)]
    pub docker_version: Option<String>,
    /// Instances deployd runs on the node.
    #[serde(default)]
    pub instances: u32,
    #[serde(default)]
    pub message: Option<String>,
}

impl Schema for ObservedNode {
    const KIND: &'static str = "ObservedNode";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Alive,
    /// Missed pings, not yet declared lost.
    Suspect,
    Lost,
    #[serde(other)]
    Unknown,
}

/// `/lain/events/{app}/{event}`: something that happened to an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub app: String,
    #[serde(default)]
    pub proc: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
    pub kind: EventKind,
    #[serde(default)]
    pub severity: Severity,
    pub message: String,
    #[serde(default)]
    pub generation: Option<u64>,
    pub at_ms: u64,
}

impl Schema for Event {
    const KIND: &'static str = "Event";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RolloutStarted,
    RolloutSucceeded,
    RolloutFailed,
    RolledBack,
    CrashLoop,
    Rescheduled,
    Unschedulable,
    NodeLost,
    NodeRecovered,
    /// A client's portal to a service could not run, or is not allowed.
    PortalFailed,
    /// A scheduled or requested volume backup failed (or its pre_run did).
    BackupFailed,
    /// A backup was written into an instance's volume by a restore.
    BackupRestored,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
    /// Also what an unknown severity reads as.
    #[default]
    #[serde(other)]
    Info,
}

/// `/lain/routers/{router}`: what a webrouter has applied to nginx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterStatus {
    /// The etcd revision whose state the running nginx config reflects.
    pub applied_revision: i64,
    pub applied_at_ms: u64,
    #[serde(default)]
    pub config_hash: Option<String>,
    #[serde(default)]
    pub upstreams: u32,
    /// The address the router serves on.
    #[serde(default)]
    pub address: Option<String>,
    /// The last render or reload error, while the previous config serves.
    #[serde(default)]
    pub error: Option<String>,
}

impl Schema for RouterStatus {
    const KIND: &'static str = "RouterStatus";
    const SCHEMA_VERSION: u32 = 1;
}

/// `/lain/certs/{name}`: a TLS certificate an operator uploaded through
/// console, served by webrouter for its domains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// The names it serves: exact DNS names or wildcards `*.domain`.
    pub domains: Vec<String>,
    /// The PEM chain, leaf first (public).
    pub cert_pem: String,
    /// The PEM private key, sealed under the cluster secrets key with this
    /// key's etcd path as associated data (see [`crate::secret`]).
    pub key: SealedSecret,
    /// When the leaf expires, for display and alerts.
    #[serde(default)]
    pub not_after_ms: Option<u64>,
}

impl Schema for TlsCertificate {
    const KIND: &'static str = "TlsCertificate";
    const SCHEMA_VERSION: u32 = 1;
}

/// A secret sealed by [`crate::secret::seal`]. Holds no plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Always `A256GCM` (AES-256-GCM) for now.
    pub alg: String,
    /// Which secrets key sealed it ([`crate::secret::SecretsKey::id`]).
    pub key_id: String,
    /// The 96-bit nonce, base64.
    pub nonce_b64: String,
    /// Ciphertext and 128-bit tag, base64.
    pub ciphertext_b64: String,
}

/// `/lain/router-events/{router}/{event}`: something that happened to a
/// webrouter's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterEvent {
    /// The router's id, as in `/lain/routers/{router}`.
    pub router: String,
    pub kind: RouterEventKind,
    #[serde(default)]
    pub severity: Severity,
    /// What happened; nginx's own error text for a refused configuration,
    /// truncated.
    pub message: String,
    /// The etcd revision of the state the event is about.
    #[serde(default)]
    pub revision: Option<i64>,
    pub at_ms: u64,
}

impl Schema for RouterEvent {
    const KIND: &'static str = "RouterEvent";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterEventKind {
    /// nginx refused the rendered configuration (or its reload did not go
    /// live); the previous one keeps serving.
    ConfigRejected,
    /// A certificate from etcd could not be opened or is malformed; it is
    /// left out (its previous version keeps serving).
    CertificateRejected,
    /// A configuration applied again after a refusal.
    ConfigRecovered,
    #[serde(other)]
    Other,
}

/// `/lain/election/{name}/{candidate}`: a candidate of an election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Who is campaigning, e.g. `deployd@host-1`.
    pub id: String,
    /// Where the candidate serves its internal API once leader.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub started_at_ms: u64,
}

impl Schema for Candidate {
    const KIND: &'static str = "Candidate";
    const SCHEMA_VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    #[test]
    fn portal_client_patterns() {
        let spec = |pats: &[&str]| PortalSpec {
            service: "echo".into(),
            service_proc: "worker.echo".into(),
            allow_clients: pats.iter().map(|p| p.to_string()).collect(),
        };
        assert!(spec(&["**"]).allows("anything"));
        assert!(spec(&["**"]).allows("resource.redis.client"));
        assert!(spec(&["hello"]).allows("hello"));
        assert!(!spec(&["hello"]).allows("hello2"));
        assert!(spec(&["hello", "other"]).allows("other"));
        assert!(spec(&["hel*"]).allows("hello"));
        assert!(!spec(&["resource.*"]).allows("resource.redis.client"));
        assert!(spec(&["resource.**"]).allows("resource.redis.client"));
        assert!(spec(&["resource.*.client"]).allows("resource.redis.client"));
        assert!(!spec(&[]).allows("hello"));
        // A hostile pattern stays linear.
        let hostile = "*".repeat(5000) + "x";
        assert!(!spec(&[&hostile]).allows(&"a".repeat(5000)));
    }

    use super::*;

    fn desired() -> DesiredProc {
        DesiredProc {
            app: "hello".into(),
            proc: "web".into(),
            proc_type: ProcType::Web,
            release: "1700000000-0123456789abcdef0123456789abcdef01234567".into(),
            image: "registry.lain.local/hello:release-1700000000-0123".into(),
            instances: 3,
            cmd: vec!["./hello".into()],
            entrypoint: vec![],
            user: None,
            workdir: Some("/lain/app".into()),
            cpu_millis: 1000,
            memory_bytes: 32 << 20,
            env: BTreeMap::from([("A".into(), "1".into())]),
            secrets: vec![SecretRef {
                name: "db".into(),
                target: SecretTarget::Env {
                    var: "DB_PASSWORD".into(),
                },
                version: 2,
            }],
            port: Some(8080),
            healthcheck: Some(HealthCheck::Http {
                path: "/ping".into(),
            }),
            mountpoints: vec!["hello.lain.local".into()],
            https_only: false,
            volumes: vec![],
            labels: BTreeMap::new(),
            kill_timeout_secs: 10,
            setup_time_secs: 0,
            stateful: false,
            filters: vec!["constraint:node==n1".into()],
            services: vec![],
            backups: vec![],
            restore: None,
            portal: None,
            generation: 7,
        }
    }

    #[test]
    fn round_trips_with_schema_version() {
        let d = desired();
        let bytes = encode(&d).unwrap();
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["generation"], 7);
        assert_eq!(decode::<DesiredProc>(&bytes).unwrap(), d);
    }

    #[test]
    fn refuses_newer_versions() {
        let mut json: Value = serde_json::from_slice(&encode(&desired()).unwrap()).unwrap();
        json["schema_version"] = Value::from(2);
        let err = decode::<DesiredProc>(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooNew {
                kind: "DesiredProc",
                found: 2,
                supported: 1
            }
        );
        assert!(err.to_string().contains("upgrade this component"));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        type Check = fn(&DecodeError) -> bool;
        let cases: &[(&[u8], Check)] = &[
            (b"", |e| matches!(e, DecodeError::NotJson(_))),
            (b"\xff\xfe\x00", |e| matches!(e, DecodeError::NotJson(_))),
            (b"{not json", |e| matches!(e, DecodeError::NotJson(_))),
            (b"[1,2]", |e| matches!(e, DecodeError::NotObject)),
            (b"\"str\"", |e| matches!(e, DecodeError::NotObject)),
            (b"{}", |e| matches!(e, DecodeError::MissingVersion)),
            (b"{\"schema_version\":0}", |e| {
                matches!(e, DecodeError::BadVersion { .. })
            }),
            (b"{\"schema_version\":-1}", |e| {
                matches!(e, DecodeError::BadVersion { .. })
            }),
            (b"{\"schema_version\":\"1\"}", |e| {
                matches!(e, DecodeError::BadVersion { .. })
            }),
            (b"{\"schema_version\":1.5}", |e| {
                matches!(e, DecodeError::BadVersion { .. })
            }),
            (b"{\"schema_version\":1}", |e| {
                matches!(e, DecodeError::Invalid { .. })
            }),
            (b"{\"schema_version\":1,\"app\":3}", |e| {
                matches!(e, DecodeError::Invalid { .. })
            }),
        ];
        for (bytes, ok) in cases {
            let err = decode::<DesiredProc>(bytes).unwrap_err();
            assert!(
                ok(&err),
                "{:?} gave {err:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn ignores_unknown_fields_and_enum_values() {
        let bytes = br#"{"schema_version":1,"node":"n1","generation":2,"state":"hibernating",
            "health":"glowing","future_field":{"x":1}}"#;
        let o = decode::<ObservedInstance>(bytes).unwrap();
        assert_eq!(o.state, InstanceState::Unknown);
        assert_eq!(o.health, Health::Unknown);
        assert_eq!(o.restarts, 0);
    }

    #[test]
    fn every_type_round_trips() {
        fn rt<T: Schema + PartialEq>(v: T) {
            assert_eq!(decode::<T>(&encode(&v).unwrap()).unwrap(), v);
        }
        rt(ClusterConfig {
            name: "local".into(),
            domain: "lain.local".into(),
            extra_domains: vec![],
            registry: "127.0.0.1:5000".into(),
            registry_insecure: true,
            node_lost_after_ms: 3000,
        });
        rt(NodeRegistration {
            docker: DockerEndpoint::Tcp {
                address: "10.0.0.2:2376".into(),
                tls: Some(DockerTls {
                    ca_cert: "/etc/lain/ca.pem".into(),
                    client_cert: "/etc/lain/cert.pem".into(),
                    client_key: "/etc/lain/key.pem".into(),
                }),
            },
            address: "10.0.0.2".into(),
            labels: BTreeMap::from([("zone".into(), "a".into())]),
            capacity: Capacity {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
            },
            schedulable: true,
            draining: false,
            drain_volumes: false,
            registered_at_ms: 1,
        });
        rt(desired());
        rt(ObservedNode {
            liveness: Liveness::Alive,
            last_seen_ms: 5,
            since_ms: 1,
            docker_version: None,
            instances: 0,
            message: None,
        });
        rt(Event {
            app: "hello".into(),
            proc: Some("web".into()),
            instance: None,
            kind: EventKind::CrashLoop,
            severity: Severity::Error,
            message: "exited 1 five times".into(),
            generation: Some(3),
            at_ms: 9,
        });
        rt(RouterStatus {
            applied_revision: 42,
            applied_at_ms: 9,
            config_hash: None,
            upstreams: 3,
            address: None,
            error: None,
        });
        rt(TlsCertificate {
            domains: vec!["*.example.com".into()],
            cert_pem: "-----BEGIN CERTIFICATE-----".into(),
            key: SealedSecret {
                alg: "A256GCM".into(),
                key_id: "00".into(),
                nonce_b64: "AA==".into(),
                ciphertext_b64: "AA==".into(),
            },
            not_after_ms: Some(1),
        });
        rt(RouterEvent {
            router: "r1".into(),
            kind: RouterEventKind::ConfigRejected,
            severity: Severity::Error,
            message: "nginx: [emerg] ...".into(),
            revision: Some(4),
            at_ms: 2,
        });
        rt(Candidate {
            id: "deployd@a".into(),
            address: Some("127.0.0.1:9000".into()),
            started_at_ms: 1,
        });
    }

    #[test]
    fn node_schedulable_defaults_to_true() {
        let bytes = br#"{"schema_version":1,"docker":{"kind":"unix","socket":"/run/d.sock"},
            "address":"127.0.0.1","capacity":{"cpu_millis":1000,"memory_bytes":1}}"#;
        let n = decode::<NodeRegistration>(bytes).unwrap();
        assert!(n.schedulable);
        assert!(!n.draining);
    }
}
