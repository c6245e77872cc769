//! webrouter: Renders nginx configuration from etcd and reloads nginx.
//!
//! For now it loads its config and serves `/healthz`; its own logic lands
//! with its issue (see docs/architecture.md).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lain_service::run_basic("webrouter").await?;
    Ok(())
}
