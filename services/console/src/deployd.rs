//! How console reaches deployd's operational API (instance logs): which
//! replica (the election leader from etcd, else any candidate that
//! advertises an address: every replica serves the API) and with what
//! token (sso's client credentials grant, `[deployd] client_id` and the
//! secret in `client_secret_file`; the token endpoint comes from sso's
//! discovery document; the token is cached until shortly before it
//! expires).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use lain_auth::{ClientCredentials, ClientTokenError};
use lain_store::{ElectionKey, Store};
use zeroize::Zeroizing;

use crate::config::DeploydConfig;

/// The election deployd replicas campaign in.
pub const ELECTION: &str = "deployd";
/// Bound of connecting to a deployd replica.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// console's client of deployd's API. Cheap to share (`Arc` it).
#[derive(Debug)]
pub struct DeploydClient {
    credentials: ClientCredentials,
    /// For deployd: no overall timeout (a followed log stream is
    /// unbounded), only a connect timeout.
    http: reqwest::Client,
}

impl DeploydClient {
    fn new(client_id: String, secret: Zeroizing<String>, issuer: String) -> DeploydClient {
        DeploydClient {
            credentials: ClientCredentials::new(issuer, client_id, secret),
            http: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .pool_max_idle_per_host(0)
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn client_id(&self) -> &str {
        self.credentials.client_id()
    }

    /// The HTTP client for calls to deployd.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A token for deployd: the cached one, or a new one from sso.
    pub async fn token(&self) -> Result<Zeroizing<String>, ClientTokenError> {
        self.credentials.token().await
    }

    /// The client for `[deployd]`, with sso at `issuer`; the secret file
    /// is read (and its mode checked) now.
    pub fn load(config: &DeploydConfig, issuer: &str) -> anyhow::Result<DeploydClient> {
        let secret = load_secret(&config.client_secret_file)?;
        Ok(DeploydClient::new(
            config.client_id.clone(),
            secret,
            issuer.trim_end_matches('/').to_owned(),
        ))
    }

    /// Drops the cached token (deployd refused it).
    pub async fn forget_token(&self) {
        self.credentials.forget().await
    }
}

/// Reads a client secret file: it must not be readable or writable by
/// group or others (mode 0600 or stricter), and not be empty.
pub fn load_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let raw = lain_service::read_private_file(path, "client_secret_file", 4096)?;
    let text = std::str::from_utf8(&raw)
        .with_context(|| format!("client_secret_file {} is not UTF-8", path.display()))?;
    let secret = Zeroizing::new(text.trim().to_owned());
    if secret.is_empty() {
        anyhow::bail!(
            "client_secret_file {} is empty: put the secret sso gave for the client in it",
            path.display()
        );
    }
    Ok(secret)
}

/// A deployd replica as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub address: Option<String>,
    pub started_at_ms: u64,
    pub leader: bool,
}

/// deployd's candidates, leader first (the lowest create revision), then
/// the others by age.
pub async fn replicas(store: &Store) -> Result<Vec<Replica>, lain_store::StoreError> {
    let prefix = ElectionKey::of_election(ELECTION)?;
    let mut items = store.list(&prefix).await?.items;
    items.sort_by_key(|e| e.create_revision);
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, e)| Replica {
            id: e.value.id,
            address: e.value.address,
            started_at_ms: e.value.started_at_ms,
            leader: i == 0,
        })
        .collect())
}

/// The base URL of a candidate's advertised address (`host:port`, or a
/// URL as is).
pub fn base_url(address: &str) -> String {
    let a = address.trim_end_matches('/');
    if a.starts_with("http://") || a.starts_with("https://") {
        a.to_owned()
    } else {
        format!("http://{a}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "  s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_secret(&p).unwrap_err().to_string();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_secret(&p).unwrap().as_str(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(load_secret(&p).unwrap_err().to_string().contains("empty"));
        let e = load_secret(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn addresses_become_urls() {
        assert_eq!(base_url("127.0.0.1:7001"), "http://127.0.0.1:7001");
        assert_eq!(base_url("https://d.lain:7001/"), "https://d.lain:7001");
    }
}
