//! `lain node add|list|cordon|uncordon|drain|rm` (admins).

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{enc, Console};
use crate::error::fail;
use crate::output::{bytes, cell, print_json, Format, Table};
use crate::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Register a node (or update its registration).
    Add {
        name: String,
        /// How deployd reaches its Docker engine: `unix:///var/run/docker.sock`
        /// or `tcp://HOST:PORT`.
        #[arg(long)]
        docker: String,
        /// The address containers' published ports are reached at.
        #[arg(long)]
        address: String,
        /// CPU cores the node offers (e.g. `4`, `0.5`).
        #[arg(long)]
        cpu: f64,
        /// Memory the node offers, as in lain.yaml (`8g`, `512m`).
        #[arg(long)]
        memory: String,
        /// A label `constraint:` filters match, `KEY=VALUE` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// The CA certificate that signed the engine's TLS certificate: a
        /// path on deployd's hosts (with `--tls-cert` and `--tls-key`, for
        /// `tcp://` endpoints).
        #[arg(long, value_name = "PATH", requires_all = ["tls_cert", "tls_key"])]
        tls_ca: Option<String>,
        /// deployd's client certificate for the engine (a path on deployd's hosts).
        #[arg(long, value_name = "PATH", requires_all = ["tls_ca", "tls_key"])]
        tls_cert: Option<String>,
        /// deployd's client key for the engine (a path on deployd's hosts).
        #[arg(long, value_name = "PATH", requires_all = ["tls_ca", "tls_cert"])]
        tls_key: Option<String>,
        /// Register a new node cordoned: nothing runs there until `lain node
        /// uncordon` (check it first). An existing node keeps its flags.
        #[arg(long)]
        cordoned: bool,
    },
    /// List the nodes with their health.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Stop placing new instances on the node; running ones stay.
    Cordon { name: String },
    /// Place instances on the node again.
    Uncordon { name: String },
    /// Move the node's instances elsewhere (and cordon it). Instances with
    /// volumes stay unless `--with-volumes`.
    Drain {
        name: String,
        /// Move instances with volumes too, copying their data to their
        /// new node before they start there.
        #[arg(long)]
        with_volumes: bool,
    },
    /// Remove a drained node.
    Rm { name: String },
}

fn docker_endpoint(s: &str, tls: Option<Value>) -> anyhow::Result<Value> {
    if let Some(socket) = s.strip_prefix("unix://") {
        if tls.is_some() {
            return Err(fail(
                "TLS files were given for a unix socket",
                "--tls-ca, --tls-cert and --tls-key are for tcp:// endpoints",
            ));
        }
        return Ok(json!({"kind": "unix", "socket": socket}));
    }
    if let Some(address) = s.strip_prefix("tcp://") {
        return Ok(json!({"kind": "tcp", "address": address, "tls": tls}));
    }
    Err(fail(
        format!("`{s}` is not a Docker endpoint"),
        "give unix:///PATH/docker.sock or tcp://HOST:PORT",
    ))
}

/// The node table `node list` and `cluster status` print.
pub fn node_table(nodes: &[Value]) -> Table {
    let mut t = Table::new([
        "NODE",
        "ADDRESS",
        "HEALTH",
        "SCHEDULING",
        "CPU",
        "MEMORY",
        "INSTANCES",
        "MESSAGE",
    ]);
    for n in nodes {
        let scheduling = if n["draining"] == true && n["drain_volumes"] == true {
            "draining (with volumes)"
        } else if n["draining"] == true {
            "draining"
        } else if n["schedulable"] == false {
            "cordoned"
        } else {
            "ready"
        };
        t.row(vec![
            cell(&n["name"]),
            cell(&n["address"]),
            cell(&n["liveness"]),
            scheduling.into(),
            n["cpu_millis"]
                .as_u64()
                .map(|m| format!("{}", m as f64 / 1000.0))
                .unwrap_or_default(),
            n["memory_bytes"].as_u64().map(bytes).unwrap_or_default(),
            cell(&n["instances"]),
            cell(&n["message"]),
        ]);
    }
    t
}

impl NodeCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        match self {
            NodeCommand::Add {
                name,
                docker,
                address,
                cpu,
                memory,
                labels,
                tls_ca,
                tls_cert,
                tls_key,
                cordoned,
            } => {
                let tls = match (tls_ca, tls_cert, tls_key) {
                    (Some(ca), Some(cert), Some(key)) => {
                        Some(json!({"ca_cert": ca, "client_cert": cert, "client_key": key}))
                    }
                    _ => None,
                };
                let docker = docker_endpoint(&docker, tls)?;
                let memory_bytes = lain_spec::memory_bytes(&memory).ok_or_else(|| {
                    fail(format!("`{memory}` is not a memory size"), "give e.g. 8g or 512m")
                })?;
                if !(cpu.is_finite() && cpu > 0.0 && cpu <= 4096.0) {
                    return Err(fail(format!("`{cpu}` CPUs is out of range"), "give the node's cores, e.g. --cpu 4"));
                }
                let mut label_map = serde_json::Map::new();
                for l in &labels {
                    let Some((k, v)) = l.split_once('=') else {
                        return Err(fail(format!("label `{l}` is not KEY=VALUE"), "e.g. --label disk=ssd"));
                    };
                    label_map.insert(k.to_owned(), Value::String(v.to_owned()));
                }
                let console = Console::connect(g).await?;
                let _: Value = console
                    .call(
                        Method::PUT,
                        &format!("/api/v1/nodes/{}", enc(&name)),
                        &json!({
                            "docker": docker, "address": address, "labels": label_map,
                            "cpu_millis": (cpu * 1000.0).round() as u64, "memory_bytes": memory_bytes,
                            "cordoned": cordoned,
                        }),
                    )
                    .await?;
                if cordoned {
                    g.progress.line(format!("Registered node `{name}`, cordoned; `lain node uncordon {name}` once it is ready"));
                } else {
                    g.progress.line(format!("Registered node `{name}`; deployd will start using it once it answers"));
                }
            }
            NodeCommand::List { output } => {
                let console = Console::connect(g).await?;
                let nodes: Vec<Value> = console.get("/api/v1/nodes").await?;
                match output {
                    Format::Json => print_json(&nodes)?,
                    Format::Text => node_table(&nodes).print(),
                }
            }
            NodeCommand::Cordon { name } => action(g, &name, "cordon", "cordoned: no new instances go there").await?,
            NodeCommand::Uncordon { name } => action(g, &name, "uncordon", "schedulable again").await?,
            NodeCommand::Drain { name, with_volumes: false } => {
                action(g, &name, "drain", "draining: deployd moves its instances away, except those with volumes (`--with-volumes` moves them with their data); `lain node list` shows when it is empty").await?
            }
            NodeCommand::Drain { name, with_volumes: true } => {
                action(g, &name, "drain?with_volumes=true", "draining: deployd moves its instances away, those with volumes after copying their data; `lain node list` shows when it is empty").await?
            }
            NodeCommand::Rm { name } => {
                let console = Console::connect(g).await?;
                console
                    .call_empty(Method::DELETE, &format!("/api/v1/nodes/{}", enc(&name)))
                    .await?;
                g.progress.line(format!("Removed node `{name}`"));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

async fn action(g: &Globals, name: &str, verb: &str, done: &str) -> anyhow::Result<()> {
    let console = Console::connect(g).await?;
    let _: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/nodes/{}/{verb}", enc(name)),
            &json!({}),
        )
        .await?;
    g.progress.line(format!("Node `{name}` is {done}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_endpoints() {
        assert!(docker_endpoint("ssh://x", None).is_err());
        let tls = json!({"ca_cert": "/c", "client_cert": "/d", "client_key": "/k"});
        let tcp = docker_endpoint("tcp://10.0.0.5:2376", Some(tls.clone())).unwrap();
        assert_eq!(tcp["address"], "10.0.0.5:2376");
        assert_eq!(tcp["tls"], tls);
        assert!(docker_endpoint("unix:///s", Some(tls)).is_err());
        assert_eq!(docker_endpoint("unix:///s", None).unwrap()["socket"], "/s");
    }
}
