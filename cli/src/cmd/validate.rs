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
    /// The cluster's main domain, from which default web domains are
    /// derived: proc `web` of app `hello` answers on `hello.DOMAIN`.
    #[arg(long, default_value = "lain.local", value_name = "DOMAIN", value_parser = domain_name)]
    domain: String,
    /// Another domain the cluster serves (repeatable): proc `web` also
    /// answers on `APP.DOMAIN`, and `/path` mountpoints are expanded onto it.
    #[arg(long = "extra-domain", value_name = "DOMAIN", value_parser = domain_name)]
    extra_domains: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

impl Args {
    /// The cluster settings the file is checked against.
    fn options(&self) -> ParseOptions {
        ParseOptions {
            cluster_domain: self.domain.clone(),
            extra_domains: self.extra_domains.clone(),
        }
    }
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
    let opts = args.options();
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
                        "error: {file} is not valid: {n} problem{}; see docs/lain-yaml.md",
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

/// A `--domain` / `--extra-domain` value: a DNS name, taken lowercased and
/// without surrounding dots.
fn domain_name(raw: &str) -> Result<String, String> {
    let domain = lain_spec::tidy_domain(raw);
    match lain_spec::domain_problem(&domain) {
        None => Ok(domain),
        Some(problem) => Err(format!(
            "`{raw}` {problem}; a domain is a DNS name such as `lain.local` (letters, digits, \
             `-` and `.`)"
        )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("validate").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn extra_domains_are_repeatable_and_expand_mountpoints() {
        let a = args(&[
            "--extra-domain",
            "Example.com",
            "--extra-domain",
            "b.org.",
            "lain.yaml",
        ])
        .expect("valid flags");
        assert_eq!(a.domain, "lain.local");
        assert_eq!(a.extra_domains, ["example.com", "b.org"]);
        let text = "appname: demo\nbuild:\n  base: golang\n  script: [make]\nweb:\n  cmd: ./app\n  mountpoint: [/api]\n";
        let v = lain_spec::parse("lain.yaml", text, &a.options()).expect("valid file");
        let defaults = [
            "demo.lain.local",
            "demo.example.com",
            "demo.b.org",
            "demo.lain",
        ];
        assert_eq!(v.conf.default_domains, defaults);
        let mut want: Vec<String> = defaults.iter().map(|d| d.to_string()).collect();
        want.extend(defaults.iter().map(|d| format!("{d}/api")));
        assert_eq!(v.conf.procs[0].mountpoints, want);
        // Without the flag: none.
        assert!(args(&[]).expect("no flags").extra_domains.is_empty());
    }

    #[test]
    fn a_bad_domain_flag_is_a_usage_error() {
        for argv in [
            ["--extra-domain", "a.com; }"],
            ["--domain", "lain local"],
            ["--extra-domain", "*.a.com"],
        ] {
            let err = args(&argv).expect_err("rejected");
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(err.to_string().contains("DNS name"), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
