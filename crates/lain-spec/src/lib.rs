//! The `lain.yaml` model, parser and validator, compatible with LAIN
//! (laincloud/lain-sdk 2.7.7).
//!
//! ```
//! let text = "appname: hello\nbuild:\n  base: golang\n  script: [go build]\nweb:\n  cmd: ./hello\n";
//! let opts = lain_spec::ParseOptions::default();
//! let v = lain_spec::parse("lain.yaml", text, &opts).expect("valid");
//! let web = v.conf.proc("web").expect("web proc");
//! assert_eq!(web.port, Some(80));
//! assert_eq!(web.mountpoints, ["hello.lain.local", "hello.lain"]);
//! ```
//!
//! A resource's lain.yaml is a template: [`instantiate`] renders it for one
//! client and validates the result as that client's own instance of the
//! resource (see [`resource`]).
//!
//! A rejected file yields every problem at once, each with
//! `file:line:col`, what was found and what is valid there. The rules, the
//! YAML 1.1 decisions and the deliberate deviations from LAIN are in
//! `docs/lain-yaml.md`.

mod derive;
mod diag;
mod model;
mod resolve;
pub mod resource;
mod suggest;
mod validate;
mod yaml;

pub use derive::{
    app_domain, default_domains, domain_problem, expand_mountpoints, lain_based_path, memory_bytes,
    parse_mountpoint, path_problem, release_image, tidy_domain, ParsedMountpoint, APP_ROOT,
    MAX_MEMORY_BYTES,
};
pub use diag::{Diagnostic, Diagnostics, Severity, MAX_DIAGNOSTICS};
pub use model::*;
pub use resource::{instance_name, instantiate, is_appname, is_instance_name, parse_instance_name};
/// The keys a proc section takes, and the top-level keys that are not
/// proc sections, as LAIN defines them (for editors, completions, tests).
pub use validate::{is_core_name, PROC_KEYS, RESERVED_APPNAMES, TOP_KEYS};

use std::path::{Path, PathBuf};

/// Largest lain.yaml accepted, in bytes. Real ones are a few KiB; the cap
/// bounds the work a hostile upload can cause.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Cluster settings that change what a lain.yaml means.
///
/// The domains must be DNS names ([`domain_problem`]); they are taken
/// lowercased and without surrounding dots, and a bad one makes
/// [`parse`] fail with an error at 1:1 (they end up in the router's
/// configuration, so they are checked like the file's own mountpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// The cluster's main domain, e.g. `lain.local`: proc `web` of app
    /// `hello` answers on `hello.lain.local`. Empty: none (only
    /// `hello.lain`).
    pub cluster_domain: String,
    /// More domains the cluster serves (LAIN's `extra_domains`): proc `web`
    /// also answers on `{appdomain}.{extra}` for each, and `/path`
    /// mountpoints are expanded onto them, after the main domain and
    /// before `{appdomain}.lain`. Default: none.
    pub extra_domains: Vec<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            cluster_domain: "lain.local".to_owned(),
            extra_domains: Vec::new(),
        }
    }
}

/// A valid lain.yaml and what is worth a second look in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub conf: LainConf,
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates a lain.yaml. `file_name` is only used in
/// diagnostics. Never panics, whatever the input.
pub fn parse(file_name: &str, text: &str, opts: &ParseOptions) -> Result<Validated, Diagnostics> {
    check_text(file_name, text, |text, sink| {
        yaml::load(text, sink).and_then(|root| validate::validate(&root, opts, sink, None))
    })
}

/// The frame around loading and validating one file: the size cap, the
/// byte-order mark, positions kept inside the text, and the verdict.
pub(crate) fn check_text(
    file_name: &str,
    text: &str,
    check: impl FnOnce(&str, &mut diag::Sink) -> Option<LainConf>,
) -> Result<Validated, Diagnostics> {
    let mut sink = diag::Sink::new(file_name);
    if text.len() > MAX_FILE_BYTES {
        sink.error(
            diag::Pos::START,
            format!(
                "the file is {} bytes; a lain.yaml may be at most {} bytes (1 MiB)",
                text.len(),
                MAX_FILE_BYTES
            ),
        );
        return Err(Diagnostics(sink.into_sorted()));
    }
    // A byte-order mark is not content (PyYAML skipped it too); editors do
    // not count it as a column either.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let conf = check(text, &mut sink);
    sink.clamp_to(text);
    match conf {
        Some(conf) if !sink.has_errors() => Ok(Validated {
            conf,
            warnings: sink.into_sorted(),
        }),
        _ => {
            if !sink.has_errors() {
                // Unreachable by construction (no conf means an error was
                // reported); kept so `Diagnostics` is never error-free.
                sink.error(diag::Pos::START, "the file could not be validated");
            }
            Err(Diagnostics(sink.into_sorted()))
        }
    }
}

/// Why [`parse_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
}

/// Reads and parses a lain.yaml file; diagnostics name it as given.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Validated, SpecError> {
    let io = |source| SpecError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let name = path.display().to_string();
    if meta.len() > MAX_FILE_BYTES as u64 {
        let d = Diagnostic {
            file: name,
            line: 1,
            col: 1,
            severity: Severity::Error,
            message: format!(
                "the file is {} bytes; a lain.yaml may be at most {MAX_FILE_BYTES} bytes (1 MiB)",
                meta.len()
            ),
        };
        return Err(SpecError::Invalid(Diagnostics(vec![d])));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Point at the first bad byte, counted like the YAML positions.
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            let d = Diagnostic {
                file: name,
                line,
                col,
                severity: Severity::Error,
                message: "the file is not UTF-8 text (an invalid byte is here); save it as UTF-8"
                    .to_owned(),
            };
            return Err(SpecError::Invalid(Diagnostics(vec![d])));
        }
    };
    Ok(parse(&name, &text, opts)?)
}
