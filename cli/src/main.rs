//! `lain`: the developer's and operator's tool.
//!
//! Exit codes follow CLI conventions: 0 success, 1 a failure (printed as
//! one line with a hint), 2 bad usage (clap's own exit code).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use lain_cli::{cmd, config, output, progress, Globals};

/// Build, push, deploy and operate apps described by lain.yaml.
#[derive(Debug, Parser)]
#[command(name = "lain", version, about, propagate_version = true)]
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
