//! The typed lain.yaml: what a validated file means.
//!
//! Everything here is plain data (serde both ways) so that console can
//! store it and the CLI can print it with `-o json`. Values are already
//! defaulted and derived (default port, domains, expanded mountpoints,
//! absolute secret file paths), so consumers never re-apply LAIN's rules.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A validated lain.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LainConf {
    pub appname: String,
    pub giturl: Option<String>,
    pub apptype: AppType,
    pub build: Build,
    /// `None`: the release image is the build image itself.
    pub release: Option<Release>,
    pub test: Option<Test>,
    /// Procs in file order; a `service.NAME` contributes its proc and then
    /// its portal `portal-NAME`.
    pub procs: Vec<Proc>,
    /// App name -> the service (portal) names used from it.
    pub use_services: BTreeMap<String, Vec<String>>,
    /// Resource app name -> what is used from it.
    pub use_resources: BTreeMap<String, UseResource>,
    pub notify: Notify,
    /// `{appdomain}.{cluster domain}`, `{appdomain}.{extra domain}` for each
    /// of the cluster's extra domains, and `{appdomain}.lain`: the domains
    /// proc `web` answers on and that `/path` mountpoints are expanded onto.
    pub default_domains: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    #[default]
    App,
    Resource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub base: String,
    pub prepare: Option<Prepare>,
    pub script: Vec<String>,
    pub build_arg: Vec<String>,
    /// Build-time cache directories (`docker run -v`), as written.
    pub volumes: Vec<String>,
}

/// `build.prepare`: the cached layer under the build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepare {
    /// `"0"` when not given (and always for the old list form).
    pub version: String,
    pub script: Vec<String>,
    /// Paths under /lain/app that survive the clean-up after prepare.
    pub keep: Vec<String>,
    pub build_arg: Vec<String>,
    /// Written in the old form: a bare list of commands.
    pub legacy_list: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub dest_base: String,
    pub copy: Vec<CopySpec>,
    pub script: Vec<String>,
}

/// One `release.copy` entry; a plain string `x` means `{src: x, dest: x}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySpec {
    pub src: String,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Test {
    pub script: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Notify {
    pub slack: Option<String>,
    pub bearychat: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UseResource {
    /// The resource's services (portals) this app connects to.
    pub services: Vec<String>,
    /// Every other key: parameters to render the resource template with.
    pub params: BTreeMap<String, ResourceParam>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResourceParam {
    Integer(i64),
    Bool(bool),
    String(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcKind {
    Web,
    Worker,
    Oneshot,
    Portal,
}

impl ProcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcKind::Web => "web",
            ProcKind::Worker => "worker",
            ProcKind::Oneshot => "oneshot",
            ProcKind::Portal => "portal",
        }
    }
}

impl std::fmt::Display for ProcKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proc's command, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// `cmd: ./app -p 80`
    Shell(String),
    /// `cmd: ["./app", "-p", "80"]`
    Exec(Vec<String>),
}

impl Command {
    /// The argument vector LAIN runs: the shell form is split on
    /// whitespace (no shell, no quote handling), the exec form is as is.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => s.split_whitespace().map(str::to_owned).collect(),
            Command::Exec(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A `ports` entry: cluster port `src` (9500..=10000) to container `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub src: u16,
    pub dst: u16,
    pub proto: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Absolute path in the container (relative ones are under /lain/app).
    pub path: String,
    pub backups: Vec<Backup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    Full,
    Increment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub mode: BackupMode,
    /// Cron expression.
    pub schedule: String,
    /// e.g. `10d`, `30m`; empty when not given.
    pub expire: String,
    pub pre_run: String,
    pub post_run: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CloudVolumeType {
    #[default]
    Multi,
    Single,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudVolumes {
    pub kind: CloudVolumeType,
    /// Absolute paths.
    pub dirs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHealthcheck {
    pub cmd: String,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    Constraint,
    Affinity,
}

/// A placement filter `constraint:KEY==VALUE` / `affinity:KEY!=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub kind: FilterKind,
    pub key: String,
    /// `true` for `==`, `false` for `!=`.
    pub equal: bool,
    pub value: String,
    /// As written.
    pub raw: String,
}

/// One proc, with LAIN's defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proc {
    /// The proc name (`web`, `admin`, `portal-echo`); unique in the app.
    pub name: String,
    pub kind: ProcKind,
    /// `{kind}.{name}`, e.g. `web.admin`, `web.web`, `portal.portal-echo`.
    pub key: String,
    /// The lain.yaml section it came from (`web`, `proc.x`, `service.echo`).
    pub section: String,
    /// `None`: the app's release image.
    pub image: Option<String>,
    pub entrypoint: Option<Command>,
    pub cmd: Option<Command>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Default 1.
    pub num_instances: u32,
    /// Default 0 (no CPU limit).
    pub cpu: u32,
    /// As written, default `32m`.
    pub memory: String,
    /// `memory` in bytes (m = MiB, g = GiB).
    pub memory_bytes: u64,
    /// Container port; web procs default to 80, others to none.
    pub port: Option<u16>,
    pub ports: Vec<PortMapping>,
    /// `K=V` strings, in order.
    pub env: Vec<String>,
    pub volumes: Vec<Volume>,
    pub cloud_volumes: Option<CloudVolumes>,
    /// Absolute paths in the container.
    pub secret_files: Vec<String>,
    pub secret_files_bypass: bool,
    /// File names under /lain/logs.
    pub logs: Vec<String>,
    /// Web procs only: full mountpoints (`host` or `host/path`), defaults
    /// and `/path` expansions included.
    pub mountpoints: Vec<String>,
    /// Web procs only; default false.
    pub https_only: bool,
    /// Web procs only: the HTTP path the router checks.
    pub healthcheck: Option<String>,
    pub container_healthcheck: Option<ContainerHealthcheck>,
    /// Not rescheduled to another node when its node dies.
    pub stateful: bool,
    /// Seconds between instances in a rolling upgrade (0..=120, default 0).
    pub setup_time: u32,
    /// Seconds between SIGTERM and SIGKILL (10..=60, default 10).
    pub kill_timeout: u32,
    pub labels: BTreeMap<String, String>,
    pub filters: Vec<Filter>,
    /// Portals only: the proc this portal fronts.
    pub service_name: Option<String>,
    /// Portals only: allowed client apps, default `**` (everyone).
    pub allow_clients: Option<String>,
}

impl Proc {
    pub fn is_web(&self) -> bool {
        self.kind == ProcKind::Web
    }

    /// The image to run: its own `image`, else the app's release image.
    pub fn image_or(&self, release_image: &str) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| release_image.to_owned())
    }

    /// `(name, value)` pairs of `env`; an entry without `=` has an empty value.
    pub fn env_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env
            .iter()
            .map(|e| e.split_once('=').unwrap_or((e.as_str(), "")))
    }

    /// The command LAIN runs (`cmd` split like LAIN does), if any.
    pub fn argv(&self) -> Option<Vec<String>> {
        self.cmd.as_ref().map(Command::argv)
    }

    /// LAIN's full proc name used by deploy and backup: `{app}.{kind}.{name}`.
    pub fn full_name(&self, appname: &str) -> String {
        format!("{appname}.{}.{}", self.kind, self.name)
    }
}

impl LainConf {
    pub fn procs(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter()
    }

    pub fn proc(&self, name: &str) -> Option<&Proc> {
        self.procs.iter().find(|p| p.name == name)
    }

    pub fn web_procs(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().filter(|p| p.is_web())
    }

    /// Every mountpoint of every web proc, with the proc that serves it.
    pub fn mountpoints(&self) -> impl Iterator<Item = (&Proc, &str)> {
        self.web_procs()
            .flat_map(|p| p.mountpoints.iter().map(move |m| (p, m.as_str())))
    }

    /// `{appdomain}`: the appname with its dot-separated parts reversed.
    pub fn app_domain(&self) -> String {
        crate::derive::app_domain(&self.appname)
    }

    /// `{registry}/{app}:release-{version}`.
    pub fn release_image(&self, registry: &str, version: &str) -> String {
        crate::derive::release_image(registry, &self.appname, version)
    }

    /// The image a proc runs for a release.
    pub fn image_for(&self, proc: &Proc, registry: &str, version: &str) -> String {
        proc.image_or(&self.release_image(registry, version))
    }
}
