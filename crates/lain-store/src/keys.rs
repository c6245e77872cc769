//! The etcd key schema: typed keys, the prefixes they live under and who
//! writes each prefix.
//!
//! Every key the control plane reads or writes is built here. A key is a
//! `/`-separated path whose variable parts are [`Name`]s: validated
//! segments that can never contain `/`, so a crafted app, proc or node name
//! cannot escape its prefix. Keys parse back from their path, which is how
//! watch events and listings become typed again.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::value::{
    AppSecret, Candidate, ClusterConfig, DesiredProc, Event, NodeRegistration, ObservedInstance,
    ObservedNode, ProcRollout, RestoreRecord, RouterEvent, RouterStatus, Schema, TlsCertificate,
};

/// The root of everything LAIN keeps in etcd.
pub const ROOT: &str = "/lain/";

/// Longest accepted segment; long enough for a DNS name.
pub const MAX_SEGMENT_LEN: usize = 253;

/// Why a key or a key segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} is {len} characters long; at most {MAX_SEGMENT_LEN} are allowed")]
    TooLong {
        what: &'static str,
        value: String,
        len: usize,
    },
    #[error(
        "{what} {value:?} contains {ch:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
    )]
    BadChar {
        what: &'static str,
        value: String,
        ch: char,
    },
    #[error("{what} {value:?} must start with an ASCII letter or digit")]
    BadStart { what: &'static str, value: String },
    #[error("key {key:?} is not under {prefix:?}")]
    NotUnder { key: String, prefix: &'static str },
    #[error("key {key:?} does not have the form {expected}")]
    Malformed { key: String, expected: &'static str },
}

/// A validated key segment: an app, proc, node, instance, router, election
/// or event name.
///
/// Allowed: 1 to 253 ASCII letters, digits, `.`, `_` and `-`, starting with
/// a letter or digit. That admits LAIN app names, proc names such as
/// `web.admin`, host names and numbers, and refuses `/`, `..`, spaces,
/// control characters and anything that needs escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Validates `value` as a segment; `what` names it in the error.
    pub fn parse(what: &'static str, value: &str) -> Result<Self, KeyError> {
        let Some(first) = value.chars().next() else {
            return Err(KeyError::Empty { what });
        };
        if value.len() > MAX_SEGMENT_LEN {
            return Err(KeyError::TooLong {
                what,
                value: truncate(value),
                len: value.len(),
            });
        }
        if let Some(ch) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(KeyError::BadChar {
                what,
                value: value.to_owned(),
                ch,
            });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(KeyError::BadStart {
                what,
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Error messages quote the value; keep a hostile megabyte out of logs.
fn truncate(value: &str) -> String {
    value.chars().take(64).collect::<String>() + "…"
}

/// A component of the control plane, as the writer or a reader of a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// services/console: the public API and app registry.
    Console,
    /// The node-management path: console's node API, which `lain node
    /// add|cordon|drain|rm` and the add-node playbook go through. Separate
    /// from [`Component::Console`] because node registrations have their
    /// own lifecycle and permissions.
    NodeManagement,
    /// services/deployd: scheduling and running containers.
    Deployd,
    /// services/webrouter: nginx configuration.
    Webrouter,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Console,
        Component::NodeManagement,
        Component::Deployd,
        Component::Webrouter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Console => "console",
            Component::NodeManagement => "node-management",
            Component::Deployd => "deployd",
            Component::Webrouter => "webrouter",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The top-level prefixes of the schema. Each has exactly one writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// `/lain/config/cluster`
    Config,
    /// `/lain/nodes/{node}`
    Nodes,
    /// `/lain/desired/{app}/{proc}`
    Desired,
    /// `/lain/observed/{app}/{proc}/{instance}`
    Observed,
    /// `/lain/observed-nodes/{node}`
    ObservedNodes,
    /// `/lain/election/{name}/{candidate}`
    Election,
    /// `/lain/events/{app}/{event}`
    Events,
    /// `/lain/routers/{router}`
    Routers,
    /// `/lain/router-events/{router}/{event}`
    RouterEvents,
    /// `/lain/certs/{name}`
    Certs,
    /// `/lain/rollouts/{app}/{proc}`
    Rollouts,
    /// `/lain/secrets/{app}/{name}/{version}`
    Secrets,
    /// `/lain/restores/{app}/{proc}/{instance}`
    Restores,
}

impl Prefix {
    pub const ALL: [Prefix; 13] = [
        Prefix::Config,
        Prefix::Nodes,
        Prefix::Desired,
        Prefix::Observed,
        Prefix::ObservedNodes,
        Prefix::Election,
        Prefix::Events,
        Prefix::Routers,
        Prefix::RouterEvents,
        Prefix::Certs,
        Prefix::Rollouts,
        Prefix::Secrets,
        Prefix::Restores,
    ];

    /// The prefix path, always ending in `/` so that `/lain/observed/`
    /// never matches `/lain/observed-nodes/...`.
    pub const fn path(self) -> &'static str {
        match self {
            Prefix::Config => "/lain/config/",
            Prefix::Nodes => "/lain/nodes/",
            Prefix::Desired => "/lain/desired/",
            Prefix::Observed => "/lain/observed/",
            Prefix::ObservedNodes => "/lain/observed-nodes/",
            Prefix::Election => "/lain/election/",
            Prefix::Events => "/lain/events/",
            Prefix::Routers => "/lain/routers/",
            Prefix::RouterEvents => "/lain/router-events/",
            Prefix::Certs => "/lain/certs/",
            Prefix::Rollouts => "/lain/rollouts/",
            Prefix::Secrets => "/lain/secrets/",
            Prefix::Restores => "/lain/restores/",
        }
    }

    /// The one component allowed to write under this prefix.
    pub const fn writer(self) -> Component {
        match self {
            Prefix::Config | Prefix::Desired | Prefix::Certs | Prefix::Secrets => {
                Component::Console
            }
            Prefix::Nodes => Component::NodeManagement,
            Prefix::Observed
            | Prefix::ObservedNodes
            | Prefix::Election
            | Prefix::Events
            | Prefix::Rollouts
            | Prefix::Restores => Component::Deployd,
            Prefix::Routers | Prefix::RouterEvents => Component::Webrouter,
        }
    }

    /// The components that read this prefix.
    pub const fn readers(self) -> &'static [Component] {
        match self {
            Prefix::Config => &[Component::Deployd, Component::Webrouter, Component::Console],
            Prefix::Nodes => &[Component::Deployd, Component::Console],
            Prefix::Desired => &[Component::Deployd, Component::Webrouter, Component::Console],
            Prefix::Observed => &[Component::Webrouter, Component::Console, Component::Deployd],
            Prefix::ObservedNodes => &[Component::Console, Component::Deployd],
            Prefix::Election => &[Component::Deployd, Component::Console],
            Prefix::Events => &[Component::Console],
            Prefix::Routers => &[Component::Deployd, Component::Console],
            Prefix::RouterEvents => &[Component::Console],
            Prefix::Certs => &[Component::Webrouter, Component::Console],
            Prefix::Rollouts => &[Component::Console, Component::Deployd],
            Prefix::Secrets => &[Component::Deployd, Component::Console],
            Prefix::Restores => &[Component::Deployd, Component::Console],
        }
    }

    /// Whether keys under this prefix are attached to a lease and vanish
    /// when their writer stops renewing it.
    pub const fn leased(self) -> bool {
        matches!(
            self,
            Prefix::Election | Prefix::Events | Prefix::Routers | Prefix::RouterEvents
        )
    }

    /// The prefix a full key path falls under, if any.
    pub fn of_path(path: &str) -> Option<Prefix> {
        Prefix::ALL.into_iter().find(|p| path.starts_with(p.path()))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// A typed key: where it lives, what value it holds, and how it maps to and
/// from its etcd path.
pub trait StoreKey: Sized + Clone + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The value stored at this key.
    type Value: Schema;
    /// The prefix this key lives under (and so its writer).
    const PREFIX: Prefix;
    /// The full etcd path of the key.
    fn path(&self) -> String;
    /// Parses a full etcd path back into the key.
    fn parse(path: &str) -> Result<Self, KeyError>;
}

/// A range of keys of one type sharing a path prefix, for listing and
/// watching. Always ends in `/`.
pub struct KeyPrefix<K> {
    path: String,
    _key: PhantomData<fn() -> K>,
}

impl<K: StoreKey> KeyPrefix<K> {
    fn new(path: String) -> Self {
        Self {
            path,
            _key: PhantomData,
        }
    }

    /// Every key of this type.
    pub fn all() -> Self {
        Self::new(K::PREFIX.path().to_owned())
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

// Manual impls: derives would needlessly require `K: Clone` etc.
impl<K> Clone for KeyPrefix<K> {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            _key: PhantomData,
        }
    }
}

impl<K> fmt::Debug for KeyPrefix<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyPrefix").field(&self.path).finish()
    }
}

impl<K> PartialEq for KeyPrefix<K> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

/// Splits `path` under `prefix` into exactly `n` validated segments.
fn segments<const N: usize>(
    path: &str,
    prefix: Prefix,
    expected: &'static str,
    what: [&'static str; N],
) -> Result<[Name; N], KeyError> {
    let rest = path.strip_prefix(prefix.path()).ok_or(KeyError::NotUnder {
        key: path.to_owned(),
        prefix: prefix.path(),
    })?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != N {
        return Err(KeyError::Malformed {
            key: path.to_owned(),
            expected,
        });
    }
    let mut names = Vec::with_capacity(N);
    for (part, what) in parts.into_iter().zip(what) {
        names.push(Name::parse(what, part)?);
    }
    names.try_into().map_err(|_| KeyError::Malformed {
        key: path.to_owned(),
        expected,
    })
}

/// `/lain/config/cluster`: the cluster settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ClusterConfigKey;

impl StoreKey for ClusterConfigKey {
    type Value = ClusterConfig;
    const PREFIX: Prefix = Prefix::Config;

    fn path(&self) -> String {
        "/lain/config/cluster".to_owned()
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        if path == "/lain/config/cluster" {
            Ok(Self)
        } else {
            Err(KeyError::Malformed {
                key: path.to_owned(),
                expected: "/lain/config/cluster",
            })
        }
    }
}

/// `/lain/nodes/{node}`: a node registration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    node: Name,
}

impl NodeKey {
    pub fn new(node: &str) -> Result<Self, KeyError> {
        Ok(Self {
            node: Name::parse("node name", node)?,
        })
    }

    pub fn node(&self) -> &str {
        self.node.as_str()
    }
}

impl StoreKey for NodeKey {
    type Value = NodeRegistration;
    const PREFIX: Prefix = Prefix::Nodes;

    fn path(&self) -> String {
        format!("{}{}", Self::PREFIX.path(), self.node)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [node] = segments(path, Self::PREFIX, "/lain/nodes/{node}", ["node name"])?;
        Ok(Self { node })
    }
}

/// `/lain/desired/{app}/{proc}`: a desired proc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DesiredKey {
    app: Name,
    proc: Name,
}

impl DesiredKey {
    pub fn new(app: &str, proc: &str) -> Result<Self, KeyError> {
        Ok(Self {
            app: Name::parse("app name", app)?,
            proc: Name::parse("proc name", proc)?,
        })
    }

    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    pub fn proc(&self) -> &str {
        self.proc.as_str()
    }

    /// All desired procs of one app.
    pub fn of_app(app: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        Ok(KeyPrefix::new(format!("{}{app}/", Self::PREFIX.path())))
    }
}

impl StoreKey for DesiredKey {
    type Value = DesiredProc;
    const PREFIX: Prefix = Prefix::Desired;

    fn path(&self) -> String {
        format!("{}{}/{}", Self::PREFIX.path(), self.app, self.proc)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [app, proc] = segments(
            path,
            Self::PREFIX,
            "/lain/desired/{app}/{proc}",
            ["app name", "proc name"],
        )?;
        Ok(Self { app, proc })
    }
}

/// `/lain/observed/{app}/{proc}/{instance}`: an instance as deployd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservedKey {
    app: Name,
    proc: Name,
    instance: Name,
}

impl ObservedKey {
    pub fn new(app: &str, proc: &str, instance: &str) -> Result<Self, KeyError> {
        Ok(Self {
            app: Name::parse("app name", app)?,
            proc: Name::parse("proc name", proc)?,
            instance: Name::parse("instance name", instance)?,
        })
    }

    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    pub fn proc(&self) -> &str {
        self.proc.as_str()
    }

    pub fn instance(&self) -> &str {
        self.instance.as_str()
    }

    /// The desired proc this instance belongs to.
    pub fn desired(&self) -> DesiredKey {
        DesiredKey {
            app: self.app.clone(),
            proc: self.proc.clone(),
        }
    }

    /// All observed instances of one app.
    pub fn of_app(app: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        Ok(KeyPrefix::new(format!("{}{app}/", Self::PREFIX.path())))
    }

    /// All observed instances of one proc.
    pub fn of_proc(app: &str, proc: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        let proc = Name::parse("proc name", proc)?;
        Ok(KeyPrefix::new(format!(
            "{}{app}/{proc}/",
            Self::PREFIX.path()
        )))
    }
}

impl StoreKey for ObservedKey {
    type Value = ObservedInstance;
    const PREFIX: Prefix = Prefix::Observed;

    fn path(&self) -> String {
        format!(
            "{}{}/{}/{}",
            Self::PREFIX.path(),
            self.app,
            self.proc,
            self.instance
        )
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [app, proc, instance] = segments(
            path,
            Self::PREFIX,
            "/lain/observed/{app}/{proc}/{instance}",
            ["app name", "proc name", "instance name"],
        )?;
        Ok(Self {
            app,
            proc,
            instance,
        })
    }
}

/// `/lain/observed-nodes/{node}`: a node's liveness as deployd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservedNodeKey {
    node: Name,
}

impl ObservedNodeKey {
    pub fn new(node: &str) -> Result<Self, KeyError> {
        Ok(Self {
            node: Name::parse("node name", node)?,
        })
    }

    pub fn node(&self) -> &str {
        self.node.as_str()
    }

    /// The registration of the same node.
    pub fn registration(&self) -> NodeKey {
        NodeKey {
            node: self.node.clone(),
        }
    }
}

impl StoreKey for ObservedNodeKey {
    type Value = ObservedNode;
    const PREFIX: Prefix = Prefix::ObservedNodes;

    fn path(&self) -> String {
        format!("{}{}", Self::PREFIX.path(), self.node)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [node] = segments(
            path,
            Self::PREFIX,
            "/lain/observed-nodes/{node}",
            ["node name"],
        )?;
        Ok(Self { node })
    }
}

/// `/lain/election/{name}/{candidate}`: one candidate of an election (the
/// candidate segment is its lease id in hex). The leader is the candidate
/// with the lowest create revision; see [`crate::Election`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElectionKey {
    election: Name,
    candidate: Name,
}

impl ElectionKey {
    pub fn new(election: &str, candidate: &str) -> Result<Self, KeyError> {
        Ok(Self {
            election: Name::parse("election name", election)?,
            candidate: Name::parse("candidate", candidate)?,
        })
    }

    pub fn election(&self) -> &str {
        self.election.as_str()
    }

    pub fn candidate(&self) -> &str {
        self.candidate.as_str()
    }

    /// All candidates of one election.
    pub fn of_election(election: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let election = Name::parse("election name", election)?;
        Ok(KeyPrefix::new(format!(
            "{}{election}/",
            Self::PREFIX.path()
        )))
    }
}

impl StoreKey for ElectionKey {
    type Value = Candidate;
    const PREFIX: Prefix = Prefix::Election;

    fn path(&self) -> String {
        format!(
            "{}{}/{}",
            Self::PREFIX.path(),
            self.election,
            self.candidate
        )
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [election, candidate] = segments(
            path,
            Self::PREFIX,
            "/lain/election/{name}/{candidate}",
            ["election name", "candidate"],
        )?;
        Ok(Self {
            election,
            candidate,
        })
    }
}

/// `/lain/events/{app}/{event}`: a short-lived event about an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    app: Name,
    event: Name,
}

static EVENT_SEQ: AtomicU64 = AtomicU64::new(0);

impl EventKey {
    pub fn new(app: &str, event: &str) -> Result<Self, KeyError> {
        Ok(Self {
            app: Name::parse("app name", app)?,
            event: Name::parse("event id", event)?,
        })
    }

    /// A fresh event id for `app`: zero-padded unix nanoseconds and a
    /// process-wide sequence number, so ids sort by time and two events in
    /// the same nanosecond still differ.
    pub fn generate(app: &str) -> Result<Self, KeyError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seq = EVENT_SEQ.fetch_add(1, Ordering::Relaxed);
        Self::new(app, &format!("{nanos:020}-{seq}"))
    }

    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    pub fn event(&self) -> &str {
        self.event.as_str()
    }

    /// All events of one app.
    pub fn of_app(app: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        Ok(KeyPrefix::new(format!("{}{app}/", Self::PREFIX.path())))
    }
}

impl StoreKey for EventKey {
    type Value = Event;
    const PREFIX: Prefix = Prefix::Events;

    fn path(&self) -> String {
        format!("{}{}/{}", Self::PREFIX.path(), self.app, self.event)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [app, event] = segments(
            path,
            Self::PREFIX,
            "/lain/events/{app}/{event}",
            ["app name", "event id"],
        )?;
        Ok(Self { app, event })
    }
}

/// `/lain/routers/{router}`: what a webrouter has applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterKey {
    router: Name,
}

impl RouterKey {
    pub fn new(router: &str) -> Result<Self, KeyError> {
        Ok(Self {
            router: Name::parse("router id", router)?,
        })
    }

    pub fn router(&self) -> &str {
        self.router.as_str()
    }
}

impl StoreKey for RouterKey {
    type Value = RouterStatus;
    const PREFIX: Prefix = Prefix::Routers;

    fn path(&self) -> String {
        format!("{}{}", Self::PREFIX.path(), self.router)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [router] = segments(path, Self::PREFIX, "/lain/routers/{router}", ["router id"])?;
        Ok(Self { router })
    }
}

/// `/lain/router-events/{router}/{event}`: a short-lived event about one
/// webrouter's configuration (a refused config, a certificate that does
/// not open), leased on the router's lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterEventKey {
    router: Name,
    event: Name,
}

impl RouterEventKey {
    pub fn new(router: &str, event: &str) -> Result<Self, KeyError> {
        Ok(Self {
            router: Name::parse("router id", router)?,
            event: Name::parse("event id", event)?,
        })
    }

    /// A fresh event id for `router`, sorting by time as
    /// [`EventKey::generate`]'s do.
    pub fn generate(router: &str) -> Result<Self, KeyError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seq = EVENT_SEQ.fetch_add(1, Ordering::Relaxed);
        Self::new(router, &format!("{nanos:020}-{seq}"))
    }

    pub fn router(&self) -> &str {
        self.router.as_str()
    }

    pub fn event(&self) -> &str {
        self.event.as_str()
    }

    /// All events of one router.
    pub fn of_router(router: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let router = Name::parse("router id", router)?;
        Ok(KeyPrefix::new(format!("{}{router}/", Self::PREFIX.path())))
    }
}

impl StoreKey for RouterEventKey {
    type Value = RouterEvent;
    const PREFIX: Prefix = Prefix::RouterEvents;

    fn path(&self) -> String {
        format!("{}{}/{}", Self::PREFIX.path(), self.router, self.event)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [router, event] = segments(
            path,
            Self::PREFIX,
            "/lain/router-events/{router}/{event}",
            ["router id", "event id"],
        )?;
        Ok(Self { router, event })
    }
}

/// `/lain/certs/{name}`: a TLS certificate with its sealed private key.
/// The name is the operator's (e.g. `example.com` or `wildcard.example.com`);
/// the domains it serves are in the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertKey {
    name: Name,
}

impl CertKey {
    pub fn new(name: &str) -> Result<Self, KeyError> {
        Ok(Self {
            name: Name::parse("certificate name", name)?,
        })
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl StoreKey for CertKey {
    type Value = TlsCertificate;
    const PREFIX: Prefix = Prefix::Certs;

    fn path(&self) -> String {
        format!("{}{}", Self::PREFIX.path(), self.name)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [name] = segments(
            path,
            Self::PREFIX,
            "/lain/certs/{name}",
            ["certificate name"],
        )?;
        Ok(Self { name })
    }
}

/// `/lain/rollouts/{app}/{proc}`: how deployd's rollout of a proc stands,
/// and the last spec that converged (what a failed rollout returns to).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RolloutKey {
    app: Name,
    proc: Name,
}

impl RolloutKey {
    pub fn new(app: &str, proc: &str) -> Result<Self, KeyError> {
        Ok(Self {
            app: Name::parse("app name", app)?,
            proc: Name::parse("proc name", proc)?,
        })
    }

    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    pub fn proc(&self) -> &str {
        self.proc.as_str()
    }

    /// All rollouts of one app.
    pub fn of_app(app: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        Ok(KeyPrefix::new(format!("{}{app}/", Self::PREFIX.path())))
    }
}

impl StoreKey for RolloutKey {
    type Value = ProcRollout;
    const PREFIX: Prefix = Prefix::Rollouts;

    fn path(&self) -> String {
        format!("{}{}/{}", Self::PREFIX.path(), self.app, self.proc)
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let [app, proc] = segments(
            path,
            Self::PREFIX,
            "/lain/rollouts/{app}/{proc}",
            ["app name", "proc name"],
        )?;
        Ok(Self { app, proc })
    }
}

/// `/lain/secrets/{app}/{name}/{version}`: one version of an app secret,
/// sealed under the cluster secrets key with this path as associated data.
/// Versions are immutable, so a rollback (or deployd returning to the last
/// good release) gets exactly the values that release ran with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretKey {
    app: Name,
    name: Name,
    version: u64,
}

impl SecretKey {
    pub fn new(app: &str, name: &str, version: u64) -> Result<Self, KeyError> {
        Ok(Self {
            app: Name::parse("app name", app)?,
            name: Name::parse("secret name", name)?,
            version,
        })
    }

    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// All secrets of one app.
    pub fn of_app(app: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        Ok(KeyPrefix::new(format!("{}{app}/", Self::PREFIX.path())))
    }
}

impl StoreKey for SecretKey {
    type Value = AppSecret;
    const PREFIX: Prefix = Prefix::Secrets;

    fn path(&self) -> String {
        format!(
            "{}{}/{}/{}",
            Self::PREFIX.path(),
            self.app,
            self.name,
            self.version
        )
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let expected = "/lain/secrets/{app}/{name}/{version}";
        let [app, name, version] = segments(
            path,
            Self::PREFIX,
            expected,
            ["app name", "secret name", "secret version"],
        )?;
        let version = version.as_str().parse().map_err(|_| KeyError::Malformed {
            key: path.to_owned(),
            expected,
        })?;
        Ok(Self { app, name, version })
    }
}

/// `/lain/restores/{app}/{proc}/{instance}`: the last restore request
/// deployd carried out on instance `{instance}` (a number) of a proc, so
/// that each request is restored once, however often the proc is rolled
/// out (or rolled back) with it afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RestoreKey {
    app: Name,
    proc: Name,
    instance: u32,
}

impl RestoreKey {
    pub fn new(app: &str, proc: &str, instance: u32) -> Result<Self, KeyError> {
        Ok(Self {
            app: Name::parse("app name", app)?,
            proc: Name::parse("proc name", proc)?,
            instance,
        })
    }

    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    pub fn proc(&self) -> &str {
        self.proc.as_str()
    }

    pub fn instance(&self) -> u32 {
        self.instance
    }

    /// All restores of one app.
    pub fn of_app(app: &str) -> Result<KeyPrefix<Self>, KeyError> {
        let app = Name::parse("app name", app)?;
        Ok(KeyPrefix::new(format!("{}{app}/", Self::PREFIX.path())))
    }
}

impl StoreKey for RestoreKey {
    type Value = RestoreRecord;
    const PREFIX: Prefix = Prefix::Restores;

    fn path(&self) -> String {
        format!(
            "{}{}/{}/{}",
            Self::PREFIX.path(),
            self.app,
            self.proc,
            self.instance
        )
    }

    fn parse(path: &str) -> Result<Self, KeyError> {
        let expected = "/lain/restores/{app}/{proc}/{instance}";
        let [app, proc, instance] = segments(
            path,
            Self::PREFIX,
            expected,
            ["app name", "proc name", "instance number"],
        )?;
        let instance = instance.as_str().parse().map_err(|_| KeyError::Malformed {
            key: path.to_owned(),
            expected,
        })?;
        Ok(Self {
            app,
            proc,
            instance,
        })
    }
}

// Keys print as their etcd path, for logs and errors.
macro_rules! display_as_path {
    ($($key:ty),*) => {$(
        impl fmt::Display for $key {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.path())
            }
        }
    )*};
}

display_as_path!(
    ClusterConfigKey,
    NodeKey,
    DesiredKey,
    ObservedKey,
    ObservedNodeKey,
    ElectionKey,
    EventKey,
    RouterKey,
    RouterEventKey,
    CertKey,
    RolloutKey,
    SecretKey,
    RestoreKey,
    AnyKey
);

/// Any key of the schema, for code that handles paths of several types
/// (tools, logs, a watch on `/lain/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyKey {
    ClusterConfig(ClusterConfigKey),
    Node(NodeKey),
    Desired(DesiredKey),
    Observed(ObservedKey),
    ObservedNode(ObservedNodeKey),
    Election(ElectionKey),
    Event(EventKey),
    Router(RouterKey),
    RouterEvent(RouterEventKey),
    Cert(CertKey),
    Rollout(RolloutKey),
    Secret(SecretKey),
    Restore(RestoreKey),
}

impl AnyKey {
    /// Parses any schema path.
    pub fn parse(path: &str) -> Result<Self, KeyError> {
        let prefix = Prefix::of_path(path).ok_or(KeyError::NotUnder {
            key: path.to_owned(),
            prefix: ROOT,
        })?;
        Ok(match prefix {
            Prefix::Config => AnyKey::ClusterConfig(ClusterConfigKey::parse(path)?),
            Prefix::Nodes => AnyKey::Node(NodeKey::parse(path)?),
            Prefix::Desired => AnyKey::Desired(DesiredKey::parse(path)?),
            Prefix::Observed => AnyKey::Observed(ObservedKey::parse(path)?),
            Prefix::ObservedNodes => AnyKey::ObservedNode(ObservedNodeKey::parse(path)?),
            Prefix::Election => AnyKey::Election(ElectionKey::parse(path)?),
            Prefix::Events => AnyKey::Event(EventKey::parse(path)?),
            Prefix::Routers => AnyKey::Router(RouterKey::parse(path)?),
            Prefix::RouterEvents => AnyKey::RouterEvent(RouterEventKey::parse(path)?),
            Prefix::Certs => AnyKey::Cert(CertKey::parse(path)?),
            Prefix::Rollouts => AnyKey::Rollout(RolloutKey::parse(path)?),
            Prefix::Secrets => AnyKey::Secret(SecretKey::parse(path)?),
            Prefix::Restores => AnyKey::Restore(RestoreKey::parse(path)?),
        })
    }

    pub fn path(&self) -> String {
        match self {
            AnyKey::ClusterConfig(k) => k.path(),
            AnyKey::Node(k) => k.path(),
            AnyKey::Desired(k) => k.path(),
            AnyKey::Observed(k) => k.path(),
            AnyKey::ObservedNode(k) => k.path(),
            AnyKey::Election(k) => k.path(),
            AnyKey::Event(k) => k.path(),
            AnyKey::Router(k) => k.path(),
            AnyKey::RouterEvent(k) => k.path(),
            AnyKey::Cert(k) => k.path(),
            AnyKey::Rollout(k) => k.path(),
            AnyKey::Secret(k) => k.path(),
            AnyKey::Restore(k) => k.path(),
        }
    }

    pub fn prefix(&self) -> Prefix {
        match self {
            AnyKey::ClusterConfig(_) => Prefix::Config,
            AnyKey::Node(_) => Prefix::Nodes,
            AnyKey::Desired(_) => Prefix::Desired,
            AnyKey::Observed(_) => Prefix::Observed,
            AnyKey::ObservedNode(_) => Prefix::ObservedNodes,
            AnyKey::Election(_) => Prefix::Election,
            AnyKey::Event(_) => Prefix::Events,
            AnyKey::Router(_) => Prefix::Routers,
            AnyKey::RouterEvent(_) => Prefix::RouterEvents,
            AnyKey::Cert(_) => Prefix::Certs,
            AnyKey::Rollout(_) => Prefix::Rollouts,
            AnyKey::Secret(_) => Prefix::Secrets,
            AnyKey::Restore(_) => Prefix::Restores,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<K: StoreKey>(key: K, path: &str) {
        assert_eq!(key.path(), path);
        assert_eq!(K::parse(path).unwrap(), key);
        assert_eq!(AnyKey::parse(path).unwrap().path(), path);
        assert_eq!(AnyKey::parse(path).unwrap().prefix(), K::PREFIX);
    }

    #[test]
    fn keys_round_trip() {
        round_trip(ClusterConfigKey, "/lain/config/cluster");
        round_trip(
            NodeKey::new("node-1.example").unwrap(),
            "/lain/nodes/node-1.example",
        );
        round_trip(
            DesiredKey::new("hello", "web.admin").unwrap(),
            "/lain/desired/hello/web.admin",
        );
        round_trip(
            ObservedKey::new("hello", "web", "3").unwrap(),
            "/lain/observed/hello/web/3",
        );
        round_trip(
            ObservedNodeKey::new("n1").unwrap(),
            "/lain/observed-nodes/n1",
        );
        round_trip(
            ElectionKey::new("deployd", "694d7a1b2c3d4e5f").unwrap(),
            "/lain/election/deployd/694d7a1b2c3d4e5f",
        );
        round_trip(
            EventKey::new("hello", "00000000000000000001-0").unwrap(),
            "/lain/events/hello/00000000000000000001-0",
        );
        round_trip(RouterKey::new("r1").unwrap(), "/lain/routers/r1");
        round_trip(
            RouterEventKey::new("r1", "00000000000000000001-0").unwrap(),
            "/lain/router-events/r1/00000000000000000001-0",
        );
        round_trip(
            CertKey::new("wildcard.example.com").unwrap(),
            "/lain/certs/wildcard.example.com",
        );
        round_trip(
            RolloutKey::new("hello", "web").unwrap(),
            "/lain/rollouts/hello/web",
        );
        assert_eq!(
            RolloutKey::of_app("hello").unwrap().path(),
            "/lain/rollouts/hello/"
        );
        round_trip(
            SecretKey::new("hello", "db-password", 3).unwrap(),
            "/lain/secrets/hello/db-password/3",
        );
        assert!(SecretKey::parse("/lain/secrets/hello/db-password/x").is_err());
        round_trip(
            RestoreKey::new("hello", "worker.db", 2).unwrap(),
            "/lain/restores/hello/worker.db/2",
        );
        assert!(RestoreKey::parse("/lain/restores/hello/worker/2-7").is_err());
        assert_eq!(
            RestoreKey::of_app("hello").unwrap().path(),
            "/lain/restores/hello/"
        );
        assert!(RouterKey::parse("/lain/router-events/r1/1").is_err());
        assert_eq!(
            RouterEventKey::of_router("r1").unwrap().path(),
            "/lain/router-events/r1/"
        );
        assert!(RouterEventKey::generate("r1")
            .unwrap()
            .path()
            .starts_with("/lain/router-events/r1/"));
    }

    #[test]
    fn prefixes_are_disjoint_and_nest() {
        // `/lain/observed/` must not match observed-nodes keys.
        assert!(ObservedKey::parse("/lain/observed-nodes/n1").is_err());
        assert_eq!(
            Prefix::of_path("/lain/observed-nodes/n1"),
            Some(Prefix::ObservedNodes)
        );
        let p = ObservedKey::of_proc("hello", "web").unwrap();
        assert_eq!(p.path(), "/lain/observed/hello/web/");
        assert!(ObservedKey::new("hello", "web", "1")
            .unwrap()
            .path()
            .starts_with(p.path()));
        // `web` must not cover `web.admin`'s instances.
        assert!(!ObservedKey::new("hello", "web.admin", "1")
            .unwrap()
            .path()
            .starts_with(p.path()));
        assert_eq!(
            DesiredKey::of_app("hello").unwrap().path(),
            "/lain/desired/hello/"
        );
        assert_eq!(KeyPrefix::<NodeKey>::all().path(), "/lain/nodes/");
        for a in Prefix::ALL {
            for b in Prefix::ALL {
                if a != b {
                    assert!(!a.path().starts_with(b.path()), "{a} inside {b}");
                }
            }
        }
    }

    #[test]
    fn bad_segments_are_typed_errors() {
        let bad = [
            ("", "empty"),
            ("a/b", "slash"),
            ("..", "dots"),
            (".hidden", "leading dot"),
            ("-x", "leading dash"),
            ("a b", "space"),
            ("a\nb", "newline"),
            ("a\0b", "nul"),
            ("é", "non-ascii"),
            ("a*", "glob"),
        ];
        for (value, why) in bad {
            assert!(DesiredKey::new(value, "web").is_err(), "{why}: {value:?}");
            assert!(DesiredKey::new("app", value).is_err(), "{why}: {value:?}");
            assert!(NodeKey::new(value).is_err(), "{why}: {value:?}");
        }
        let long = "a".repeat(MAX_SEGMENT_LEN + 1);
        assert!(matches!(
            NodeKey::new(&long),
            Err(KeyError::TooLong { len, .. }) if len == MAX_SEGMENT_LEN + 1
        ));
        assert!(NodeKey::new(&"a".repeat(MAX_SEGMENT_LEN)).is_ok());
        assert!(matches!(
            DesiredKey::new("hello", "../../config/cluster"),
            Err(KeyError::BadChar { ch: '/', .. })
        ));
        assert_eq!(
            DesiredKey::new("", "web"),
            Err(KeyError::Empty { what: "app name" })
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        for path in [
            "/lain/desired/hello",
            "/lain/desired/hello/",
            "/lain/desired/hello/web/extra",
            "/lain/desired//web",
            "/lain/desired/hello/web/",
            "/lain/desired/../web",
            "/lain/desiredx/hello/web",
            "/other/desired/hello/web",
            "",
        ] {
            assert!(DesiredKey::parse(path).is_err(), "{path:?}");
        }
        assert!(ClusterConfigKey::parse("/lain/config/other").is_err());
        assert!(AnyKey::parse("/elsewhere").is_err());
        assert!(AnyKey::parse("/lain/unknown/x").is_err());
    }

    #[test]
    fn every_prefix_has_one_writer_and_readers() {
        for p in Prefix::ALL {
            assert!(!p.readers().is_empty(), "{p} has no reader");
        }
        assert_eq!(Prefix::Desired.writer(), Component::Console);
        assert_eq!(Prefix::Observed.writer(), Component::Deployd);
        assert_eq!(Prefix::Routers.writer(), Component::Webrouter);
        assert_eq!(Prefix::Nodes.writer(), Component::NodeManagement);
        assert_eq!(Prefix::Certs.writer(), Component::Console);
        assert!(!Prefix::Certs.leased());
        assert!(Prefix::Certs.readers().contains(&Component::Webrouter));
        assert_eq!(Prefix::RouterEvents.writer(), Component::Webrouter);
        assert!(Prefix::RouterEvents.leased());
        assert_eq!(Prefix::Restores.writer(), Component::Deployd);
        assert!(!Prefix::Restores.leased());
    }

    #[test]
    fn generated_event_ids_are_unique() {
        let a = EventKey::generate("hello").unwrap();
        let b = EventKey::generate("hello").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.app(), "hello");
    }
}
