//! From a release's lain.yaml to the desired procs console writes to etcd.
//!
//! Pure: the parsed [`LainConf`], the release, the app's current secret
//! versions and the generation go in; [`DesiredProc`]s (or the reasons a
//! deploy must be refused) come out. [`crate::deploy`] writes them.

use std::collections::{BTreeMap, BTreeSet};

use lain_spec::{AppType, BackupMode, FilterKind, LainConf, Proc, ProcKind};
use lain_store::{
    DesiredProc, HealthCheck, PortalSpec, ProcType, SecretRef, SecretTarget, VolumeBackup,
};

/// The release being deployed.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseRef<'a> {
    pub version: &'a str,
    /// The release image, `{registry}/{app}:release-{version}`.
    pub image: &'a str,
}

/// Why a release cannot be deployed. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    #[error("app {app} is a resource (apptype: resource); resources are not deployed themselves, the apps that use them are")]
    ResourceApp { app: String },
    #[error("proc {proc} uses {filter:?}: affinity filters are not supported; use constraint:KEY==VALUE or constraint:KEY!=VALUE")]
    Affinity { proc: String, filter: String },
    #[error("proc {proc} needs secret {name} (file {path}) but the app has no such secret; set it with `lain secret set {app} {name}` and deploy again")]
    MissingSecret {
        app: String,
        proc: String,
        name: String,
        path: String,
    },
    #[error("proc {proc} has secret files {first} and {second} with the same file name {name}; secrets are named by file name, so rename one")]
    SecretNameClash {
        proc: String,
        name: String,
        first: String,
        second: String,
    },
    #[error("proc {proc}: the secret file {path} has no usable file name; use a path ending in a name of letters, digits, '.', '_' or '-'")]
    BadSecretPath { proc: String, path: String },
    #[error("proc {proc} is not in the release's lain.yaml; its procs are {procs}")]
    UnknownProc { proc: String, procs: String },
    #[error("portal {proc} serves {service}, but the release has no proc named {service}; add it, or set the portal's service_name to one of its procs")]
    PortalWithoutService { proc: String, service: String },
    #[error("proc {proc} is a portal; portals run one instance on each node where a client runs, so they cannot be scaled or deployed on their own")]
    PortalScope { proc: String },
}

/// The proc's name in etcd and in the CLI: `web`, `web.admin`,
/// `worker`, `worker.q`, `portal.portal-echo` (`{kind}.{name}`, or just
/// the kind when the name is the kind).
pub fn proc_id(p: &Proc) -> String {
    let kind = p.kind.as_str();
    if p.name == kind {
        kind.to_owned()
    } else {
        format!("{kind}.{}", p.name)
    }
}

/// The name a secret file is stored under: its file name.
pub fn secret_name(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    ok.then_some(name)
}

/// The procs a deploy runs: every proc except oneshots (run on demand),
/// or the one named in `only`.
pub fn deployable<'a>(
    conf: &'a LainConf,
    only: Option<&str>,
) -> Result<Vec<&'a Proc>, DesiredError> {
    let all: Vec<&Proc> = conf
        .procs
        .iter()
        .filter(|p| p.kind != ProcKind::Oneshot)
        .collect();
    match only {
        None => Ok(all),
        Some(name) => {
            let found: Vec<&Proc> = all.iter().copied().filter(|p| proc_id(p) == name).collect();
            if let [p] = found[..] {
                if p.kind == ProcKind::Portal {
                    return Err(DesiredError::PortalScope {
                        proc: name.to_owned(),
                    });
                }
            }
            if found.is_empty() {
                return Err(DesiredError::UnknownProc {
                    proc: name.to_owned(),
                    procs: all
                        .iter()
                        .map(|p| proc_id(p))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Ok(found)
        }
    }
}

/// The desired procs of a release. `secrets` maps the app's secret names
/// to the version to run; `generation` is written on every proc.
pub fn desired_procs(
    conf: &LainConf,
    release: ReleaseRef<'_>,
    only: Option<&str>,
    secrets: &BTreeMap<String, u64>,
    generation: u64,
) -> Result<Vec<DesiredProc>, DesiredError> {
    if conf.apptype == AppType::Resource {
        return Err(DesiredError::ResourceApp {
            app: conf.appname.clone(),
        });
    }
    deployable(conf, only)?
        .into_iter()
        .map(|p| desired_proc(conf, p, release, secrets, generation))
        .collect()
}

fn desired_proc(
    conf: &LainConf,
    p: &Proc,
    release: ReleaseRef<'_>,
    secrets: &BTreeMap<String, u64>,
    generation: u64,
) -> Result<DesiredProc, DesiredError> {
    let id = proc_id(p);
    if let Some(f) = p.filters.iter().find(|f| f.kind == FilterKind::Affinity) {
        return Err(DesiredError::Affinity {
            proc: id,
            filter: f.raw.clone(),
        });
    }
    let mut refs = Vec::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for path in &p.secret_files {
        let Some(name) = secret_name(path) else {
            return Err(DesiredError::BadSecretPath {
                proc: id,
                path: path.clone(),
            });
        };
        if let Some(first) = seen.insert(name, path) {
            return Err(DesiredError::SecretNameClash {
                proc: id,
                name: name.to_owned(),
                first: first.to_owned(),
                second: path.clone(),
            });
        }
        let Some(&version) = secrets.get(name) else {
            return Err(DesiredError::MissingSecret {
                app: conf.appname.clone(),
                proc: id,
                name: name.to_owned(),
                path: path.clone(),
            });
        };
        refs.push(SecretRef {
            name: name.to_owned(),
            target: SecretTarget::File { path: path.clone() },
            version,
        });
    }
    let env: BTreeMap<String, String> = p
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let healthcheck = match (&p.healthcheck, &p.container_healthcheck) {
        (Some(path), _) => Some(HealthCheck::Http { path: path.clone() }),
        (None, Some(c)) => Some(HealthCheck::Command {
            cmd: vec!["sh".into(), "-c".into(), c.cmd.clone()],
        }),
        (None, None) => None,
    };
    let volumes: BTreeSet<String> = p.volumes.iter().map(|v| v.path.clone()).collect();
    let portal = match p.kind {
        ProcKind::Portal => Some(portal_spec(conf, p, &id)?),
        _ => None,
    };
    Ok(DesiredProc {
        app: conf.appname.clone(),
        proc: id,
        proc_type: match p.kind {
            ProcKind::Web => ProcType::Web,
            ProcKind::Worker => ProcType::Worker,
            ProcKind::Oneshot => ProcType::Oneshot,
            ProcKind::Portal => ProcType::Portal,
        },
        release: release.version.to_owned(),
        image: p.image.clone().unwrap_or_else(|| release.image.to_owned()),
        // A portal's instances follow its clients (see `portal`).
        instances: if portal.is_some() { 0 } else { p.num_instances },
        cmd: p.cmd.as_ref().map(|c| c.argv()).unwrap_or_default(),
        entrypoint: p.entrypoint.as_ref().map(|c| c.argv()).unwrap_or_default(),
        user: p.user.clone(),
        workdir: p.working_dir.clone(),
        // lain.yaml counts whole cores.
        cpu_millis: u64::from(p.cpu).saturating_mul(1000),
        memory_bytes: p.memory_bytes,
        env,
        secrets: refs,
        port: p.port,
        healthcheck,
        mountpoints: p.mountpoints.clone(),
        https_only: p.https_only,
        volumes: volumes.into_iter().collect(),
        labels: p.labels.clone(),
        kill_timeout_secs: p.kill_timeout,
        setup_time_secs: p.setup_time,
        stateful: p.stateful,
        filters: p.filters.iter().map(|f| f.raw.clone()).collect(),
        services: Vec::new(),
        backups: p
            .volumes
            .iter()
            .flat_map(|v| {
                v.backups.iter().map(|b| VolumeBackup {
                    path: v.path.clone(),
                    mode: match b.mode {
                        BackupMode::Full => "full",
                        BackupMode::Increment => "increment",
                    }
                    .to_owned(),
                    schedule: b.schedule.clone(),
                    expire: b.expire.clone(),
                    pre_run: b.pre_run.clone(),
                    post_run: b.post_run.clone(),
                })
            })
            .collect(),
        restore: None,
        portal,
        generation,
    })
}

/// What portal `p` fronts, and the clients it lets in.
fn portal_spec(conf: &LainConf, p: &Proc, id: &str) -> Result<PortalSpec, DesiredError> {
    let service = p.service_name.clone().unwrap_or_default();
    let target = conf
        .procs
        .iter()
        .find(|q| q.kind != ProcKind::Portal && q.name == service)
        .ok_or_else(|| DesiredError::PortalWithoutService {
            proc: id.to_owned(),
            service: service.clone(),
        })?;
    Ok(PortalSpec {
        service,
        service_proc: proc_id(target),
        allow_clients: allow_clients(p.allow_clients.as_deref()),
    })
}

/// LAIN's `allow_clients`: app names or patterns separated by commas or
/// spaces; `**` (everyone) when not given.
pub fn allow_clients(raw: Option<&str>) -> Vec<String> {
    let list: Vec<String> = raw
        .unwrap_or("**")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use lain_spec::ParseOptions;

    fn conf(yaml: &str) -> LainConf {
        let opts = ParseOptions {
            cluster_domain: "lain.test".into(),
            ..ParseOptions::default()
        };
        lain_spec::parse("lain.yaml", yaml, &opts)
            .unwrap_or_else(|d| panic!("{d:?}"))
            .conf
    }

    const RELEASE: ReleaseRef<'static> = ReleaseRef {
        version: "1700000000-0123456789abcdef0123456789abcdef01234567",
        image:
            "registry.lain.test/hello:release-1700000000-0123456789abcdef0123456789abcdef01234567",
    };

    const HELLO: &str = "appname: hello
build:
  base: golang
  script: [go build -o hello]
web:
  cmd: ./hello -p 8080
  port: 8080
  num_instances: 2
  memory: 64m
  env:
    - GREETING=hi
    - EMPTY=
  healthcheck: /ping
  secret_files:
    - /lain/app/conf/db.conf
web.admin:
  cmd: [./hello, admin]
  mountpoint:
    - /admin
worker.queue:
  cmd: ./hello work
  container_healthcheck:
    cmd: test -f /tmp/ok
  filters:
    - constraint:zone==a
oneshot.migrate:
  cmd: ./hello migrate
";

    #[test]
    fn a_release_becomes_desired_procs() {
        let c = conf(HELLO);
        let secrets = BTreeMap::from([("db.conf".to_owned(), 3)]);
        let procs = desired_procs(&c, RELEASE, None, &secrets, 7).unwrap();
        let ids: Vec<&str> = procs.iter().map(|p| p.proc.as_str()).collect();
        assert_eq!(
            ids,
            ["web", "web.admin", "worker.queue"],
            "oneshots are not deployed"
        );
        let web = &procs[0];
        assert_eq!(web.proc_type, ProcType::Web);
        assert_eq!(web.image, RELEASE.image);
        assert_eq!(web.release, RELEASE.version);
        assert_eq!(web.instances, 2);
        assert_eq!(web.cmd, ["./hello", "-p", "8080"]);
        assert_eq!(web.port, Some(8080));
        assert_eq!(web.memory_bytes, 64 << 20);
        assert_eq!(web.env.get("GREETING").map(String::as_str), Some("hi"));
        assert_eq!(web.env.get("EMPTY").map(String::as_str), Some(""));
        assert_eq!(
            web.healthcheck,
            Some(HealthCheck::Http {
                path: "/ping".into()
            })
        );
        assert_eq!(web.mountpoints, ["hello.lain.test", "hello.lain"]);
        assert_eq!(
            web.secrets,
            [SecretRef {
                name: "db.conf".into(),
                target: SecretTarget::File {
                    path: "/lain/app/conf/db.conf".into()
                },
                version: 3,
            }]
        );
        assert_eq!(web.generation, 7);
        let admin = &procs[1];
        assert_eq!(admin.cmd, ["./hello", "admin"]);
        assert!(
            admin
                .mountpoints
                .iter()
                .any(|m| m == "hello.lain.test/admin"),
            "{:?}",
            admin.mountpoints
        );
        let worker = &procs[2];
        assert_eq!(worker.proc_type, ProcType::Worker);
        assert_eq!(worker.port, None);
        assert_eq!(worker.filters, ["constraint:zone==a"]);
        assert!(
            matches!(&worker.healthcheck, Some(HealthCheck::Command { cmd }) if cmd[2] == "test -f /tmp/ok")
        );
    }

    #[test]
    fn one_proc_can_be_deployed_alone() {
        let c = conf(HELLO);
        let secrets = BTreeMap::from([("db.conf".to_owned(), 1)]);
        let procs = desired_procs(&c, RELEASE, Some("worker.queue"), &secrets, 2).unwrap();
        assert_eq!(procs.len(), 1);
        let e = desired_procs(&c, RELEASE, Some("nope"), &secrets, 2).unwrap_err();
        assert!(
            e.to_string().contains("web, web.admin, worker.queue"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_secret_refuses_the_deploy_with_the_command_to_run() {
        let c = conf(HELLO);
        let e = desired_procs(&c, RELEASE, None, &BTreeMap::new(), 1).unwrap_err();
        assert!(
            e.to_string().contains("lain secret set hello db.conf"),
            "{e}"
        );
    }

    #[test]
    fn affinity_filters_are_refused() {
        let c = conf("appname: a\nbuild:\n  base: b\n  script: []\nworker:\n  cmd: x\n  filters:\n    - affinity:zone==a\n");
        let e = desired_procs(&c, RELEASE, None, &BTreeMap::new(), 1).unwrap_err();
        assert!(matches!(e, DesiredError::Affinity { .. }), "{e}");
    }

    #[test]
    fn secret_names_are_file_names() {
        assert_eq!(secret_name("/lain/app/conf/db.conf"), Some("db.conf"));
        assert_eq!(secret_name("/lain/app/"), None);
        assert_eq!(secret_name("/x/.."), None);
        assert_eq!(secret_name("/x/a b"), None);
    }
}
