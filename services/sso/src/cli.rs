//! The `sso` command: `serve` (the default) and the admin subcommands,
//! which work on the database directly.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::db::Db;
use crate::domain::{ClientKind, NewClient, Role};
use crate::error::{AdminError, StoreError};
use crate::secret::Secret;
use crate::{Sso, StartError};

/// lain's OpenID Connect provider.
#[derive(Debug, Parser)]
#[command(name = "sso", version, about)]
pub struct Cli {
    /// Path to the TOML configuration file.
    #[arg(short, long, env = "LAIN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Output format of read commands.
    #[arg(short, long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Serve the OIDC endpoints (the default).
    Serve,
    /// Create or upgrade the database schema and exit.
    Migrate,
    /// Create the first admin (in the admin group) with a password read
    /// from stdin or --password-file. Does nothing when an admin exists.
    Bootstrap {
        #[arg(long, default_value = "admin")]
        user: String,
        #[arg(long, default_value = "")]
        email: String,
        /// Read the password from this file instead of stdin.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage groups and their members.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user; the password is read from stdin or --password-file.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        full_name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a user's password (read from stdin or --password-file); ends
    /// the user's browser sessions and revokes all the user's grants
    /// (refresh tokens stop working at once).
    Passwd {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Disable a user: logins fail and every grant is revoked.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Add a group, optionally as a subgroup of --parent.
    Add {
        name: String,
        #[arg(long)]
        parent: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a group (its subgroups become top-level).
    Rm { name: String },
    /// Make a group a subgroup of PARENT, or top-level without PARENT.
    SetParent {
        name: String,
        parent: Option<String>,
    },
    /// Add a member to a group, or change a member's role.
    AddMember {
        group: String,
        user: String,
        #[arg(long, value_enum, default_value_t = Role::Normal)]
        role: Role,
    },
    /// Remove a member from a group.
    RmMember { group: String, user: String },
    /// List groups with their members.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Register a client. A confidential client's secret is printed once.
    Add {
        client_id: String,
        #[arg(long, value_enum)]
        kind: ClientKind,
        /// Display name on the login page (default: the client id).
        #[arg(long)]
        name: Option<String>,
        /// A redirect URI, matched exactly; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A URI /logout may return to; repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// authorization_code, refresh_token, client_credentials or
        /// device_code; repeat. Default: authorization_code and
        /// refresh_token. The device grant is never a default: give
        /// `--grant device_code` (e.g. for the lain CLI's client).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// `aud` of its access tokens (default: the client id).
        #[arg(long)]
        audience: Option<String>,
    },
    /// Remove a client and everything issued to it.
    Rm { client_id: String },
    /// Replace a confidential client's secret; prints the new one.
    RotateSecret { client_id: String },
    /// List clients.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Make a new signing key now; the old one stays published until its
    /// tokens expire. Running servers pick it up within a minute.
    Rotate,
    /// Print a new random key for `keys.encryption_key_file` (base64).
    NewEncryptionKey,
}

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

fn read_password(file: Option<&Path>) -> Result<Secret, CliError> {
    let mut s = String::new();
    match file {
        Some(p) => {
            s = std::fs::read_to_string(p).map_err(|e| {
                CliError::Io(format!("cannot read password file {}: {e}", p.display()))
            })?;
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::Io(format!("cannot read the password from stdin: {e}")))?;
        }
    }
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    if s.is_empty() {
        return Err(CliError::Usage(
            "no password given: pipe it on stdin or use --password-file FILE".into(),
        ));
    }
    Ok(Secret::new(s))
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs a parsed command with a loaded config.
pub async fn run(cli: Cli, cfg: Config, config_path: &Path) -> Result<(), CliError> {
    let url = cfg.database_url(config_path);
    let cmd = cli.cmd.unwrap_or(Cmd::Serve);
    if let Cmd::Serve = cmd {
        let listen = cfg.listen;
        let sso = Sso::open(cfg, &url).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| {
                StartError::Serve(lain_service::ServeError::Bind {
                    addr: listen,
                    source,
                })
            })?;
        sso.serve_on(listener, lain_service::shutdown_signal())
            .await?;
        return Ok(());
    }
    if let Cmd::Keys(KeysCmd::NewEncryptionKey) = cmd {
        println!("{}", crate::keys::new_kek());
        return Ok(());
    }
    cfg.check().map_err(StartError::from)?;
    let db = Db::open(&url).await?;
    let json = cli.output == Output::Json;
    let hc = &cfg.password_hash;
    match cmd {
        Cmd::Serve => {}
        Cmd::Migrate => println!("database schema at version {}", db.schema_version().await?),
        Cmd::Bootstrap {
            user,
            email,
            password_file,
        } => {
            let groups = db.list_groups().await?;
            let admins: Vec<String> = groups
                .iter()
                .filter(|g| g.name == cfg.admin_group)
                .flat_map(|g| g.members.iter().filter(|m| m.role == Role::Admin))
                .map(|m| m.user.clone())
                .collect();
            if !admins.is_empty() {
                println!(
                    "already bootstrapped: {} administers group {}",
                    admins.join(", "),
                    cfg.admin_group
                );
                return Ok(());
            }
            let pw = read_password(password_file.as_deref())?;
            if !groups.iter().any(|g| g.name == cfg.admin_group) {
                db.add_group(&cfg.admin_group, "cluster administrators", None)
                    .await?;
            }
            db.add_user(hc, &user, &email, "", &pw).await?;
            db.set_member(&cfg.admin_group, &user, Role::Admin).await?;
            println!("created admin user {user} in group {}", cfg.admin_group);
        }
        Cmd::User(c) => match c {
            UserCmd::Add {
                name,
                email,
                full_name,
                password_file,
            } => {
                let pw = read_password(password_file.as_deref())?;
                db.add_user(hc, &name, &email, &full_name, &pw).await?;
                println!("added user {name}");
            }
            UserCmd::Passwd {
                name,
                password_file,
            } => {
                let pw = read_password(password_file.as_deref())?;
                db.set_password(hc, &name, &pw).await?;
                println!("password of {name} changed; its sessions and tokens are revoked");
            }
            UserCmd::Disable { name } => {
                db.set_disabled(&name, true).await?;
                println!("disabled {name}; its sessions and tokens are revoked");
            }
            UserCmd::Enable { name } => {
                db.set_disabled(&name, false).await?;
                println!("enabled {name}");
            }
            UserCmd::List => {
                let users = db.list_users().await?;
                if json {
                    print_json(&users);
                } else {
                    for u in users {
                        println!(
                            "{}\t{}\t{}",
                            u.name,
                            u.email,
                            if u.disabled { "disabled" } else { "enabled" }
                        );
                    }
                }
            }
        },
        Cmd::Group(c) => match c {
            GroupCmd::Add {
                name,
                parent,
                description,
            } => {
                db.add_group(&name, &description, parent.as_deref()).await?;
                println!("added group {name}");
            }
            GroupCmd::Rm { name } => {
                db.remove_group(&name).await?;
                println!("removed group {name}");
            }
            GroupCmd::SetParent { name, parent } => {
                db.set_group_parent(&name, parent.as_deref()).await?;
                println!(
                    "group {name} parent set to {}",
                    parent.as_deref().unwrap_or("(none)")
                );
            }
            GroupCmd::AddMember { group, user, role } => {
                db.set_member(&group, &user, role).await?;
                println!("{user} is a member ({}) of {group}", role.as_str());
            }
            GroupCmd::RmMember { group, user } => {
                db.remove_member(&group, &user).await?;
                println!("removed {user} from {group}");
            }
            GroupCmd::List => {
                let groups = db.list_groups().await?;
                if json {
                    print_json(&groups);
                } else {
                    for g in groups {
                        let members: Vec<String> = g
                            .members
                            .iter()
                            .map(|m| format!("{}({})", m.user, m.role.as_str()))
                            .collect();
                        println!(
                            "{}\tparent={}\t{}",
                            g.name,
                            g.parent.as_deref().unwrap_or("-"),
                            members.join(" ")
                        );
                    }
                }
            }
        },
        Cmd::Client(c) => match c {
            ClientCmd::Add {
                client_id,
                kind,
                name,
                redirect_uris,
                post_logout_redirect_uris,
                grants,
                audience,
            } => {
                let secret = db
                    .add_client(&NewClient {
                        name: name.unwrap_or_else(|| client_id.clone()),
                        client_id: client_id.clone(),
                        kind,
                        redirect_uris,
                        post_logout_redirect_uris,
                        grant_types: grants,
                        audience,
                    })
                    .await?;
                print_secret(json, &client_id, secret.as_ref());
            }
            ClientCmd::Rm { client_id } => {
                db.remove_client(&client_id).await?;
                println!("removed client {client_id}");
            }
            ClientCmd::RotateSecret { client_id } => {
                let s = db.rotate_client_secret(&client_id).await?;
                print_secret(json, &client_id, Some(&s));
            }
            ClientCmd::List => {
                let clients = db.list_clients().await?;
                if json {
                    print_json(&clients);
                } else {
                    for c in clients {
                        println!(
                            "{}\t{}\t{}\t{}",
                            c.client_id,
                            c.kind.as_str(),
                            c.grant_types.join(","),
                            c.redirect_uris.join(",")
                        );
                    }
                }
            }
        },
        Cmd::Keys(KeysCmd::Rotate) => {
            let t = &cfg.tokens;
            let kek = match &cfg.keys.encryption_key_file {
                Some(p) => Some(crate::keys::load_kek(p)?),
                None => None,
            };
            let keys = crate::keys::Keys::new(
                db.clone(),
                cfg.keys.rotation_secs,
                t.access_token_secs.max(t.id_token_secs) + 60,
                cfg.keys.rsa_bits,
                kek,
            );
            let kid = keys.rotate().await?;
            println!("new signing key {kid}");
        }
        Cmd::Keys(KeysCmd::NewEncryptionKey) => println!("{}", crate::keys::new_kek()),
    }
    Ok(())
}

fn print_secret(json: bool, client_id: &str, secret: Option<&Secret>) {
    if json {
        print_json(
            &serde_json::json!({ "client_id": client_id, "client_secret": secret.map(Secret::expose) }),
        );
    } else {
        println!("client_id={client_id}");
        if let Some(s) = secret {
            println!("client_secret={}", s.expose());
            eprintln!("store the client secret now: sso keeps only its hash");
        }
    }
}
