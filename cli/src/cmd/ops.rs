//! `lain ps`, `lain logs`, `lain events`.

use std::io::Write as _;
use std::process::ExitCode;

use futures::StreamExt as _;
use serde_json::Value;

use crate::api::{enc, Console};
use crate::cmd::deploy::app_name;
use crate::error::fail;
use crate::output::{bytes, cell, print_json, time_ms, Format, Table};
use crate::Globals;

/// The app's procs and instances, as deployd observes them.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    #[arg(long)]
    app: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// A proc's output, from one instance (default the first).
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The proc, e.g. `web` or `worker.queue` (or just `queue`).
    proc: String,
    #[arg(long)]
    app: Option<String>,
    /// Keep printing new lines until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// The instance number (`lain ps` shows them).
    #[arg(long)]
    instance: Option<String>,
    /// Only the last N lines.
    #[arg(long)]
    tail: Option<u32>,
    /// Prefix each line with its time.
    #[arg(short, long)]
    timestamps: bool,
}

/// What deployd did with the app lately (placements, health, rollbacks).
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[arg(long)]
    app: Option<String>,
    /// Only this proc's.
    #[arg(long)]
    proc: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

pub async fn ps(a: PsArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let s: Value = console
        .get(&format!("/api/v1/apps/{}/status", enc(&app)))
        .await?;
    if a.output == Format::Json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let procs = s["procs"].as_array().cloned().unwrap_or_default();
    if procs.is_empty() {
        println!("`{app}` is not deployed; deploy it with `lain deploy`.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(["PROC", "RELEASE", "INSTANCES", "CPU", "MEMORY", "ROLLOUT"]);
    for p in &procs {
        let d = &p["desired"];
        t.row(vec![
            cell(&p["proc"]),
            cell(&d["release"]),
            cell(&d["instances"]),
            d["cpu_millis"]
                .as_u64()
                .map(|m| format!("{}", m as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            d["memory_bytes"]
                .as_u64()
                .map(bytes)
                .unwrap_or_else(|| "-".into()),
            format!(
                "{}{}",
                cell(&p["rollout"]["phase"]),
                p["rollout"]["message"]
                    .as_str()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ]);
    }
    t.print();
    println!();
    let mut t = Table::new([
        "INSTANCE", "RELEASE", "NODE", "STATE", "HEALTH", "ADDRESS", "RESTARTS", "MESSAGE",
    ]);
    for p in &procs {
        for i in p["instances"].as_array().into_iter().flatten() {
            t.row(vec![
                format!("{} #{}", cell(&p["proc"]), cell(&i["number"])),
                cell(&i["release"]),
                cell(&i["node"]),
                cell(&i["state"]),
                cell(&i["health"]),
                cell(&i["address"]),
                cell(&i["restarts"]),
                cell(&i["message"]),
            ]);
        }
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(a: LogsArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let status = app_status(&console, &app).await?;
    let proc = proc_in(&status, &a.proc);
    let instance = match a.instance {
        Some(i) => i,
        None => first_instance(&status, &app, &proc)?,
    };
    let mut query = vec![
        format!("follow={}", a.follow),
        format!("timestamps={}", a.timestamps),
        format!("instance={}", enc(&instance)),
    ];
    if let Some(t) = a.tail {
        query.push(format!("tail={t}"));
    }
    let r = console
        .stream(&format!(
            "/api/v1/apps/{}/procs/{}/logs?{}",
            enc(&app),
            enc(&proc),
            query.join("&")
        ))
        .await?;
    let mut body = r.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            fail(
                format!("the log stream broke: {}", e.without_url()),
                "run the command again",
            )
        })?;
        // A closed pipe (`| head`) ends quietly.
        if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The app's status as console reports it (procs and instances).
pub async fn app_status(console: &Console, app: &str) -> anyhow::Result<Value> {
    console
        .get(&format!("/api/v1/apps/{}/status", enc(app)))
        .await
}

/// The proc id `given` names among the app's deployed procs: itself, or
/// the one proc whose name after its kind is `given` (`tidy` for
/// `worker.tidy`, as `lain validate` shows it). Otherwise `given`, for
/// console to judge.
pub fn proc_in(status: &Value, given: &str) -> String {
    let procs: Vec<&str> = status["procs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["proc"].as_str())
        .collect();
    if procs.contains(&given) {
        return given.to_owned();
    }
    let short: Vec<&str> = procs
        .into_iter()
        .filter(|p| p.split_once('.').is_some_and(|(_, name)| name == given))
        .collect();
    match short.as_slice() {
        [one] => (*one).to_owned(),
        _ => given.to_owned(),
    }
}

/// The proc's lowest-numbered instance, preferring a running one.
fn first_instance(s: &Value, app: &str, proc: &str) -> anyhow::Result<String> {
    let instances: Vec<&Value> = s["procs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["proc"] == proc)
        .flat_map(|p| p["instances"].as_array().into_iter().flatten())
        .collect();
    let pick = instances
        .iter()
        .min_by_key(|i| {
            (
                i["state"] != "running",
                i["number"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .copied();
    match pick {
        Some(i) => Ok(cell(&i["number"])),
        None => Err(fail(
            format!("proc `{proc}` of `{app}` has no instances"),
            format!("see `lain ps --app {app}`; deploy it with `lain deploy`"),
        )),
    }
}

pub async fn events(a: EventsArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let path = match &a.proc {
        Some(p) => format!("/api/v1/apps/{}/events?proc={}", enc(&app), enc(p)),
        None => format!("/api/v1/apps/{}/events", enc(&app)),
    };
    let evs: Vec<Value> = console.get(&path).await?;
    match a.output {
        Format::Json => print_json(&evs)?,
        Format::Text if evs.is_empty() => println!("No recent events for `{app}`."),
        Format::Text => {
            let mut t = Table::new(["TIME", "SEVERITY", "KIND", "PROC", "INSTANCE", "MESSAGE"]);
            for e in &evs {
                t.row(vec![
                    e["at_ms"].as_i64().map(time_ms).unwrap_or_default(),
                    cell(&e["severity"]),
                    cell(&e["kind"]),
                    cell(&e["proc"]),
                    cell(&e["instance"]),
                    cell(&e["message"]),
                ]);
            }
            t.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn procs_are_named_in_full_or_by_their_name() {
        let status = json!({"procs": [{"proc": "web"}, {"proc": "worker.tidy"},
            {"proc": "worker.a"}, {"proc": "web.a"}]});
        assert_eq!(proc_in(&status, "web"), "web");
        assert_eq!(proc_in(&status, "tidy"), "worker.tidy");
        assert_eq!(proc_in(&status, "worker.tidy"), "worker.tidy");
        // Ambiguous or unknown: left for console to answer.
        assert_eq!(proc_in(&status, "a"), "a");
        assert_eq!(proc_in(&status, "nope"), "nope");
    }
}
