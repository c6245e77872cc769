//! Local commands (init, build, test, tag): being written.

use std::process::ExitCode;

/// The commands that work on the developer's machine.
#[derive(Debug, clap::Subcommand)]
pub enum LocalCommand {}

impl LocalCommand {
    pub async fn run(self, _g: &crate::Globals) -> anyhow::Result<ExitCode> {
        match self {}
    }
}
