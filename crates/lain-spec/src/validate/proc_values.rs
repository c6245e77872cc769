//! Values of single proc keys: commands, sizes, ports, paths, volumes,
//! health checks, labels and filters.

use super::fields::{self, Single};
use crate::derive;
use crate::diag::{Pos, Sink};
use crate::model::{
    Backup, BackupMode, CloudVolumeType, CloudVolumes, Command, ContainerHealthcheck, Filter,
    FilterKind, PortMapping, Protocol, Volume,
};
use crate::suggest;
use crate::yaml::{short, Node, Value};
use regex::Regex;
use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

/// The cluster port range of `ports` (LAIN's Ports.MIN_PORT/MAX_PORT).
pub(crate) const MIN_CLUSTER_PORT: i64 = 9500;
pub(crate) const MAX_CLUSTER_PORT: i64 = 10000;

pub(super) fn command(sink: &mut Sink, path: &str, v: &Node) -> Option<Command> {
    match &v.value {
        Value::Null => None,
        Value::Str(s) => Some(Command::Shell(s.clone())),
        Value::Seq(items) => {
            let mut argv = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match &item.value {
                    Value::Str(s) => argv.push(s.clone()),
                    _ => {
                        ok = false;
                        let fix = match item.value {
                            Value::Seq(_) | Value::Map(_) => String::new(),
                            _ => format!(": quote it (\"{}\")", short(&item.text)),
                        };
                        sink.error(
                            item.pos,
                            format!(
                                "`{path}[{i}]`: every argument of the exec form is a string, found \
                                 {}{fix}",
                                item.describe()
                            ),
                        );
                    }
                }
            }
            ok.then_some(Command::Exec(argv))
        }
        _ => {
            sink.error(
                v.pos,
                format!(
                    "`{path}`: expected a command, as a string (`./app -p 80`) or a list of strings \
                     (`[\"./app\", \"-p\", \"80\"]`), found {}",
                    v.describe()
                ),
            );
            None
        }
    }
}

/// A non-negative count. LAIN's schema accepted negative numbers; we do
/// not (a deliberate deviation: `-2` instances means nothing).
pub(super) fn count(sink: &mut Sink, path: &str, v: &Node, what: &str) -> Option<u32> {
    let max = u32::MAX;
    if v.value == Value::BigInt && crate::resolve::int_has_digits(&v.text) {
        sink.error(
            v.pos,
            format!(
                "`{path}`: {} is too large: expected {what}, at most {max}",
                short(&v.text)
            ),
        );
        return None;
    }
    let n = fields::int(sink, path, v, what)?;
    if n < 0 {
        sink.error(v.pos, format!("`{path}`: {n} is negative: expected {what}"));
        return None;
    }
    match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            sink.error(
                v.pos,
                format!("`{path}`: {n} is too large: expected {what}, at most {max}"),
            );
            None
        }
    }
}

const MEMORY_RULE: &str = "a whole number followed by m (MiB) or g (GiB), e.g. `256m` or `1g` \
                           ([1-9][0-9]*[mMgG])";

pub(super) fn memory(sink: &mut Sink, path: &str, v: &Node) -> Option<(String, u64)> {
    match &v.value {
        Value::Str(s) => {
            if let Some(bytes) = derive::memory_bytes(s) {
                return Some((s.clone(), bytes));
            }
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            let unit = s[digits.len()..].to_ascii_lowercase();
            let fix = match unit.as_str() {
                "m" | "g" => String::new(),
                "mb" | "mib" | "mi" => format!(": write `{digits}m`"),
                "gb" | "gib" | "gi" => format!(": write `{digits}g`"),
                _ => String::new(),
            };
            let found = v.describe();
            if !digits.is_empty() && !digits.starts_with('0') && (unit == "m" || unit == "g") {
                sink.error(
                    v.pos,
                    format!(
                        "`{path}`: {found} is too large: at most `{}g` (`{}m`), the most \
                         Docker's 64-bit byte count holds",
                        derive::MAX_MEMORY_BYTES >> 30,
                        derive::MAX_MEMORY_BYTES >> 20
                    ),
                );
            } else if digits.is_empty() || digits.starts_with('0') {
                sink.error(
                    v.pos,
                    format!("`{path}`: expected {MEMORY_RULE}, found {found}"),
                );
            } else {
                sink.error(
                    v.pos,
                    format!("`{path}`: expected {MEMORY_RULE}, found {found}{fix}"),
                );
            }
            None
        }
        Value::Int(n) => {
            sink.error(
                v.pos,
                format!("`{path}`: expected {MEMORY_RULE}, found the number `{n}` without a unit: write `{n}m`"),
            );
            None
        }
        _ => {
            sink.error(
                v.pos,
                format!("`{path}`: expected {MEMORY_RULE}, found {}", v.describe()),
            );
            None
        }
    }
}

/// `port`: an integer only (LAIN's schema). 0 means "not set", as LAIN's
/// parser treated it; out-of-range ports are rejected (LAIN let them by).
pub(super) fn port(sink: &mut Sink, path: &str, v: &Node) -> Option<u16> {
    match &v.value {
        Value::Int(0) => None,
        Value::Int(n) => match u16::try_from(*n) {
            Ok(p) => Some(p),
            Err(_) => {
                sink.error(
                    v.pos,
                    format!("`{path}`: {n} is not a port number: expected 1 to 65535"),
                );
                None
            }
        },
        Value::Str(s) if s.contains(':') || s.contains('/') => {
            sink.error(
                v.pos,
                format!(
                    "`{path}`: expected a port number (e.g. `port: 8080`, always TCP), found {}; \
                     LAIN's `port` takes no protocol: for UDP or cluster ports use `ports:` \
                     (`- \"9501:8080/udp\"`)",
                    v.describe()
                ),
            );
            None
        }
        Value::Map(_) => {
            sink.error(
                v.pos,
                format!(
                    "`{path}`: expected a port number (e.g. `port: 8080`), found a mapping; the \
                     `{{80: [type:tcp]}}` form is not accepted by LAIN's validator"
                ),
            );
            None
        }
        _ => {
            fields::int(sink, path, v, "a port number (1 to 65535)");
            None
        }
    }
}

/// `ports`: cluster port mappings `SRC[:DST][/tcp|udp]`, as a mapping
/// (LAIN's documented form), a single string, or (our addition) a list.
pub(super) fn ports(sink: &mut Sink, path: &str, v: &Node) -> Vec<PortMapping> {
    let mut specs: Vec<(String, Pos)> = Vec::new();
    let mut take = |sink: &mut Sink, n: &Node| match &n.value {
        Value::Str(s) => specs.push((s.clone(), n.pos)),
        Value::Int(i) => specs.push((i.to_string(), n.pos)),
        _ => sink.error(
            n.pos,
            format!(
                "`{path}`: expected a port mapping like `9501:8080/udp`, found {}",
                n.describe()
            ),
        ),
    };
    match &v.value {
        Value::Null => {}
        Value::Str(_) | Value::Int(_) => take(sink, v),
        Value::Seq(items) => items.iter().for_each(|i| take(sink, i)),
        Value::Map(entries) => {
            for (k, val) in entries {
                take(sink, k);
                if !matches!(val.value, Value::Null | Value::Map(_)) {
                    sink.warn(
                        val.pos,
                        format!(
                            "`{path}`: the value of a port mapping is ignored, found {}",
                            val.describe()
                        ),
                    );
                }
            }
        }
        _ => sink.error(
            v.pos,
            format!(
                "`{path}`: expected port mappings like `9501:8080/udp`, found {}",
                v.describe()
            ),
        ),
    }
    let mut out: Vec<PortMapping> = Vec::new();
    for (spec, pos) in specs {
        if let Some(m) = port_mapping(sink, path, &spec, pos) {
            if out.iter().any(|o| o.src == m.src) {
                sink.error(
                    pos,
                    format!(
                        "`{path}`: cluster port {} is mapped twice; a cluster port maps to one \
                         container port",
                        m.src
                    ),
                );
            } else {
                out.push(m);
            }
        }
    }
    out
}

fn port_mapping(sink: &mut Sink, path: &str, spec: &str, pos: Pos) -> Option<PortMapping> {
    let (mapping, proto) = match spec.split_once('/') {
        None => (spec, Protocol::Tcp),
        Some((m, "tcp")) => (m, Protocol::Tcp),
        Some((m, "udp")) => (m, Protocol::Udp),
        Some((m, other)) => {
            sink.warn(
                pos,
                format!(
                    "`{path}`: unknown protocol `{}` in `{}` is taken as tcp, as LAIN did; write \
                     `/tcp` or `/udp`",
                    short(other),
                    short(spec)
                ),
            );
            (m, Protocol::Tcp)
        }
    };
    let mut parts = mapping.split(':');
    let src_text = parts.next().unwrap_or_default();
    let dst_text = parts.next().unwrap_or(src_text);
    if parts.next().is_some() {
        sink.warn(
            pos,
            format!(
                "`{path}`: only `SRC:DST` is used from `{}`, as LAIN did",
                short(spec)
            ),
        );
    }
    let parse = |t: &str| t.trim().parse::<i64>().ok();
    let Some(src) = parse(src_text) else {
        sink.error(
            pos,
            format!(
                "`{path}`: `{}` is not a port mapping: expected `SRC[:DST][/tcp|udp]` with numbers, \
                 e.g. `9501:8080/udp`",
                short(spec)
            ),
        );
        return None;
    };
    let Some(dst) = parse(dst_text) else {
        sink.error(
            pos,
            format!(
                "`{path}`: `{}` has no valid container port: expected `SRC[:DST][/tcp|udp]`",
                short(spec)
            ),
        );
        return None;
    };
    if !(MIN_CLUSTER_PORT..=MAX_CLUSTER_PORT).contains(&src) {
        sink.error(
            pos,
            format!(
                "`{path}`: cluster port {src} is out of range: it must be between \
                 {MIN_CLUSTER_PORT} and {MAX_CLUSTER_PORT}"
            ),
        );
        return None;
    }
    let Ok(dst16) = u16::try_from(dst) else {
        sink.error(
            pos,
            format!("`{path}`: container port {dst} is out of range: expected 1 to 65535"),
        );
        return None;
    };
    if dst16 == 0 {
        sink.error(
            pos,
            format!("`{path}`: container port 0 is out of range: expected 1 to 65535"),
        );
        return None;
    }
    Some(PortMapping {
        src: u16::try_from(src).unwrap_or(0),
        dst: dst16,
        proto,
    })
}

pub(super) fn env(sink: &mut Sink, path: &str, v: &Node) -> Vec<String> {
    let items = fields::string_list(sink, path, v, Single::Warn);
    for (e, pos) in &items {
        match e.split_once('=') {
            Some((name, _)) if !name.is_empty() => {}
            _ => sink.warn(
                *pos,
                format!("`{path}`: `{}` is not `NAME=value`", short(e)),
            ),
        }
    }
    fields::strings(items)
}

/// Paths a volume may not be: they would hide the system or the app.
const FORBIDDEN_VOLUMES: &[&str] = &["/", "/lain", derive::APP_ROOT];
const BACKUP_KEYS: &[&str] = &["schedule", "expire", "pre_run", "post_run"];

pub(super) fn volumes(sink: &mut Sink, path: &str, v: &Node) -> Vec<Volume> {
    let items: Vec<&Node> = match &v.value {
        Value::Null => return Vec::new(),
        Value::Seq(items) => items.iter().collect(),
        Value::Str(_) => {
            sink.warn(
                v.pos,
                format!("`{path}` should be a list; a single path is taken as a one-item list"),
            );
            vec![v]
        }
        _ => {
            sink.error(
                v.pos,
                format!(
                    "`{path}`: expected a list of paths (optionally `- /path: {{backup_full: ...}}`), \
                     found {}",
                    v.describe()
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        match &item.value {
            Value::Str(s) => {
                if let Some(vol) = volume(sink, &ipath, s, item.pos, Vec::new()) {
                    out.push(vol);
                }
            }
            Value::Map(entries) => {
                if entries.len() > 1 {
                    sink.warn(
                        item.pos,
                        format!(
                            "`{ipath}` holds {} paths; LAIN used only one of them, each is taken \
                             as a volume here: write one `- /path:` per item",
                            entries.len()
                        ),
                    );
                }
                for (k, cfg) in entries {
                    let Some(vpath) = fields::key(sink, &ipath, k) else {
                        continue;
                    };
                    let backups = backups(sink, &format!("{ipath}.{vpath}"), cfg);
                    if let Some(vol) = volume(sink, &ipath, vpath, k.pos, backups) {
                        out.push(vol);
                    }
                }
            }
            _ => sink.error(
                item.pos,
                format!(
                    "`{ipath}`: expected a path, or `/path:` with backup settings, found {}",
                    item.describe()
                ),
            ),
        }
    }
    out
}

fn volume(
    sink: &mut Sink,
    path: &str,
    raw: &str,
    pos: Pos,
    backups: Vec<Backup>,
) -> Option<Volume> {
    let abs = derive::lain_based_path(raw.trim());
    if FORBIDDEN_VOLUMES.contains(&abs.as_str()) {
        sink.error(
            pos,
            format!(
                "`{path}`: `{}` cannot be a volume: it resolves to `{abs}`, and `/`, `/lain` and \
                 `/lain/app` are reserved; use a subdirectory",
                short(raw)
            ),
        );
        return None;
    }
    Some(Volume { path: abs, backups })
}

fn backups(sink: &mut Sink, path: &str, cfg: &Node) -> Vec<Backup> {
    let entries = match &cfg.value {
        Value::Map(es) => es,
        _ => {
            sink.error(
                cfg.pos,
                format!(
                    "`{path}`: expected backup settings (`backup_full:` / `backup_increment:`), \
                     found {}; for a plain volume drop the trailing `:`",
                    cfg.describe()
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(key) = fields::key(sink, path, k) else {
            continue;
        };
        let mode = match key {
            "backup_full" => BackupMode::Full,
            "backup_increment" => BackupMode::Increment,
            other => {
                sink.warn(
                    k.pos,
                    format!(
                        "unknown key `{}` in `{path}` is ignored (LAIN ignored it too){}; known \
                         keys: backup_full, backup_increment",
                        short(other),
                        sink.hint(other, &["backup_full", "backup_increment"])
                    ),
                );
                continue;
            }
        };
        let bpath = format!("{path}.{key}");
        let Some(policy) =
            fields::mapping(sink, &bpath, v, " (schedule, expire, pre_run, post_run)")
        else {
            continue;
        };
        let mut b = Backup {
            mode,
            schedule: String::new(),
            expire: String::new(),
            pre_run: String::new(),
            post_run: String::new(),
        };
        for (pk, pv) in policy {
            let Some(pkey) = fields::key(sink, &bpath, pk) else {
                continue;
            };
            let target = match pkey {
                "schedule" => &mut b.schedule,
                "expire" => &mut b.expire,
                "pre_run" => &mut b.pre_run,
                "post_run" => &mut b.post_run,
                other => {
                    sink.error(
                        pk.pos,
                        format!(
                            "unknown key `{}` in `{bpath}`{}; valid keys: {}",
                            short(other),
                            sink.hint(other, BACKUP_KEYS),
                            suggest::list(BACKUP_KEYS)
                        ),
                    );
                    continue;
                }
            };
            if let Some(s) = fields::string(sink, &format!("{bpath}.{pkey}"), pv) {
                *target = s;
            }
        }
        if b.schedule.is_empty() {
            sink.warn(
                v.pos,
                format!(
                    "`{bpath}` has no `schedule:`, so this backup never runs (LAIN skipped it too)"
                ),
            );
        } else {
            out.push(b);
        }
    }
    out
}

pub(super) fn cloud_volumes(sink: &mut Sink, path: &str, v: &Node) -> Option<CloudVolumes> {
    let entries = fields::mapping(sink, path, v, " (type, dirs)")?;
    let mut kind = CloudVolumeType::Multi;
    let mut dirs = None;
    for (k, val) in entries {
        let Some(key) = fields::key(sink, path, k) else {
            continue;
        };
        match key {
            "type" => {
                if let Some(t) = fields::string(sink, &format!("{path}.type"), val) {
                    match t.as_str() {
                        "multi" => kind = CloudVolumeType::Multi,
                        "single" => kind = CloudVolumeType::Single,
                        other => sink.error(
                            val.pos,
                            format!(
                                "`{path}.type`: `{}` is not a cloud volume type: expected `multi` \
                                 (one volume per instance, the default) or `single` (shared)",
                                short(other)
                            ),
                        ),
                    }
                }
            }
            "dirs" => {
                let list = fields::string_list(sink, &format!("{path}.dirs"), val, Single::Warn);
                dirs = Some(
                    list.iter()
                        .map(|(d, _)| derive::lain_based_path(d))
                        .collect(),
                );
            }
            other => sink.error(
                k.pos,
                format!(
                    "unknown key `{}` in `{path}`{}; valid keys: type, dirs",
                    short(other),
                    sink.hint(other, &["type", "dirs"])
                ),
            ),
        }
    }
    if !entries.iter().any(|(k, _)| k.as_str() == Some("dirs")) {
        sink.error(
            v.pos,
            format!("`{path}` is missing `dirs:` (the directories to put on the cloud volume)"),
        );
    }
    Some(CloudVolumes {
        kind,
        dirs: dirs.unwrap_or_default(),
    })
}

/// Secret files land at absolute paths in the container; relative ones
/// under /lain/app. A path with `..` is rejected (deliberately: LAIN let
/// `/lain/app/../../etc/x` through, a path traversal).
pub(super) fn secret_files(sink: &mut Sink, path: &str, v: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for (f, pos) in fields::string_list(sink, path, v, Single::Warn) {
        if f.trim().is_empty() {
            sink.error(pos, format!("`{path}`: a secret file path cannot be empty"));
            continue;
        }
        if f.split('/').any(|c| c == "..") {
            sink.error(
                pos,
                format!(
                    "`{path}`: `{}` contains `..`, which could climb out of the app directory \
                     (a path traversal); write the path without `..`: relative paths are under \
                     /lain/app, absolute ones are used as written",
                    short(&f)
                ),
            );
            continue;
        }
        let abs = derive::secret_file_path(&f);
        if abs == derive::APP_ROOT || abs == "/" {
            sink.error(
                pos,
                format!("`{path}`: `{}` is a directory, not a file", short(&f)),
            );
            continue;
        }
        out.push(abs);
    }
    out
}

/// Log files are read on the host from the proc's /lain/logs volume, so a
/// path that climbs out of it (`..`) is a host path traversal: rejected,
/// like `..` in `secret_files` (LAIN only refused absolute paths).
pub(super) fn logs(sink: &mut Sink, path: &str, v: &Node) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    const RULE: &str =
        "logs are file names relative to /lain/logs (e.g. `app.log` or `app/error.log`)";
    for (l, pos) in fields::string_list(sink, path, v, Single::Warn) {
        let problem = if l.trim().is_empty() {
            Some("a log file name cannot be empty".to_owned())
        } else if l.starts_with('/') {
            Some(format!("`{}` is absolute", short(&l)))
        } else if l.split('/').any(|c| c == "..") {
            Some(format!(
                "`{}` contains `..`, which climbs out of /lain/logs on the host (a path \
                 traversal): write the path without `..`",
                short(&l)
            ))
        } else {
            l.chars()
                .find(|c| c.is_control())
                .map(|c| format!("`{}` contains {}", short(&l), derive::describe_char(c)))
        };
        if let Some(problem) = problem {
            sink.error(pos, format!("`{path}`: {problem}; {RULE}"));
            continue;
        }
        if seen.insert(l.clone()) {
            out.push(l);
        }
    }
    out
}

/// The entries of a `mountpoint:` list that passed, normalised, with
/// their positions.
#[derive(Debug, Default)]
pub(super) struct Mountpoints {
    pub entries: Vec<(String, Pos)>,
    /// Some entry was rejected (and reported).
    pub rejected: bool,
}

/// `mountpoint`: each entry checked and normalised by
/// [`derive::parse_mountpoint`].
pub(super) fn mountpoints(sink: &mut Sink, path: &str, v: &Node) -> Mountpoints {
    let mut out = Vec::new();
    let mut rejected = false;
    let items = fields::string_list(sink, path, v, Single::Warn);
    let many = matches!(v.value, Value::Seq(_));
    for (i, (raw, pos)) in items.into_iter().enumerate() {
        let ipath = if many {
            format!("{path}[{i}]")
        } else {
            path.to_owned()
        };
        match derive::parse_mountpoint(&raw) {
            Ok(m) => {
                if m.lowercased {
                    sink.warn(
                        pos,
                        format!(
                            "`{ipath}`: host names are case-insensitive; `{}` is used as `{}`",
                            short(&raw),
                            m.mountpoint
                        ),
                    );
                }
                out.push((m.mountpoint, pos));
            }
            Err(problem) => {
                rejected = true;
                let shown = if raw.is_empty() {
                    String::new()
                } else {
                    format!("`{}` is not a valid mountpoint: ", short(&raw))
                };
                sink.error(
                    pos,
                    format!("`{ipath}`: {shown}{problem}; {}", derive::MOUNTPOINT_RULE),
                );
            }
        }
    }
    Mountpoints {
        entries: out,
        rejected,
    }
}

/// `healthcheck`: the HTTP path the router requests. LAIN used it as
/// written, so `ping` made `http://ip:80ping`; it is stored as `/ping`
/// (with a warning). Empty means none, as in LAIN.
pub(super) fn healthcheck(sink: &mut Sink, path: &str, v: &Node, raw: &str) -> Option<String> {
    if raw.is_empty() {
        sink.warn(
            v.pos,
            format!(
                "`{path}` is empty, so there is no HTTP health check (as in LAIN); give a path \
                 such as `/ping`, or remove the key"
            ),
        );
        return None;
    }
    let hc = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    if let Some(problem) = derive::path_problem(&hc) {
        sink.error(
            v.pos,
            format!(
                "`{path}`: `{}` is not a valid health check path: it {problem}; {}",
                short(raw),
                derive::PATH_RULE
            ),
        );
        return None;
    }
    if hc != raw {
        sink.warn(
            v.pos,
            format!(
                "`{path}` is an HTTP path and should start with `/`: `{}` is used as `{}`",
                short(raw),
                short(&hc)
            ),
        );
    }
    Some(hc)
}

pub(super) fn container_healthcheck(
    sink: &mut Sink,
    path: &str,
    v: &Node,
) -> Option<ContainerHealthcheck> {
    let entries = fields::mapping(sink, path, v, " (cmd, options)")?;
    let mut hc = ContainerHealthcheck {
        cmd: String::new(),
        interval: None,
        timeout: None,
        retries: None,
    };
    let mut has_cmd = false;
    for (k, val) in entries {
        let Some(key) = fields::key(sink, path, k) else {
            continue;
        };
        match key {
            "cmd" => {
                has_cmd = true;
                if let Some(c) = fields::string(sink, &format!("{path}.cmd"), val) {
                    hc.cmd = c;
                }
            }
            "options" => {
                let opath = format!("{path}.options");
                let Some(opts) =
                    fields::mapping(sink, &opath, val, " (interval, timeout, retries)")
                else {
                    continue;
                };
                for (ok, ov) in opts {
                    let Some(okey) = fields::key(sink, &opath, ok) else {
                        continue;
                    };
                    let what = match okey {
                        "interval" => "seconds between checks",
                        "timeout" => "seconds a check may take",
                        "retries" => "a number of failed checks",
                        other => {
                            sink.error(
                                ok.pos,
                                format!(
                                    "unknown key `{}` in `{opath}`{}; valid keys: interval, timeout, retries",
                                    short(other),
                                    sink.hint(other, &["interval", "timeout", "retries"])
                                ),
                            );
                            continue;
                        }
                    };
                    let n = fields::int(sink, &format!("{opath}.{okey}"), ov, what);
                    match okey {
                        "interval" => hc.interval = n,
                        "timeout" => hc.timeout = n,
                        _ => hc.retries = n,
                    }
                }
            }
            other => sink.error(
                k.pos,
                format!(
                    "unknown key `{}` in `{path}`{}; valid keys: cmd, options",
                    short(other),
                    sink.hint(other, &["cmd", "options"])
                ),
            ),
        }
    }
    if !has_cmd {
        sink.error(
            v.pos,
            format!("`{path}` is missing `cmd:` (the command that checks the container)"),
        );
        return None;
    }
    Some(hc)
}

pub(super) fn labels(sink: &mut Sink, path: &str, v: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (l, pos) in fields::string_list(sink, path, v, Single::Accept) {
        // LAIN's `(.*):(.*)`: the key is everything before the last colon.
        match l.rsplit_once(':') {
            Some((k, val)) => {
                out.insert(k.to_owned(), val.to_owned());
            }
            None => sink.error(
                pos,
                format!(
                    "`{path}`: `{}` is not a label: expected `key:value`",
                    short(&l)
                ),
            ),
        }
    }
    out
}

static FILTER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(affinity|constraint):(\S+)(==|!=)(\S+)").expect("static regex")
});

pub(super) fn filters(sink: &mut Sink, path: &str, v: &Node) -> Vec<Filter> {
    let mut out = Vec::new();
    for (f, pos) in fields::string_list(sink, path, v, Single::Accept) {
        let Some(c) = FILTER_RE.captures(&f) else {
            sink.error(
                pos,
                format!(
                    "`{path}`: `{}` is not a filter: expected `constraint:KEY==VALUE` or \
                     `affinity:KEY!=VALUE` (== or !=)",
                    short(&f)
                ),
            );
            continue;
        };
        let get = |i: usize| c.get(i).map_or("", |m| m.as_str()).to_owned();
        out.push(Filter {
            kind: if get(1) == "affinity" {
                FilterKind::Affinity
            } else {
                FilterKind::Constraint
            },
            key: get(2),
            equal: get(3) == "==",
            value: get(4),
            raw: f.clone(),
        });
    }
    out
}
