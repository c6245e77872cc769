//! A single-member etcd (Debian `etcd-server`) on free loopback ports with
//! its data in a temp dir. It can be stopped, killed and started again on
//! the same ports and data, to test reconnects.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::process::{retry_on_port_race, run, Logged, ServerDir};
use crate::{free_port, http, Result};

/// A running etcd; stopped and its data removed on drop.
#[derive(Debug)]
pub struct Etcd {
    // Field order matters: the process stops before its directory goes.
    proc: Option<Logged>,
    client_port: u16,
    peer_port: u16,
    dir: ServerDir,
}

impl Etcd {
    /// Starts etcd and waits until `/health` reports healthy.
    pub fn start() -> Result<Self> {
        retry_on_port_race(|| {
            let mut etcd = Self {
                proc: None,
                client_port: free_port(),
                peer_port: free_port(),
                dir: ServerDir::new("etcd")?,
            };
            etcd.spawn().map(|()| etcd)
        })
    }

    fn spawn(&mut self) -> Result<()> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new("etcd");
        cmd.arg("--name=kit")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=kit={peer}"))
            .arg("--logger=zap")
            .arg("--log-level=warn");
        let mut proc = Logged::spawn("etcd", cmd, &self.dir.log_path("etcd"))?
            .with_grace(Duration::from_secs(5));
        let addr = self.client_addr();
        proc.wait_ready(Duration::from_secs(30), || {
            http::get(addr, "127.0.0.1", "/health")
                .is_some_and(|(code, body)| code == 200 && body.contains("true"))
        })?;
        self.proc = Some(proc);
        Ok(())
    }

    /// The client URL, e.g. `http://127.0.0.1:23790`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// Stops etcd gracefully; its data stays for [`Etcd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// Kills etcd with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts etcd again on the same ports and data after a stop or kill.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Logged::is_running)
    }

    /// Runs Debian's `etcdctl` (API v3) against this etcd, for tests that
    /// inspect keys without linking an etcd client.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(args))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_serves_and_survives_restart() {
        let mut etcd = Etcd::start().unwrap();
        etcd.etcdctl(&["put", "/kit/a", "1"]).unwrap();
        etcd.kill();
        assert!(!etcd.is_running());
        etcd.restart().unwrap();
        let out = etcd
            .etcdctl(&["get", "/kit/a", "--print-value-only"])
            .unwrap();
        assert_eq!(out.trim(), "1");
    }
}
