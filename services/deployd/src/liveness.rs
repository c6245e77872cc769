//! Node liveness from ping outcomes: a pure state machine, so that its
//! rules are tested without engines or etcd.
//!
//! - A ping that answers makes the node `alive` and resets the miss count.
//! - One missed ping makes it `suspect`; `lost_after_misses` consecutive
//!   misses make it `lost`. A lost node stays lost until a ping answers.
//! - `since_ms` and `message` change only when the liveness does, so that
//!   the observed value (and its etcd writes) changes only then, plus the
//!   periodic `last_seen_ms` refresh decided by [`needs_write`].

use lain_store::{Liveness, ObservedNode};

/// The result of one ping of a node's engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingOutcome {
    /// The engine answered; `version` when it was asked for and known.
    Answered { version: Option<String> },
    /// No answer in time, or an error; the text says which.
    Missed { error: String },
}

/// A change of liveness, for logs and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// `None` for a node seen for the first time.
    pub from: Option<Liveness>,
    pub to: Liveness,
}

/// What deployd knows about one node's engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeHealth {
    /// `None` until the first ping outcome (or a stored observation).
    liveness: Option<Liveness>,
    misses: u32,
    since_ms: u64,
    last_seen_ms: u64,
    docker_version: Option<String>,
    message: Option<String>,
    /// Kept as stored: counting instances is the reconciler's job.
    instances: u32,
}

impl NodeHealth {
    /// A node nothing is known about yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes from what a previous leader stored, so that a new leader
    /// does not turn a `lost` node `suspect` again on its first miss.
    pub fn resume(stored: &ObservedNode, lost_after_misses: u32) -> Self {
        let (liveness, misses) = match stored.liveness {
            Liveness::Alive => (Some(Liveness::Alive), 0),
            Liveness::Suspect => (Some(Liveness::Suspect), 1),
            Liveness::Lost => (Some(Liveness::Lost), lost_after_misses),
            // Written by a newer build: start over.
            Liveness::Unknown => (None, 0),
        };
        Self {
            liveness,
            misses,
            since_ms: stored.since_ms,
            last_seen_ms: stored.last_seen_ms,
            docker_version: stored.docker_version.clone(),
            message: stored.message.clone(),
            instances: stored.instances,
        }
    }

    pub fn liveness(&self) -> Option<Liveness> {
        self.liveness
    }

    /// Sets the instances the reconciler counts on the node; true when
    /// that changed what is to be stored.
    pub fn set_instances(&mut self, n: u32) -> bool {
        let changed = self.instances != n;
        self.instances = n;
        changed
    }

    pub fn misses(&self) -> u32 {
        self.misses
    }

    /// Whether the next answering ping should also ask for the version:
    /// unknown yet, or the engine may have been restarted (upgraded).
    pub fn wants_version(&self) -> bool {
        self.docker_version.is_none() || self.liveness != Some(Liveness::Alive)
    }

    /// Applies one ping outcome at `now_ms`; returns the change of
    /// liveness, if any.
    pub fn record(
        &mut self,
        outcome: PingOutcome,
        now_ms: u64,
        lost_after_misses: u32,
    ) -> Option<Transition> {
        let (to, message) = match outcome {
            PingOutcome::Answered { version } => {
                self.misses = 0;
                self.last_seen_ms = now_ms;
                if version.is_some() {
                    self.docker_version = version;
                }
                (Liveness::Alive, None)
            }
            PingOutcome::Missed { error } => {
                self.misses = self.misses.saturating_add(1);
                let to = if self.misses >= lost_after_misses.max(1) {
                    Liveness::Lost
                } else {
                    Liveness::Suspect
                };
                let message = format!(
                    "{} consecutive missed ping{}; last: {error}",
                    self.misses,
                    if self.misses == 1 { "" } else { "s" }
                );
                (to, Some(message))
            }
        };
        let from = self.liveness;
        if from == Some(to) {
            return None;
        }
        self.liveness = Some(to);
        self.since_ms = now_ms;
        self.message = message;
        Some(Transition { from, to })
    }

    /// The value to store, once anything is known.
    pub fn observed(&self) -> Option<ObservedNode> {
        Some(ObservedNode {
            liveness: self.liveness?,
            last_seen_ms: self.last_seen_ms,
            since_ms: self.since_ms,
            docker_version: self.docker_version.clone(),
            instances: self.instances,
            message: self.message.clone(),
        })
    }
}

/// Whether `desired` must be written over what is stored (`written`): on
/// any change but `last_seen_ms`, and for that only once it is
/// `refresh_ms` newer, to keep etcd writes low.
pub fn needs_write(
    desired: &ObservedNode,
    written: Option<&ObservedNode>,
    refresh_ms: u64,
) -> bool {
    let Some(written) = written else {
        return true;
    };
    let same_but_seen = ObservedNode {
        last_seen_ms: written.last_seen_ms,
        ..desired.clone()
    };
    same_but_seen != *written
        || desired.last_seen_ms.saturating_sub(written.last_seen_ms) >= refresh_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered() -> PingOutcome {
        PingOutcome::Answered {
            version: Some("20.10.24".into()),
        }
    }

    fn missed() -> PingOutcome {
        PingOutcome::Missed {
            error: "connection refused".into(),
        }
    }

    #[test]
    fn one_miss_is_suspect_three_are_lost_an_answer_is_alive() {
        let mut h = NodeHealth::new();
        assert!(h.observed().is_none());
        assert!(h.wants_version());
        let t = h.record(answered(), 1000, 3).unwrap();
        assert_eq!((t.from, t.to), (None, Liveness::Alive));
        assert!(!h.wants_version());
        assert_eq!(h.record(answered(), 2000, 3), None);

        let t = h.record(missed(), 3000, 3).unwrap();
        assert_eq!((t.from, t.to), (Some(Liveness::Alive), Liveness::Suspect));
        assert_eq!(h.record(missed(), 4000, 3), None);
        let t = h.record(missed(), 5000, 3).unwrap();
        assert_eq!(t.to, Liveness::Lost);
        assert_eq!(h.record(missed(), 6000, 3), None, "lost stays lost");
        let o = h.observed().unwrap();
        assert_eq!(o.liveness, Liveness::Lost);
        assert_eq!(o.since_ms, 5000);
        assert_eq!(o.last_seen_ms, 2000);
        assert_eq!(o.docker_version.as_deref(), Some("20.10.24"));
        let message = o.message.unwrap();
        assert!(
            message.contains("3 consecutive") && message.contains("refused"),
            "{message}"
        );

        assert!(h.wants_version(), "a returning engine may be upgraded");
        let t = h
            .record(PingOutcome::Answered { version: None }, 7000, 3)
            .unwrap();
        assert_eq!(t.to, Liveness::Alive);
        let o = h.observed().unwrap();
        assert_eq!((o.since_ms, o.last_seen_ms, o.message), (7000, 7000, None));
        assert_eq!(
            o.docker_version.as_deref(),
            Some("20.10.24"),
            "kept when unknown"
        );
        assert_eq!(h.misses(), 0);
    }

    #[test]
    fn an_answer_between_misses_starts_the_count_over() {
        let mut h = NodeHealth::new();
        h.record(missed(), 1, 3);
        h.record(missed(), 2, 3);
        h.record(answered(), 3, 3);
        h.record(missed(), 4, 3);
        h.record(missed(), 5, 3);
        assert_eq!(h.liveness(), Some(Liveness::Suspect));
    }

    #[test]
    fn lost_after_one_miss_skips_suspect() {
        let mut h = NodeHealth::new();
        h.record(answered(), 1, 1);
        assert_eq!(h.record(missed(), 2, 1).unwrap().to, Liveness::Lost);
    }

    #[test]
    fn a_new_leader_resumes_a_lost_node_as_lost() {
        let stored = ObservedNode {
            liveness: Liveness::Lost,
            last_seen_ms: 10,
            since_ms: 20,
            docker_version: Some("20.10".into()),
            instances: 4,
            message: Some("gone".into()),
        };
        let mut h = NodeHealth::resume(&stored, 3);
        assert_eq!(h.observed().unwrap(), stored);
        assert_eq!(h.record(missed(), 30, 3), None);
        let t = h.record(answered(), 40, 3).unwrap();
        assert_eq!(t.from, Some(Liveness::Lost));
        assert_eq!(h.observed().unwrap().instances, 4);
    }

    #[test]
    fn writes_happen_on_change_and_on_a_stale_last_seen_only() {
        let base = ObservedNode {
            liveness: Liveness::Alive,
            last_seen_ms: 1_000,
            since_ms: 0,
            docker_version: None,
            instances: 0,
            message: None,
        };
        assert!(needs_write(&base, None, 10_000));
        let seen_later = ObservedNode {
            last_seen_ms: 5_000,
            ..base.clone()
        };
        assert!(!needs_write(&seen_later, Some(&base), 10_000));
        let seen_much_later = ObservedNode {
            last_seen_ms: 11_000,
            ..base.clone()
        };
        assert!(needs_write(&seen_much_later, Some(&base), 10_000));
        let suspect = ObservedNode {
            liveness: Liveness::Suspect,
            ..base.clone()
        };
        assert!(needs_write(&suspect, Some(&base), 10_000));
    }
}
