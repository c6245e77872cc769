//! console: The app registry and public API; the only writer of desired state.
//!
//! For now it loads its config and serves `/healthz`; its own logic lands
//! with its issue (see docs/architecture.md).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lain_service::run_basic("console").await?;
    Ok(())
}
