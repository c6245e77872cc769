//! `lain deploy`, `undeploy`, `scale`, `rollback`, `releases`: each asks
//! console, then follows the deployment's event stream until the rollout
//! converges, rolls back or fails, one progress line per instance.

use std::collections::BTreeMap;
use std::process::ExitCode;

use futures::StreamExt as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{enc, Console};
use crate::error::fail;
use crate::output::{cell, print_json, time_ms, Format, Table};
use crate::progress::Bar;
use crate::Globals;

/// Deploy a release of the app (default: the latest pushed), all procs or one.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The app (default: lain.yaml's appname in the current directory).
    #[arg(long)]
    app: Option<String>,
    /// The release to deploy (`lain releases` lists them).
    #[arg(short, long)]
    version: Option<String>,
    /// Deploy only this proc, e.g. `web` or `worker.queue`.
    #[arg(short, long)]
    proc: Option<String>,
    /// Return as soon as console accepted the deploy.
    #[arg(long)]
    no_wait: bool,
}

/// Remove every proc of the app from the cluster.
#[derive(Debug, clap::Args)]
pub struct UndeployArgs {
    #[arg(long)]
    app: Option<String>,
    #[arg(long)]
    no_wait: bool,
}

/// Change a proc's instances, CPU or memory.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The proc, e.g. `web` or `worker.queue` (or just `queue`).
    proc: String,
    #[arg(long)]
    app: Option<String>,
    /// Instances (0 to 1000).
    #[arg(short = 'n', long)]
    num_instances: Option<u32>,
    /// Whole CPU cores per instance.
    #[arg(long)]
    cpu: Option<u32>,
    /// Memory per instance, as in lain.yaml (`256m`, `2g`).
    #[arg(long)]
    memory: Option<String>,
    #[arg(long)]
    no_wait: bool,
}

/// Return to the previous release, or to `--to VERSION`: image, env and
/// secrets together.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[arg(long)]
    app: Option<String>,
    /// The release to return to.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    no_wait: bool,
}

/// List the app's releases, newest first.
#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    #[arg(long)]
    app: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// The app: `--app`, or the `appname` of the lain.yaml here (read with
/// lain-spec, as the cluster reads it).
pub fn app_name(app: Option<String>) -> anyhow::Result<String> {
    if let Some(a) = app {
        return Ok(a);
    }
    let path = std::path::Path::new("lain.yaml");
    if !path.exists() {
        return Err(fail(
            "no app given and no lain.yaml here",
            "pass --app NAME, or run the command in the app's directory",
        ));
    }
    match lain_spec::parse_file(path, &lain_spec::ParseOptions::default()) {
        Ok(v) => Ok(v.conf.appname),
        Err(e) => Err(fail(
            format!("cannot tell the app from lain.yaml: {e}"),
            "pass --app NAME, or fix lain.yaml (`lain validate`)",
        )),
    }
}

pub fn release_table(rs: &[Value]) -> Table {
    let mut t = Table::new(["VERSION", "PUSHED BY", "PUSHED", "DIGEST"]);
    for r in rs {
        t.row(vec![
            cell(&r["version"]),
            cell(&r["pushed_by"]),
            r["pushed_at"].as_i64().map(time_ms).unwrap_or_default(),
            cell(&r["digest"]).chars().take(19).collect(),
        ]);
    }
    t
}

pub async fn releases(a: ReleasesArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let rs: Vec<Value> = console
        .get(&format!(
            "/api/v1/apps/{}/releases?limit={}",
            enc(&app),
            a.limit
        ))
        .await?;
    match a.output {
        Format::Json => print_json(&rs)?,
        Format::Text if rs.is_empty() => {
            println!("No releases of `{app}`; push one with `lain push`.")
        }
        Format::Text => release_table(&rs).print(),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn deploy(a: DeployArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let out: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/deploy", enc(&app)),
            &json!({"version": a.version, "proc": a.proc}),
        )
        .await?;
    finish(&console, g, &app, out, a.no_wait).await
}

pub async fn undeploy(a: UndeployArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let out: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/undeploy", enc(&app)),
            &json!({}),
        )
        .await?;
    finish(&console, g, &app, out, a.no_wait).await
}

pub async fn scale(a: ScaleArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    if a.num_instances.is_none() && a.cpu.is_none() && a.memory.is_none() {
        return Err(fail(
            "nothing to scale",
            "give --num-instances, --cpu or --memory",
        ));
    }
    if let Some(m) = a
        .memory
        .as_deref()
        .filter(|m| lain_spec::memory_bytes(m).is_none())
    {
        return Err(fail(
            format!("`{m}` is not a memory size"),
            "give it as in lain.yaml, e.g. --memory 256m or --memory 2g",
        ));
    }
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let status = crate::cmd::ops::app_status(&console, &app).await?;
    let proc = crate::cmd::ops::proc_in(&status, &a.proc);
    let out: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/procs/{}/scale", enc(&app), enc(&proc)),
            &json!({"instances": a.num_instances, "cpu": a.cpu, "memory": a.memory}),
        )
        .await?;
    finish(&console, g, &app, out, a.no_wait).await
}

pub async fn rollback(a: RollbackArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let app = app_name(a.app)?;
    let console = Console::connect(g).await?;
    let out: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/rollback", enc(&app)),
            &json!({"to": a.to}),
        )
        .await?;
    finish(&console, g, &app, out, a.no_wait).await
}

/// Prints what console accepted, then follows the rollout.
pub(crate) async fn finish(
    console: &Console,
    g: &Globals,
    app: &str,
    out: Value,
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    let d = &out["deployment"];
    let id = d["id"].as_i64().unwrap_or(0);
    for w in out["warnings"].as_array().into_iter().flatten() {
        g.progress.line(format!("warning: {}", cell(w)));
    }
    g.progress.line(format!(
        "{} #{id} of `{app}`: {} -> {}{}{}",
        cell(&d["kind"]),
        cell(&d["from_release"]),
        cell(&d["to_release"]),
        join_list(" written: ", &out["written"]),
        join_list(" removed: ", &out["removed"]),
    ));
    if no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let (state, error) = follow(console, g, app, id).await?;
    match state.as_str() {
        "succeeded" => {
            if d["kind"] == "undeploy" {
                wait_gone(console, g, app).await?;
            } else {
                print_urls(console, g, app, &d["to_release"]).await;
            }
            g.progress.line(format!("{} #{id} succeeded", cell(&d["kind"])));
            Ok(ExitCode::SUCCESS)
        }
        "rolled_back" => Err(fail(
            format!(
                "the rollout of `{app}` failed and was rolled back; the previous release keeps serving{}",
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
            format!("see `lain logs PROC` and `lain events --app {app}`, fix, then push and deploy again"),
        )),
        other => Err(fail(
            format!(
                "deployment #{id} of `{app}` ended `{other}`{}",
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
            format!("see `lain events --app {app}` and `lain ps --app {app}`"),
        )),
    }
}

fn join_list(label: &str, v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => format!(
            ";{label}{}",
            a.iter().map(cell).collect::<Vec<_>>().join(", ")
        ),
        _ => String::new(),
    }
}

/// Follows `/deployments/{id}/events` until `done`; returns its state
/// and error.
async fn follow(
    console: &Console,
    g: &Globals,
    app: &str,
    id: i64,
) -> anyhow::Result<(String, Option<String>)> {
    let r = console
        .stream(&format!(
            "/api/v1/apps/{}/deployments/{id}/events",
            enc(app)
        ))
        .await?;
    let mut bars: BTreeMap<String, (Bar, String)> = BTreeMap::new();
    let mut body = r.bytes_stream();
    // Bytes until a frame is whole: a character may span two chunks.
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            fail(
                format!("the deployment's event stream broke: {}", e.without_url()),
                format!("the rollout goes on; follow it with `lain ps --app {app}`"),
            )
        })?;
        buf.extend_from_slice(&chunk);
        while let Some(end) = frame_end(&buf) {
            let frame: Vec<u8> = buf.drain(..end).collect();
            let (event, data) = parse_frame(&String::from_utf8_lossy(&frame));
            let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            match event.as_str() {
                "status" => show_status(g, &data, &mut bars),
                "done" => {
                    // Where every instance ended, not where the last
                    // change event left it.
                    if let Ok(s) = console
                        .get::<Value>(&format!("/api/v1/apps/{}/status", enc(app)))
                        .await
                    {
                        show_status(g, &s, &mut bars);
                    }
                    for (_, (bar, _)) in std::mem::take(&mut bars) {
                        bar.done();
                    }
                    return Ok((
                        data["state"].as_str().unwrap_or("unknown").to_owned(),
                        data["error"].as_str().map(str::to_owned),
                    ));
                }
                _ => {}
            }
        }
    }
    Err(fail(
        "console closed the deployment's event stream before it finished",
        format!("the rollout goes on; follow it with `lain ps --app {app}`"),
    ))
}

/// Where the first whole SSE frame ends (after its blank line, `\n\n`
/// or `\r\n\r\n`).
fn frame_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One SSE frame's event name and data.
fn parse_frame(frame: &str) -> (String, String) {
    let mut event = "message".to_owned();
    let mut data: Vec<&str> = Vec::new();
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (event, data.join("\n"))
}

/// One line (or bar) per instance, updated when its state changes.
fn show_status(g: &Globals, status: &Value, bars: &mut BTreeMap<String, (Bar, String)>) {
    for p in status["procs"].as_array().into_iter().flatten() {
        let proc = cell(&p["proc"]);
        for i in p["instances"].as_array().into_iter().flatten() {
            let key = format!("{proc} #{} ({})", cell(&i["number"]), cell(&i["id"]));
            let line = format!(
                "{} {} on {}{}",
                cell(&i["state"]),
                cell(&i["health"]),
                cell(&i["node"]),
                i["message"]
                    .as_str()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            match bars.get_mut(&key) {
                Some((bar, last)) if *last != line => {
                    bar.message(&line);
                    *last = line;
                }
                Some(_) => {}
                None => {
                    let bar = g.progress.spinner(key.clone());
                    bar.message(&line);
                    bars.insert(key, (bar, line));
                }
            }
        }
    }
}

/// After an undeploy: waits until deployd has stopped every instance
/// (each gets its `kill_timeout`), so that the command ends when the app
/// is gone.
async fn wait_gone(console: &Console, g: &Globals, app: &str) -> anyhow::Result<()> {
    let spinner = g.progress.spinner(format!("{app}:"));
    let mut last = usize::MAX;
    // kill_timeout is at most 60 s; leave room for a slow engine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let s: Value = console
            .get(&format!("/api/v1/apps/{}/status", enc(app)))
            .await?;
        let left: usize = s["procs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["instances"].as_array().map_or(0, Vec::len))
            .sum();
        if left == 0 {
            spinner.done();
            return Ok(());
        }
        if left != last {
            spinner.message(format!("waiting for {left} instance(s) to stop"));
            last = left;
        }
        if std::time::Instant::now() > deadline {
            return Err(fail(
                format!("{left} instance(s) of `{app}` are still stopping after 3 minutes"),
                format!(
                    "the undeploy stands; see `lain ps --app {app}` and `lain events --app {app}`"
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Where the app answers: its web procs' mountpoints, from the release's
/// lain.yaml read with the cluster's domain.
async fn print_urls(console: &Console, g: &Globals, app: &str, release: &Value) {
    let Some(version) = release.as_str() else {
        return;
    };
    let Ok(r) = console
        .get::<Value>(&format!(
            "/api/v1/apps/{}/releases/{}",
            enc(app),
            enc(version)
        ))
        .await
    else {
        return;
    };
    let opts = lain_spec::ParseOptions {
        cluster_domain: console
            .cluster
            .domain
            .clone()
            .unwrap_or_else(|| "lain.local".into()),
        extra_domains: Vec::new(),
    };
    let Ok(v) = lain_spec::parse("lain.yaml", r["lain_yaml"].as_str().unwrap_or(""), &opts) else {
        return;
    };
    for (p, mp) in v.conf.mountpoints() {
        let scheme = if p.https_only { "https" } else { "http" };
        g.progress
            .line(format!("{} answers at {scheme}://{mp}", p.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames() {
        assert_eq!(
            parse_frame("event: done\ndata: {\"state\":\"ok\"}\n\n"),
            ("done".into(), "{\"state\":\"ok\"}".into())
        );
        assert_eq!(
            parse_frame("data:a\ndata:b\n\n"),
            ("message".into(), "a\nb".into())
        );
    }
}
