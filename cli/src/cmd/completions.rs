//! `lain completions SHELL`.

use std::process::ExitCode;

/// Print a completion script for SHELL, e.g. `lain completions bash > /etc/bash_completion.d/lain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to generate completions for.
    shell: clap_complete::Shell,
}

pub fn run(args: &Args, cmd: &mut clap::Command) -> anyhow::Result<ExitCode> {
    clap_complete::generate(args.shell, cmd, "lain", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
