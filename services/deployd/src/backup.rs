//! Volume backups and restores: lain.yaml's `backup_full` and
//! `backup_increment` policies, run by the leader; a restore is part of a
//! rollout.
//!
//! **Backups.** While leading, [`run`] looks every `check_interval_secs`
//! at each desired proc with `backups`: for each running instance and
//! each policy, the next run is computed from the newest stored backup of
//! that volume in that mode (or, with none, from when this leader
//! started), see [`next_due`]. A due backup runs `pre_run` in the
//! instance's container (`sh -c`, bounded; a failure skips the backup),
//! exports the volume through a helper container made from the
//! instance's image ([`crate::volumes`]), streams it into
//! [`lain_backup::Backups`] (full or increment), runs `post_run` (also
//! after a failed export, so that what `pre_run` paused is resumed), and
//! every so often expires what is past its `expire`. One transfer per
//! volume at a time, at most `max_concurrent` backups at once, every step
//! bounded; a failure is an event (`backup_failed`) and a log line, and
//! the backup is tried again after `retry_after_secs` (or at its next
//! scheduled time, if that comes first). `POST /api/v1/apps/{app}/backups`
//! asks the runner for one backup now ([`BackupService::request`]).
//!
//! **Restores.** Console writes a desired proc whose `restore` names an
//! instance, a volume path and a backup. Its spec hash changes, so the
//! proc rolls out; instances with volumes roll out stop-first. When the
//! reconciler creates that instance's new container it first calls
//! [`restore_before_create`]: the backup is read and checked in full,
//! then imported into the volume (emptied first), and the request is
//! recorded under `/lain/restores/{app}/{proc}/{instance}`, so that a
//! later rollout, rollback or re-creation carrying the same request
//! restores nothing. A create that is retried before that record is
//! written imports again (the import replaces the volume, so that is
//! harmless). A restore that cannot succeed (no such backup, a corrupt
//! one, backups off) fails the instance, and with it the rollout.
//!
//! Without a `[backup]` section nothing is scheduled, the API answers 503
//! and restores fail saying so.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lain_backup::{
    BackupId, BackupMeta, BackupMode, Backups, Expire, ListFilter, Schedule, Target, VolumeKey,
};
use lain_store::{
    DesiredProc, EventKind, InstanceState, RestoreKey, RestoreRecord, Severity, Transaction,
    VolumeBackup,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::docker::Engine;
use crate::reconcile::plan::{NodeView, PlannedEvent, Record};
use crate::reconcile::spec::volume_name;
use crate::reconcile::sync::NodeAccess;
use crate::reconcile::Ctx;
use crate::volumes::VolumeError;

/// Backup requests from the API waiting for the runner.
const RUN_NOW_QUEUE: usize = 16;
/// Retention runs at most this often (it lists the whole target).
const EXPIRE_EVERY: Duration = Duration::from_secs(15 * 60);
/// Bound of one retention pass.
const EXPIRE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Bound of reading one volume's backup list from the target.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a hook's output an error quotes.
const HOOK_OUTPUT_KEEP: usize = 300;

/// `[backup]`'s tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    pub max_concurrent: usize,
    pub check_interval: Duration,
    pub hook_timeout: Duration,
    pub timeout: Duration,
    pub retry_after: Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            max_concurrent: 2,
            check_interval: Duration::from_secs(30),
            hook_timeout: Duration::from_secs(300),
            timeout: Duration::from_secs(6 * 3600),
            retry_after: Duration::from_secs(900),
        }
    }
}

/// Why a backup (or a request for one) failed. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("volume backups are off: deployd's config has no [backup] section; add [backup] with a target (see docs/reference/deployd.md) and restart deployd")]
    Off,
    #[error("this deployd replica does not lead, and only the leader takes backups; ask the leader (console does), or retry once the election settled")]
    NotLeader,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotRunning(String),
    #[error("{0}")]
    Busy(String),
    #[error("pre_run of {what} failed: {detail}; the backup was skipped (fix the command in lain.yaml, or what it depends on in the container)")]
    PreRun { what: String, detail: String },
    #[error("{0}")]
    Failed(String),
}

/// What a volume is being used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Backup,
    Restore,
}

/// A request for one backup now, answered when it is stored or failed.
struct RunNow {
    app: String,
    proc: String,
    instance: u32,
    path: String,
    reply: oneshot::Sender<Result<BackupMeta, BackupError>>,
}

/// Backups and restores, shared by the runner (leader only), the
/// reconciler's creates (restores) and the API. Cheap to share (`Arc`).
pub struct BackupService {
    backups: Option<Backups>,
    settings: BackupSettings,
    /// Volumes (docker names) being backed up or restored right now.
    busy: Mutex<HashMap<String, Transfer>>,
    slots: Arc<Semaphore>,
    /// The runner's queue, while this replica leads.
    runner: Mutex<Option<mpsc::Sender<RunNow>>>,
}

impl std::fmt::Debug for BackupService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupService")
            .field("target", &self.backups.as_ref().map(|b| b.target().label()))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the future `make` builds on a blocking thread of the runtime,
/// bounded by `timeout`, and gives its output (`None`: timed out).
///
/// Some of lain-backup's futures hold closures that rustc cannot prove
/// `Send` (rust-lang/rust#102211), so a task holding one across an
/// `.await` cannot be spawned; built and driven on their own thread they
/// need not be. Dropping the returned future drops `make`'s future too.
async fn detached<T, F, Fut>(timeout: Duration, make: F) -> Result<Option<T>, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (cancel, cancelled) = oneshot::channel::<()>();
    let thread = tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            tokio::select! {
                r = tokio::time::timeout(timeout, make()) => r.ok(),
                _ = cancelled => None,
            }
        })
    });
    let out = thread
        .await
        .map_err(|e| format!("a backup thread failed: {e} (a bug: please report it)"));
    drop(cancel);
    out
}

impl BackupService {
    /// The service `[backup]` describes; off without one. A target that
    /// cannot be opened (a relative path, an S3 secret file that cannot be
    /// read) is an error: deployd does not start half-configured.
    pub fn from_config(config: &Config) -> Result<Arc<BackupService>, lain_backup::Error> {
        let Some(b) = &config.backup else {
            tracing::info!("no [backup] section in the config: volume backups are off (scheduled backups do not run; backup requests and restores are refused)");
            return Ok(Arc::new(BackupService::off()));
        };
        let mut backups = Backups::new(Target::open(&b.target)?);
        if let Some(dir) = &b.spool_dir {
            backups = backups.with_spool_dir(dir);
        }
        tracing::info!(target = %backups.target().label(), "volume backups on");
        Ok(Arc::new(BackupService::new(
            Some(backups),
            BackupSettings {
                max_concurrent: b.max_concurrent.max(1) as usize,
                check_interval: Duration::from_secs(b.check_interval_secs),
                hook_timeout: Duration::from_secs(b.hook_timeout_secs),
                timeout: Duration::from_secs(b.timeout_secs),
                retry_after: Duration::from_secs(b.retry_after_secs),
            },
        )))
    }

    /// Backups through `backups` (none: off).
    pub fn new(backups: Option<Backups>, settings: BackupSettings) -> BackupService {
        BackupService {
            slots: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            backups,
            settings,
            busy: Mutex::new(HashMap::new()),
            runner: Mutex::new(None),
        }
    }

    /// Backups off.
    pub fn off() -> BackupService {
        BackupService::new(None, BackupSettings::default())
    }

    pub fn is_on(&self) -> bool {
        self.backups.is_some()
    }

    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    fn backups(&self) -> Result<&Backups, BackupError> {
        self.backups.as_ref().ok_or(BackupError::Off)
    }

    /// The backups of an app, newest first; any replica can answer.
    pub async fn list(
        &self,
        app: &str,
        filter: &ListFilter,
    ) -> Result<Vec<BackupMeta>, BackupError> {
        let backups = self.backups()?.clone();
        let (app, filter) = (app.to_owned(), filter.clone());
        let listed = detached(LIST_TIMEOUT, move || async move {
            backups.list(&app, &filter).await
        })
        .await
        .map_err(BackupError::Failed)?
        .ok_or_else(|| {
            BackupError::Failed(format!(
                "listing the backups took longer than {LIST_TIMEOUT:?}; check the backup target"
            ))
        })?;
        listed.map_err(|e| match e {
            lain_backup::Error::InvalidName { .. } => BackupError::NotFound(e.to_string()),
            e => BackupError::Failed(format!("cannot list the backups: {e}")),
        })
    }

    /// Asks the runner (the leader's) for a backup of one volume now; the
    /// receiver gets the outcome.
    pub fn request(
        &self,
        app: &str,
        proc: &str,
        instance: u32,
        path: &str,
    ) -> Result<oneshot::Receiver<Result<BackupMeta, BackupError>>, BackupError> {
        self.backups()?;
        let sender = lock(&self.runner).clone().ok_or(BackupError::NotLeader)?;
        let (reply, rx) = oneshot::channel();
        let req = RunNow {
            app: app.to_owned(),
            proc: proc.to_owned(),
            instance,
            path: path.to_owned(),
            reply,
        };
        match sender.try_send(req) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(BackupError::Busy(format!(
                "{RUN_NOW_QUEUE} backup requests are already waiting; retry in a minute"
            ))),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(BackupError::NotLeader),
        }
    }

    /// Marks `volume` as in use for `what`; `None` when it already is
    /// (by what).
    fn claim(self: &Arc<Self>, volume: &str, what: Transfer) -> Result<Claim, Transfer> {
        let mut busy = lock(&self.busy);
        if let Some(t) = busy.get(volume) {
            return Err(*t);
        }
        busy.insert(volume.to_owned(), what);
        Ok(Claim {
            service: self.clone(),
            volume: volume.to_owned(),
        })
    }

    fn is_restoring(&self, volume: &str) -> bool {
        lock(&self.busy).get(volume) == Some(&Transfer::Restore)
    }
}

/// A volume in use; released when dropped (also when its task is
/// aborted).
struct Claim {
    service: Arc<BackupService>,
    volume: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.service.busy).remove(&self.volume);
    }
}

/// The runner's queue, registered while it runs.
struct Registration(Arc<BackupService>);

impl Drop for Registration {
    fn drop(&mut self) {
        *lock(&self.0.runner) = None;
    }
}

// ---------------------------------------------------------------------
// Scheduling (pure)
// ---------------------------------------------------------------------

/// A volume backup policy as deployd runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub mode: BackupMode,
    pub schedule: Schedule,
    pub expire: Expire,
    pub pre_run: Option<String>,
    pub post_run: Option<String>,
}

/// Reads a desired proc's backup entry; `Err` says what is wrong with it.
pub fn policy_of(b: &VolumeBackup) -> Result<Policy, String> {
    let mode = match b.mode.as_str() {
        "full" => BackupMode::Full,
        "increment" => BackupMode::Increment,
        other => {
            return Err(format!(
                "backup mode {other:?} of {} is neither full nor increment; deploy again with this console",
                b.path
            ))
        }
    };
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
    Ok(Policy {
        mode,
        schedule: Schedule::parse(&b.schedule).map_err(|e| e.to_string())?,
        expire: Expire::parse(&b.expire).map_err(|e| e.to_string())?,
        pre_run: non_empty(&b.pre_run),
        post_run: non_empty(&b.post_run),
    })
}

/// When a volume's backup in one mode is next due: the schedule's next
/// time after the newest stored backup in that mode, or, with none, after
/// `leading_since` (so a new leader does not take every backup at once).
/// After a failed attempt newer than that backup: `retry_after` later, or
/// the schedule's next time after the failure if that comes first.
pub fn next_due(
    schedule: &Schedule,
    newest: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    leading_since: DateTime<Utc>,
    retry_after: Duration,
) -> Result<DateTime<Utc>, lain_backup::Error> {
    let scheduled = schedule.next_after(newest.unwrap_or(leading_since))?;
    let Some(failed) = failed_at.filter(|f| newest.is_none_or(|n| *f > n)) else {
        return Ok(scheduled);
    };
    let retry = failed
        + chrono::Duration::from_std(retry_after).unwrap_or_else(|_| chrono::Duration::days(1));
    Ok(match schedule.next_after(failed) {
        Ok(next) => next.min(retry),
        Err(_) => retry,
    })
}

/// Whether the backup is due at `now` ([`next_due`] has passed).
pub fn is_due(
    schedule: &Schedule,
    newest: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    leading_since: DateTime<Utc>,
    retry_after: Duration,
    now: DateTime<Utc>,
) -> bool {
    next_due(schedule, newest, failed_at, leading_since, retry_after).is_ok_and(|t| t <= now)
}

// ---------------------------------------------------------------------
// The runner (leader only)
// ---------------------------------------------------------------------

/// One backup to take.
struct Job {
    key: VolumeKey,
    volume: String,
    node: String,
    container: String,
    image: String,
    engine: Engine,
    mode: BackupMode,
    expire: Expire,
    pre_run: Option<String>,
    post_run: Option<String>,
}

/// What the runner knows of one volume's backups in one mode.
#[derive(Debug, Default)]
struct Tracked {
    loaded: bool,
    newest: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

enum Done {
    Backup {
        track: (VolumeKey, BackupMode),
        started: DateTime<Utc>,
        stored: Option<DateTime<Utc>>,
    },
    Expired,
    /// An event about a proc's backups was recorded.
    Noted,
}

/// The runner's memory of one leadership term.
struct Runner {
    ctx: Arc<Ctx>,
    service: Arc<BackupService>,
    leading_since: DateTime<Utc>,
    tracked: HashMap<(VolumeKey, BackupMode), Tracked>,
    /// Problems already reported (bad policies), so that each is logged
    /// and recorded once per term.
    warned: HashSet<String>,
    tasks: JoinSet<Done>,
    last_expire: Option<Instant>,
    expiring: bool,
}

/// Runs scheduled and requested backups while this replica leads; the
/// reconciler starts it once its view is complete, and aborts it with
/// the rest when leadership ends (in-flight exports are dropped and their
/// helpers removed; an unfinished upload is cleaned up by retention).
pub async fn run(ctx: Arc<Ctx>, service: Arc<BackupService>) {
    if !service.is_on() {
        return;
    }
    let (tx, mut rx) = mpsc::channel(RUN_NOW_QUEUE);
    *lock(&service.runner) = Some(tx);
    let _registration = Registration(service.clone());
    let mut r = Runner {
        ctx,
        leading_since: Utc::now(),
        tracked: HashMap::new(),
        warned: HashSet::new(),
        tasks: JoinSet::new(),
        last_expire: None,
        expiring: false,
        service,
    };
    tracing::info!(
        interval = ?r.service.settings.check_interval,
        max_concurrent = r.service.settings.max_concurrent,
        "backup schedules running"
    );
    let mut tick = tokio::time::interval(r.service.settings.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => r.schedule().await,
            Some(req) = rx.recv() => r.run_now(req),
            Some(done) = r.tasks.join_next(), if !r.tasks.is_empty() => {
                match done {
                    Ok(done) => r.finished(done),
                    Err(e) if e.is_panic() => tracing::error!(error = %e, "a backup task panicked (a bug: please report it)"),
                    Err(_) => {}
                }
            }
        }
    }
}

impl Runner {
    /// Starts the backups that are due.
    async fn schedule(&mut self) {
        let candidates = self.candidates();
        let now = Utc::now();
        // Backups already stored tell when the next one is due: read them
        // once per term, a few volumes at a time.
        let unloaded: Vec<(VolumeKey, BackupMode)> = candidates
            .iter()
            .map(|(job, _)| (job.key.clone(), job.mode))
            .filter(|t| !self.tracked.get(t).is_some_and(|t| t.loaded))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !unloaded.is_empty() {
            let Ok(backups) = self.service.backups() else {
                return;
            };
            let listed: Vec<_> = futures::stream::iter(unloaded)
                .map(|(key, mode)| {
                    let backups = backups.clone();
                    async move {
                        let k = key.clone();
                        let listed = detached(LIST_TIMEOUT, move || async move {
                            backups.list_volume(&k).await
                        })
                        .await;
                        (key, mode, listed)
                    }
                })
                .buffer_unordered(8)
                .collect()
                .await;
            for (key, mode, listed) in listed {
                match listed {
                    Ok(Some(Ok(metas))) => {
                        let t = self.tracked.entry((key, mode)).or_default();
                        t.loaded = true;
                        t.newest = metas
                            .iter()
                            .filter(|m| m.requested_mode == mode)
                            .map(|m| m.created_at)
                            .max();
                    }
                    Ok(Some(Err(e))) => {
                        tracing::warn!(volume = %key, error = %e, "cannot read the volume's backups; its schedule waits (check the backup target)")
                    }
                    Ok(None) => {
                        tracing::warn!(volume = %key, timeout = ?LIST_TIMEOUT, "reading the volume's backups timed out; its schedule waits (check the backup target)")
                    }
                    Err(e) => {
                        tracing::error!(volume = %key, error = %e, "cannot read the volume's backups")
                    }
                }
            }
        }
        let retry_after = self.service.settings.retry_after;
        for (job, schedule) in candidates {
            let track = (job.key.clone(), job.mode);
            let Some(t) = self.tracked.get(&track).filter(|t| t.loaded) else {
                continue;
            };
            if !is_due(
                &schedule,
                t.newest,
                t.failed_at,
                self.leading_since,
                retry_after,
                now,
            ) {
                continue;
            }
            // Wait for a free slot rather than queue up: the backup is
            // still due on the next tick.
            if self.service.slots.available_permits() == 0 {
                break;
            }
            let Ok(claim) = self.service.claim(&job.volume, Transfer::Backup) else {
                continue;
            };
            tracing::info!(volume = %job.key, mode = ?job.mode, node = %job.node, "backup due");
            self.start(job, claim, None);
        }
    }

    /// Starts a requested backup, or answers why it cannot be taken.
    fn run_now(&mut self, req: RunNow) {
        let job = match self.resolve(&req.app, &req.proc, req.instance, &req.path) {
            Ok(job) => job,
            Err(e) => {
                let _ = req.reply.send(Err(e));
                return;
            }
        };
        let claim = match self.service.claim(&job.volume, Transfer::Backup) {
            Ok(c) => c,
            Err(what) => {
                let _ = req.reply.send(Err(BackupError::Busy(format!(
                    "{} of {} is being {} right now; wait for it, then `lain backup list` shows the new backup",
                    job.key.volume(),
                    instance_name(&job.key),
                    match what {
                        Transfer::Backup => "backed up",
                        Transfer::Restore => "restored",
                    }
                ))));
                return;
            }
        };
        tracing::info!(volume = %job.key, node = %job.node, "backup requested");
        self.start(job, claim, Some(req.reply));
    }

    fn start(
        &mut self,
        job: Job,
        claim: Claim,
        reply: Option<oneshot::Sender<Result<BackupMeta, BackupError>>>,
    ) {
        let ctx = self.ctx.clone();
        let service = self.service.clone();
        self.tasks.spawn(async move {
            let _claim = claim;
            let track = (job.key.clone(), job.mode);
            let started = Utc::now();
            let result = take(&ctx, &service, &job).await;
            ctx.metrics.backup(result.as_ref().ok().map(|m| m.size));
            let stored = result.as_ref().ok().map(|m| m.created_at);
            if let Err(e) = &result {
                ctx.event(
                    job.key.app(),
                    Some(job.key.proc()),
                    PlannedEvent {
                        kind: EventKind::BackupFailed,
                        severity: Severity::Error,
                        message: format!(
                            "backup of {} of instance {} on {} failed: {e}",
                            job.key.volume(),
                            job.key.instance(),
                            job.node
                        ),
                        instance: Some(job.key.instance()),
                    },
                    None,
                )
                .await;
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
            Done::Backup {
                track,
                started,
                stored,
            }
        });
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Backup {
                track,
                started,
                stored,
            } => {
                let t = self.tracked.entry(track).or_default();
                match stored {
                    Some(at) => {
                        t.newest = Some(t.newest.map_or(at, |n| n.max(at)));
                        t.failed_at = None;
                        self.expire();
                    }
                    None => t.failed_at = Some(started),
                }
            }
            Done::Expired => self.expiring = false,
            Done::Noted => {}
        }
    }

    /// Starts a retention pass, at most every [`EXPIRE_EVERY`].
    fn expire(&mut self) {
        if self.expiring || self.last_expire.is_some_and(|t| t.elapsed() < EXPIRE_EVERY) {
            return;
        }
        let Some(backups) = self.service.backups.clone() else {
            return;
        };
        self.expiring = true;
        self.last_expire = Some(Instant::now());
        self.tasks.spawn(async move {
            let expired = detached(EXPIRE_TIMEOUT, move || async move {
                backups.expire(Utc::now()).await
            })
            .await;
            match expired {
                Ok(Some(Ok(report))) => tracing::info!(
                    deleted = report.deleted.len(),
                    kept_for_increments = report.kept_for_dependents.len(),
                    leftovers_removed = report.orphans_removed.len(),
                    "backup retention done"
                ),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "backup retention failed; it runs again after the next backup")
                }
                Ok(None) => {
                    tracing::warn!(timeout = ?EXPIRE_TIMEOUT, "backup retention timed out; it runs again after the next backup")
                }
                Err(e) => tracing::error!(error = %e, "backup retention failed"),
            }
            Done::Expired
        });
    }

    /// Reports a problem with a proc's backups once per term.
    fn warn_once(&mut self, app: &str, proc: &str, instance: Option<u32>, message: String) {
        if !self.warned.insert(format!("{app}/{proc}: {message}")) {
            return;
        }
        let ctx = self.ctx.clone();
        let (app, proc) = (app.to_owned(), proc.to_owned());
        self.tasks.spawn(async move {
            ctx.event(
                &app,
                Some(&proc),
                PlannedEvent {
                    kind: EventKind::BackupFailed,
                    severity: Severity::Warning,
                    message,
                    instance,
                },
                None,
            )
            .await;
            Done::Noted
        });
    }

    /// Every (running instance, policy) pair: the job and its schedule.
    fn candidates(&mut self) -> Vec<(Job, Schedule)> {
        let mut out = Vec::new();
        let mut problems: Vec<(String, String, Option<u32>, String)> = Vec::new();
        let mut wanted: Vec<Located> = Vec::new();
        {
            let state = self.ctx.state();
            for ((app, proc), d) in &state.desired {
                if d.backups.is_empty() {
                    continue;
                }
                let policies: Vec<(&VolumeBackup, Policy)> = d
                    .backups
                    .iter()
                    .filter_map(|b| match policy_of(b) {
                        Ok(p) if d.volumes.contains(&b.path) => Some((b, p)),
                        Ok(_) => {
                            problems.push((
                                app.clone(),
                                proc.clone(),
                                None,
                                format!("backup of {} is not taken: it is not one of the proc's volumes", b.path),
                            ));
                            None
                        }
                        Err(e) => {
                            problems.push((
                                app.clone(),
                                proc.clone(),
                                None,
                                format!("backup of {} is not taken: {e}", b.path),
                            ));
                            None
                        }
                    })
                    .collect();
                if policies.is_empty() {
                    continue;
                }
                for n in 1..=d.instances {
                    let Some(found) = locate(&state, (app, proc), d, n) else {
                        continue;
                    };
                    for (b, p) in &policies {
                        wanted.push(Located {
                            path: b.path.clone(),
                            policy: Some(p.clone()),
                            ..found.clone()
                        });
                    }
                }
            }
        }
        for (app, proc, n, message) in problems {
            self.warn_once(&app, &proc, n, message);
        }
        for l in wanted {
            let schedule = l.policy.as_ref().map(|p| p.schedule.clone());
            match self.job(l) {
                Ok(job) => {
                    if let Some(s) = schedule {
                        out.push((job, s));
                    }
                }
                Err(e) => tracing::debug!(error = %e, "backup candidate skipped"),
            }
        }
        out
    }

    /// The job for a requested backup.
    fn resolve(&self, app: &str, proc: &str, n: u32, path: &str) -> Result<Job, BackupError> {
        let located = {
            let state = self.ctx.state();
            let id = (app.to_owned(), proc.to_owned());
            let d = state.desired.get(&id).ok_or_else(|| {
                BackupError::NotFound(format!(
                    "{app} has no proc {proc} (deployed and readable); `lain ps` lists its procs"
                ))
            })?;
            if !d.volumes.iter().any(|v| v == path) {
                return Err(BackupError::NotFound(format!(
                    "{path} is not a volume of {app}/{proc}; its volumes are: {}",
                    if d.volumes.is_empty() {
                        "none".to_owned()
                    } else {
                        d.volumes.join(", ")
                    }
                )));
            }
            if n == 0 || n > d.instances {
                return Err(BackupError::NotFound(format!(
                    "{app}/{proc} has no instance {n} (it has {}); `lain ps` lists them",
                    d.instances
                )));
            }
            let found = locate(&state, (&id.0, &id.1), d, n).ok_or_else(|| {
                BackupError::NotRunning(format!(
                    "instance {n} of {app}/{proc} is not running on a reachable node; its volume can be backed up once it runs (`lain ps` shows its state)"
                ))
            })?;
            // A manual backup is a full one, with the volume's hooks and
            // retention when it has a policy (kept forever otherwise).
            let policy = d
                .backups
                .iter()
                .filter(|b| b.path == path)
                .find_map(|b| policy_of(b).ok())
                .map(|p| Policy {
                    mode: BackupMode::Full,
                    ..p
                });
            Located {
                path: path.to_owned(),
                policy,
                ..found
            }
        };
        self.job(located)
    }

    fn job(&self, l: Located) -> Result<Job, BackupError> {
        let key = VolumeKey::new(&l.app, &l.proc, l.instance, &l.path)
            .map_err(|e| BackupError::NotFound(e.to_string()))?;
        let access = self
            .ctx
            .access(&l.node, &l.endpoint, &l.address)
            .map_err(|e| {
                BackupError::Failed(format!(
                    "cannot reach node {}: {e} (check its registration, `lain node list`)",
                    l.node
                ))
            })?;
        let (mode, expire, pre_run, post_run) = match l.policy {
            Some(p) => (p.mode, p.expire, p.pre_run, p.post_run),
            None => (BackupMode::Full, Expire::NEVER, None, None),
        };
        Ok(Job {
            volume: volume_name(&l.app, &l.proc, l.instance, &l.path),
            key,
            node: l.node,
            container: l.container,
            image: l.image,
            engine: access.engine,
            mode,
            expire,
            pre_run,
            post_run,
        })
    }
}

/// A running instance found in the reconciler's state.
#[derive(Clone)]
struct Located {
    app: String,
    proc: String,
    instance: u32,
    node: String,
    endpoint: lain_store::DockerEndpoint,
    address: String,
    container: String,
    image: String,
    path: String,
    policy: Option<Policy>,
}

/// Instance `n`'s running container (the newest, should a rollout have
/// two) on a node that can be acted on.
fn locate(
    state: &crate::reconcile::state::State,
    id: (&String, &String),
    d: &DesiredProc,
    n: u32,
) -> Option<Located> {
    let records = state.records.get(&(id.0.clone(), id.1.clone()))?;
    let r = records
        .values()
        .filter(|r| {
            r.obs.instance == n
                && r.obs.state == InstanceState::Running
                && r.obs.container_id.is_some()
        })
        .max_by_key(|r| (r.obs.generation, r.obs.started_at_ms))?;
    if !matches!(
        state.node_view(&r.obs.node),
        NodeView::Alive | NodeView::Draining | NodeView::Evacuating
    ) {
        return None;
    }
    let reg = state.nodes.get(&r.obs.node)?;
    Some(Located {
        app: id.0.clone(),
        proc: id.1.clone(),
        instance: n,
        node: r.obs.node.clone(),
        endpoint: reg.docker.clone(),
        address: reg.address.clone(),
        container: r.obs.container_id.clone()?,
        image: if r.obs.image.is_empty() {
            d.image.clone()
        } else {
            r.obs.image.clone()
        },
        path: String::new(),
        policy: None,
    })
}

fn instance_name(key: &VolumeKey) -> String {
    format!(
        "instance {} of {}/{}",
        key.instance(),
        key.app(),
        key.proc()
    )
}

/// Takes one backup: pre_run, export and store, post_run.
async fn take(ctx: &Ctx, service: &BackupService, job: &Job) -> Result<BackupMeta, BackupError> {
    let backups = service.backups()?;
    let _slot = service
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| BackupError::Failed("the backup runner is stopping".into()))?;
    let what = format!("{} of {}", job.key.volume(), instance_name(&job.key));
    let hook_timeout = service.settings.hook_timeout;
    if let Some(cmd) = &job.pre_run {
        run_hook(&job.engine, &job.container, cmd, hook_timeout)
            .await
            .map_err(|detail| BackupError::PreRun {
                what: what.clone(),
                detail,
            })?;
    }
    let timeout = service.settings.timeout;
    let (engine, volume, image) = (job.engine.clone(), job.volume.clone(), job.image.clone());
    let (backups, key, mode, expire) = (backups.clone(), job.key.clone(), job.mode, job.expire);
    let stored = detached(timeout, move || async move {
        let tar = engine
            .export_volume(&volume, &image)
            .await
            .map_err(|e| format!("cannot export it: {e}"))?;
        let reader = tokio_util::io::StreamReader::new(
            tar.map(|chunk| chunk.map_err(std::io::Error::other)),
        );
        backups
            .store_at(&key, mode, reader, expire, Utc::now())
            .await
            .map_err(|e| format!("cannot store it: {e}"))
    })
    .await
    .and_then(|r| {
        r.unwrap_or_else(|| {
            Err(format!(
                "it took longer than {timeout:?} (raise [backup] timeout_secs for large volumes)"
            ))
        })
    });
    // After a failed export too: whatever pre_run paused must resume.
    if let Some(cmd) = &job.post_run {
        if let Err(detail) = run_hook(&job.engine, &job.container, cmd, hook_timeout).await {
            ctx.event(
                job.key.app(),
                Some(job.key.proc()),
                PlannedEvent {
                    kind: EventKind::BackupFailed,
                    severity: Severity::Warning,
                    message: format!("post_run of {what} failed after the backup: {detail}"),
                    instance: Some(job.key.instance()),
                },
                None,
            )
            .await;
        }
    }
    stored.map_err(|e| BackupError::Failed(format!("backup of {what} failed: {e}")))
}

/// Runs `sh -c cmd` in the container, bounded by `timeout`; `Err` says
/// how it failed, with the end of its output. A command still running at
/// the deadline keeps running (the Engine API cannot stop an exec).
async fn run_hook(
    engine: &Engine,
    container: &str,
    cmd: &str,
    timeout: Duration,
) -> Result<(), String> {
    use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
    let docker = engine.client(timeout + Duration::from_secs(5));
    let run = async {
        let exec = engine
            .short(
                "exec create",
                container,
                docker.create_exec(
                    container,
                    CreateExecOptions {
                        cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), cmd.to_owned()]),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                ),
            )
            .await
            .map_err(|e| e.to_string())?;
        let started = engine
            .short(
                "exec start",
                container,
                docker.start_exec(
                    &exec.id,
                    Some(StartExecOptions {
                        detach: false,
                        ..Default::default()
                    }),
                ),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut tail: Vec<u8> = Vec::new();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = output.next().await {
                let Ok(chunk) = item else { break };
                tail.extend_from_slice(&chunk.into_bytes());
                if tail.len() > 4 * HOOK_OUTPUT_KEEP {
                    tail.drain(..tail.len() - 4 * HOOK_OUTPUT_KEEP);
                }
            }
        }
        // The output ends when the command does; its exit code may take
        // a moment to show.
        let mut pause = Duration::from_millis(20);
        for _ in 0..20 {
            let state = engine
                .short("exec inspect", container, docker.inspect_exec(&exec.id))
                .await
                .map_err(|e| e.to_string())?;
            if state.running != Some(true) {
                return Ok((state.exit_code, tail));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        Err("its output ended but the engine still reports it running".to_owned())
    };
    let (code, tail) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| {
            format!("`{cmd}` did not finish within {timeout:?} (it may still run in the container; raise [backup] hook_timeout_secs if it needs longer)")
        })??;
    if code == Some(0) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&tail);
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(HOOK_OUTPUT_KEEP)
        .map_or(0, |(i, _)| i);
    Err(format!(
        "`{cmd}` exited with {}{}",
        code.map_or("an unknown code".to_owned(), |c| format!("code {c}")),
        if text.is_empty() {
            String::new()
        } else {
            format!("; its output ended with: {}", &text[start..])
        }
    ))
}

// ---------------------------------------------------------------------
// Restores (part of a rollout)
// ---------------------------------------------------------------------

/// Why a container could not be created after a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreFailure {
    /// Retrying cannot help: the instance fails, and so does the rollout.
    Permanent(String),
    /// Try again on the next round (the rollout's deadline still runs).
    Transient(String),
}

/// Before instance `record`'s container is created: waits while a
/// restore into any of its volumes runs, and when `d.restore` names this
/// instance and has not been carried out yet, writes the backup into the
/// volume and records the request.
pub async fn restore_before_create(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    d: &DesiredProc,
) -> Result<(), RestoreFailure> {
    let n = record.obs.instance;
    let service = ctx.settings.backup.clone();
    if let Some(s) = &service {
        for path in &d.volumes {
            let volume = volume_name(&d.app, &d.proc, n, path);
            if s.is_restoring(&volume) {
                return Err(RestoreFailure::Transient(format!(
                    "waiting for the restore into volume {path} to finish"
                )));
            }
        }
    }
    let Some(r) = d.restore.as_ref().filter(|r| r.instance == n) else {
        return Ok(());
    };
    let what = format!("backup {} of {}", r.backup, r.path);
    let permanent =
        |why: String| RestoreFailure::Permanent(format!("cannot restore {what}: {why}"));
    let transient =
        |why: String| RestoreFailure::Transient(format!("restoring {what}: {why}; retrying"));
    if !d.volumes.contains(&r.path) {
        return Err(permanent(format!(
            "{} is not a volume of the proc; restore one of its volumes",
            r.path
        )));
    }
    let marker = RestoreKey::new(&d.app, &d.proc, n).map_err(|e| permanent(e.to_string()))?;
    match ctx.writer.store().get(&marker).await {
        Ok(Some(done)) if done.value.request == r.request => return Ok(()),
        Ok(_) => {}
        Err(e) => return Err(transient(format!("cannot read {marker}: {e}"))),
    }
    let service = service.ok_or_else(|| permanent(BackupError::Off.to_string()))?;
    let backups = service
        .backups()
        .map_err(|e| permanent(e.to_string()))?
        .clone();
    let key = VolumeKey::new(&d.app, &d.proc, n, &r.path).map_err(|e| permanent(e.to_string()))?;
    let id = BackupId::parse(&r.backup).map_err(|e| permanent(e.to_string()))?;
    let volume = volume_name(&d.app, &d.proc, n, &r.path);
    let _claim = service
        .claim(&volume, Transfer::Restore)
        .map_err(|_| transient("the volume is being backed up right now".to_owned()))?;
    // The image is the helper's, and must be on the node first.
    let engine = &node.engine;
    match engine.image_present(&d.image).await {
        Ok(true) => {}
        Ok(false) => crate::reconcile::sync::pull(ctx, engine, &record.obs.node, &d.image)
            .await
            .map_err(transient)?,
        Err(e) => return Err(transient(e.to_string())),
    }
    tracing::info!(volume = %key, backup = %id, node = %record.obs.node, "restoring a backup");
    let timeout = service.settings.timeout;
    let too_long = || {
        transient(format!(
            "it took longer than {timeout:?} (raise [backup] timeout_secs for large volumes)"
        ))
    };
    // Read and checked in full before the volume is touched: a backup
    // that cannot be restored leaves the data as it was.
    let started = Instant::now();
    let (k, i) = (key.clone(), id.clone());
    let archive = detached(
        timeout,
        move || async move { backups.restore(&k, &i).await },
    )
    .await
    .map_err(transient)?
    .ok_or_else(too_long)?
    .map_err(|e| match e {
        lain_backup::Error::NotFound { .. }
        | lain_backup::Error::Corrupt { .. }
        | lain_backup::Error::Incomplete { .. }
        | lain_backup::Error::InvalidName { .. } => permanent(e.to_string()),
        e => transient(e.to_string()),
    });
    let restored = match archive {
        Err(e) => Err(e),
        Ok(archive) => tokio::time::timeout(
            timeout.saturating_sub(started.elapsed()),
            engine.import_volume(&volume, &d.image, archive.into_stream(), true),
        )
        .await
        .map_err(|_| too_long())
        .and_then(|r| {
            r.map_err(|e| match e {
                VolumeError::CannotReplace { .. } | VolumeError::InvalidName { .. } => {
                    permanent(e.to_string())
                }
                e => transient(e.to_string()),
            })
        }),
    };
    let bytes = match restored {
        Ok(b) => b,
        Err(e) => {
            ctx.metrics.restore(false);
            return Err(e);
        }
    };
    let mut txn = Transaction::new();
    let value = RestoreRecord {
        request: r.request.clone(),
        backup: r.backup.clone(),
        path: r.path.clone(),
        node: record.obs.node.clone(),
        restored_at_ms: lain_store::unix_millis(),
    };
    txn.put(&marker, &value)
        .map_err(|e| transient(e.to_string()))?;
    ctx.writer
        .commit(txn)
        .await
        .map_err(|e| transient(format!("cannot record the restore in etcd: {e}")))?;
    ctx.metrics.restore(true);
    ctx.event(
        &d.app,
        Some(&d.proc),
        PlannedEvent {
            kind: EventKind::BackupRestored,
            severity: Severity::Info,
            message: format!(
                "{what} restored into instance {n} on {} ({bytes} bytes)",
                record.obs.node
            ),
            instance: Some(n),
        },
        Some(d.generation),
    )
    .await;
    Ok(())
}

// ---------------------------------------------------------------------
// What the API shows
// ---------------------------------------------------------------------

/// One backup as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    /// Sorts by time: `YYYYMMDDTHHMMSSZ-xxxxxxxx`.
    pub id: String,
    pub proc: String,
    pub instance: u32,
    /// The volume's directory in the container.
    pub path: String,
    /// `full` or `increment` (what was stored).
    pub mode: String,
    /// What was asked for; an increment with nothing to build on is
    /// stored full, and `note` says why.
    pub requested_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at_ms: u64,
    /// `None`: kept until deleted by hand.
    pub expire_at_ms: Option<u64>,
    /// Bytes of the archive.
    pub size: u64,
    /// Entries in the volume, and bytes of file content.
    pub files: u64,
    pub volume_bytes: u64,
    /// The full backup an increment builds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

fn mode_name(m: BackupMode) -> &'static str {
    match m {
        BackupMode::Full => "full",
        BackupMode::Increment => "increment",
    }
}

fn ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

impl From<&BackupMeta> for BackupView {
    fn from(m: &BackupMeta) -> Self {
        BackupView {
            id: m.id.to_string(),
            proc: m.volume.proc().to_owned(),
            instance: m.volume.instance(),
            path: m.volume.volume().to_owned(),
            mode: mode_name(m.mode).to_owned(),
            requested_mode: mode_name(m.requested_mode).to_owned(),
            note: m.note.clone(),
            created_at_ms: ms(m.created_at),
            expire_at_ms: m.expire_at.map(ms),
            size: m.size,
            files: m.files,
            volume_bytes: m.volume_bytes,
            base: m.base.as_ref().map(ToString::to_string),
        }
    }
}

/// The filter of a list request.
pub fn filter(proc: Option<String>, instance: Option<u32>) -> ListFilter {
    ListFilter {
        proc,
        instance,
        volume: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    const RETRY: Duration = Duration::from_secs(900);

    #[test]
    fn due_from_the_newest_backup() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        let start = at(2024, 3, 10, 12, 0, 0);
        let newest = Some(at(2024, 3, 15, 3, 0, 4));
        // The next run after the newest backup: tomorrow 03:00.
        assert_eq!(
            next_due(&daily, newest, None, start, RETRY).unwrap(),
            at(2024, 3, 16, 3, 0, 0)
        );
        assert!(!is_due(
            &daily,
            newest,
            None,
            start,
            RETRY,
            at(2024, 3, 16, 2, 59, 59)
        ));
        assert!(is_due(
            &daily,
            newest,
            None,
            start,
            RETRY,
            at(2024, 3, 16, 3, 0, 0)
        ));
        // Missed runs (no leader for days) are caught up once, at once.
        let old = Some(at(2024, 3, 1, 3, 0, 0));
        assert!(is_due(
            &daily,
            old,
            None,
            start,
            RETRY,
            at(2024, 3, 15, 12, 0, 0)
        ));
    }

    #[test]
    fn without_backups_due_from_the_leaders_start() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        let start = at(2024, 3, 15, 12, 0, 0);
        assert_eq!(
            next_due(&daily, None, None, start, RETRY).unwrap(),
            at(2024, 3, 16, 3, 0, 0)
        );
        // Not at once after the leader started, even though 03:00 passed.
        assert!(!is_due(
            &daily,
            None,
            None,
            start,
            RETRY,
            at(2024, 3, 15, 12, 0, 30)
        ));
        let minutely = Schedule::parse("* * * * *").unwrap();
        assert!(!is_due(
            &minutely,
            None,
            None,
            start,
            RETRY,
            at(2024, 3, 15, 12, 0, 59)
        ));
        assert!(is_due(
            &minutely,
            None,
            None,
            start,
            RETRY,
            at(2024, 3, 15, 12, 1, 0)
        ));
    }

    #[test]
    fn failures_retry_after_the_delay_or_the_next_run() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        let start = at(2024, 3, 1, 0, 0, 0);
        let newest = Some(at(2024, 3, 14, 3, 0, 0));
        let failed = Some(at(2024, 3, 15, 3, 0, 2));
        // Retried 15 minutes later, not at once and not only tomorrow.
        assert_eq!(
            next_due(&daily, newest, failed, start, RETRY).unwrap(),
            at(2024, 3, 15, 3, 15, 2)
        );
        assert!(!is_due(
            &daily,
            newest,
            failed,
            start,
            RETRY,
            at(2024, 3, 15, 3, 10, 0)
        ));
        assert!(is_due(
            &daily,
            newest,
            failed,
            start,
            RETRY,
            at(2024, 3, 15, 3, 15, 2)
        ));
        // A schedule more frequent than the delay: its next run.
        let five = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            next_due(&five, newest, failed, start, RETRY).unwrap(),
            at(2024, 3, 15, 3, 5, 0)
        );
        // A failure older than the newest backup no longer counts.
        let stale = Some(at(2024, 3, 14, 2, 0, 0));
        assert_eq!(
            next_due(&daily, newest, stale, start, RETRY).unwrap(),
            at(2024, 3, 15, 3, 0, 0)
        );
        // A failure with no backup yet: the retry delay.
        assert_eq!(
            next_due(&daily, None, failed, start, RETRY).unwrap(),
            at(2024, 3, 15, 3, 15, 2)
        );
    }

    #[test]
    fn schedules_that_never_fire_are_never_due() {
        let never = Schedule::parse("0 0 30 2 *").unwrap();
        let start = at(2024, 1, 1, 0, 0, 0);
        assert!(next_due(&never, None, None, start, RETRY).is_err());
        assert!(!is_due(
            &never,
            None,
            None,
            start,
            RETRY,
            at(2030, 1, 1, 0, 0, 0)
        ));
    }

    #[test]
    fn policies_are_read_from_desired_procs() {
        let b = VolumeBackup {
            path: "/data".into(),
            mode: "increment".into(),
            schedule: "*/5 * * * *".into(),
            expire: "10d".into(),
            pre_run: "sync".into(),
            post_run: " ".into(),
        };
        let p = policy_of(&b).unwrap();
        assert_eq!(p.mode, BackupMode::Increment);
        assert_eq!(p.pre_run.as_deref(), Some("sync"));
        assert_eq!(p.post_run, None);
        let e = policy_of(&VolumeBackup {
            mode: "weekly".into(),
            ..b.clone()
        })
        .unwrap_err();
        assert!(e.contains("weekly") && e.contains("/data"), "{e}");
        let e = policy_of(&VolumeBackup {
            schedule: "61 * * * *".into(),
            ..b.clone()
        })
        .unwrap_err();
        assert!(e.contains("61 * * * *"), "{e}");
        assert!(policy_of(&VolumeBackup {
            expire: "10x".into(),
            ..b
        })
        .is_err());
    }

    #[test]
    fn volumes_are_claimed_one_transfer_at_a_time() {
        let s = Arc::new(BackupService::off());
        let a = s.claim("v1", Transfer::Backup).unwrap();
        assert_eq!(
            s.claim("v1", Transfer::Restore).err(),
            Some(Transfer::Backup)
        );
        let b = s.claim("v2", Transfer::Restore).unwrap();
        assert!(s.is_restoring("v2") && !s.is_restoring("v1"));
        drop(a);
        assert!(s.claim("v1", Transfer::Restore).is_ok());
        drop(b);
        assert!(!s.is_restoring("v2"));
    }

    #[test]
    fn requests_need_backups_on_and_a_leader() {
        let off = BackupService::off();
        assert_eq!(off.request("a", "w", 1, "/d").err(), Some(BackupError::Off));
        let dir = tempfile::tempdir().unwrap();
        let on = BackupService::new(
            Some(Backups::new(Target::dir(dir.path()).unwrap())),
            BackupSettings::default(),
        );
        assert_eq!(
            on.request("a", "w", 1, "/d").err(),
            Some(BackupError::NotLeader)
        );
        assert!(BackupError::Off.to_string().contains("[backup]"));
    }
}
