//! `lain`: the developer's and operator's tool.
//!
//! Exit codes follow CLI conventions: 0 success, 1 a user error (printed as
//! a one-line cause and a hint), 2 bad usage (clap's own exit code).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;
mod output;

/// Build, push, deploy and operate apps described by lain.yaml.
#[derive(Debug, Parser)]
#[command(name = "lain", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a lain.yaml and summarize its procs and mountpoints.
    Validate(cmd::validate::Args),
    /// Print a shell completion script.
    Completions(cmd::completions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Completions(args) => cmd::completions::run(&args, &mut Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e);
            ExitCode::from(1)
        }
    }
}
