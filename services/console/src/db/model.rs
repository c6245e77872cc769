//! The domain structs the repositories take and return.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a string-backed enum with `as_str`, `Display` and `FromStr`.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(format!(
                        "`{}` is not one of {}",
                        s.chars().take(32).collect::<String>(),
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// lain.yaml's `apptype`.
    AppType { App = "app", Resource = "resource" }
);

text_enum!(
    /// A maintainer's role. Owners may manage maintainers (the API decides);
    /// every app keeps at least one.
    Role { Owner = "owner", Maintainer = "maintainer" }
);

text_enum!(
    /// What a deployment does.
    DeploymentKind {
        Deploy = "deploy",
        Rollback = "rollback",
        Scale = "scale",
        Undeploy = "undeploy",
        /// A proc rolled out to restore a volume backup into an instance.
        Restore = "restore",
    }
);

text_enum!(
    /// Where a deployment is. `succeeded`, `failed` and `rolled_back` are
    /// final.
    DeploymentState {
        Pending = "pending",
        Progressing = "progressing",
        Succeeded = "succeeded",
        Failed = "failed",
        RolledBack = "rolled_back",
    }
);

text_enum!(
    /// How an audited call ended.
    AuditResult { Ok = "ok", Denied = "denied", Error = "error" }
);

impl DeploymentState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentState::Succeeded | DeploymentState::Failed | DeploymentState::RolledBack
        )
    }

    /// Whether a deployment in `self` may move to `to`: forward only, and
    /// `progressing` may be repeated (to record a new generation).
    pub fn can_become(self, to: DeploymentState) -> bool {
        use DeploymentState::*;
        match self {
            Pending => to != Pending,
            Progressing => to != Pending,
            Succeeded | Failed | RolledBack => false,
        }
    }
}

/// An app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub apptype: AppType,
    pub giturl: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

/// What [`crate::db::Apps::create`] takes. The creator becomes the app's
/// first owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApp {
    pub name: String,
    pub apptype: AppType,
    pub giturl: Option<String>,
    pub created_by: String,
}

/// Someone who may deploy an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintainer {
    pub app: String,
    pub subject: String,
    pub role: Role,
    pub added_by: String,
    pub added_at: i64,
}

/// A registered release: one build of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub app: String,
    /// `<commit unix time>-<40 hex sha>`.
    pub version: String,
    pub image: String,
    /// `sha256:<64 hex>`.
    pub digest: String,
    pub lain_yaml: String,
    pub pushed_by: String,
    pub pushed_at: i64,
}

/// What [`crate::db::Releases::register`] takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRelease {
    pub app: String,
    pub version: String,
    pub image: String,
    pub digest: String,
    pub lain_yaml: String,
    pub pushed_by: String,
}

/// What [`crate::db::Releases::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub release: Release,
    /// False when the same content was registered before (nothing changed).
    pub created: bool,
}

/// Which procs a deployment touches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcSelection {
    #[default]
    All,
    /// These procs only (full names, e.g. `web`, `worker.mail`).
    Only(Vec<String>),
}

/// What a deployment wrote to etcd: enough to restore image, env and
/// secrets together on rollback. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeploymentSnapshot {
    /// The desired procs as written (e.g. proc name → `DesiredProc` JSON).
    pub desired: serde_json::Value,
    /// The secret versions the desired procs use, by secret name.
    pub secrets: BTreeMap<String, i64>,
}

/// A deployment (deploy, rollback, scale or undeploy) of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub app: String,
    pub kind: DeploymentKind,
    pub from_release: Option<String>,
    /// `None` for an undeploy.
    pub to_release: Option<String>,
    pub procs: ProcSelection,
    pub requested_by: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub state: DeploymentState,
    pub error: Option<String>,
    /// The generation of the desired state it wrote, once written.
    pub generation: Option<i64>,
    pub snapshot: DeploymentSnapshot,
}

impl Deployment {
    /// Whether a rollback may return to it: it wrote procs (not an
    /// undeploy) and did not fail or get rolled back.
    pub fn restorable(&self) -> bool {
        self.kind != DeploymentKind::Undeploy
            && !matches!(
                self.state,
                DeploymentState::Failed | DeploymentState::RolledBack
            )
            && self
                .snapshot
                .desired
                .as_object()
                .is_some_and(|o| !o.is_empty())
    }
}

/// What [`crate::db::Deployments::create`] takes. The deployment starts
/// `pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeployment {
    pub app: String,
    pub kind: DeploymentKind,
    pub from_release: Option<String>,
    pub to_release: Option<String>,
    pub procs: ProcSelection,
    pub requested_by: String,
    pub generation: Option<i64>,
    pub snapshot: DeploymentSnapshot,
}

/// A state change of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentUpdate {
    pub state: DeploymentState,
    /// Why it failed or rolled back (cut to 1024 bytes).
    pub error: Option<String>,
    /// The generation written to etcd, if known now (kept otherwise).
    pub generation: Option<i64>,
}

/// Filters of [`crate::db::Deployments::list`]; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentQuery {
    pub state: Option<DeploymentState>,
    /// Only ids below this one (the next page).
    pub before: Option<i64>,
    /// 0 = 100; at most 1000.
    pub limit: u32,
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub app: String,
    pub name: String,
    /// The current version (1, 2, ...).
    pub version: i64,
    pub updated_by: String,
    pub updated_at: i64,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub app: Option<String>,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub result: AuditResult,
    pub request_id: Option<String>,
}

/// What [`crate::db::Audit::record`] takes. `detail` must never hold a
/// secret value (name and version are fine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub app: Option<String>,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub result: AuditResult,
    pub request_id: Option<String>,
}

/// Filters of [`crate::db::Audit::list`]; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub app: Option<String>,
    pub actor: Option<String>,
    /// Only this action (`scale`, `node.cordon`, ...).
    pub action: Option<String>,
    /// Only this result.
    pub result: Option<AuditResult>,
    /// Only ids below this one (the next page).
    pub before: Option<i64>,
    /// 0 = 100; at most 1000.
    pub limit: u32,
}
