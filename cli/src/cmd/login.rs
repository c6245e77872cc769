//! `lain login`, `lain logout`, `lain whoami`.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use serde_json::Value;

use crate::api::Console;
use crate::auth;
use crate::config::{Config, Credential, Credentials};
use crate::error::fail;
use crate::output::{cell, print_json, Format};
use crate::Globals;

/// Log in to the cluster's sso.
///
/// By default the device flow: lain prints a URL and a code (and opens a
/// browser when there is one); approve there. For scripts: `--token-stdin`
/// reads an access token from stdin, and `--client-id ID
/// --client-secret-stdin` keeps a client-credentials profile that renews
/// its token on its own.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Read an sso access token from stdin instead.
    #[arg(long, conflicts_with_all = ["client_id", "client_secret_stdin"])]
    token_stdin: bool,
    /// Log in as this sso client (client credentials grant).
    #[arg(long, requires = "client_secret_stdin")]
    client_id: Option<String>,
    /// Read the client's secret from stdin.
    #[arg(long, requires = "client_id")]
    client_secret_stdin: bool,
    /// Do not try to open a browser.
    #[arg(long)]
    no_browser: bool,
}

fn read_stdin(what: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprintln!("Paste the {what}, then press Ctrl-D:");
    }
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .map_err(|e| {
            fail(
                format!("cannot read the {what} from stdin: {e}"),
                "pipe it in, e.g. `lain login --token-stdin < token`",
            )
        })?;
    let s = s.trim().to_owned();
    if s.is_empty() {
        return Err(fail(
            format!("no {what} on stdin"),
            "pipe it in, e.g. `lain login --token-stdin < token`",
        ));
    }
    Ok(s)
}

pub async fn login(args: LoginArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let (name, cluster) = config.cluster(g.cluster.as_deref())?;
    // Read (and mode-checked) before the user approves anything.
    let mut creds = Credentials::load()?;
    let http = auth::http();
    let cred = if args.token_stdin {
        let token = read_stdin("access token")?;
        Credential::User {
            expires_at: auth::jwt_exp(&token).unwrap_or(0),
            access_token: token,
            refresh_token: None,
        }
    } else if let Some(client_id) = args.client_id {
        let secret = zeroize::Zeroizing::new(read_stdin("client secret")?);
        let (token, exp) = auth::client_token(&http, cluster, &client_id, &secret).await?;
        Credential::Client {
            client_id,
            client_secret: secret.to_string(),
            access_token: Some(token),
            expires_at: exp,
        }
    } else {
        auth::device_login(&http, cluster, !args.no_browser).await?
    };
    // Check the token with console first: a bad one fails here, and is
    // never saved over a working login.
    let token = match &cred {
        Credential::User { access_token, .. } => access_token.clone(),
        Credential::Client { access_token, .. } => access_token.clone().unwrap_or_default(),
    };
    let me: Value = Console::with_token(&name, cluster, token)
        .get("/api/v1/whoami")
        .await?;
    creds.clusters.insert(name.clone(), cred);
    creds.save()?;
    g.progress.line(format!(
        "Logged in to `{name}` as {}{}",
        cell(&me["subject"]),
        if me["admin"] == true { " (admin)" } else { "" }
    ));
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(g: &Globals) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let (name, cluster) = config.cluster(g.cluster.as_deref())?;
    let mut creds = Credentials::load()?;
    match creds.clusters.remove(&name) {
        Some(cred) => {
            creds.save()?;
            if let Credential::User {
                refresh_token: Some(r),
                ..
            } = &cred
            {
                auth::revoke(&auth::http(), cluster, r).await;
            }
            g.progress.line(format!("Logged out of `{name}`"));
        }
        None => g.progress.line(format!("Not logged in to `{name}`")),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct WhoamiArgs {
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

pub async fn whoami(args: WhoamiArgs, g: &Globals) -> anyhow::Result<ExitCode> {
    let console = Console::connect(g).await?;
    let me: Value = console.get("/api/v1/whoami").await?;
    match args.output {
        Format::Json => print_json(&me)?,
        Format::Text => {
            println!("cluster    {}", console.name);
            println!("subject    {}", cell(&me["subject"]));
            println!("kind       {}", cell(&me["kind"]));
            println!(
                "admin      {}",
                if me["admin"] == true { "yes" } else { "no" }
            );
            println!("groups     {}", cell(&me["groups"]));
            println!("maintains  {}", cell(&me["maintains"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}
