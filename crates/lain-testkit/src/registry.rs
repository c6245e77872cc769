//! A Docker Distribution registry (Debian `docker-registry`) over plain
//! HTTP with filesystem storage in its [`ServerDir`].
//!
//! On loopback (the default) a root-namespace [`crate::Dockerd`] can push
//! and pull without further flags: dockerd treats `127.0.0.0/8` registries
//! as insecure-allowed. Namespace nodes cannot reach the host's loopback;
//! start the registry on the nodes' bridge address
//! ([`Registry::start_on`] with [`crate::DockerNodes::bridge_addr`]) and give
//! every engine that talks to it `--insecure-registry ADDR:PORT` (nodes
//! trust their whole test subnet by default).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{free_port_on, retry_on_port_race, Logged, ServerDir};
use crate::{http, KitError, Result};

/// Docker Distribution token auth (`auth.token`): clients must bring a
/// token from `realm` signed by a key whose certificate is `root_cert`.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub root_cert: PathBuf,
}

/// A running registry; stopped and its storage removed on drop.
#[derive(Debug)]
pub struct Registry {
    proc: Option<Logged>,
    addr: SocketAddr,
    dir: ServerDir,
}

impl Registry {
    /// On a free port of 127.0.0.1.
    pub fn start() -> Result<Self> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// On a free port of `ip`, which must be an address of the root
    /// namespace (loopback or a test network's bridge address).
    pub fn start_on(ip: impl Into<IpAddr>) -> Result<Self> {
        let ip = ip.into();
        retry_on_port_race(|| Self::spawn(SocketAddr::new(ip, free_port_on(ip)?), None))
    }

    /// On a free port of `ip`, refusing clients without a token from `auth`.
    pub fn start_with_token_auth(ip: impl Into<IpAddr>, auth: &TokenAuth) -> Result<Self> {
        let ip = ip.into();
        retry_on_port_race(|| Self::spawn(SocketAddr::new(ip, free_port_on(ip)?), Some(auth)))
    }

    fn spawn(addr: SocketAddr, auth: Option<&TokenAuth>) -> Result<Self> {
        let dir = ServerDir::new("registry")?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: lain-testkit\n{auth}",
                storage.display(),
                auth = auth.map_or(String::new(), |a| format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    a.realm,
                    a.service,
                    a.issuer,
                    a.root_cert.display()
                )),
            ),
        )?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config);
        let mut proc = Logged::spawn("docker-registry", cmd, &dir.log_path("registry"))?
            .with_grace(Duration::from_secs(5));
        let host = addr.to_string();
        proc.wait_ready(Duration::from_secs(30), || {
            // 401 when token auth is on: the registry answers.
            http::get(addr, &host, "/v2/").is_some_and(|(code, _)| code == 200 || code == 401)
        })?;
        Ok(Self {
            proc: Some(proc),
            addr,
            dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ADDR:PORT`, the registry part of an image reference and the value
    /// for `--insecure-registry`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `ADDR:PORT/NAME`, e.g. `image("hello:release-1")`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    pub fn dir(&self) -> &ServerDir {
        &self.dir
    }

    /// Repository names, from `GET /v2/_catalog`.
    pub fn catalog(&self) -> Result<Vec<String>> {
        let (code, body) = http::get(self.addr, &self.host(), "/v2/_catalog").ok_or_else(|| {
            KitError::Command {
                cmd: format!("GET http://{}/v2/_catalog", self.addr),
                detail: "no answer".into(),
            }
        })?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| KitError::Command {
            cmd: format!("GET http://{}/v2/_catalog", self.addr),
            detail: format!("{code}: {e}: {body}"),
        })?;
        Ok(v["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
