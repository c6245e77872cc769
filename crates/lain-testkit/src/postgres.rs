//! A private PostgreSQL (Debian `postgresql`) on a free loopback port, with
//! its cluster in a temp dir. PostgreSQL refuses to run as root, so the
//! server runs as the `postgres` system user the Debian package creates.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{chown, User};

use crate::process::{retry_on_port_race, run_timeout, Logged, ServerDir};
use crate::{free_port, KitError, Result};

/// The superuser the kit's clusters are created with (trust auth on
/// loopback: a test server, never reachable from outside).
pub const SUPERUSER: &str = "lain";

/// A running PostgreSQL; stopped (fast shutdown) and removed on drop.
#[derive(Debug)]
pub struct Postgres {
    proc: Option<Logged>,
    port: u16,
    bin: PathBuf,
    dir: ServerDir,
}

/// The newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|source| KitError::Spawn {
            what: "postgresql (/usr/lib/postgresql)".into(),
            source,
        })?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| KitError::Spawn {
            what: "postgres".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no /usr/lib/postgresql/*/bin/postgres",
            ),
        })
}

/// Runs `cmd` as the `postgres` user.
fn as_postgres(cmd: &mut Command, user: &User) {
    cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
}

fn postgres_user() -> Result<User> {
    User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| KitError::Command {
            cmd: "getpwnam(postgres)".into(),
            detail: "no `postgres` user; install Debian's postgresql package".into(),
        })
}

impl Postgres {
    /// Creates a cluster with `initdb` and starts the server, waiting until
    /// it accepts connections.
    pub fn start() -> Result<Self> {
        let user = postgres_user()?;
        let bin = bin_dir()?;
        let dir = ServerDir::new("postgres")?;
        // The server user must reach and own its directories.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        for d in [&data, &sock] {
            std::fs::create_dir(d)?;
            chown(d.as_path(), Some(user.uid), Some(user.gid)).map_err(|e| KitError::Command {
                cmd: format!("chown postgres {}", d.display()),
                detail: e.to_string(),
            })?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        as_postgres(&mut initdb, &user);
        run_timeout(&mut initdb, Duration::from_secs(60))?;

        let mut pg = Self {
            proc: None,
            port: 0,
            bin,
            dir,
        };
        retry_on_port_race(|| {
            pg.port = free_port();
            pg.spawn(&user)
        })?;
        Ok(pg)
    }

    fn spawn(&mut self, user: &User) -> Result<()> {
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path().join("sock"))
            // Durability is irrelevant for a throwaway test cluster.
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        as_postgres(&mut cmd, user);
        let mut proc = Logged::spawn("postgres", cmd, &self.dir.log_path("postgres"))?
            .with_grace(Duration::from_secs(10));
        let ready = self.bin.join("pg_isready");
        let port = self.port.to_string();
        proc.wait_ready(Duration::from_secs(30), || {
            Command::new(&ready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", SUPERUSER])
                .status()
                .is_ok_and(|s| s.success())
        })?;
        self.proc = Some(proc);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the default `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// URL of database `db` on this server.
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh database (`test_1`, `test_2`, ...) and returns its
    /// URL, so tests sharing a server don't see each other's tables.
    pub fn create_database(&self) -> Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url_of(&name))
    }

    /// Runs one SQL command with `psql` against the `postgres` database and
    /// returns its unaligned output.
    pub fn psql(&self, sql: &str) -> Result<String> {
        run_timeout(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-U", SUPERUSER, "-d", "postgres"])
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-c")
                .arg(sql),
            Duration::from_secs(30),
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.log_path("postgres")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Fast shutdown: SIGINT aborts open sessions (SIGTERM would wait for
    /// every client, and a test's pool may still hold connections).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.signal(Signal::SIGINT);
            if p.wait_exit(Duration::from_secs(10)).is_none() {
                p.kill();
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
