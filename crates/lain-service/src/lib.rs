//! Plumbing every lain daemon shares, so that each daemon's `main.rs` only
//! parses its config, starts tracing and runs.
//!
//! - [`DaemonArgs`]: the command line every daemon accepts (`--config PATH`).
//! - [`load_config`]: reads a TOML config file into the daemon's own type,
//!   rejecting unknown keys with an error that names the file and the fix.
//! - [`init_tracing`]: structured logs, plain or JSON, filtered by `RUST_LOG`.
//! - [`read_private_file`], [`create_private_file`]: key and secret files,
//!   mode 0600.
//! - [`serve`]: runs an axum router with `/healthz` added, and drains
//!   in-flight requests on SIGTERM or SIGINT before returning.

mod private;

pub use private::{create_private_file, read_private_file, PrivateFileError};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Command line shared by all daemons.
#[derive(Debug, Clone, clap::Parser)]
pub struct DaemonArgs {
    /// Path to the daemon's TOML configuration file.
    #[arg(short, long, env = "LAIN_CONFIG")]
    pub config: PathBuf,
}

/// How a daemon writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Errors while loading a daemon's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Reads a TOML config file. Unknown keys are an error when `T` is marked
/// `#[serde(deny_unknown_fields)]`, which every daemon config is, so a typo
/// never silently falls back to a default.
pub fn load_config<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_config(path, &text)
}

/// Parses config text; split from [`load_config`] so tests need no file.
pub fn parse_config<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        // toml's message already carries line, column and the offending key.
        message: e.to_string().trim_end().replace('\n', " "),
    })
}

/// Starts the global tracing subscriber. `RUST_LOG` overrides the default
/// level (`info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (in tests) must not panic.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Body of `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub service: String,
    pub version: String,
    pub status: String,
}

/// Adds `/healthz` to a daemon's router.
pub fn with_healthz(service: &'static str, router: Router) -> Router {
    router.route(
        "/healthz",
        get(move || async move {
            Json(Health {
                service: service.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                status: "ok".to_owned(),
            })
        }),
    )
}

/// Errors from [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds `addr` and serves `router` (with `/healthz`) until SIGTERM or
/// SIGINT, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    service: &'static str,
    addr: SocketAddr,
    router: Router,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(service, listener, router, shutdown_signal()).await
}

/// Like [`serve`] on an already bound listener, stopping when `shutdown`
/// completes. Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve_on(
    service: &'static str,
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr()?;
    tracing::info!(%local, service, "listening");
    // Connect info lets handlers see the client's address (login limits,
    // audit) through `ConnectInfo<SocketAddr>`.
    axum::serve(
        listener,
        with_healthz(service, router).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    tracing::info!(service, "stopped");
    Ok(())
}

/// The config of a daemon that so far only serves `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConfig {
    /// Address of the HTTP listener, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    #[serde(default)]
    pub log_format: LogFormat,
}

/// Errors that end a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The whole life of a daemon whose config is a [`BasicConfig`]: parse the
/// command line, load the config, start tracing, serve until a signal.
pub async fn run_basic(service: &'static str) -> Result<(), DaemonError> {
    use clap::Parser;
    let args = DaemonArgs::parse();
    let config: BasicConfig = load_config(&args.config)?;
    init_tracing(config.log_format);
    serve(service, config.listen, Router::new()).await?;
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, draining"),
        () = term => tracing::info!("SIGTERM received, draining"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        listen: SocketAddr,
        #[serde(default)]
        log_format: LogFormat,
    }

    #[test]
    fn parses_valid_config() {
        let c: Sample = parse_config(
            Path::new("x.toml"),
            "listen = \"127.0.0.1:80\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:80".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_is_an_error_naming_file_and_key() {
        let e = parse_config::<Sample>(
            Path::new("/etc/x.toml"),
            "listen = \"127.0.0.1:80\"\nlisten_addr = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/x.toml"), "{e}");
        assert!(e.contains("listen_addr"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.toml");
        let e = load_config::<Sample>(&p).unwrap_err().to_string();
        assert!(e.contains("nope.toml") && e.contains("--config"), "{e}");
    }

    #[tokio::test]
    async fn healthz_answers_and_shutdown_drains() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on("test", listener, Router::new(), async {
            let _ = rx.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("\"status\":\"ok\""), "{body}");
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
