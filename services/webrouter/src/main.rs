//! webrouter: keeps nginx serving the healthy instances that etcd lists.
//! Parses `--config`, starts tracing and runs until SIGTERM or SIGINT.

use clap::Parser;
use lain_service::DaemonArgs;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = DaemonArgs::parse();
    let config: webrouter::config::Config = lain_service::load_config(&args.config)?;
    lain_service::init_tracing(config.log_format);
    webrouter::run(config, lain_service::shutdown_signal()).await?;
    Ok(())
}
