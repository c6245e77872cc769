//! The etcd schema of LAIN and the only etcd client of the workspace.
//!
//! - [`keys`]: typed key builders for every key ([`DesiredKey`],
//!   [`ObservedKey`], ...), the [`Prefix`]es they live under and the one
//!   [`Component`] that writes each prefix ([`Prefix::writer`]).
//! - [`value`]: the JSON values stored under them, each carrying a
//!   `schema_version`.
//! - [`Store`]: get, put, delete, list, compare-and-swap on mod revision,
//!   multi-key [`Transaction`]s.
//! - [`Watch`]: list-then-watch of a prefix that re-lists after compaction
//!   and resumes after etcd restarts.
//! - [`Lease`]: leases with a background keep-alive and loss detection.
//! - [`Election`]: leader election whose [`Leadership`] fences writes.
//! - [`secret`]: sealing secrets (TLS private keys) with the cluster
//!   secrets key before they are written to etcd.
//!
//! No other crate builds key strings or links `etcd-client`; the schema is
//! documented in `docs/reference/etcd-schema.md`.
//!
//! One [`Store`] (and its clones) talks to etcd over a single HTTP/2
//! connection shared by requests, watches, lease keep-alives and
//! elections. Nothing on it may leave data unread, or HTTP/2 flow control
//! stalls every other stream, keep-alive replies included, and leases and
//! leadership are then falsely lost. So a [`Watch`] never pushes back on
//! etcd: it drains its stream into a bounded buffer
//! ([`watch::BUFFER`] events) and, when its consumer falls that far
//! behind, cancels the etcd watch, waits for the consumer to catch up and
//! re-lists ([`WatchEvent::Reset`]).

pub mod election;
pub mod error;
pub mod keys;
pub mod lease;
pub mod secret;
pub mod store;
pub mod value;
pub mod watch;

pub use election::{Election, FencedWriter, LeaderInfo, LeaderWatch, Leadership};
pub use error::{Result, StoreError};
pub use keys::{
    AnyKey, CertKey, ClusterConfigKey, Component, DesiredKey, ElectionKey, EventKey, KeyError,
    KeyPrefix, Name, NodeKey, ObservedKey, ObservedNodeKey, Prefix, RestoreKey, RolloutKey,
    RouterEventKey, RouterKey, SecretKey, StoreKey,
};
pub use lease::Lease;
pub use store::{
    Entry, EntryError, InvalidEntry, LeaseId, Listing, Member, Revision, Store, StoreOptions,
    Transaction,
};
pub use value::{
    decode, encode, unix_millis, AppSecret, Candidate, Capacity, ClusterConfig, DecodeError,
    DesiredProc, DockerEndpoint, DockerTls, EncodeError, Event, EventKind, Health, HealthCheck,
    InstanceState, Liveness, NodeRegistration, ObservedInstance, ObservedNode, PortalSpec,
    ProcRollout, ProcType, RestoreRecord, RestoreRequest, RolloutPhase, RouterEvent,
    RouterEventKind, RouterStatus, Schema, SealedSecret, SecretRef, SecretTarget, ServiceUse,
    Severity, TlsCertificate, VolumeBackup,
};
pub use watch::{Watch, WatchEvent};
