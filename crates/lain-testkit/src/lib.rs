//! Real servers for tests, started on demand and stopped on drop.
//!
//! Nothing here mocks a server: each helper starts the Debian-packaged
//! binary on loopback (or inside a network namespace the kit made) with its
//! state in a private temp dir. When a test panics, the logs of every server
//! it started are printed and their directories kept, so a failure can be
//! read after the fact.
//!
//! The kit is synchronous on purpose: `Drop` must be able to stop processes
//! and remove namespaces even while a test is unwinding.

pub mod daemon;
pub mod etcd;
pub mod http;
pub mod process;

pub use etcd::Etcd;
pub use process::{free_port, Logged, ServerDir};

/// Errors from starting or driving a test server.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("cannot start {what}: {source}; is the Debian package installed? (scripts/test installs it)")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {secs} s; its log:\n{log}")]
    NotReady { what: String, secs: u64, log: String },
    #[error("command `{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, KitError>;
