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
pub mod docker;
pub mod etcd;
pub mod html;
pub mod http;
pub mod image;
pub mod netns;
pub mod nginx;
pub mod nodes;
pub mod postgres;
pub mod process;
pub mod registry;
pub mod sys;

pub use docker::{Bridge, Dockerd, DockerdOptions};
pub use etcd::Etcd;
pub use image::{import_base_image, import_base_image_all, BASE_IMAGE};
pub use netns::{cleanup_stale, TestNetwork};
pub use nginx::{Nginx, NginxConfig};
pub use nodes::{DockerNodes, Node, NodesOptions};
pub use postgres::Postgres;
pub use process::{free_port, Logged, ServerDir};
pub use registry::{Registry, TokenAuth};

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
    NotReady {
        what: String,
        secs: u64,
        log: String,
    },
    #[error("command `{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, KitError>;
