//! The store's error type.

use std::time::Duration;

use crate::keys::{Component, KeyError, Prefix};
use crate::value::{DecodeError, EncodeError};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything a store operation can fail with. etcd client errors are
/// flattened to text so that no other crate needs `etcd-client` to handle
/// them. Every message says what failed and what to do about it.
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

    #[error("etcd at {endpoints} did not answer {op} within {timeout:?} (is etcd running and healthy at {endpoints}? `etcdctl --endpoints={endpoints} endpoint health` checks it; retry once it is)")]
    Timeout {
        endpoints: String,
        op: &'static str,
        timeout: Duration,
    },

    #[error("etcd at {endpoints} refused {op}: {detail} (retrying the same request will not help: check it against etcd's limits, such as request size and operations per transaction, and etcd's log)")]
    Etcd {
        endpoints: String,
        op: &'static str,
        detail: String,
    },

    #[error("invalid etcd endpoint {endpoint:?}: {detail} (give etcd endpoints as http://HOST:PORT, e.g. http://127.0.0.1:2379)")]
    BadEndpoint { endpoint: String, detail: String },

    /// A compare-and-swap lost: `key` is at `current` (0: absent), not at
    /// `expected` (0: create-only). Re-read and retry, or give up.
    #[error("conflict on {key}: expected it at revision {expected}, found it at {current} (0 means absent); another writer changed it first and nothing was written: re-read the key and retry")]
    Conflict {
        key: String,
        expected: i64,
        current: i64,
    },

    /// A fenced write was refused because this candidate no longer leads.
    #[error("not the leader of election {election} any more; the write was not applied: campaign again, or leave the write to the current leader")]
    NotLeader { election: String },

    /// A campaign's candidate key was deleted by another client while the
    /// candidate's lease was still alive.
    #[error("candidate key {key} of election {election} was deleted by another client while its lease was alive, so the campaign ended; campaign again, and find out which client deletes candidate keys (only resign should)")]
    CandidacyLost { election: String, key: String },

    /// The lease is gone: expired, revoked, or its keep-alive stopped.
    #[error("lease {id:x} is lost (expired, revoked or no longer kept alive) and the keys attached to it are gone: grant a new lease (or campaign again) and write them again")]
    LeaseLost { id: i64 },

    /// A component tried to write a prefix it does not own.
    #[error("{component} may not write {prefix}: its only writer is {writer}; leave this change to {writer} (see docs/reference/etcd-schema.md)")]
    NotWriter {
        component: Component,
        prefix: Prefix,
        writer: Component,
    },

    #[error("cannot read {key}: {error}{}", decode_advice(.key, .error))]
    Decode { key: String, error: DecodeError },

    #[error("cannot write {key}: {error} (nothing was written; the value type is at fault, a bug to report)")]
    Encode { key: String, error: EncodeError },
}

fn decode_advice(key: &str, error: &DecodeError) -> String {
    match error {
        // Already says: upgrade this component.
        DecodeError::TooNew { .. } => String::new(),
        _ => format!(
            " (its writer stored a value this build cannot read: inspect it with `etcdctl get {key}`, then fix the writer and rewrite or delete the key)"
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let conflict = StoreError::Conflict {
            key: "/lain/desired/hello/web".into(),
            expected: 7,
            current: 9,
        }
        .to_string();
        assert!(conflict.contains("/lain/desired/hello/web"), "{conflict}");
        assert!(conflict.contains("re-read the key and retry"), "{conflict}");

        let cases = [
            (
                StoreError::NotLeader {
                    election: "deployd".into(),
                },
                "campaign again",
            ),
            (StoreError::LeaseLost { id: 0x2a }, "grant a new lease"),
            (
                StoreError::CandidacyLost {
                    election: "deployd".into(),
                    key: "/lain/election/deployd/2a".into(),
                },
                "campaign again",
            ),
            (
                StoreError::Timeout {
                    endpoints: "http://127.0.0.1:2379".into(),
                    op: "get",
                    timeout: Duration::from_secs(3),
                },
                "endpoint health",
            ),
            (
                StoreError::BadEndpoint {
                    endpoint: "127.0.0.1".into(),
                    detail: "no scheme".into(),
                },
                "http://HOST:PORT",
            ),
            (
                StoreError::Decode {
                    key: "/lain/desired/a/b".into(),
                    error: DecodeError::NotObject,
                },
                "etcdctl get /lain/desired/a/b",
            ),
        ];
        for (error, advice) in cases {
            let text = error.to_string();
            assert!(text.contains(advice), "{text:?} lacks {advice:?}");
        }

        let too_new = StoreError::Decode {
            key: "/lain/desired/a/b".into(),
            error: DecodeError::TooNew {
                kind: "desired proc",
                found: 9,
                supported: 1,
            },
        }
        .to_string();
        assert!(too_new.ends_with("upgrade this component"), "{too_new}");
    }
}
