//! Making one node's Docker engine match one instance record: create and
//! start what is pending, restart what exited (with backoff, until a crash
//! loop), probe health, stop and remove what is stopping.
//!
//! Each function looks at one record and the container found for it and
//! returns the record's next value; the worker writes it. Nothing here
//! decides which instances should exist: that is [`super::plan`].

use std::time::Duration;

use lain_store::{
    secret, DesiredProc, EventKind, Health, HealthCheck, InstanceState, ObservedInstance,
    SecretKey, SecretTarget, Severity,
};
use zeroize::Zeroizing;

use super::plan::{NodeView, PlannedEvent, Record};
use super::spec::{container_name, network_name, volume_name};
use super::Ctx;
use crate::docker::Engine;
use crate::runtime::{
    ContainerSpec, ContainerState, LainContainer, RuntimeError, SecretEnv, SecretFile,
};
use crate::volumes::VolumeError;

/// Probes of a new instance come this often; healthy ones at the
/// configured interval.
pub const STARTING_PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// One HTTP or TCP probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// One command probe.
pub const COMMAND_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What syncing one record produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The record's next value (`None`: unchanged).
    pub put: Option<ObservedInstance>,
    /// The record is done with: delete it.
    pub delete: bool,
    pub event: Option<PlannedEvent>,
    /// The container as it is now, for the inventory (`Err(id)`: removed).
    pub container: Option<Result<LainContainer, String>>,
    /// Come back within this long (backoff, probe interval).
    pub again_in: Option<Duration>,
}

/// Where a record's node is and how to reach it.
#[derive(Clone)]
pub struct NodeAccess {
    pub engine: Engine,
    /// The node's address: published ports bind here, probes go here.
    pub address: String,
}

/// Per-instance probe memory, kept by the worker between rounds.
#[derive(Debug, Default, Clone)]
pub struct ProbeState {
    pub last: Option<std::time::Instant>,
    pub failures: u32,
    pub last_error: Option<String>,
}

fn now_ms() -> u64 {
    lain_store::unix_millis()
}

fn with_state(
    obs: &ObservedInstance,
    state: InstanceState,
    health: Health,
    message: Option<String>,
) -> ObservedInstance {
    let mut next = obs.clone();
    next.state = state;
    next.health = health;
    next.message = message;
    next.updated_at_ms = now_ms();
    next
}

/// The address routers and probes use for a container.
pub fn address_of(
    node_address: &str,
    c: &LainContainer,
    d: Option<&DesiredProc>,
) -> Option<String> {
    d.and_then(|d| d.port)?;
    c.host_port.map(|p| format!("{node_address}:{p}"))
}

/// Syncs a record in `Pending`/`Creating`: adopts the container if one
/// exists for its slot, otherwise pulls, creates and starts one.
pub async fn create(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    found: Option<&LainContainer>,
    target: &DesiredProc,
) -> Outcome {
    let obs = &record.obs;
    let mut out = Outcome::default();
    // After a failed start, wait out the restart backoff first.
    let now = now_ms();
    let recent = recent_restarts(ctx, obs, now);
    if let Some(last) = recent.last() {
        let due = last + backoff_ms(ctx, recent.len() - 1);
        if now < due {
            out.again_in = Some(Duration::from_millis(due - now));
            return out;
        }
    }
    // A container found only `Created` may lack its secret files (a create
    // that timed out half-way): never start it, make it again.
    let found = match found {
        Some(c) if c.state == ContainerState::Created => {
            if let Err(e) = node.engine.remove(&c.id).await {
                let mut next = obs.clone();
                next.message = Some(format!("cannot remove a half-made container: {e}"));
                out.put = Some(next);
                out.again_in = Some(Duration::from_secs(2));
                return out;
            }
            out.container = Some(Err(c.id.clone()));
            None
        }
        other => other,
    };
    // A running container with secrets, for a record that never got past
    // pending: deployd may have died between starting it and writing its
    // secrets, leaving the wrapper waiting on stdin. Stopping it and
    // starting it again resends them (a harmless restart otherwise).
    let stopped;
    let found = match found {
        Some(c) if c.state == ContainerState::Running && c.secrets => {
            if let Err(e) = node.engine.stop(&c.id, Duration::from_secs(1)).await {
                let message = format!("cannot restart a container to resend its secrets: {e}");
                if obs.message.as_deref() != Some(message.as_str()) {
                    let mut next = obs.clone();
                    next.message = Some(message);
                    out.put = Some(next);
                }
                out.again_in = Some(Duration::from_secs(2));
                return out;
            }
            let mut c = c.clone();
            c.state = ContainerState::Exited;
            stopped = c;
            Some(&stopped)
        }
        other => other,
    };
    // A drain with volumes: the data first, from the node being emptied
    // (whose container of this instance is gone: rollouts of instances
    // with volumes stop the old one first). Cleared once copied, so a
    // later re-create never copies stale data over newer.
    let copied;
    let obs = match (&obs.volumes_from, found) {
        (Some(from), None) if *from != obs.node => {
            let message = match copy_volumes(ctx, node, from, obs, target).await {
                Ok(true) => format!("volumes copied from node {from}"),
                Ok(false) => format!(
                    "node {from} is gone with this instance's volumes; it starts afresh here"
                ),
                Err(message) => {
                    if obs.message.as_deref() != Some(message.as_str()) {
                        let mut next = obs.clone();
                        next.message = Some(message);
                        out.put = Some(next);
                    }
                    out.again_in = Some(Duration::from_secs(5));
                    return out;
                }
            };
            copied = ObservedInstance {
                volumes_from: None,
                message: Some(message),
                ..obs.clone()
            };
            out.put = Some(copied.clone());
            &copied
        }
        _ => obs,
    };
    // A restore rollout writes the backup into the volume before the
    // container that mounts it exists (see crate::backup).
    if found.is_none() {
        match crate::backup::restore_before_create(ctx, node, record, target).await {
            Ok(()) => {}
            Err(crate::backup::RestoreFailure::Transient(message)) => {
                if obs.message.as_deref() != Some(message.as_str()) {
                    let mut next = obs.clone();
                    next.message = Some(message);
                    out.put = Some(next);
                }
                out.again_in = Some(Duration::from_secs(5));
                return out;
            }
            Err(crate::backup::RestoreFailure::Permanent(message)) => {
                out.put = Some(with_state(
                    obs,
                    InstanceState::Failed,
                    Health::Unhealthy,
                    Some(message),
                ));
                return out;
            }
        }
    }
    let t0 = std::time::Instant::now();
    let made = match found {
        Some(c) if c.state == ContainerState::Running => Ok((c.clone(), None)),
        Some(c) => secrets_for(ctx, node, record, c, Some(target))
            .await
            .map(|s| (c.clone(), s)),
        None => create_container(ctx, node, record, target)
            .await
            .map(|(c, s)| (c, Some(s))),
    };
    let (container, spec) = match made {
        Ok(made) => made,
        Err(message) => {
            // Keep the time of the first failure: the rollout deadline
            // counts from it.
            if obs.message.as_deref() != Some(message.as_str()) {
                let mut next = obs.clone();
                next.message = Some(message);
                out.put = Some(next);
            }
            out.again_in = Some(Duration::from_secs(5));
            return out;
        }
    };
    let t1 = t0.elapsed();
    let running = if container.state == ContainerState::Running {
        container.clone()
    } else {
        match start(node, &container, spec.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                // A start that fails (a command that does not exist) counts
                // as a crash: backoff, then a crash loop. The container is
                // made afresh on the next try.
                if node.engine.remove(&container.id).await.is_ok() {
                    out.container = Some(Err(container.id.clone()));
                }
                let mut recent = recent;
                recent.push(now);
                let why = format!("cannot start the container: {e}");
                let mut next = obs.clone();
                next.container_id = None;
                next.updated_at_ms = now;
                if recent.len() >= ctx.settings.crash_loop_restarts as usize {
                    next.state = InstanceState::Failed;
                    next.health = Health::Unhealthy;
                    next.message = Some(format!(
                        "crash loop: {why}; {} failed starts, restarts stopped until the next deploy",
                        recent.len()
                    ));
                    out.event = Some(PlannedEvent {
                        kind: EventKind::CrashLoop,
                        severity: Severity::Error,
                        message: format!(
                            "instance {} of {} cannot start ({e}); check the proc's cmd and image",
                            obs.instance, obs.release
                        ),
                        instance: Some(obs.instance),
                    });
                } else {
                    next.message = Some(why);
                    out.again_in = Some(Duration::from_millis(backoff_ms(ctx, recent.len() - 1)));
                }
                next.recent_restarts_ms = recent;
                out.put = Some(next);
                return out;
            }
        }
    };
    tracing::debug!(
        slot = %record.slot,
        node = %obs.node,
        made_ms = t1.as_millis() as u64,
        running_ms = t0.elapsed().as_millis() as u64,
        "container running"
    );
    let mut next = with_state(obs, InstanceState::Starting, Health::Starting, None);
    next.container_id = Some(running.id.clone());
    next.address = address_of(&node.address, &running, Some(target));
    next.started_at_ms = Some(running.started_at_ms.unwrap_or_else(now_ms));
    out.put = Some(next);
    out.container = Some(Ok(running));
    out.again_in = Some(STARTING_PROBE_INTERVAL);
    out
}

/// The restarts of an instance within the crash-loop window.
fn recent_restarts(ctx: &Ctx, obs: &ObservedInstance, now: u64) -> Vec<u64> {
    let window = u64::try_from(ctx.settings.crash_loop_window.as_millis()).unwrap_or(u64::MAX);
    obs.recent_restarts_ms
        .iter()
        .copied()
        .filter(|t| now.saturating_sub(*t) < window)
        .collect()
}

/// The delay before restart number `k + 1` within the window.
fn backoff_ms(ctx: &Ctx, k: usize) -> u64 {
    let s = &ctx.settings;
    let base = u64::try_from(s.restart_backoff.as_millis()).unwrap_or(u64::MAX);
    let max = u64::try_from(s.restart_backoff_max.as_millis()).unwrap_or(u64::MAX);
    base.saturating_mul(1u64 << k.min(20)).min(max)
}

/// Copies every volume of instance `obs` from node `from` to `node`
/// through the engines' archive endpoints, replacing what `node` had.
/// `Ok(false)` when `from` is lost or gone and the proc is not stateful:
/// its data went with the node, and it starts afresh (as when its node is
/// lost under it). `Err` is the message for `lain ps`.
async fn copy_volumes(
    ctx: &Ctx,
    node: &NodeAccess,
    from: &str,
    obs: &ObservedInstance,
    d: &DesiredProc,
) -> Result<bool, String> {
    let (source, view) = {
        let state = ctx.state();
        let source = state
            .nodes
            .get(from)
            .filter(|_| state.actionable(from))
            .map(|r| (r.docker.clone(), r.address.clone()));
        (source, state.node_view(from))
    };
    let Some((endpoint, address)) = source else {
        if !d.stateful && matches!(view, NodeView::Lost | NodeView::Gone) {
            return Ok(false);
        }
        return Err(format!(
            "waiting to copy its volumes from node {from}, which is not reachable; bring the node back{}",
            if d.stateful {
                " (a stateful instance never starts without its data)"
            } else {
                ", or remove it (`lain node rm`) to start this instance afresh"
            }
        ));
    };
    let src = ctx
        .access(from, &endpoint, &address)
        .map_err(|e| format!("cannot reach node {from} to copy its volumes: {e}"))?;
    // The helper containers are made from the proc's image, which the
    // source node may not have (it ran an older release).
    ensure_image(ctx, &src.engine, from, &d.image).await?;
    ensure_image(ctx, &node.engine, &obs.node, &d.image).await?;
    for path in &d.volumes {
        let volume = volume_name(&d.app, &d.proc, obs.instance, path);
        let tar = match src.engine.export_volume(&volume, &d.image).await {
            Ok(tar) => tar,
            // Never written there: nothing to copy, and nothing older on
            // this node may stand in for it.
            Err(VolumeError::NotFound { .. }) => {
                node.engine.remove_volume(&volume).await.map_err(|e| {
                    format!("cannot clear volume {volume} on node {}: {e}", obs.node)
                })?;
                continue;
            }
            Err(e) => return Err(format!("cannot read volume {volume} on node {from}: {e}")),
        };
        let bytes = node
            .engine
            .import_volume(&volume, &d.image, tar, true)
            .await
            .map_err(|e| format!("cannot copy volume {volume} from node {from}: {e}"))?;
        tracing::info!(volume = %volume, from, to = %obs.node, bytes, "volume copied");
    }
    Ok(true)
}

/// Starts a container and inspects it (for its host port and start time).
/// One made with secrets gets them from `spec` (see [`secrets_for`]).
async fn start(
    node: &NodeAccess,
    c: &LainContainer,
    spec: Option<&ContainerSpec>,
) -> Result<LainContainer, RuntimeError> {
    match (c.secrets, spec) {
        (false, _) => node.engine.start(&c.id).await?,
        (true, Some(s)) => {
            node.engine
                .start_with_secrets(&c.id, &s.secret_files, &s.secret_env)
                .await?
        }
        (true, None) => {
            return Err(RuntimeError::InvalidSpec {
                name: c.name.clone(),
                detail: "it was made with secrets, and they are not at hand".into(),
            })
        }
    }
    Ok(node
        .engine
        .inspect(&c.id)
        .await?
        .unwrap_or_else(|| c.clone()))
}

/// The secrets a container made with them needs at each start
/// ([`crate::runtime::Engine::start_with_secrets`]): read again from etcd
/// for the record's spec, which must be `d`'s. `None` for a container
/// without secrets.
async fn secrets_for(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    c: &LainContainer,
    d: Option<&DesiredProc>,
) -> Result<Option<ContainerSpec>, String> {
    if !c.secrets {
        return Ok(None);
    }
    let Some(d) = d.filter(|d| super::spec::spec_hash(d) == record.obs.spec) else {
        return Err(
            "its secrets are written at each start from the proc's current spec, which is not the one it was made with; deploy again to replace it"
                .into(),
        );
    };
    container_spec(ctx, node, record, d).await.map(Some)
}

/// The registry part of an image reference (`host[:port]` before the
/// first `/`), when it names one.
fn registry_of(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Pulls the image if needed, resolves secrets and creates the container;
/// on a name conflict adopts the existing one. Returns it with its spec
/// (whose secrets it needs at start). `Err` is the message for `lain ps`.
async fn create_container(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    d: &DesiredProc,
) -> Result<(LainContainer, ContainerSpec), String> {
    let engine = &node.engine;
    let name = container_name(&d.app, &d.proc, &record.slot);
    let spec = container_spec(ctx, node, record, d).await?;
    let mut conflicts = 0;
    let id = loop {
        match create_pulling(ctx, engine, &record.obs.node, &spec).await? {
            Made::Id(id) => break id,
            Made::Conflict if conflicts < 2 => {
                conflicts += 1;
                // deployd made it and died before recording it: adopt.
                match engine.inspect(&name).await {
                    Ok(Some(c))
                        if c.slot == record.slot && c.state == ContainerState::Created =>
                    {
                        // Half made (see `create`): remove it and try again.
                        engine.remove(&c.id).await.map_err(|e| e.to_string())?;
                    }
                    Ok(Some(c)) if c.slot == record.slot && c.spec_hash == record.obs.spec => {
                        return Ok((c, spec))
                    }
                    // Removed meanwhile: create it again.
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        return Err(format!(
                            "a container named {name} exists on node {} and is not this instance's; remove it there with `docker rm -f {name}`",
                            record.obs.node
                        ))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Made::Conflict => {
                return Err(format!(
                    "the name {name} stays taken on node {}; remove it there with `docker rm -f {name}`",
                    record.obs.node
                ))
            }
        }
    };
    match engine.inspect(&id).await {
        Ok(Some(c)) => Ok((c, spec)),
        Ok(None) => Err(format!(
            "container {id} vanished right after it was created"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// What [`create_pulling`] made.
pub enum Made {
    Id(String),
    /// The name is taken: the caller decides whether to adopt or remove.
    Conflict,
}

/// Creates `spec`'s container on its network, pulling the image or making
/// the network when the engine lacks them (once each). Created first: the
/// image is nearly always there, and a check up front is one more engine
/// call on every start. `Err` is the message for `lain ps`.
pub async fn create_pulling(
    ctx: &Ctx,
    engine: &crate::docker::Engine,
    node: &str,
    spec: &ContainerSpec,
) -> Result<Made, String> {
    let network = |e: RuntimeError| format!("cannot set up the network {}: {e}", spec.network);
    engine
        .ensure_network(&spec.network)
        .await
        .map_err(network)?;
    let (mut pulled, mut networked) = (false, false);
    loop {
        match engine.create(spec).await {
            Ok(id) => return Ok(Made::Id(id)),
            Err(RuntimeError::ImageMissing { .. }) if !pulled => {
                pulled = true;
                pull(ctx, engine, node, &spec.image).await?;
            }
            Err(RuntimeError::NetworkMissing { .. }) if !networked => {
                networked = true;
                engine
                    .ensure_network(&spec.network)
                    .await
                    .map_err(network)?;
            }
            Err(RuntimeError::NameConflict { .. }) => return Ok(Made::Conflict),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Starts a created container, writing its secrets first when it has any.
pub async fn start_spec(
    engine: &crate::docker::Engine,
    id: &str,
    spec: &ContainerSpec,
) -> Result<(), RuntimeError> {
    if spec.has_secrets() {
        engine
            .start_with_secrets(id, &spec.secret_files, &spec.secret_env)
            .await
    } else {
        engine.start(id).await
    }
}

/// Pulls `image` onto `node` unless the engine has it already.
pub async fn ensure_image(
    ctx: &Ctx,
    engine: &crate::docker::Engine,
    node: &str,
    image: &str,
) -> Result<(), String> {
    if engine
        .image_present(image)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    pull(ctx, engine, node, image).await
}

/// Pulls `image` onto `node` with the registry credentials deployd has.
pub async fn pull(
    ctx: &Ctx,
    engine: &crate::docker::Engine,
    node: &str,
    image: &str,
) -> Result<(), String> {
    tracing::info!(image = %image, node = %node, "pulling image");
    let credentials = match &ctx.registry {
        Some(c) => {
            let token = c
                .token()
                .await
                .map_err(|e| format!("cannot get a token to pull {image}: {e}"))?;
            Some(bollard::auth::DockerCredentials {
                username: Some(c.client_id().to_owned()),
                password: Some(token.to_string()),
                serveraddress: registry_of(image).map(str::to_owned),
                ..Default::default()
            })
        }
        None => None,
    };
    let mut last = std::time::Instant::now();
    engine
        .pull(image, credentials, |p| {
            if last.elapsed() > Duration::from_secs(2) {
                last = std::time::Instant::now();
                tracing::info!(status = %p.status, current = ?p.current, total = ?p.total, "pull progress");
            }
        })
        .await
        .map_err(|e| e.to_string())
}

/// The container for a record: env, limits, port, network, volumes and
/// secrets.
async fn container_spec(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    d: &DesiredProc,
) -> Result<ContainerSpec, String> {
    spec_for(
        ctx,
        node,
        d,
        Slot {
            instance: record.obs.instance,
            slot: &record.slot,
            generation: record.obs.generation,
            spec_hash: &record.obs.spec,
        },
    )
    .await
}

/// Which container of a proc a spec is for.
pub struct Slot<'a> {
    pub instance: u32,
    pub slot: &'a str,
    pub generation: u64,
    pub spec_hash: &'a str,
}

/// The container of `d` for `slot` on `node`: env, limits, port, network,
/// volumes and secrets (read from etcd and opened).
pub async fn spec_for(
    ctx: &Ctx,
    node: &NodeAccess,
    d: &DesiredProc,
    slot: Slot<'_>,
) -> Result<ContainerSpec, String> {
    let n = slot.instance;
    let mut env: Vec<(String, String)> = vec![
        ("LAIN_APP".into(), d.app.clone()),
        ("LAIN_PROC".into(), d.proc.clone()),
        ("LAIN_INSTANCE".into(), n.to_string()),
        ("LAIN_RELEASE".into(), d.release.clone()),
    ];
    env.extend(d.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut secret_files = Vec::new();
    let mut secret_env = Vec::new();
    for s in &d.secrets {
        let value = read_secret(ctx, &d.app, &s.name, s.version).await?;
        match &s.target {
            SecretTarget::Env { var } => {
                // Moved, not copied: the bytes stay in zeroed memory.
                let mut value = value;
                let bytes = std::mem::take(&mut *value);
                let text = String::from_utf8(bytes).map_err(|e| {
                    drop(Zeroizing::new(e.into_bytes()));
                    format!(
                        "secret {} is not UTF-8 text and cannot go into ${var}; mount it as a file instead",
                        s.name
                    )
                })?;
                // Never in the container's config: the wrapper exports it.
                secret_env.push(SecretEnv {
                    name: var.clone(),
                    value: Zeroizing::new(text),
                });
            }
            SecretTarget::File { path } => secret_files.push(SecretFile {
                path: path.clone(),
                contents: value,
                mode: 0,
            }),
        }
    }
    Ok(ContainerSpec {
        name: container_name(&d.app, &d.proc, slot.slot),
        app: d.app.clone(),
        proc: d.proc.clone(),
        instance: n,
        slot: slot.slot.to_owned(),
        generation: slot.generation,
        spec_hash: slot.spec_hash.to_owned(),
        image: d.image.clone(),
        cmd: d.cmd.clone(),
        entrypoint: d.entrypoint.clone(),
        user: d.user.clone(),
        workdir: d.workdir.clone(),
        env,
        cpu_millis: d.cpu_millis,
        memory_bytes: d.memory_bytes,
        port: d.port,
        host_ip: node.address.clone(),
        network: network_name(&d.app),
        volumes: d
            .volumes
            .iter()
            .map(|p| (volume_name(&d.app, &d.proc, n, p), p.clone()))
            .collect(),
        secret_files,
        secret_env,
        extra_labels: d.labels.clone(),
        aliases: Vec::new(),
        portal_client: None,
    })
}

/// Reads and opens an app secret.
async fn read_secret(
    ctx: &Ctx,
    app: &str,
    name: &str,
    version: u64,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let key = SecretKey::new(app, name, version).map_err(|e| format!("bad secret name: {e}"))?;
    let Some(secrets_key) = ctx.secrets_key.as_ref() else {
        return Err(format!(
            "the proc uses secret {name} but deployd has no secrets_key_file; configure the cluster secrets key"
        ));
    };
    let entry = ctx
        .writer
        .store()
        .get(&key)
        .await
        .map_err(|e| format!("cannot read secret {name}: {e}"))?
        .ok_or_else(|| {
            format!(
                "version {version} of secret {name} is not in etcd; set it with `lain secret set {app} {name}` and deploy again"
            )
        })?;
    secret::open_for(secrets_key, &key, &entry.value.value).map_err(|e| {
        format!("cannot open secret {name}: {e} (was it sealed with another cluster secrets key?)")
    })
}

/// Syncs a record whose container should run (`Starting`, `Running`,
/// `Exited`, or `Lost` on a node that came back): restarts it when it
/// exited, probes it when it runs.
pub async fn keep_running(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    c: &LainContainer,
    target: Option<&DesiredProc>,
    probe: &mut ProbeState,
) -> Outcome {
    let obs = &record.obs;
    let mut out = Outcome::default();
    let s = &ctx.settings;
    match c.state {
        ContainerState::Running => {}
        ContainerState::Paused | ContainerState::Restarting | ContainerState::Removing => {
            out.again_in = Some(Duration::from_secs(1));
            return out;
        }
        ContainerState::Created => {
            // Created but never started (deployd died in between): it may
            // lack its secret files, so it is made again.
            let mut next = with_state(
                obs,
                InstanceState::Pending,
                Health::Unknown,
                Some("its container was never started; creating it again".into()),
            );
            next.container_id = None;
            out.put = Some(next);
            return out;
        }
        ContainerState::Exited | ContainerState::Dead | ContainerState::Other => {
            if obs.state == InstanceState::Draining {
                out.put = Some(with_state(
                    obs,
                    InstanceState::Stopping,
                    Health::Unknown,
                    None,
                ));
                return out;
            }
            // `list` does not say when it exited; `inspect` does.
            let c = match node.engine.inspect(&c.id).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => {
                    out.container = Some(Err(c.id.clone()));
                    return out;
                }
                Err(_) => c.clone(),
            };
            let now = now_ms();
            let window = u64::try_from(s.crash_loop_window.as_millis()).unwrap_or(u64::MAX);
            let recent = recent_restarts(ctx, obs, now);
            let code = c.exit_code.unwrap_or(-1);
            let why = if c.oom_killed {
                format!("killed for using more than its memory limit (exit code {code})")
            } else if c.secrets && code == 127 {
                // The secrets wrapper's `exec` of a command that does not
                // exist (without secrets the start itself fails).
                "exited with code 127: command not found (check the proc's cmd and image)"
                    .to_owned()
            } else {
                format!("exited with code {code}")
            };
            if recent.len() >= s.crash_loop_restarts as usize {
                let message = format!(
                    "crash loop: {why}, {} restarts in {} s; restarts stopped until the next deploy",
                    recent.len(),
                    window / 1000
                );
                let mut next = with_state(
                    obs,
                    InstanceState::Failed,
                    Health::Unhealthy,
                    Some(message.clone()),
                );
                next.recent_restarts_ms = recent;
                out.put = Some(next);
                out.event = Some(PlannedEvent {
                    kind: EventKind::CrashLoop,
                    severity: Severity::Error,
                    message: format!(
                        "instance {} of {} is in a crash loop ({why}); see `lain logs`",
                        obs.instance, obs.release
                    ),
                    instance: Some(obs.instance),
                });
                out.container = Some(Ok(c));
                return out;
            }
            let backoff = backoff_ms(ctx, recent.len());
            let exited_at = c.finished_at_ms.unwrap_or(now);
            let due = exited_at + backoff;
            if now < due {
                let message = format!("{why}; restarting in {} ms", due - now);
                if obs.state != InstanceState::Exited {
                    out.put = Some(with_state(
                        obs,
                        InstanceState::Exited,
                        Health::Unhealthy,
                        Some(message),
                    ));
                }
                out.again_in = Some(Duration::from_millis(due - now));
                out.container = Some(Ok(c));
                return out;
            }
            let mut restarted = restart(ctx, node, record, &c, target).await;
            // Only a start that worked is a restart.
            let started = matches!(restarted.container, Some(Ok(_)));
            if let (true, Some(next)) = (started, restarted.put.as_mut()) {
                let mut recent = recent;
                recent.push(now);
                next.recent_restarts_ms = recent;
                next.message = Some(format!("restarted after it {why}"));
            }
            return restarted;
        }
    }

    // Running.
    if matches!(
        obs.state,
        InstanceState::Lost
            | InstanceState::Exited
            | InstanceState::Pending
            | InstanceState::Creating
    ) {
        let mut next = with_state(obs, InstanceState::Starting, Health::Starting, None);
        next.container_id = Some(c.id.clone());
        next.address = address_of(&node.address, c, target).or(next.address);
        out.put = Some(next);
        out.again_in = Some(STARTING_PROBE_INTERVAL);
        return out;
    }
    if obs.state == InstanceState::Draining {
        return out;
    }
    let interval = if obs.state == InstanceState::Starting {
        STARTING_PROBE_INTERVAL
    } else {
        s.health_interval
    };
    if let Some(elapsed) = probe.last.map(|t| t.elapsed()) {
        if elapsed < interval {
            out.again_in = Some(interval.saturating_sub(elapsed));
            return out;
        }
    }
    probe.last = Some(std::time::Instant::now());
    out.again_in = Some(interval);
    let address = obs
        .address
        .clone()
        .or_else(|| address_of(&node.address, c, target));
    let result = check(ctx, node, c, address.as_deref(), target).await;
    match (obs.state, result) {
        (InstanceState::Starting, Ok(())) => {
            probe.failures = 0;
            let mut next = with_state(obs, InstanceState::Running, Health::Healthy, None);
            next.address = address;
            out.put = Some(next);
        }
        (InstanceState::Starting, Err(e)) => {
            probe.last_error = Some(e.clone());
            let message = format!("starting: health check not passing yet: {e}");
            if obs.message.as_deref() != Some(message.as_str()) && probe.failures.is_multiple_of(10)
            {
                let mut next = obs.clone();
                next.message = Some(message);
                out.put = Some(next);
            }
            probe.failures += 1;
        }
        (_, Ok(())) => {
            probe.failures = 0;
            if obs.health != Health::Healthy || obs.state != InstanceState::Running {
                out.put = Some(with_state(
                    obs,
                    InstanceState::Running,
                    Health::Healthy,
                    None,
                ));
            }
        }
        (_, Err(e)) => {
            probe.failures += 1;
            if probe.failures >= s.unhealthy_after_failures && obs.health != Health::Unhealthy {
                out.put = Some(with_state(
                    obs,
                    InstanceState::Running,
                    Health::Unhealthy,
                    Some(format!(
                        "health check failed {} times in a row: {e}",
                        probe.failures
                    )),
                ));
            }
        }
    }
    out
}

/// Starts an existing container again (with its secrets read again).
async fn restart(
    ctx: &Ctx,
    node: &NodeAccess,
    record: &Record,
    c: &LainContainer,
    target: Option<&DesiredProc>,
) -> Outcome {
    let obs = &record.obs;
    let mut out = Outcome::default();
    let started = match secrets_for(ctx, node, record, c, target).await {
        Ok(spec) => start(node, c, spec.as_ref())
            .await
            .map_err(|e| e.to_string()),
        Err(message) => Err(message),
    };
    match started {
        Ok(fresh) => {
            let mut next = with_state(obs, InstanceState::Starting, Health::Starting, None);
            next.restarts += 1;
            next.container_id = Some(fresh.id.clone());
            next.started_at_ms = Some(fresh.started_at_ms.unwrap_or_else(now_ms));
            if let Some(p) = fresh.host_port {
                if let Some(a) = &obs.address {
                    if let Some((host, _)) = a.rsplit_once(':') {
                        next.address = Some(format!("{host}:{p}"));
                    }
                } else {
                    next.address = Some(format!("{}:{p}", node.address));
                }
            }
            out.put = Some(next);
            out.container = Some(Ok(fresh));
            out.again_in = Some(STARTING_PROBE_INTERVAL);
        }
        Err(e) => {
            let message = format!("cannot restart the container: {e}");
            if obs.message.as_deref() != Some(message.as_str()) {
                let mut next = obs.clone();
                next.message = Some(message);
                out.put = Some(next);
            }
            out.again_in = Some(Duration::from_secs(2));
        }
    }
    out
}

/// One health probe: the proc's HTTP path, its command, a TCP connect to
/// its port, or (no port, no check) just running.
async fn check(
    ctx: &Ctx,
    node: &NodeAccess,
    c: &LainContainer,
    address: Option<&str>,
    d: Option<&DesiredProc>,
) -> Result<(), String> {
    let check = d.and_then(|d| d.healthcheck.as_ref());
    match (check, address) {
        (Some(HealthCheck::Command { cmd }), _) => {
            match node
                .engine
                .exec_check(&c.id, cmd, COMMAND_PROBE_TIMEOUT)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("{} did not exit 0", cmd.join(" "))),
                Err(e) => Err(e.to_string()),
            }
        }
        (Some(HealthCheck::Http { path }), Some(addr)) => {
            let url = format!("http://{addr}{path}");
            match ctx.http.get(&url).timeout(PROBE_TIMEOUT).send().await {
                Ok(r) if r.status().is_success() || r.status().is_redirection() => Ok(()),
                Ok(r) => Err(format!("GET {path} answered {}", r.status())),
                Err(e) => Err(format!("GET {path} failed: {}", describe_reqwest(&e))),
            }
        }
        (_, Some(addr)) => {
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
                Err(_) => Err(format!("connect to {addr} timed out")),
            }
        }
        (Some(HealthCheck::Http { .. }), None) => {
            Err("the container has no published port to probe".into())
        }
        (None, None) => Ok(()),
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.to_string()
    }
}

/// Stops (SIGTERM, then SIGKILL after `kill_timeout`) and removes a
/// container.
pub async fn stop_and_remove(
    node: &NodeAccess,
    id: &str,
    kill_timeout: Duration,
) -> Result<(), RuntimeError> {
    node.engine.stop(id, kill_timeout).await?;
    node.engine.remove(id).await
}

#[cfg(test)]
mod registry_tests {
    #[test]
    fn the_registry_of_an_image() {
        use super::registry_of;
        assert_eq!(
            registry_of("10.0.0.1:5000/hello:release-1"),
            Some("10.0.0.1:5000")
        );
        assert_eq!(
            registry_of("registry.lain.local/hello:1"),
            Some("registry.lain.local")
        );
        assert_eq!(registry_of("localhost/x"), Some("localhost"));
        assert_eq!(registry_of("library/busybox"), None);
        assert_eq!(registry_of("busybox"), None);
    }
}
