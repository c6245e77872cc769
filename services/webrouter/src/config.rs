//! webrouter's TOML configuration (see docs/reference/webrouter.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lain_service::LogFormat;
use serde::{Deserialize, Serialize};

/// The whole config file. Unknown keys are refused, so a typo never falls
/// back to a default silently.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Admin listener: `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    #[serde(default)]
    pub log_format: LogFormat,
    /// etcd endpoints, e.g. `["http://127.0.0.1:2379"]`.
    pub etcd: Vec<String>,
    /// This router's name under `/lain/routers/{router_id}`; unique per router.
    pub router_id: String,
    /// The address published in the router's status (what clients reach).
    #[serde(default)]
    pub advertise_address: Option<String>,
    /// The nginx binary.
    #[serde(default = "default_nginx_binary")]
    pub nginx_binary: PathBuf,
    /// nginx's prefix: generated config, certificates, logs, temp files, pid.
    pub state_dir: PathBuf,
    /// Where nginx serves plain HTTP.
    pub http_listen: SocketAddr,
    /// Where nginx serves HTTPS, for domains that have a certificate.
    #[serde(default)]
    pub https_listen: Option<SocketAddr>,
    /// A loopback address for nginx's own status server, which webrouter
    /// asks to confirm that a reload is live.
    pub status_listen: SocketAddr,
    /// Certificates from files, the fallback for single-host setups
    /// (etcd's win for a name both hold):
    /// `{domain}.crt` + `{domain}.key`, and `_.{domain}.crt` + `.key` for
    /// the wildcard `*.{domain}`.
    #[serde(default)]
    pub certs_dir: Option<PathBuf>,
    /// The cluster secrets key (32 bytes, raw or base64, mode 0600). When
    /// set, certificates are read from etcd (`/lain/certs/`) and their
    /// private keys opened with it.
    #[serde(default)]
    pub secrets_key_file: Option<PathBuf>,
    /// Keys being rotated out (docs/operations.md): they still open the
    /// certificates' keys they sealed until console has sealed them again.
    #[serde(default)]
    pub retired_secrets_key_files: Vec<PathBuf>,
    /// How often `certs_dir` is re-read.
    #[serde(default = "default_certs_poll_ms")]
    pub certs_poll_ms: u64,
    /// Changes arriving within this window are applied together.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
    /// TTL of the lease under the router's status key.
    #[serde(default = "default_lease_ttl_secs")]
    pub lease_ttl_secs: u64,
    /// The `user` nginx's workers run as (only applies when nginx starts
    /// as root); unset leaves nginx's default (`nobody`).
    #[serde(default)]
    pub nginx_user: Option<String>,
    /// nginx `worker_processes`.
    #[serde(default = "default_worker_processes")]
    pub worker_processes: u32,
    /// nginx `worker_shutdown_timeout`: how long a worker of a replaced
    /// configuration may keep serving its open connections after a reload
    /// (0 leaves nginx's default, no limit).
    #[serde(default = "default_worker_shutdown_timeout_secs")]
    pub worker_shutdown_timeout_secs: u64,
    /// From this many routed procs on, root-only domains are routed through
    /// hashed maps by one catch-all server instead of a server block and an
    /// `upstream` each: reloads stay under a second at 10,000 procs, at the
    /// price of nginx's per-instance retries for those procs. Below it,
    /// every proc keeps its `upstream` (retries, keepalive).
    #[serde(default = "default_map_routing_min_procs")]
    pub map_routing_min_procs: usize,
}

fn default_map_routing_min_procs() -> usize {
    2000
}

fn default_nginx_binary() -> PathBuf {
    PathBuf::from("nginx")
}

fn default_certs_poll_ms() -> u64 {
    2000
}

fn default_debounce_ms() -> u64 {
    50
}

fn default_lease_ttl_secs() -> u64 {
    10
}

fn default_worker_processes() -> u32 {
    1
}

fn default_worker_shutdown_timeout_secs() -> u64 {
    30
}

impl Config {
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }

    pub fn certs_poll(&self) -> Duration {
        Duration::from_millis(self.certs_poll_ms.max(100))
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs.max(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MINIMAL: &str = r#"
listen = "127.0.0.1:9000"
etcd = ["http://127.0.0.1:2379"]
router_id = "r1"
state_dir = "/var/lib/lain/webrouter"
http_listen = "0.0.0.0:80"
status_listen = "127.0.0.1:9001"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c: Config = lain_service::parse_config(Path::new("w.toml"), MINIMAL).unwrap();
        assert_eq!(c.nginx_binary, PathBuf::from("nginx"));
        assert_eq!(c.debounce_ms, 50);
        assert_eq!(c.https_listen, None);
        assert_eq!(c.secrets_key_file, None);
        assert_eq!(c.lease_ttl(), Duration::from_secs(10));
        assert_eq!(c.worker_shutdown_timeout_secs, 30);
    }

    #[test]
    fn unknown_key_is_refused() {
        let text = format!("{MINIMAL}debounce = 3\n");
        let e = lain_service::parse_config::<Config>(Path::new("w.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("debounce"), "{e}");
    }
}
