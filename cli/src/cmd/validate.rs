//! `lain validate [FILE]`: check a lain.yaml the way the cluster will.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use lain_spec::{Diagnostic, LainConf, ParseOptions, SpecError};
use serde::Serialize;

use crate::output::{print_json, Format};

/// Check a lain.yaml and summarize its procs and mountpoints.
///
/// Exits 0 when the file is valid and 1 when it is not, printing every
/// problem as `file:line:col: message`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file to check.
    #[arg(default_value = "lain.yaml")]
    file: PathBuf,
    /// The cluster domain that default web domains are derived from.
    #[arg(long, default_value = "lain.local")]
    domain: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// The `-o json` document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<&'a LainConf>,
    errors: Vec<&'a Diagnostic>,
    warnings: Vec<&'a Diagnostic>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let opts = ParseOptions {
        cluster_domain: args.domain.clone(),
    };
    let file = args.file.display().to_string();
    match lain_spec::parse_file(&args.file, &opts) {
        Ok(v) => {
            match args.output {
                Format::Json => print_json(&Report {
                    file,
                    valid: true,
                    app: Some(&v.conf),
                    errors: vec![],
                    warnings: v.warnings.iter().collect(),
                })?,
                Format::Text => {
                    for w in &v.warnings {
                        eprintln!("{w}");
                    }
                    print_summary(&file, &v.conf);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(SpecError::Invalid(diags)) => {
            match args.output {
                Format::Json => print_json(&Report {
                    file,
                    valid: false,
                    app: None,
                    errors: diags.errors().collect(),
                    warnings: diags.warnings().collect(),
                })?,
                Format::Text => {
                    for d in &diags {
                        println!("{d}");
                    }
                    let n = diags.errors().count();
                    eprintln!(
                        "error: {file} is not valid: {n} problem{}; see docs/reference/lain-yaml.md",
                        if n == 1 { "" } else { "s" }
                    );
                }
            }
            Ok(ExitCode::from(1))
        }
        Err(e @ SpecError::Io { .. }) => Err(e).with_context(|| {
            format!(
                "cannot validate {file}; give the path of a lain.yaml, or run `lain validate` in the app's directory"
            )
        }),
    }
}

fn print_summary(file: &str, conf: &LainConf) {
    println!("{file}: valid");
    let apptype = match conf.apptype {
        lain_spec::AppType::App => "app",
        lain_spec::AppType::Resource => "resource",
    };
    println!("app {} ({apptype})", conf.appname);
    let rows: Vec<[String; 6]> = conf
        .procs()
        .map(|p| {
            [
                p.name.clone(),
                p.kind.to_string(),
                p.num_instances.to_string(),
                p.memory.clone(),
                p.port.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                if p.mountpoints.is_empty() {
                    "-".into()
                } else {
                    p.mountpoints.join(", ")
                },
            ]
        })
        .collect();
    let header = ["PROC", "KIND", "INSTANCES", "MEMORY", "PORT", "MOUNTPOINTS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        println!("(no procs)");
    }
}
