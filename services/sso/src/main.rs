//! sso: OpenID Connect provider for users, the CLI, the console and the
//! daemons. Parses the command line and config, starts tracing, runs.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sso::cli::Cli::parse();
    let Some(path) = cli.config.clone() else {
        eprintln!("error: no config file: give --config FILE (or set LAIN_CONFIG)");
        return ExitCode::from(2);
    };
    let cfg: sso::config::Config = match lain_service::load_config(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    lain_service::init_tracing(cfg.log_format);
    match sso::cli::run(cli, cfg, &path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(sso::cli::CliError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
