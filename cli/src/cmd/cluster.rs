//! `lain cluster add|list|use|rm|status`.

use std::process::ExitCode;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::Console;
use crate::config::{cluster_name, Cluster, Config, Credentials};
use crate::error::fail;
use crate::output::{cell, print_json, time_ms, Format, Table};
use crate::Globals;

/// Clusters this CLI knows, named like LAIN's phases.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Add (or update) a cluster from its console's URL; what else is
    /// needed (sso, the CLI's client, the registry) is asked from console.
    Add {
        /// A name like `prod`, `staging`, `dev`.
        #[arg(value_parser = cluster_name)]
        name: String,
        /// console's base URL, e.g. `https://console.lain.example.com`.
        #[arg(long)]
        console: String,
        /// Make it the default cluster (the first one added always is).
        #[arg(long)]
        default: bool,
    },
    /// List the clusters.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Make NAME the default cluster.
    Use {
        #[arg(value_parser = cluster_name)]
        name: String,
    },
    /// Forget a cluster (and its login).
    Rm {
        #[arg(value_parser = cluster_name)]
        name: String,
    },
    /// The cluster's endpoints and the health of every daemon, node and
    /// etcd member.
    Status {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
}

/// console's RFC 9728 protected-resource metadata, with lain's additions.
#[derive(Debug, Deserialize)]
struct Discovery {
    authorization_servers: Vec<String>,
    #[serde(default)]
    lain_cli_client_id: Option<String>,
    #[serde(default)]
    lain_registry: Option<String>,
    #[serde(default)]
    lain_cluster_domain: Option<String>,
}

async fn discover(console: &str) -> anyhow::Result<Discovery> {
    let url = format!(
        "{}/.well-known/oauth-protected-resource",
        console.trim_end_matches('/')
    );
    crate::auth::well_known(
        &crate::auth::http(),
        &url,
        &format!("console at {console}"),
        "check the URL (console's base URL, e.g. https://console.example.com) and that console is up",
    )
    .await
}

impl ClusterCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        match self {
            ClusterCommand::Add {
                name,
                console,
                default,
            } => {
                if !(console.starts_with("http://") || console.starts_with("https://")) {
                    return Err(fail(
                        format!("`{console}` is not a URL"),
                        "give console's base URL, e.g. --console https://console.example.com",
                    ));
                }
                let d = discover(&console).await?;
                let Some(sso) = d.authorization_servers.into_iter().next() else {
                    return Err(fail(
                        format!("console at {console} names no sso"),
                        "check console's [auth] issuer",
                    ));
                };
                let mut config = Config::load()?;
                config.clusters.insert(
                    name.clone(),
                    Cluster {
                        console: console.trim_end_matches('/').to_owned(),
                        sso,
                        client_id: d.lain_cli_client_id.unwrap_or_else(|| "lain-cli".into()),
                        registry: d.lain_registry,
                        domain: d.lain_cluster_domain,
                    },
                );
                if default || config.default.is_none() {
                    config.default = Some(name.clone());
                }
                config.save()?;
                g.progress.line(format!(
                    "Added cluster `{name}` ({console}){}; log in with `lain -c {name} login`",
                    if config.default.as_deref() == Some(name.as_str()) {
                        ", the default"
                    } else {
                        ""
                    }
                ));
                Ok(ExitCode::SUCCESS)
            }
            ClusterCommand::List { output } => {
                let config = Config::load()?;
                let creds = Credentials::load()?;
                let rows: Vec<Value> = config
                    .clusters
                    .iter()
                    .map(|(n, c)| {
                        json!({
                            "name": n, "default": config.default.as_deref() == Some(n.as_str()),
                            "console": c.console, "sso": c.sso, "registry": c.registry,
                            "domain": c.domain, "logged_in": creds.clusters.contains_key(n),
                        })
                    })
                    .collect();
                match output {
                    Format::Json => print_json(&rows)?,
                    Format::Text => {
                        let mut t =
                            Table::new(["NAME", "DEFAULT", "CONSOLE", "REGISTRY", "LOGGED IN"]);
                        for r in &rows {
                            t.row(vec![
                                cell(&r["name"]),
                                if r["default"] == true {
                                    "*".into()
                                } else {
                                    String::new()
                                },
                                cell(&r["console"]),
                                cell(&r["registry"]),
                                if r["logged_in"] == true { "yes" } else { "no" }.into(),
                            ]);
                        }
                        if t.is_empty() {
                            println!(
                                "No clusters; add one with `lain cluster add NAME --console URL`."
                            );
                        } else {
                            t.print();
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ClusterCommand::Use { name } => {
                let mut config = Config::load()?;
                config.cluster(Some(&name))?;
                config.default = Some(name.clone());
                config.save()?;
                g.progress
                    .line(format!("`{name}` is now the default cluster"));
                Ok(ExitCode::SUCCESS)
            }
            ClusterCommand::Rm { name } => {
                let mut config = Config::load()?;
                config.cluster(Some(&name))?;
                config.clusters.remove(&name);
                if config.default.as_deref() == Some(name.as_str()) {
                    config.default = None;
                }
                config.save()?;
                let mut creds = Credentials::load()?;
                if creds.clusters.remove(&name).is_some() {
                    creds.save()?;
                }
                g.progress.line(format!("Removed cluster `{name}`"));
                Ok(ExitCode::SUCCESS)
            }
            ClusterCommand::Status { output } => status(g, output).await,
        }
    }
}

async fn status(g: &Globals, output: Format) -> anyhow::Result<ExitCode> {
    let console = Console::connect(g).await?;
    let s: Value = console.get("/api/v1/cluster/status").await?;
    if output == Format::Json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ok = |b: bool| if b { "ok" } else { "DOWN" };
    println!("cluster   {}", console.name);
    println!(
        "console   {}  {} (version {})",
        console.cluster.console,
        ok(true),
        cell(&s["console"]["version"])
    );
    println!(
        "sso       {}  {}{}",
        cell(&s["sso"]["issuer"]),
        ok(s["sso"]["reachable"] == true),
        s["sso"]["error"]
            .as_str()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    println!("registry  {}", cell(&s["registry"]));
    println!(
        "etcd      {}{}",
        ok(s["etcd"]["reachable"] == true),
        s["etcd"]["error"]
            .as_str()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    if let Some(members) = s["etcd"]["members"].as_array() {
        let mut t = Table::new(["ETCD MEMBER", "CLIENT URLS", "HEALTH"]);
        for m in members {
            t.row(vec![
                cell(&m["name"]),
                cell(&m["client_urls"]),
                if m["healthy"] == true { "ok" } else { "DOWN" }.into(),
            ]);
        }
        if !t.is_empty() {
            println!();
            t.print();
        }
    }
    println!();
    let mut t = Table::new(["DEPLOYD", "ADDRESS", "ROLE", "STARTED"]);
    if let Some(cands) = s["deployd"]["candidates"].as_array() {
        for c in cands {
            t.row(vec![
                cell(&c["id"]),
                cell(&c["address"]),
                if c["leader"] == true {
                    "leader"
                } else {
                    "follower"
                }
                .into(),
                c["started_at_ms"].as_i64().map(time_ms).unwrap_or_default(),
            ]);
        }
    }
    if t.is_empty() {
        println!("deployd   DOWN (no replica is running)");
    } else {
        t.print();
    }
    println!();
    let mut t = Table::new(["ROUTER", "ADDRESS", "APPLIED", "AGE", "UPSTREAMS", "ERROR"]);
    for r in s["routers"].as_array().into_iter().flatten() {
        t.row(vec![
            cell(&r["id"]),
            cell(&r["address"]),
            cell(&r["applied_revision"]),
            r["age_ms"]
                .as_u64()
                .map(|a| format!("{}s", a / 1000))
                .unwrap_or_default(),
            cell(&r["upstreams"]),
            cell(&r["error"]),
        ]);
    }
    if t.is_empty() {
        println!("webrouter DOWN (none has applied a configuration)");
    } else {
        t.print();
    }
    println!();
    crate::cmd::node::node_table(s["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[])).print();
    Ok(ExitCode::SUCCESS)
}
