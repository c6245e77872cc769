//! Proc sections: `web`, `web.NAME`, `worker[.NAME]`, `oneshot[.NAME]`,
//! `proc.NAME` (with `type:`), `portal.NAME` and `service.NAME`.

use super::fields::{self, is_core_name, NAME_RULE};
use super::proc_values::{
    cloud_volumes, command, container_healthcheck, count, env, filters, healthcheck, labels, logs,
    memory, mountpoints, port, ports, secret_files, volumes, Mountpoints,
};
use crate::derive;
use crate::diag::{Pos, Sink};
use crate::model::{Proc, ProcKind, Volume};
use crate::suggest;
use crate::yaml::{short, Node};
use std::collections::{BTreeMap, HashMap};

/// Keys every proc takes (LAIN's `typed_proc_properties`).
pub const PROC_KEYS: &[&str] = &[
    "cmd",
    "entrypoint",
    "image",
    "user",
    "workdir",
    "working_dir",
    "num_instances",
    "cpu",
    "memory",
    "port",
    "ports",
    "env",
    "volumes",
    "persistent_dirs",
    "cloud_volumes",
    "secret_files",
    "secret_files_bypass",
    "logs",
    "mountpoint",
    "https_only",
    "healthcheck",
    "container_healthcheck",
    "stateful",
    "setup_time",
    "kill_timeout",
    "labels",
    "filters",
];

const SECTION_PREFIXES: &[&str] = &["web", "worker", "oneshot", "proc", "portal", "service"];
const SECTION_FORMS: &str =
    "`web`, `web.NAME`, `worker`, `worker.NAME`, `oneshot`, `oneshot.NAME`, \
                             `proc.NAME` (with `type:`), `portal.NAME`, `service.NAME`";

pub(crate) const MIN_SETUP_TIME: i64 = 0;
pub(crate) const MAX_SETUP_TIME: i64 = 120;
pub(crate) const MIN_KILL_TIMEOUT: i64 = 10;
pub(crate) const MAX_KILL_TIMEOUT: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// `web[.NAME]`, `worker[.NAME]`, `oneshot[.NAME]`: the prefix is the type.
    Typed(ProcKind),
    /// `proc.NAME`: the type comes from `type:` (default worker).
    Proc,
    Portal,
    /// `service.NAME`: a proc plus `portal-NAME`.
    Service,
}

pub(crate) struct Section<'n> {
    pub key: &'n str,
    pub kind: SectionKind,
    pub name: &'n str,
    pub key_node: &'n Node,
    pub value: &'n Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Not a known key nor a proc section.
    Unknown,
    UnknownPrefix,
    NeedsName,
    BadName,
}

/// Which proc section a top-level key is, if any.
pub(crate) fn classify(key: &str) -> Result<(SectionKind, &str), Problem> {
    let (prefix, name) = match key.split_once('.') {
        Some((p, n)) => (p, Some(n)),
        None => (key, None),
    };
    let kind = match prefix {
        "web" => SectionKind::Typed(ProcKind::Web),
        "worker" => SectionKind::Typed(ProcKind::Worker),
        "oneshot" => SectionKind::Typed(ProcKind::Oneshot),
        "proc" => SectionKind::Proc,
        "portal" => SectionKind::Portal,
        "service" => SectionKind::Service,
        _ if name.is_some() => return Err(Problem::UnknownPrefix),
        _ => return Err(Problem::Unknown),
    };
    match name {
        None if matches!(kind, SectionKind::Typed(_)) => Ok((kind, key)),
        None => Err(Problem::NeedsName),
        Some("") => Err(Problem::NeedsName),
        Some(n) if !is_core_name(n) => Err(Problem::BadName),
        Some(n) => Ok((kind, n)),
    }
}

pub(crate) fn describe_problem(sink: &Sink, key: &str, problem: Problem) -> String {
    let shown = short(key);
    let prefix = key.split_once('.').map_or(key, |(p, _)| p);
    match problem {
        Problem::Unknown if PROC_KEYS.contains(&key) => format!(
            "`{key}` is a proc setting, not a top-level key: move it under a proc (e.g. under `web:`)"
        ),
        Problem::Unknown => {
            let names = super::top_level_names();
            format!(
                "unknown top-level key `{shown}`{}; valid keys: {}, and proc sections {SECTION_FORMS}",
                sink.hint(key, &names),
                super::TOP_KEYS.join(", ")
            )
        }
        Problem::UnknownPrefix => format!(
            "unknown section `{shown}`: `{}` is not a proc type{}; proc sections are {SECTION_FORMS}",
            short(prefix),
            sink.hint(prefix, SECTION_PREFIXES)
        ),
        Problem::NeedsName => format!(
            "`{shown}` needs a name: write `{prefix}.NAME`, NAME being {NAME_RULE}"
        ),
        Problem::BadName => {
            let name = key.split_once('.').map_or("", |(_, n)| n);
            format!(
                "`{shown}`: `{}` is not a valid proc name: use {NAME_RULE} (no dots or underscores)",
                short(name)
            )
        }
    }
}

/// What else a section may hold besides [`PROC_KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Typed,
    Proc,
    Portal,
    Service,
    /// The `portal:` of a `service.NAME`.
    ServicePortal,
}

impl Flavor {
    fn extra_keys(self) -> &'static [&'static str] {
        match self {
            Flavor::Typed => &[],
            Flavor::Proc => &["type"],
            Flavor::Portal | Flavor::ServicePortal => &["service_name", "allow_clients"],
            Flavor::Service => &["type", "portal"],
        }
    }

    fn is_portal(self) -> bool {
        matches!(self, Flavor::Portal | Flavor::ServicePortal)
    }
}

struct Input<'n> {
    /// For messages: `web.admin`, `service.echo.portal`.
    path: String,
    /// For the model: the section key.
    section: String,
    kind: ProcKind,
    name: String,
    key_pos: Pos,
    entries: &'n [(Node, Node)],
    flavor: Flavor,
    service_name: Option<String>,
}

/// Procs registered so far: name -> (section, line).
type Seen = HashMap<String, (String, usize)>;

/// Where a proc's final mountpoint comes from, for messages.
#[derive(Debug, Clone)]
struct Origin {
    pos: Pos,
    /// The entry as written (normalised), or `None` for the default
    /// domains of `web`.
    written: Option<String>,
}

/// Mountpoints served so far: mountpoint -> (section, line).
type Served = HashMap<String, (String, usize)>;

pub(crate) fn check_procs(
    sink: &mut Sink,
    sections: &[Section<'_>],
    defaults: &[String],
) -> Vec<Proc> {
    let mut out: Vec<Proc> = Vec::new();
    let mut seen: Seen = HashMap::new();
    let mut served: Served = HashMap::new();
    for s in sections {
        let example = " (cmd, port, memory, ...)";
        let Some(entries) = fields::mapping(sink, s.key, s.value, example) else {
            continue;
        };
        let (kind, flavor) = match s.kind {
            SectionKind::Typed(kind) => (kind, Flavor::Typed),
            SectionKind::Proc => (proc_type(sink, s.key, entries), Flavor::Proc),
            SectionKind::Portal => (ProcKind::Portal, Flavor::Portal),
            SectionKind::Service => (proc_type(sink, s.key, entries), Flavor::Service),
        };
        let input = Input {
            path: s.key.to_owned(),
            section: s.key.to_owned(),
            kind,
            name: s.name.to_owned(),
            key_pos: s.key_node.pos,
            entries,
            flavor,
            service_name: None,
        };
        let (proc, origins) = build_proc(sink, &input, defaults);
        if register(sink, &mut seen, &mut out, proc, s.key_node.pos) {
            check_served(sink, &mut served, s.key, s.key_node.pos, &origins);
        }
        if flavor != Flavor::Service {
            continue;
        }
        // `service.NAME` also declares the portal `portal-NAME` in front of it.
        match entries.iter().find(|(k, _)| k.as_str() == Some("portal")) {
            None => sink.error(
                s.key_node.pos,
                format!(
                    "`{}` has no `portal:`: a service is a proc plus the portal in front of \
                     it; add `portal:` with the portal's `cmd` and `port` (or declare \
                     `proc.{name}` and `portal.portal-{name}` with `service_name: {name}`)",
                    s.key,
                    name = s.name
                ),
            ),
            Some((pk, pv)) => {
                let path = format!("{}.portal", s.key);
                let example = " (cmd, port, allow_clients, ...)";
                if let Some(pentries) = fields::mapping(sink, &path, pv, example) {
                    let input = Input {
                        path: path.clone(),
                        section: path,
                        kind: ProcKind::Portal,
                        name: format!("portal-{}", s.name),
                        key_pos: pk.pos,
                        entries: pentries,
                        flavor: Flavor::ServicePortal,
                        service_name: Some(s.name.to_owned()),
                    };
                    // A portal is never a web proc: no mountpoints.
                    let (proc, _) = build_proc(sink, &input, defaults);
                    register(sink, &mut seen, &mut out, proc, pk.pos);
                }
            }
        }
    }
    out
}

/// Two web procs of an app cannot answer on the same host and path: the
/// router would get two identical `location`s in one `server`, which nginx
/// refuses, so the whole router configuration would fail to load. LAIN did
/// not check this (a deliberate deviation).
fn check_served(
    sink: &mut Sink,
    served: &mut Served,
    section: &str,
    key_pos: Pos,
    origins: &[(String, Origin)],
) {
    // Clashes grouped by the entry they come from (a `/path` entry
    // expands to one mountpoint per default domain) and the other proc.
    let mut clashes: Vec<(&Origin, String, usize, Vec<&str>)> = Vec::new();
    for (mp, origin) in origins {
        let Some((other, line)) = served.get(mp) else {
            continue;
        };
        match clashes
            .iter_mut()
            .find(|(o, ot, _, _)| o.pos == origin.pos && o.written == origin.written && ot == other)
        {
            Some((_, _, _, mps)) => mps.push(mp),
            None => clashes.push((origin, other.clone(), *line, vec![mp])),
        }
    }
    for (origin, other, line, mps) in clashes {
        let listed = mps
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let (subject, verb) = if mps.len() == 1 {
            (format!("mountpoint {listed}"), "is")
        } else {
            (format!("mountpoints {listed}"), "are")
        };
        let from = match &origin.written {
            Some(w) if mps.iter().any(|m| m != w) => format!(" (from `{w}`)"),
            Some(_) => String::new(),
            None => " (default domains of `web`)".to_owned(),
        };
        let fix = if origin.written.is_none() {
            let them = if mps.len() == 1 { "it" } else { "them" };
            format!("remove {them} from `{other}`")
        } else {
            "give one of them another host or path".to_owned()
        };
        sink.error(
            origin.pos,
            format!(
                "`{section}`: {subject}{from} {verb} already served by `{other}` (line {line}); \
                 two procs cannot answer on the same host and path: {fix}"
            ),
        );
    }
    for (mp, _) in origins {
        served
            .entry(mp.clone())
            .or_insert_with(|| (section.to_owned(), key_pos.line));
    }
}

/// Adds a proc unless its name is taken: names are unique across types,
/// so `web.api` and `worker.api` (or `proc.api`) clash. Says whether it
/// was added.
fn register(sink: &mut Sink, seen: &mut Seen, out: &mut Vec<Proc>, proc: Proc, pos: Pos) -> bool {
    if let Some((first, line)) = seen.get(&proc.name) {
        sink.error(
            pos,
            format!(
                "duplicate proc name `{}`: `{}` and `{first}` (line {line}) both define a proc \
                 named `{}`; proc names must be unique across all proc types: rename one",
                proc.name, proc.section, proc.name
            ),
        );
        return false;
    }
    seen.insert(proc.name.clone(), (proc.section.clone(), pos.line));
    out.push(proc);
    true
}

/// The `type:` of a `proc.NAME` or `service.NAME` (default worker).
fn proc_type(sink: &mut Sink, section: &str, entries: &[(Node, Node)]) -> ProcKind {
    let Some((_, v)) = entries.iter().find(|(k, _)| k.as_str() == Some("type")) else {
        return ProcKind::Worker;
    };
    let path = format!("{section}.type");
    let Some(t) = fields::string(sink, &path, v) else {
        return ProcKind::Worker;
    };
    match t.as_str() {
        "web" => ProcKind::Web,
        "worker" => ProcKind::Worker,
        "oneshot" => ProcKind::Oneshot,
        "portal" => {
            sink.error(
                v.pos,
                format!(
                    "`{path}`: a portal cannot be declared with `type: portal` here; declare it \
                     as `portal.NAME` with `service_name:`"
                ),
            );
            ProcKind::Worker
        }
        other => {
            sink.error(
                v.pos,
                format!(
                    "`{path}`: unknown proc type `{}`{}; valid types: web, worker, oneshot",
                    short(other),
                    sink.hint(other, &["web", "worker", "oneshot"])
                ),
            );
            ProcKind::Worker
        }
    }
}

/// Declared values that need the whole section before they mean anything.
#[derive(Default)]
struct Pending<'n> {
    workdir: Option<(String, Pos)>,
    working_dir: Option<(String, Pos)>,
    volumes: Option<(Vec<Volume>, Pos)>,
    persistent_dirs: Option<(Vec<Volume>, Pos)>,
    /// The entries and the key's position.
    mountpoint: Option<(Mountpoints, Pos)>,
    https_only: Option<(bool, Pos)>,
    /// The value as written, its node, and the key's position.
    healthcheck: Option<(String, &'n Node, Pos)>,
    has_command: bool,
}

/// A proc, and for a web proc where each of its mountpoints comes from.
fn build_proc(
    sink: &mut Sink,
    input: &Input<'_>,
    defaults: &[String],
) -> (Proc, Vec<(String, Origin)>) {
    let mut p = Proc {
        name: input.name.clone(),
        kind: input.kind,
        key: format!("{}.{}", input.kind, input.name),
        section: input.section.clone(),
        image: None,
        entrypoint: None,
        cmd: None,
        user: None,
        working_dir: None,
        num_instances: 1,
        cpu: 0,
        memory: "32m".to_owned(),
        memory_bytes: 32 << 20,
        port: None,
        ports: Vec::new(),
        env: Vec::new(),
        volumes: Vec::new(),
        cloud_volumes: None,
        secret_files: Vec::new(),
        secret_files_bypass: false,
        logs: Vec::new(),
        mountpoints: Vec::new(),
        https_only: false,
        healthcheck: None,
        container_healthcheck: None,
        stateful: false,
        setup_time: 0,
        kill_timeout: 10,
        labels: BTreeMap::new(),
        filters: Vec::new(),
        service_name: None,
        allow_clients: None,
    };
    let mut pending = Pending::default();
    let sec = input.path.as_str();

    for (k, v) in input.entries {
        let Some(key) = fields::key(sink, sec, k) else {
            continue;
        };
        let path = format!("{sec}.{key}");
        match key {
            "type" => match input.flavor {
                Flavor::Proc | Flavor::Service => {} // read by proc_type()
                Flavor::Typed => sink.error(
                    k.pos,
                    format!(
                        "`type` is not allowed in `{sec}`: the `{kind}` prefix already sets the \
                         type; to set it with `type:`, name the section `proc.{name}`",
                        kind = input.kind,
                        name = input.name
                    ),
                ),
                Flavor::Portal | Flavor::ServicePortal => sink.error(
                    k.pos,
                    format!("`type` is not allowed in `{sec}`: a portal's type is always portal"),
                ),
            },
            "portal" => {
                if input.flavor != Flavor::Service {
                    sink.error(
                        k.pos,
                        format!(
                            "`portal` is not allowed in `{sec}`: only a `service.NAME` section \
                             takes a `portal:`"
                        ),
                    );
                }
            }
            "service_name" | "allow_clients" if !input.flavor.is_portal() => sink.error(
                k.pos,
                format!(
                    "`{key}` is not allowed in `{sec}`: only portals (`portal.NAME`, or the \
                     `portal:` of a `service.NAME`) take it"
                ),
            ),
            "service_name" => {
                if let Some(name) = fields::string(sink, &path, v) {
                    match &input.service_name {
                        Some(svc) => sink.warn(
                            v.pos,
                            format!(
                                "`{path}` is ignored: the portal of `service.{svc}` always \
                                 serves `{svc}`"
                            ),
                        ),
                        None => p.service_name = Some(name),
                    }
                }
            }
            "allow_clients" => {
                if let Some(a) = fields::string(sink, &path, v) {
                    p.allow_clients = Some(a);
                }
            }
            "image" => p.image = fields::string(sink, &path, v),
            "user" => p.user = fields::string(sink, &path, v),
            "workdir" => pending.workdir = fields::string(sink, &path, v).map(|s| (s, k.pos)),
            "working_dir" => {
                pending.working_dir = fields::string(sink, &path, v).map(|s| (s, k.pos));
            }
            "entrypoint" => {
                pending.has_command = true;
                p.entrypoint = command(sink, &path, v);
            }
            "cmd" => {
                pending.has_command = true;
                p.cmd = command(sink, &path, v);
            }
            "num_instances" => {
                if let Some(n) = count(sink, &path, v, "a number of instances (0 or more)") {
                    p.num_instances = n;
                }
            }
            "cpu" => {
                if let Some(n) = count(sink, &path, v, "a whole number of CPUs (0 or more)") {
                    p.cpu = n;
                }
            }
            "memory" => {
                if let Some((m, bytes)) = memory(sink, &path, v) {
                    p.memory = m;
                    p.memory_bytes = bytes;
                }
            }
            "port" => p.port = port(sink, &path, v),
            "ports" => p.ports = ports(sink, &path, v),
            "env" => p.env = env(sink, &path, v),
            "volumes" => pending.volumes = Some((volumes(sink, &path, v), k.pos)),
            "persistent_dirs" => pending.persistent_dirs = Some((volumes(sink, &path, v), k.pos)),
            "cloud_volumes" => p.cloud_volumes = cloud_volumes(sink, &path, v),
            "secret_files" => p.secret_files = secret_files(sink, &path, v),
            "secret_files_bypass" => {
                if let Some(b) = fields::boolean(sink, &path, v) {
                    p.secret_files_bypass = b;
                }
            }
            "logs" => p.logs = logs(sink, &path, v),
            "mountpoint" => {
                pending.mountpoint = Some((mountpoints(sink, &path, v), k.pos));
            }
            "https_only" => {
                pending.https_only = fields::boolean(sink, &path, v).map(|b| (b, k.pos))
            }
            "healthcheck" => {
                pending.healthcheck = fields::string(sink, &path, v).map(|s| (s, v, k.pos))
            }
            "container_healthcheck" => {
                p.container_healthcheck = container_healthcheck(sink, &path, v)
            }
            "stateful" => {
                if let Some(b) = fields::boolean(sink, &path, v) {
                    p.stateful = b;
                }
            }
            "setup_time" => {
                let what = "seconds between instances in a rolling upgrade";
                if let Some(n) =
                    fields::int_in(sink, &path, v, MIN_SETUP_TIME, MAX_SETUP_TIME, what)
                {
                    p.setup_time = u32::try_from(n).unwrap_or(0);
                }
            }
            "kill_timeout" => {
                let what = "seconds to wait after SIGTERM";
                if let Some(n) =
                    fields::int_in(sink, &path, v, MIN_KILL_TIMEOUT, MAX_KILL_TIMEOUT, what)
                {
                    p.kill_timeout = u32::try_from(n).unwrap_or(10);
                }
            }
            "labels" => p.labels = labels(sink, &path, v),
            "filters" => p.filters = filters(sink, &path, v),
            other => {
                let mut valid: Vec<&str> = PROC_KEYS.to_vec();
                valid.extend(input.flavor.extra_keys());
                let where_ = match input.flavor {
                    Flavor::Typed | Flavor::Proc | Flavor::Service => "a proc",
                    Flavor::Portal | Flavor::ServicePortal => "a portal",
                };
                sink.error(
                    k.pos,
                    format!(
                        "unknown key `{}` in `{sec}`{}; valid keys in {where_}: {}",
                        short(other),
                        sink.hint(other, &valid),
                        suggest::list(&valid)
                    ),
                );
            }
        }
    }

    let origins = finish(sink, input, &mut p, pending, defaults);
    (p, origins)
}

/// Applies the rules that depend on the whole section: defaults, the
/// web-only keys, mountpoints, the portal's service. Returns where each
/// mountpoint comes from.
fn finish(
    sink: &mut Sink,
    input: &Input<'_>,
    p: &mut Proc,
    pending: Pending<'_>,
    defaults: &[String],
) -> Vec<(String, Origin)> {
    let sec = input.path.as_str();
    let mut origins = Vec::new();

    // LAIN: `workdir or working_dir`.
    if let (Some((w, pos)), Some(_)) = (&pending.workdir, &pending.working_dir) {
        let which = if w.is_empty() {
            "`workdir` is empty, so `working_dir` is used"
        } else {
            "`workdir` is used"
        };
        sink.warn(
            *pos,
            format!("`{sec}` has both `workdir` and `working_dir`; {which}, as LAIN did"),
        );
    }
    p.working_dir = match (pending.workdir, pending.working_dir) {
        (Some((w, _)), _) if !w.is_empty() => Some(w),
        (_, Some((w, _))) => Some(w),
        (Some((w, _)), None) => Some(w),
        (None, None) => None,
    };

    // LAIN: `persistent_dirs or volumes`.
    p.volumes = match (pending.persistent_dirs, pending.volumes) {
        (Some((pd, pos)), Some((vols, _))) if !pd.is_empty() => {
            if !vols.is_empty() {
                sink.warn(
                    pos,
                    format!(
                        "`{sec}` has both `persistent_dirs` and `volumes`; as in LAIN, only \
                         `persistent_dirs` is used: merge them"
                    ),
                );
            }
            pd
        }
        (Some((pd, _)), None) => pd,
        (_, Some((vols, _))) => vols,
        (None, None) => Vec::new(),
    };

    if input.flavor == Flavor::Typed && !pending.has_command {
        sink.warn(
            input.key_pos,
            format!(
                "`{sec}` has neither `cmd:` nor `entrypoint:`, so the image's own command runs; \
                 some LAIN versions require one of them"
            ),
        );
    }

    if p.kind == ProcKind::Web {
        if p.port.is_none() {
            p.port = Some(80);
        }
        p.https_only = pending.https_only.map(|(b, _)| b).unwrap_or(false);
        p.healthcheck = pending
            .healthcheck
            .and_then(|(h, node, _)| healthcheck(sink, &format!("{sec}.healthcheck"), node, &h));
        let Mountpoints {
            entries: declared,
            rejected,
        } = pending.mountpoint.map(|(m, _)| m).unwrap_or_default();
        // With a rejected entry the error is already there.
        if p.name != "web" && declared.is_empty() && !rejected {
            sink.error(
                input.key_pos,
                format!(
                    "`{sec}` is a web proc not named `web`, so it needs its own `mountpoint:` \
                     list, e.g. `mountpoint: [/{name}]` (a path on {domains}) or a domain; only \
                     the proc named `web` gets the default domain",
                    name = p.name,
                    domains = defaults.join(" and ")
                ),
            );
        }
        let declared: Vec<(String, Origin)> = declared
            .into_iter()
            .map(|(m, pos)| {
                let origin = Origin {
                    pos,
                    written: Some(m.clone()),
                };
                (m, origin)
            })
            .collect();
        let default_origin = Origin {
            pos: input.key_pos,
            written: None,
        };
        origins = derive::expand_mountpoints_from(&p.name, &declared, defaults, default_origin);
        p.mountpoints = origins.iter().map(|(m, _)| m.clone()).collect();
    } else {
        // LAIN reads these for web procs only and silently ignores them
        // elsewhere; say so, since the author clearly expected an effect.
        if let Some((_, _, pos)) = pending.healthcheck {
            sink.warn(
                pos,
                format!(
                    "`healthcheck` only applies to web procs and is ignored on `{sec}` (a {}); \
                     use `container_healthcheck: {{cmd: ...}}` to check a non-web proc",
                    p.kind
                ),
            );
        }
        if let Some((_, pos)) = pending.mountpoint {
            sink.warn(
                pos,
                format!(
                    "`mountpoint` only applies to web procs and is ignored on `{sec}` (a {})",
                    p.kind
                ),
            );
        }
        if let Some((_, pos)) = pending.https_only {
            sink.warn(
                pos,
                format!(
                    "`https_only` only applies to web procs and is ignored on `{sec}` (a {})",
                    p.kind
                ),
            );
        }
    }

    if p.kind == ProcKind::Portal {
        if let Some(svc) = &input.service_name {
            p.service_name = Some(svc.clone());
        } else if p.service_name.is_none()
            && !input
                .entries
                .iter()
                .any(|(k, _)| k.as_str() == Some("service_name"))
        {
            sink.error(
                input.key_pos,
                format!(
                    "portal `{sec}` is missing `service_name:` (the name of the proc it fronts, \
                     which clients list in `use_services`)"
                ),
            );
        }
        if p.allow_clients.is_none() {
            p.allow_clients = Some("**".to_owned());
        }
    }
    origins
}
