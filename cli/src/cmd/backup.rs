//! `lain backup list|run|restore`: an app's volume backups (lain.yaml's
//! `backup_full` / `backup_increment`), through console. A restore is a
//! deployment: it is followed like `lain deploy`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{enc, Console};
use crate::error::fail;
use crate::output::{cell, print_json, time_ms, Format, Table};
use crate::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// List an app's volume backups, newest first.
    List {
        /// The app.
        app: String,
        /// Only this proc's backups, e.g. `worker.db` (or just `db`).
        #[arg(long)]
        proc: Option<String>,
        /// Only this instance's (with --proc).
        #[arg(long, requires = "proc", value_parser = clap::value_parser!(u32).range(1..))]
        instance: Option<u32>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Back up one instance's volume now: a full backup, with the
    /// volume's pre_run and post_run from lain.yaml.
    Run {
        /// The app.
        app: String,
        /// The proc, e.g. `worker.db` (or just `db`).
        proc: String,
        /// The instance number (`lain ps` lists them).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        instance: u32,
        /// The volume's directory, as in lain.yaml's `volumes`, e.g. /data.
        path: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Restore a backup into one instance's volume. The proc is rolled
    /// out (its instances with volumes stop, then start again); before
    /// that instance's new container starts, its volume is emptied and
    /// the backup written into it. What the volume held since is lost.
    Restore {
        /// The app.
        app: String,
        /// The proc, e.g. `worker.db` (or just `db`).
        proc: String,
        /// The instance whose volume gets the backup.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        instance: u32,
        /// The volume's directory, as in lain.yaml's `volumes`, e.g. /data.
        path: String,
        /// The backup's id, as `lain backup list` shows it.
        backup_id: String,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(short, long)]
        yes: bool,
        /// Return as soon as console accepted the restore.
        #[arg(long)]
        no_wait: bool,
    },
}

impl BackupCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        match self {
            BackupCommand::List {
                app,
                proc,
                instance,
                output,
            } => list(g, &app, proc, instance, output).await,
            BackupCommand::Run {
                app,
                proc,
                instance,
                path,
                output,
            } => run(g, &app, &proc, instance, &path, output).await,
            BackupCommand::Restore {
                app,
                proc,
                instance,
                path,
                backup_id,
                yes,
                no_wait,
            } => restore(g, &app, &proc, instance, &path, &backup_id, yes, no_wait).await,
        }
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn size(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

pub fn backup_table(bs: &[Value]) -> Table {
    let mut t = Table::new([
        "ID", "PROC", "INSTANCE", "PATH", "MODE", "CREATED", "SIZE", "FILES", "EXPIRES",
    ]);
    for b in bs {
        t.row(vec![
            cell(&b["id"]),
            cell(&b["proc"]),
            cell(&b["instance"]),
            cell(&b["path"]),
            cell(&b["mode"]),
            b["created_at_ms"].as_i64().map(time_ms).unwrap_or_default(),
            b["size"].as_u64().map(size).unwrap_or_default(),
            cell(&b["files"]),
            b["expire_at_ms"]
                .as_i64()
                .map(time_ms)
                .unwrap_or_else(|| "never".into()),
        ]);
    }
    t
}

async fn list(
    g: &Globals,
    app: &str,
    proc: Option<String>,
    instance: Option<u32>,
    output: Format,
) -> anyhow::Result<ExitCode> {
    let console = Console::connect(g).await?;
    let mut path = format!("/api/v1/apps/{}/backups", enc(app));
    let mut query = Vec::new();
    if let Some(p) = proc {
        let status = crate::cmd::ops::app_status(&console, app).await?;
        query.push(format!(
            "proc={}",
            enc(&crate::cmd::ops::proc_in(&status, &p))
        ));
    }
    if let Some(n) = instance {
        query.push(format!("instance={n}"));
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let bs: Vec<Value> = console.get(&path).await?;
    match output {
        Format::Json => print_json(&bs)?,
        Format::Text if bs.is_empty() => println!(
            "No backups of `{app}`{}; volumes with backup_full or backup_increment in lain.yaml are backed up on their schedule, or now with `lain backup run`.",
            if query.is_empty() { "" } else { " that match" }
        ),
        Format::Text => backup_table(&bs).print(),
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(
    g: &Globals,
    app: &str,
    proc: &str,
    instance: u32,
    path: &str,
    output: Format,
) -> anyhow::Result<ExitCode> {
    check_path(path)?;
    let console = Console::connect(g).await?;
    let status = crate::cmd::ops::app_status(&console, app).await?;
    let proc = crate::cmd::ops::proc_in(&status, proc);
    // Not with -o json: in plain mode the spinner prints lines on stdout.
    let spinner = (output == Format::Text).then(|| {
        let s = g
            .progress
            .spinner(format!("{app} {proc} #{instance} {path}:"));
        s.message("backing up");
        s
    });
    let out: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/backups", enc(app)),
            &json!({"proc": proc, "instance": instance, "path": path}),
        )
        .await?;
    if let Some(s) = spinner {
        s.done();
    }
    if output == Format::Json {
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    match out["state"].as_str() {
        Some("stored") => {
            let b = &out["backup"];
            println!(
                "Stored backup {} of {path} of {app} {proc} #{instance}: {} files, {} ({} archived){}",
                cell(&b["id"]),
                cell(&b["files"]),
                b["volume_bytes"].as_u64().map(size).unwrap_or_default(),
                b["size"].as_u64().map(size).unwrap_or_default(),
                b["expire_at_ms"]
                    .as_i64()
                    .map(|t| format!(", kept until {}", time_ms(t)))
                    .unwrap_or_default(),
            );
        }
        _ => println!(
            "{} (`lain backup list {app}` shows it once stored; `lain events --app {app}` a failure)",
            out["message"]
                .as_str()
                .unwrap_or("The backup is still running")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn check_path(path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/') {
        return Err(fail(
            format!("`{path}` is not a volume path"),
            "give the volume's absolute directory as in lain.yaml, e.g. /data",
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    g: &Globals,
    app: &str,
    proc: &str,
    instance: u32,
    path: &str,
    backup: &str,
    yes: bool,
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    check_path(path)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(fail(
                "a restore replaces the volume's data and needs confirmation",
                "run it in a terminal to confirm, or pass --yes",
            ));
        }
        eprint!(
            "Restore backup {backup} into {path} of instance {instance} of {app} {proc}?\n\
             The proc's instances with volumes restart, and what {path} of instance {instance} holds now is replaced. [y/N] "
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(fail("not restored", "answer y to restore, or pass --yes"));
        }
    }
    let console = Console::connect(g).await?;
    let status = crate::cmd::ops::app_status(&console, app).await?;
    let proc = crate::cmd::ops::proc_in(&status, proc);
    let out: Value = console
        .call(
            Method::POST,
            &format!("/api/v1/apps/{}/backups/restore", enc(app)),
            &json!({"proc": proc, "instance": instance, "path": path, "backup": backup}),
        )
        .await?;
    crate::cmd::deploy::finish(&console, g, app, out, no_wait).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn tables_show_never_expiring_backups() {
        let t = backup_table(&[json!({
            "id": "20240315T030000Z-1a2b3c4d", "proc": "worker", "instance": 1,
            "path": "/data", "mode": "full", "created_at_ms": 0, "size": 2048,
            "files": 3, "expire_at_ms": null
        })]);
        let (_, rows) = t.render();
        assert!(
            rows[0].contains("never") && rows[0].contains("2.0 KiB"),
            "{rows:?}"
        );
    }
}
