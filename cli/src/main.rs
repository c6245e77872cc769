//! `lain`: the developer's and operator's tool.
//!
//! Exit codes follow CLI conventions: 0 success, 1 a failure (printed as
//! one line with a hint), 2 bad usage (clap's own exit code).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use lain_cli::{cmd, config, output, progress, Globals};

/// Build, push, deploy and operate apps described by lain.yaml.
#[derive(Debug, Parser)]
#[command(name = "lain", version, about)]
struct Cli {
    /// The cluster to talk to (default: `lain cluster use`'s choice).
    #[arg(short = 'c', long, global = true, env = "LAIN_CLUSTER", value_parser = config::cluster_name)]
    cluster: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a lain.yaml and summarize its procs and mountpoints.
    Validate(cmd::validate::Args),
    #[command(flatten)]
    Local(cmd::local::LocalCommand),
    /// Push the built release image and register the release.
    Push(cmd::push::PushArgs),
    /// Log in to the cluster (device flow, or --token-stdin / a client).
    Login(cmd::login::LoginArgs),
    /// Forget the login to the cluster (and revoke it at sso).
    Logout,
    /// Who the cluster thinks you are.
    Whoami(cmd::login::WhoamiArgs),
    /// Create, list, show and delete apps.
    #[command(subcommand)]
    App(cmd::app::AppCommand),
    /// Add, remove and list an app's maintainers.
    #[command(subcommand)]
    Maintainer(cmd::app::MaintainerCommand),
    /// List the app's releases.
    Releases(cmd::deploy::ReleasesArgs),
    /// Deploy a release and follow the rollout.
    Deploy(cmd::deploy::DeployArgs),
    /// Remove the app from the cluster.
    Undeploy(cmd::deploy::UndeployArgs),
    /// Change a proc's instances, CPU or memory.
    Scale(cmd::deploy::ScaleArgs),
    /// Return to the previous (or a named) release.
    Rollback(cmd::deploy::RollbackArgs),
    /// The app's procs and instances.
    Ps(cmd::ops::PsArgs),
    /// A proc's output.
    Logs(cmd::ops::LogsArgs),
    /// What deployd did with the app lately.
    Events(cmd::ops::EventsArgs),
    /// Set, list and remove the app's secrets.
    #[command(subcommand)]
    Secret(cmd::secret::SecretCommand),
    /// List, take and restore the app's volume backups.
    #[command(subcommand)]
    Backup(cmd::backup::BackupCommand),
    /// Register, cordon, drain and remove nodes (admins).
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// Store, list and remove the routers' TLS certificates (admins).
    #[command(subcommand)]
    Cert(cmd::cert::CertCommand),
    /// Add, pick and inspect clusters.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
    /// Print a shell completion script.
    Completions(cmd::completions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let globals = Globals {
        cluster: cli.cluster.clone(),
        progress: progress::Progress::new(),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Validate(args) => cmd::validate::run(&args),
            Command::Local(c) => c.run(&globals).await,
            Command::Push(a) => cmd::push::push(a, &globals).await,
            Command::Login(a) => cmd::login::login(a, &globals).await,
            Command::Logout => cmd::login::logout(&globals).await,
            Command::Whoami(a) => cmd::login::whoami(a, &globals).await,
            Command::App(c) => c.run(&globals).await,
            Command::Maintainer(c) => c.run(&globals).await,
            Command::Releases(a) => cmd::deploy::releases(a, &globals).await,
            Command::Deploy(a) => cmd::deploy::deploy(a, &globals).await,
            Command::Undeploy(a) => cmd::deploy::undeploy(a, &globals).await,
            Command::Scale(a) => cmd::deploy::scale(a, &globals).await,
            Command::Rollback(a) => cmd::deploy::rollback(a, &globals).await,
            Command::Ps(a) => cmd::ops::ps(a, &globals).await,
            Command::Logs(a) => cmd::ops::logs(a, &globals).await,
            Command::Events(a) => cmd::ops::events(a, &globals).await,
            Command::Secret(c) => c.run(&globals).await,
            Command::Backup(c) => c.run(&globals).await,
            Command::Node(c) => c.run(&globals).await,
            Command::Cert(c) => c.run(&globals).await,
            Command::Cluster(c) => c.run(&globals).await,
            Command::Completions(args) => cmd::completions::run(&args, &mut Cli::command()),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
