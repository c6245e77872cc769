//! Talking to a node's Docker engine through bollard.
//!
//! The endpoint comes from the node's registration
//! ([`lain_store::DockerEndpoint`]): a unix socket on the deployd host, or
//! TCP with optional TLS client certificates. Every call is bounded by a
//! timeout of its own, so a node whose link is cut (packets dropped, no
//! connection refused) costs one timeout, never a hung task.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bollard::{ClientVersion, Docker};
use lain_store::DockerEndpoint;

use crate::runtime::RuntimeTimeouts;

/// The Engine API version deployd speaks: that of dockerd 20.10 (Debian
/// 12's `docker.io`). bollard's default (1.47) is refused by older engines,
/// and newer engines still serve 1.41.
pub const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// What failed while talking to an engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    #[error("cannot set up a Docker client for {endpoint}: {detail} (check the node's registration and, for TLS, that the certificate files exist on the deployd host)")]
    Connect { endpoint: String, detail: String },
    #[error("Docker engine at {endpoint} did not answer {op} within {timeout:?} (is dockerd running and the node reachable?)")]
    Timeout {
        endpoint: String,
        op: &'static str,
        timeout: Duration,
    },
    #[error("Docker engine at {endpoint} failed {op}: {detail} (is dockerd running and listening there?)")]
    Call {
        endpoint: String,
        op: &'static str,
        detail: String,
    },
}

/// A client for one node's engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
    /// Bounds of the container lifecycle calls in [`crate::runtime`].
    timeouts: RuntimeTimeouts,
}

/// A human-readable form of an endpoint, for logs and errors.
pub fn describe(endpoint: &DockerEndpoint) -> String {
    match endpoint {
        DockerEndpoint::Unix { socket } => format!("unix://{socket}"),
        DockerEndpoint::Tcp { address, tls: None } => format!("tcp://{address}"),
        DockerEndpoint::Tcp {
            address,
            tls: Some(_),
        } => format!("tcp://{address} (TLS)"),
    }
}

impl Engine {
    /// Sets up a client; nothing is sent yet. `timeout` bounds every call
    /// (bollard's own timeout is whole seconds, so calls are also wrapped
    /// in a finer one).
    pub fn connect(endpoint: &DockerEndpoint, timeout: Duration) -> Result<Engine, DockerError> {
        let text = describe(endpoint);
        // bollard counts whole seconds; the finer bound is ours.
        let secs = timeout.as_secs().max(1);
        let connected = match endpoint {
            DockerEndpoint::Unix { socket } => {
                Docker::connect_with_unix(socket, secs, &API_VERSION)
            }
            DockerEndpoint::Tcp { address, tls: None } => {
                Docker::connect_with_http(&format!("tcp://{address}"), secs, &API_VERSION)
            }
            DockerEndpoint::Tcp {
                address,
                tls: Some(tls),
            } => {
                // bollard reads the files lazily for the key pair; check
                // them now so that a missing file is named at once.
                for (what, path) in [
                    ("CA certificate", &tls.ca_cert),
                    ("client certificate", &tls.client_cert),
                    ("client key", &tls.client_key),
                ] {
                    // Opening (not just stat-ing) also catches a file the
                    // deployd user may not read.
                    if let Err(e) = std::fs::File::open(path) {
                        return Err(DockerError::Connect {
                            endpoint: text,
                            detail: format!(
                                "cannot read {what} {path}: {e}; check the path in the node's registration and that the deployd user may read it"
                            ),
                        });
                    }
                }
                Docker::connect_with_ssl(
                    &format!("tcp://{address}"),
                    Path::new(&tls.client_key),
                    Path::new(&tls.client_cert),
                    Path::new(&tls.ca_cert),
                    secs,
                    &API_VERSION,
                )
            }
        };
        let docker = connected.map_err(|e| DockerError::Connect {
            endpoint: text.clone(),
            detail: with_causes(&e),
        })?;
        Ok(Engine {
            docker: docker.with_timeout(timeout.max(Duration::from_secs(1))),
            endpoint: text,
            timeouts: RuntimeTimeouts::default(),
        })
    }

    /// The same engine with other bounds for the container lifecycle calls
    /// ([`crate::runtime`]); the ping/version bound stays as connected.
    pub fn with_timeouts(mut self, timeouts: RuntimeTimeouts) -> Engine {
        self.timeouts = timeouts;
        self
    }

    /// The bounds of the container lifecycle calls.
    pub fn timeouts(&self) -> &RuntimeTimeouts {
        &self.timeouts
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying bollard client, for container calls.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// `GET /_ping`, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), DockerError> {
        self.bounded("ping", timeout, self.docker.ping())
            .await
            .map(|_| ())
    }

    /// The engine's version (e.g. `20.10.24+dfsg1`), bounded by `timeout`.
    pub async fn version(&self, timeout: Duration) -> Result<Option<String>, DockerError> {
        self.bounded("version", timeout, self.docker.version())
            .await
            .map(|v| v.version)
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, DockerError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(DockerError::Call {
                endpoint: self.endpoint.clone(),
                op,
                detail: with_causes(&e),
            }),
            Err(_) => Err(DockerError::Timeout {
                endpoint: self.endpoint.clone(),
                op,
                timeout,
            }),
        }
    }
}

/// An error and its causes: hyper's own message ("client error
/// (Connect)") hides the useful part ("Connection refused").
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use lain_store::DockerTls;

    #[test]
    fn missing_tls_files_are_named() {
        let endpoint = DockerEndpoint::Tcp {
            address: "10.0.0.2:2376".into(),
            tls: Some(DockerTls {
                ca_cert: "/nonexistent/ca.pem".into(),
                client_cert: "/nonexistent/cert.pem".into(),
                client_key: "/nonexistent/key.pem".into(),
            }),
        };
        let e = Engine::connect(&endpoint, Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("10.0.0.2:2376"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_unix_socket_is_a_connect_error() {
        let endpoint = DockerEndpoint::Unix {
            socket: "/nonexistent/docker.sock".into(),
        };
        let e = Engine::connect(&endpoint, Duration::from_millis(500)).unwrap_err();
        assert!(matches!(e, DockerError::Connect { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/docker.sock"), "{e}");
    }

    #[tokio::test]
    async fn an_unanswering_engine_times_out() {
        // A listener that accepts and never answers: the ping must end at
        // the timeout, not at bollard's whole-second one.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let engine = Engine::connect(
            &DockerEndpoint::Tcp {
                address: addr.to_string(),
                tls: None,
            },
            Duration::from_millis(200),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let e = engine.ping(Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(e, DockerError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
