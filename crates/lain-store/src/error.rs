//! The store's error type.

use std::time::Duration;

use crate::keys::{Component, KeyError, Prefix};
use crate::value::{DecodeError, EncodeError};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything a store operation can fail with. etcd client errors are
/// flattened to text so that no other crate needs `etcd-client` to handle
/// them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Key(#[from] KeyError),

    #[error("cannot reach etcd at {endpoints} during {op}: {detail} (is etcd running at {endpoints}? `etcdctl --endpoints={endpoints} endpoint health` checks it)")]
    Unavailable {
        endpoints: String,
        op: &'static str,
        detail: String,
    },

    #[error("etcd at {endpoints} did not answer {op} within {timeout:?} (is etcd running and healthy at {endpoints}?)")]
    Timeout {
        endpoints: String,
        op: &'static str,
        timeout: Duration,
    },

    #[error("etcd at {endpoints} refused {op}: {detail}")]
    Etcd {
        endpoints: String,
        op: &'static str,
        detail: String,
    },

    #[error("invalid etcd endpoint {endpoint:?}: {detail}")]
    BadEndpoint { endpoint: String, detail: String },

    /// A compare-and-swap lost: `key` is at `current` (0: absent), not at
    /// `expected` (0: create-only). Re-read and retry, or give up.
    #[error("conflict on {key}: expected revision {expected}, found {current}")]
    Conflict {
        key: String,
        expected: i64,
        current: i64,
    },

    /// A fenced write was refused because this candidate no longer leads.
    #[error("not the leader of election {election} any more; the write was not applied")]
    NotLeader { election: String },

    /// The lease is gone: expired, revoked, or its keep-alive stopped.
    #[error("lease {id:x} is lost (expired, revoked or no longer kept alive)")]
    LeaseLost { id: i64 },

    /// A component tried to write a prefix it does not own.
    #[error("{component} may not write {prefix}: its only writer is {writer}")]
    NotWriter {
        component: Component,
        prefix: Prefix,
        writer: Component,
    },

    #[error("cannot read {key}: {error}")]
    Decode { key: String, error: DecodeError },

    #[error("cannot write {key}: {error}")]
    Encode { key: String, error: EncodeError },
}

impl StoreError {
    /// True for errors that a retry may cure: etcd unreachable or slow.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Timeout { .. }
        )
    }
}
