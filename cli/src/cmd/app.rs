//! `lain app create|list|show|delete`, `lain maintainer add|rm|list`.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{enc, Console};
use crate::output::{cell, print_json, time_ms, Format, Table};
use crate::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Register an app; you become its owner.
    Create {
        /// The app's name, as lain.yaml's `appname`.
        name: String,
        /// `app` (default) or `resource`.
        #[arg(long)]
        apptype: Option<String>,
        /// The app's repository URL.
        #[arg(long)]
        giturl: Option<String>,
    },
    /// List the apps.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Show an app, its maintainers and its latest releases.
    Show {
        name: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Delete an app (undeploy it first).
    Delete { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum MaintainerCommand {
    /// Add a maintainer (or change their role).
    Add {
        app: String,
        /// An sso user name, or `client:ID` for a daemon.
        subject: String,
        /// `maintainer` (default) or `owner`.
        #[arg(long)]
        role: Option<String>,
    },
    /// Remove a maintainer.
    Rm { app: String, subject: String },
    /// List an app's maintainers.
    List {
        app: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
}

fn app_table(apps: &[Value]) -> Table {
    let mut t = Table::new(["NAME", "TYPE", "CREATED BY", "CREATED", "GIT"]);
    for a in apps {
        t.row(vec![
            cell(&a["name"]),
            cell(&a["apptype"]),
            cell(&a["created_by"]),
            a["created_at"].as_i64().map(time_ms).unwrap_or_default(),
            cell(&a["giturl"]),
        ]);
    }
    t
}

fn maintainer_table(ms: &[Value]) -> Table {
    let mut t = Table::new(["SUBJECT", "ROLE", "ADDED BY", "ADDED"]);
    for m in ms {
        t.row(vec![
            cell(&m["subject"]),
            cell(&m["role"]),
            cell(&m["added_by"]),
            m["added_at"].as_i64().map(time_ms).unwrap_or_default(),
        ]);
    }
    t
}

impl AppCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let console = Console::connect(g).await?;
        match self {
            AppCommand::Create {
                name,
                apptype,
                giturl,
            } => {
                let a: Value = console
                    .call(
                        Method::POST,
                        "/api/v1/apps",
                        &json!({"name": name, "apptype": apptype, "giturl": giturl}),
                    )
                    .await?;
                g.progress
                    .line(format!("Created app `{}`; you own it", cell(&a["name"])));
            }
            AppCommand::List { output } => {
                let apps: Vec<Value> = console.get("/api/v1/apps").await?;
                match output {
                    Format::Json => print_json(&apps)?,
                    Format::Text if apps.is_empty() => {
                        println!("No apps; create one with `lain app create NAME`.")
                    }
                    Format::Text => app_table(&apps).print(),
                }
            }
            AppCommand::Show { name, output } => {
                let app: Value = console.get(&format!("/api/v1/apps/{}", enc(&name))).await?;
                let ms: Vec<Value> = console
                    .get(&format!("/api/v1/apps/{}/maintainers", enc(&name)))
                    .await?;
                let rs: Vec<Value> = console
                    .get(&format!("/api/v1/apps/{}/releases?limit=5", enc(&name)))
                    .await?;
                match output {
                    Format::Json => {
                        print_json(&json!({"app": app, "maintainers": ms, "releases": rs}))?
                    }
                    Format::Text => {
                        app_table(std::slice::from_ref(&app)).print();
                        println!();
                        maintainer_table(&ms).print();
                        println!();
                        crate::cmd::deploy::release_table(&rs).print();
                    }
                }
            }
            AppCommand::Delete { name } => {
                console
                    .call_empty(Method::DELETE, &format!("/api/v1/apps/{}", enc(&name)))
                    .await?;
                g.progress.line(format!("Deleted app `{name}`"));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl MaintainerCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        let console = Console::connect(g).await?;
        match self {
            MaintainerCommand::Add { app, subject, role } => {
                let m: Value = console
                    .call(
                        Method::PUT,
                        &format!("/api/v1/apps/{}/maintainers", enc(&app)),
                        &json!({"subject": subject, "role": role}),
                    )
                    .await?;
                g.progress.line(format!(
                    "`{}` is now {} of `{app}`",
                    cell(&m["subject"]),
                    if m["role"] == "owner" {
                        "an owner"
                    } else {
                        "a maintainer"
                    }
                ));
            }
            MaintainerCommand::Rm { app, subject } => {
                console
                    .call_empty(
                        Method::DELETE,
                        &format!("/api/v1/apps/{}/maintainers/{}", enc(&app), enc(&subject)),
                    )
                    .await?;
                g.progress
                    .line(format!("`{subject}` no longer maintains `{app}`"));
            }
            MaintainerCommand::List { app, output } => {
                let ms: Vec<Value> = console
                    .get(&format!("/api/v1/apps/{}/maintainers", enc(&app)))
                    .await?;
                match output {
                    Format::Json => print_json(&ms)?,
                    Format::Text => maintainer_table(&ms).print(),
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
