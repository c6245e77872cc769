//! From the positioned YAML tree to a [`LainConf`], with LAIN's rules.
//!
//! LAIN judged a lain.yaml twice: its JSON schema (lain-sdk's
//! `validator/schema.py`) and its parser (`yaml/parser.py`, which raises on
//! what it cannot load). A file is valid here when both would accept it,
//! with the deliberate deviations documented in docs/lain-yaml.md.
//! Every check reports and carries on, so one pass finds every problem.

mod fields;
mod proc_values;
mod procs;
pub use procs::PROC_KEYS;

use crate::diag::{Pos, Sink};
use crate::model::{
    AppType, Build, CopySpec, LainConf, Notify, Prepare, ProcKind, Release, ResourceParam, Test,
    UseResource,
};
use crate::suggest;
use crate::yaml::{short, Node, Value};
use crate::ParseOptions;
pub use fields::is_core_name;
use fields::Single;
pub(crate) use fields::NAME_RULE;
use std::collections::BTreeMap;

/// Top-level keys that are not proc sections.
pub const TOP_KEYS: &[&str] = &[
    "appname",
    "giturl",
    "apptype",
    "build",
    "release",
    "test",
    "use_services",
    "use_resources",
    "notify",
];

/// Appnames LAIN reserves.
pub const RESERVED_APPNAMES: &[&str] = &["service", "resource", "portal"];

/// A resource template rendered for one client, validated as the app
/// `resource.{resource}.{client}` (see [`crate::resource`]).
pub(crate) struct Instance<'a> {
    pub resource: &'a str,
    pub client: &'a str,
    /// `resource.{resource}.{client}`.
    pub name: &'a str,
}

pub(crate) fn validate(
    root: &Node,
    opts: &ParseOptions,
    sink: &mut Sink,
    instance: Option<&Instance<'_>>,
) -> Option<LainConf> {
    let entries = match &root.value {
        Value::Map(es) => es,
        Value::Null => {
            sink.error(
                root.pos,
                "the file is empty: a lain.yaml is a mapping with at least `appname:` and `build:`",
            );
            return None;
        }
        _ => {
            sink.error(
                root.pos,
                format!(
                    "the top level must be a mapping of keys such as `appname:`, `build:` and \
                     `web:`, found {}",
                    root.describe()
                ),
            );
            return None;
        }
    };

    let mut appname: Option<String> = None;
    let mut giturl = None;
    let mut apptype = AppType::App;
    let mut apptype_pos = None;
    let mut apptype_bad = false;
    let mut build: Option<Build> = None;
    let mut build_seen = false;
    let mut release = None;
    let mut test = None;
    let mut use_services = BTreeMap::new();
    let mut use_resources = BTreeMap::new();
    let mut notify = Notify::default();
    let mut sections: Vec<procs::Section<'_>> = Vec::new();

    for (k, v) in entries {
        let Some(key) = fields::key(sink, "top level", k) else {
            continue;
        };
        match key {
            "appname" => {
                appname = match instance {
                    None => check_appname(sink, v),
                    Some(i) => check_template_appname(sink, v, i),
                }
            }
            "giturl" => giturl = fields::string(sink, "giturl", v),
            "apptype" => {
                apptype_pos = Some(v.pos);
                match fields::string(sink, "apptype", v).as_deref() {
                    Some("app") => apptype = AppType::App,
                    Some("resource") => apptype = AppType::Resource,
                    Some(t) => {
                        apptype_bad = true;
                        sink.error(
                            v.pos,
                            format!(
                                "`apptype`: expected `app` or `resource`, found `{}`",
                                short(t)
                            ),
                        );
                    }
                    None => apptype_bad = true,
                }
            }
            "build" => {
                build_seen = true;
                build = check_build(sink, k.pos, v);
            }
            "release" => release = check_release(sink, k.pos, v),
            "test" => test = check_test(sink, k.pos, v),
            "use_services" => use_services = check_use_services(sink, v),
            "use_resources" => use_resources = check_use_resources(sink, v),
            "notify" => notify = check_notify(sink, v),
            other => match procs::classify(other) {
                Ok((kind, name)) => sections.push(procs::Section {
                    key: other,
                    kind,
                    name,
                    key_node: k,
                    value: v,
                }),
                Err(problem) => {
                    let message = procs::describe_problem(sink, other, problem);
                    sink.error(k.pos, message);
                }
            },
        }
    }

    if !entries.iter().any(|(k, _)| k.as_str() == Some("appname")) {
        sink.error(
            root.pos,
            "missing `appname:`: every lain.yaml names its app (e.g. `appname: hello`)",
        );
    }
    if !build_seen {
        sink.error(
            root.pos,
            "missing `build:`: LAIN needs at least `build:` with `base:` (the build image) and \
             `script:` (the build commands)",
        );
    }

    if let Some(i) = instance {
        // The instance runs as an ordinary app; only a resource's template
        // may be instantiated.
        if apptype != AppType::Resource && !apptype_bad {
            let at = apptype_pos.unwrap_or(root.pos);
            sink.error(
                at,
                format!(
                    "`{}` is not a resource: its lain.yaml must say `apptype: resource` to be used \
                     in `use_resources`",
                    i.resource
                ),
            );
        }
        apptype = AppType::App;
    }

    // Derived values need an appname; with a bad one the file is rejected
    // anyway, and a placeholder lets the procs still be checked.
    let app_for_domains = appname.clone().unwrap_or_else(|| "app".to_owned());
    check_domain_options(sink, opts);
    let default_domains =
        crate::derive::default_domains(&app_for_domains, &opts.cluster_domain, &opts.extra_domains);
    if let Some(i) = instance {
        check_instance_domains(sink, root, i, &default_domains);
    }
    let mut procs = procs::check_procs(sink, &sections, &default_domains);
    if let Some(i) = instance {
        // An instance serves its one client, whatever the template allowed.
        for p in procs.iter_mut().filter(|p| p.kind == ProcKind::Portal) {
            p.allow_clients = Some(i.client.to_owned());
        }
    }

    if sink.has_errors() {
        return None;
    }
    Some(LainConf {
        appname: appname?,
        giturl,
        apptype,
        build: build?,
        release,
        test,
        procs,
        use_services,
        use_resources,
        notify,
        default_domains,
    })
}

/// The cluster's domains go into every web proc's mountpoints, so they
/// pass the same DNS name check as the file's hosts.
fn check_domain_options(sink: &mut Sink, opts: &ParseOptions) {
    let all = std::iter::once(("cluster domain", &opts.cluster_domain))
        .chain(opts.extra_domains.iter().map(|d| ("extra domain", d)));
    for (what, raw) in all {
        let domain = crate::derive::tidy_domain(raw);
        if domain.is_empty() && what == "cluster domain" {
            continue;
        }
        if let Some(problem) = crate::derive::domain_problem(&domain) {
            sink.error(
                Pos::START,
                format!(
                    "the cluster's {what} `{}` (a setting of the cluster, not of this file) {problem}; \
                     it must be a DNS name (letters, digits, `-` and `.`)",
                    short(raw)
                ),
            );
        }
    }
}

/// A resource template names the resource itself; the instance takes the
/// instance name instead.
fn check_template_appname(sink: &mut Sink, v: &Node, i: &Instance<'_>) -> Option<String> {
    let name = fields::string(sink, "appname", v)?;
    if name != i.resource {
        sink.error(
            v.pos,
            format!(
                "`appname`: the template names the app `{}`, but it was fetched as the resource \
                 `{}`: its appname must be `{}` (or use the resource by its own name)",
                short(&name),
                i.resource,
                i.resource
            ),
        );
        return None;
    }
    Some(i.name.to_owned())
}

/// Two appnames and a cluster domain can together exceed DNS limits (63
/// characters a label, 253 in all), which a single appname rarely does.
fn check_instance_domains(sink: &mut Sink, root: &Node, i: &Instance<'_>, domains: &[String]) {
    let at = match &root.value {
        Value::Map(es) => es
            .iter()
            .find(|(k, _)| k.as_str() == Some("appname"))
            .map_or(root.pos, |(_, v)| v.pos),
        _ => root.pos,
    };
    for d in domains {
        if let Some(problem) = crate::derive::domain_problem(&d.to_ascii_lowercase()) {
            sink.error(
                at,
                format!(
                    "the default domain `{}` of the instance `{}` {problem}: use a shorter \
                     resource or client app name",
                    short(d),
                    i.name
                ),
            );
            return;
        }
    }
}

fn check_appname(sink: &mut Sink, v: &Node) -> Option<String> {
    let name = fields::string(sink, "appname", v)?;
    if !is_core_name(&name) {
        sink.error(
            v.pos,
            format!(
                "`appname`: `{}` is not a valid app name: use {NAME_RULE}",
                short(&name)
            ),
        );
        return None;
    }
    if RESERVED_APPNAMES.contains(&name.as_str()) {
        sink.error(
            v.pos,
            format!(
                "`appname`: `{name}` is reserved by LAIN (service, resource and portal are): \
                 choose another name"
            ),
        );
        return None;
    }
    Some(name)
}

fn unknown_key(sink: &mut Sink, node: &Node, key: &str, section: &str, valid: &[&str]) {
    sink.error(
        node.pos,
        format!(
            "unknown key `{}` in `{section}`{}; valid keys here: {}",
            short(key),
            sink.hint(key, valid),
            suggest::list(valid)
        ),
    );
}

fn ignored_key(sink: &mut Sink, node: &Node, key: &str, section: &str, valid: &[&str]) {
    sink.warn(
        node.pos,
        format!(
            "unknown key `{}` in `{section}` is ignored (LAIN ignored it too){}; known keys: {}",
            short(key),
            sink.hint(key, valid),
            suggest::list(valid)
        ),
    );
}

fn missing(sink: &mut Sink, at: Pos, section: &str, key: &str, what: &str) {
    sink.error(at, format!("`{section}` is missing `{key}:` ({what})"));
}

const BUILD_KEYS: &[&str] = &["base", "prepare", "script", "build_arg", "volumes"];

fn check_build(sink: &mut Sink, key_pos: Pos, node: &Node) -> Option<Build> {
    let entries = fields::mapping(sink, "build", node, " (base, prepare, script, ...)")?;
    let mut base = None;
    let mut base_seen = false;
    let mut script_seen = false;
    let mut b = Build {
        base: String::new(),
        prepare: None,
        script: Vec::new(),
        build_arg: Vec::new(),
        volumes: Vec::new(),
    };
    for (k, v) in entries {
        let Some(key) = fields::key(sink, "build", k) else {
            continue;
        };
        match key {
            "base" => {
                base_seen = true;
                base = fields::string(sink, "build.base", v);
            }
            "script" => {
                script_seen = true;
                b.script =
                    fields::strings(fields::string_list(sink, "build.script", v, Single::Warn));
            }
            "prepare" => b.prepare = check_prepare(sink, v),
            "build_arg" => {
                b.build_arg = fields::strings(fields::string_list(
                    sink,
                    "build.build_arg",
                    v,
                    Single::Warn,
                ));
            }
            "volumes" => {
                b.volumes =
                    fields::strings(fields::string_list(sink, "build.volumes", v, Single::Warn));
            }
            other => unknown_key(sink, k, other, "build", BUILD_KEYS),
        }
    }
    if !base_seen {
        missing(
            sink,
            key_pos,
            "build",
            "base",
            "the image to build in, e.g. `base: golang:1.8`",
        );
    }
    if !script_seen {
        missing(
            sink,
            key_pos,
            "build",
            "script",
            "the list of build commands; LAIN requires the key, even if empty",
        );
    }
    b.base = base?;
    Some(b)
}

const PREPARE_KEYS: &[&str] = &["version", "script", "keep", "build_arg"];

fn check_prepare(sink: &mut Sink, node: &Node) -> Option<Prepare> {
    match &node.value {
        // The old form: a bare list of commands.
        Value::Seq(_) => Some(Prepare {
            version: "0".to_owned(),
            script: fields::strings(fields::string_list(
                sink,
                "build.prepare",
                node,
                Single::Warn,
            )),
            keep: Vec::new(),
            build_arg: Vec::new(),
            legacy_list: true,
        }),
        Value::Map(entries) => {
            let mut p = Prepare {
                version: "0".to_owned(),
                script: Vec::new(),
                keep: Vec::new(),
                build_arg: Vec::new(),
                legacy_list: false,
            };
            for (k, v) in entries {
                let Some(key) = fields::key(sink, "build.prepare", k) else {
                    continue;
                };
                match key {
                    "version" => {
                        if let Some(version) = prepare_version(sink, v) {
                            p.version = version;
                        }
                    }
                    "script" => {
                        p.script = fields::strings(fields::string_list(
                            sink,
                            "build.prepare.script",
                            v,
                            Single::Warn,
                        ));
                    }
                    "keep" => {
                        p.keep = fields::strings(fields::string_list(
                            sink,
                            "build.prepare.keep",
                            v,
                            Single::Warn,
                        ));
                    }
                    "build_arg" => {
                        p.build_arg = fields::strings(fields::string_list(
                            sink,
                            "build.prepare.build_arg",
                            v,
                            Single::Warn,
                        ));
                    }
                    // LAIN's schema let any other key through here.
                    other => ignored_key(sink, k, other, "build.prepare", PREPARE_KEYS),
                }
            }
            Some(p)
        }
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`build.prepare`: expected a mapping (version, script, keep) or a list of \
                     commands, found {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// `^[a-zA-Z0-9]+$`, or an integer (LAIN stringifies it).
fn prepare_version(sink: &mut Sink, v: &Node) -> Option<String> {
    let text = match &v.value {
        Value::Str(s) => s.trim().to_owned(),
        Value::Int(i) => i.to_string(),
        _ => {
            sink.error(
                v.pos,
                format!(
                    "`build.prepare.version`: expected letters and digits (e.g. 201706121457), \
                     found {}",
                    v.describe()
                ),
            );
            return None;
        }
    };
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        sink.error(
            v.pos,
            format!(
                "`build.prepare.version`: `{}` is not a valid version: use letters and digits \
                 only ([a-zA-Z0-9]+)",
                short(&text)
            ),
        );
        return None;
    }
    Some(text)
}

const RELEASE_KEYS: &[&str] = &["dest_base", "copy", "script"];

fn check_release(sink: &mut Sink, key_pos: Pos, node: &Node) -> Option<Release> {
    let entries = fields::mapping(sink, "release", node, " (dest_base, copy, script)")?;
    let mut dest_base = None;
    let mut dest_base_seen = false;
    let mut copy_seen = false;
    let mut copy = Vec::new();
    let mut script = Vec::new();
    for (k, v) in entries {
        let Some(key) = fields::key(sink, "release", k) else {
            continue;
        };
        match key {
            "dest_base" => {
                dest_base_seen = true;
                dest_base = fields::string(sink, "release.dest_base", v);
            }
            "copy" => {
                copy_seen = true;
                copy = check_copy(sink, v);
            }
            "script" => {
                script =
                    fields::strings(fields::string_list(sink, "release.script", v, Single::Warn));
            }
            other => unknown_key(sink, k, other, "release", RELEASE_KEYS),
        }
    }
    if !dest_base_seen {
        missing(
            sink,
            key_pos,
            "release",
            "dest_base",
            "the base image of the release image, e.g. `dest_base: centos:7`",
        );
    }
    if !copy_seen {
        missing(
            sink,
            key_pos,
            "release",
            "copy",
            "what to copy from the build image: a list of `{src: ..., dest: ...}` or paths",
        );
    }
    Some(Release {
        dest_base: dest_base?,
        copy,
        script,
    })
}

fn check_copy(sink: &mut Sink, node: &Node) -> Vec<CopySpec> {
    let items = match &node.value {
        Value::Null => return Vec::new(),
        Value::Seq(items) => items,
        _ => {
            sink.error(
                node.pos,
                format!(
                    "`release.copy`: expected a list of `{{src: ..., dest: ...}}` entries or paths, \
                     found {}",
                    node.describe()
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("release.copy[{i}]");
        match &item.value {
            Value::Str(s) => out.push(CopySpec {
                src: s.clone(),
                dest: s.clone(),
            }),
            Value::Int(_) => sink.warn(
                item.pos,
                format!(
                    "`{path}`: a number is not a path; LAIN skipped it and so do we \
                     (quote it if it is a file name)"
                ),
            ),
            Value::Map(entries) => {
                let mut src = None;
                let mut dest = None;
                for (k, v) in entries {
                    let Some(key) = fields::key(sink, &path, k) else {
                        continue;
                    };
                    match key {
                        "src" => src = fields::string(sink, &format!("{path}.src"), v),
                        "dest" => dest = fields::string(sink, &format!("{path}.dest"), v),
                        other => ignored_key(sink, k, other, &path, &["src", "dest"]),
                    }
                }
                match src {
                    Some(src) => {
                        let dest = dest.unwrap_or_else(|| src.clone());
                        out.push(CopySpec { src, dest });
                    }
                    None if !entries.iter().any(|(k, _)| k.as_str() == Some("src")) => sink.error(
                        item.pos,
                        format!("`{path}` is missing `src:` (the path in the build image to copy)"),
                    ),
                    None => {}
                }
            }
            _ => sink.error(
                item.pos,
                format!(
                    "`{path}`: expected a path or `{{src: ..., dest: ...}}`, found {}",
                    item.describe()
                ),
            ),
        }
    }
    out
}

fn check_test(sink: &mut Sink, key_pos: Pos, node: &Node) -> Option<Test> {
    let entries = fields::mapping(sink, "test", node, " (script)")?;
    let mut script = None;
    for (k, v) in entries {
        let Some(key) = fields::key(sink, "test", k) else {
            continue;
        };
        match key {
            "script" => {
                script = Some(fields::strings(fields::string_list(
                    sink,
                    "test.script",
                    v,
                    Single::Warn,
                )));
            }
            other => unknown_key(sink, k, other, "test", &["script"]),
        }
    }
    if script.is_none() && !entries.iter().any(|(k, _)| k.as_str() == Some("script")) {
        missing(sink, key_pos, "test", "script", "the list of test commands");
    }
    Some(Test {
        script: script.unwrap_or_default(),
    })
}

fn check_use_services(sink: &mut Sink, node: &Node) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some(entries) = fields::mapping(
        sink,
        "use_services",
        node,
        " (app name: list of its services)",
    ) else {
        return out;
    };
    for (k, v) in entries {
        let Some(app) = fields::key(sink, "use_services", k) else {
            continue;
        };
        if !is_core_name(app) {
            sink.error(
                k.pos,
                format!(
                    "`use_services`: `{}` is not a valid app name: use {NAME_RULE}",
                    short(app)
                ),
            );
            continue;
        }
        let path = format!("use_services.{app}");
        let services = service_names(sink, &path, v);
        out.insert(app.to_owned(), services);
    }
    out
}

/// A list of service (portal) names.
fn service_names(sink: &mut Sink, path: &str, v: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for (name, pos) in fields::string_list(sink, path, v, Single::Warn) {
        if is_core_name(&name) {
            out.push(name);
        } else {
            sink.error(
                pos,
                format!(
                    "`{path}`: `{}` is not a valid service name: use {NAME_RULE}",
                    short(&name)
                ),
            );
        }
    }
    out
}

fn check_use_resources(sink: &mut Sink, node: &Node) -> BTreeMap<String, UseResource> {
    let mut out = BTreeMap::new();
    let Some(entries) = fields::mapping(
        sink,
        "use_resources",
        node,
        " (resource app name: {services: [...], parameters})",
    ) else {
        return out;
    };
    for (k, v) in entries {
        let Some(app) = fields::key(sink, "use_resources", k) else {
            continue;
        };
        if !is_core_name(app) {
            sink.error(
                k.pos,
                format!(
                    "`use_resources`: `{}` is not a valid app name: use {NAME_RULE}",
                    short(app)
                ),
            );
            continue;
        }
        let path = format!("use_resources.{app}");
        let Some(params) = fields::mapping(sink, &path, v, " (services: [...] and parameters)")
        else {
            continue;
        };
        let mut res = UseResource {
            services: Vec::new(),
            params: BTreeMap::new(),
        };
        let mut has_services = false;
        for (pk, pv) in params {
            let Some(name) = fields::key(sink, &path, pk) else {
                continue;
            };
            if name == "services" {
                has_services = true;
                res.services = service_names(sink, &format!("{path}.services"), pv);
                continue;
            }
            // LAIN's schema types only parameters named like procs; others
            // are passed to the template as they are.
            let typed = is_core_name(name);
            let param = match &pv.value {
                Value::Str(s) => Some(ResourceParam::String(s.clone())),
                Value::Int(i) => Some(ResourceParam::Integer(*i)),
                Value::Bool(b) if !typed => Some(ResourceParam::Bool(*b)),
                Value::Float(_) | Value::Timestamp | Value::BigInt if !typed => {
                    Some(ResourceParam::String(pv.text.clone()))
                }
                _ if typed => {
                    sink.error(
                        pv.pos,
                        format!(
                            "`{path}.{name}`: a resource parameter is a string or an integer, found {}",
                            pv.describe()
                        ),
                    );
                    None
                }
                _ => {
                    sink.warn(
                        pv.pos,
                        format!(
                            "`{path}.{}`: {} is not a usable resource parameter and is ignored",
                            short(name),
                            pv.describe()
                        ),
                    );
                    None
                }
            };
            if let Some(param) = param {
                res.params.insert(name.to_owned(), param);
            }
        }
        if !has_services {
            sink.error(
                k.pos,
                format!(
                    "`{path}` is missing `services:` (the list of the resource's services this \
                     app uses)"
                ),
            );
        }
        out.insert(app.to_owned(), res);
    }
    out
}

const NOTIFY_KEYS: &[&str] = &["slack", "bearychat"];

fn check_notify(sink: &mut Sink, node: &Node) -> Notify {
    let mut n = Notify::default();
    let Some(entries) = fields::mapping(sink, "notify", node, " (slack, bearychat)") else {
        return n;
    };
    for (k, v) in entries {
        let Some(key) = fields::key(sink, "notify", k) else {
            continue;
        };
        match key {
            "slack" => n.slack = fields::string(sink, "notify.slack", v),
            "bearychat" => n.bearychat = fields::string(sink, "notify.bearychat", v),
            other => ignored_key(sink, k, other, "notify", NOTIFY_KEYS),
        }
    }
    n
}

/// Valid top-level keys, for suggestions.
pub(crate) fn top_level_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = TOP_KEYS.to_vec();
    v.extend(["web", "worker", "oneshot"]);
    v
}
