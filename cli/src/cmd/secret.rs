//! `lain secret set|list|rm`. A value comes from stdin or a file, never
//! from the command line (where `ps` and shell history would show it).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::api::{enc, Console};
use crate::cmd::deploy::app_name;
use crate::error::fail;
use crate::output::{cell, print_json, time_ms, Format, Table};
use crate::Globals;

/// Largest value console takes.
const MAX_VALUE: u64 = 64 * 1024;

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set a secret to a new version: the value from stdin, or --file.
    Set {
        name: String,
        #[arg(long)]
        app: Option<String>,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List the app's secrets: names and versions, never values.
    List {
        #[arg(long)]
        app: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Remove a secret.
    Rm {
        name: String,
        #[arg(long)]
        app: Option<String>,
    },
}

/// Reads `what` (a secret, a certificate, ...) from `file`, or from stdin
/// without one: at most 64 KiB, not empty, kept in zeroed memory.
pub(crate) fn read_bounded(
    file: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    let res = match file {
        Some(p) => std::fs::File::open(p).and_then(|f| f.take(MAX_VALUE + 1).read_to_end(&mut buf)),
        None => std::io::stdin().take(MAX_VALUE + 1).read_to_end(&mut buf),
    };
    let from = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdin".into());
    let hint = if file.is_some() {
        "give the path of a readable file"
    } else {
        "pipe the value in (`lain secret set NAME < file`) or use --file"
    };
    res.map_err(|e| fail(format!("cannot read the {what} from {from}: {e}"), hint))?;
    if buf.len() as u64 > MAX_VALUE {
        return Err(fail(
            format!("the {what} from {from} is larger than 64 KiB"),
            "store large files elsewhere and keep only a key here",
        ));
    }
    if buf.is_empty() {
        return Err(fail(format!("the {what} from {from} is empty"), hint));
    }
    Ok(buf)
}

impl SecretCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        match self {
            SecretCommand::Set { name, app, file } => {
                let app = app_name(app)?;
                let value = read_bounded(file.as_deref(), "secret")?;
                let console = Console::connect(g).await?;
                let s: Value = console
                    .put_raw(
                        &format!("/api/v1/apps/{}/secrets/{}", enc(&app), enc(&name)),
                        value.to_vec(),
                    )
                    .await?;
                g.progress.line(format!(
                    "Set secret `{name}` of `{app}` (version {}); deploy to use it",
                    cell(&s["version"])
                ));
            }
            SecretCommand::List { app, output } => {
                let app = app_name(app)?;
                let console = Console::connect(g).await?;
                let ss: Vec<Value> = console
                    .get(&format!("/api/v1/apps/{}/secrets", enc(&app)))
                    .await?;
                match output {
                    Format::Json => print_json(&ss)?,
                    Format::Text => {
                        let mut t = Table::new(["NAME", "VERSION", "UPDATED BY", "UPDATED"]);
                        for s in &ss {
                            t.row(vec![
                                cell(&s["name"]),
                                cell(&s["version"]),
                                cell(&s["updated_by"]),
                                s["updated_at"].as_i64().map(time_ms).unwrap_or_default(),
                            ]);
                        }
                        t.print();
                    }
                }
            }
            SecretCommand::Rm { name, app } => {
                let app = app_name(app)?;
                let console = Console::connect(g).await?;
                console
                    .call_empty(
                        Method::DELETE,
                        &format!("/api/v1/apps/{}/secrets/{}", enc(&app), enc(&name)),
                    )
                    .await?;
                g.progress
                    .line(format!("Removed secret `{name}` of `{app}`"));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
