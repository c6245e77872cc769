//! `lain cert set|list|rm` (admins): TLS certificates the routers serve.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::api::{enc, Console};
use crate::cmd::secret::read_bounded;
use crate::error::fail;
use crate::output::{cell, print_json, time_ms, Format, Table};
use crate::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Store a certificate and its private key (sealed) for the routers,
    /// which serve it for the DNS names it covers; replaces one of the
    /// same name.
    Set {
        /// A name for it, e.g. `example-com`.
        name: String,
        /// The PEM chain, leaf first.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// The leaf's private key, PKCS#8 PEM (`openssl pkcs8 -topk8 -nocrypt`
        /// converts others).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// List the certificates: names, DNS names, expiry (never keys).
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: Format,
    },
    /// Remove a certificate: the routers stop serving it.
    Rm { name: String },
}

/// A PEM file of at most 64 KiB, as text.
fn read_pem(path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let bytes = read_bounded(Some(path), what)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        fail(
            format!("the {what} {} is not PEM text", path.display()),
            "give a PEM file (-----BEGIN ...)",
        )
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

impl CertCommand {
    pub async fn run(self, g: &Globals) -> anyhow::Result<ExitCode> {
        match self {
            CertCommand::Set { name, cert, key } => {
                let cert_pem = read_pem(&cert, "certificate")?;
                let key_pem = read_pem(&key, "private key")?;
                let console = Console::connect(g).await?;
                let v: Value = console
                    .call(
                        Method::PUT,
                        &format!("/api/v1/certs/{}", enc(&name)),
                        &json!({"cert_pem": cert_pem.as_str(), "key_pem": key_pem.as_str()}),
                    )
                    .await?;
                g.progress.line(format!(
                    "Stored certificate `{name}` for {} (expires {}); the routers serve it shortly",
                    domains(&v),
                    v["not_after_ms"].as_i64().map(time_ms).unwrap_or_default()
                ));
            }
            CertCommand::List { output } => {
                let console = Console::connect(g).await?;
                let certs: Vec<Value> = console.get("/api/v1/certs").await?;
                match output {
                    Format::Json => print_json(&certs)?,
                    Format::Text => {
                        let mut t = Table::new(["NAME", "DOMAINS", "EXPIRES"]);
                        for c in &certs {
                            t.row(vec![
                                cell(&c["name"]),
                                domains(c),
                                c["not_after_ms"].as_i64().map(time_ms).unwrap_or_default(),
                            ]);
                        }
                        t.print();
                    }
                }
            }
            CertCommand::Rm { name } => {
                let console = Console::connect(g).await?;
                console
                    .call_empty(Method::DELETE, &format!("/api/v1/certs/{}", enc(&name)))
                    .await?;
                g.progress.line(format!("Removed certificate `{name}`"));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A certificate's DNS names, comma-separated.
fn domains(cert: &Value) -> String {
    cert["domains"]
        .as_array()
        .map(|d| d.iter().map(cell).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
