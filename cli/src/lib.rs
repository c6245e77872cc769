//! The `lain` CLI as a library: the binary (src/main.rs) parses the
//! command line and calls [`run`]; integration tests reach the pieces.

pub mod api;
pub mod auth;
pub mod cmd;
pub mod config;
pub mod error;
pub mod local;
pub mod output;
pub mod progress;

/// What every command may need: the chosen cluster and where progress goes.
pub struct Globals {
    pub cluster: Option<String>,
    pub progress: progress::Progress,
}

impl Globals {
    /// The chosen cluster's registry, `host:port`.
    pub fn registry(&self) -> anyhow::Result<String> {
        let config = config::Config::load()?;
        let (name, cluster) = config.cluster(self.cluster.as_deref())?;
        registry_of(&name, cluster)
    }
}

/// Cluster `name`'s registry, `host:port`, or why there is none.
pub fn registry_of(name: &str, cluster: &config::Cluster) -> anyhow::Result<String> {
    cluster.registry.clone().ok_or_else(|| {
        error::fail(
            format!("cluster `{name}` has no registry"),
            "ask the cluster's admins to set console's `registry`, then `lain cluster add` it again",
        )
    })
}
