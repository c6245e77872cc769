//! deployd: places instances on Docker nodes and keeps them healthy.
//!
//! Parses `--config FILE`, starts tracing and runs [`deployd::run`] until
//! SIGTERM or SIGINT. Everything else lives in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = lain_service::DaemonArgs::parse();
    let config = deployd::Config::load(&args.config)?;
    lain_service::init_tracing(config.log_format);
    deployd::run(config).await?;
    Ok(())
}
