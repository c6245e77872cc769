//! console: the app registry and public API; the only writer of desired
//! state.
//!
//! Parses `--config FILE`, starts tracing and runs [`console::run`] until
//! SIGTERM or SIGINT. Everything else lives in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = lain_service::DaemonArgs::parse();
    let config = console::Config::load(&args.config)?;
    lain_service::init_tracing(config.log_format);
    console::run(config).await?;
    Ok(())
}
