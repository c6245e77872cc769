//! Applying a rendered configuration: each one goes to a new generation
//! directory, is checked with `nginx -t`, swapped in atomically (the
//! `current` symlink is replaced with rename(2)) and loaded with SIGHUP.
//! A configuration nginx refuses never becomes `current`, so the previous
//! one keeps serving, also across nginx restarts.
//!
//! ```text
//! {state_dir}/current -> generations/00000042
//! {state_dir}/generations/00000042/{nginx.conf,http.conf,hash}
//! {state_dir}/certs/{content hash}.crt, .key (0600)
//! {state_dir}/{nginx.pid,error.log,access.log,nginx.log,temp/}
//! ```

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::nginx::{NginxCtl, NginxError};
use crate::render::{main_conf, MainOptions, Rendered};

/// Generations kept on disk besides the current one, for inspection.
const KEEP_GENERATIONS: u64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot write {path}: {source}; check that the state dir is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Nginx(#[from] NginxError),
}

/// What [`Applier::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The rendered config equals the one nginx serves.
    Unchanged,
    /// nginx serves the new generation.
    Reloaded { generation: u64 },
}

/// The generation directories of one state dir.
#[derive(Debug)]
pub struct Applier {
    state_dir: PathBuf,
    main: MainOptions,
    /// The last generation number used (served or rejected).
    generation: u64,
    /// The generation nginx serves, and its hash.
    live: u64,
    hash: Option<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |source| ApplyError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Applier {
    /// Opens the state dir, creating its layout, and picks up the current
    /// generation left by a previous run.
    pub fn open(main: MainOptions) -> Result<Self, ApplyError> {
        let state_dir = main.state_dir.clone();
        for d in ["generations", "certs", "temp"] {
            let p = state_dir.join(d);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let mut applier = Self {
            state_dir,
            main,
            generation: 0,
            live: 0,
            hash: None,
        };
        if let Ok(target) = std::fs::read_link(applier.state_dir.join("current")) {
            if let Some(n) = target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok())
            {
                let gen = applier.gen_dir(n);
                if gen.join("nginx.conf").is_file() {
                    applier.generation = n;
                    applier.live = n;
                    applier.hash = std::fs::read_to_string(gen.join("hash")).ok();
                }
            }
        }
        // Never reuse a number: a later generation may exist that failed.
        applier.generation = applier.generation.max(applier.highest_on_disk());
        Ok(applier)
    }

    /// Whether a generation is in place for nginx to start from.
    pub fn has_current(&self) -> bool {
        self.hash.is_some()
    }

    /// The generation nginx serves (or will start from).
    pub fn live(&self) -> u64 {
        self.live
    }

    fn gen_dir(&self, n: u64) -> PathBuf {
        self.state_dir.join("generations").join(format!("{n:08}"))
    }

    fn highest_on_disk(&self) -> u64 {
        std::fs::read_dir(self.state_dir.join("generations"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Installs `rendered` as the first generation, before nginx runs.
    pub async fn install(
        &mut self,
        rendered: &Rendered,
        nginx: &NginxCtl,
    ) -> Result<u64, ApplyError> {
        let (n, dir) = self.prepare(rendered)?;
        if let Err(e) = nginx.test(&dir.join("nginx.conf")).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        self.swap(n)?;
        self.generation = n;
        self.live = n;
        self.hash = Some(rendered.hash.clone());
        Ok(n)
    }

    /// Applies `rendered` to the running nginx, unless it serves it already.
    pub async fn apply(
        &mut self,
        rendered: &Rendered,
        nginx: &NginxCtl,
    ) -> Result<Applied, ApplyError> {
        if self.hash.as_deref() == Some(rendered.hash.as_str())
            && nginx.live_generation().await == Some(self.live)
        {
            return Ok(Applied::Unchanged);
        }
        let previous = self.live;
        let (n, dir) = self.prepare(rendered)?;
        if let Err(e) = nginx.test(&dir.join("nginx.conf")).await {
            // Kept for inspection until newer generations push it out.
            let _ = std::fs::write(dir.join("REJECTED"), e.to_string());
            self.generation = n;
            self.cleanup();
            return Err(e.into());
        }
        self.swap(n)?;
        if let Err(e) = nginx.reload(n).await {
            self.generation = n;
            match nginx.live_generation().await {
                // nginx serves the new generation after all (the reload
                // was not confirmed in time): it stays `current`, and is
                // what is live. The error is still reported; the retry
                // finds it unchanged.
                Some(g) if g == n => {
                    self.live = n;
                    self.hash = Some(rendered.hash.clone());
                }
                // nginx still serves an earlier one: point back at it, so
                // a restart does not load a configuration that never went
                // live.
                Some(_) if self.gen_dir(previous).is_dir() => {
                    let _ = self.swap(previous);
                }
                Some(_) => {}
                // Not answering: nginx may or may not have loaded it.
                // `current` stays on the new generation (it passed
                // `nginx -t`), so a restart does not go back in time; the
                // retry applies again.
                None => {}
            }
            // Failed reloads are retried; do not let them pile up on disk.
            self.cleanup();
            return Err(e.into());
        }
        self.generation = n;
        self.live = n;
        self.hash = Some(rendered.hash.clone());
        self.cleanup_certs(rendered);
        self.cleanup();
        Ok(Applied::Reloaded { generation: n })
    }

    /// Writes a new generation directory and the certificates.
    fn prepare(&mut self, rendered: &Rendered) -> Result<(u64, PathBuf), ApplyError> {
        for f in &rendered.files {
            write_file(&self.state_dir.join(&f.path), &f.contents, f.mode)?;
        }
        let n = self.generation + 1;
        let dir = self.gen_dir(n);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let http = dir.join("http.conf");
        write_file(&http, rendered.http_conf.as_bytes(), 0o644)?;
        write_file(
            &dir.join("nginx.conf"),
            main_conf(&self.main, n, &http).as_bytes(),
            0o644,
        )?;
        write_file(&dir.join("hash"), rendered.hash.as_bytes(), 0o644)?;
        Ok((n, dir))
    }

    /// Points `current` at generation `n` in one rename(2).
    fn swap(&self, n: u64) -> Result<(), ApplyError> {
        let tmp = self.state_dir.join("current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("generations/{n:08}"), &tmp).map_err(io(&tmp))?;
        let cur = self.state_dir.join("current");
        std::fs::rename(&tmp, &cur).map_err(io(&cur))
    }

    /// Removes generations older than the last few.
    fn cleanup(&self) {
        let Ok(dir) = std::fs::read_dir(self.state_dir.join("generations")) else {
            return;
        };
        let current = std::fs::read_link(self.state_dir.join("current")).ok();
        for e in dir.flatten() {
            let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let is_current = current
                .as_ref()
                .is_some_and(|c| c.file_name() == Some(e.file_name().as_os_str()));
            if n + KEEP_GENERATIONS < self.generation && !is_current && n != self.live {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Removes certificate files the live configuration no longer names
    /// (nginx has loaded the ones it uses).
    fn cleanup_certs(&self, rendered: &Rendered) {
        let keep: BTreeSet<PathBuf> = rendered
            .files
            .iter()
            .map(|f| self.state_dir.join(&f.path))
            .collect();
        let Ok(dir) = std::fs::read_dir(self.state_dir.join("certs")) else {
            return;
        };
        for e in dir.flatten() {
            if !keep.contains(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Writes `contents` with `mode` through a temp file and a rename, so no
/// reader sees half a file and a key is never readable by others, not
/// even for a moment.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), ApplyError> {
    let tmp = path.with_extension("tmp-webrouter");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    // The umask may have narrowed the mode; set it exactly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}
