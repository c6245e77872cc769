//! console's API as the CLI calls it: the chosen cluster, a fresh token,
//! and console's JSON errors (`code`, `message`, `hint`) turned into
//! one-line failures.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{Cluster, Config};
use crate::error::{fail, CliError};
use crate::Globals;

/// console's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(default)]
    hint: String,
    #[serde(default)]
    diagnostics: Vec<String>,
}

/// An authenticated console client for one cluster.
pub struct Console {
    pub name: String,
    pub cluster: Cluster,
    http: reqwest::Client,
    token: String,
}

impl Console {
    /// The chosen cluster (`--cluster`, or the default), with a token
    /// renewed if needed.
    pub async fn connect(g: &Globals) -> anyhow::Result<Console> {
        let config = Config::load()?;
        let (name, cluster) = config.cluster(g.cluster.as_deref())?;
        let http = crate::auth::http();
        let token = crate::auth::access_token(&http, &name, cluster).await?;
        Ok(Console {
            name,
            cluster: cluster.clone(),
            http,
            token,
        })
    }

    /// A client for cluster `name` with `token` as is (checking a new
    /// login before it is saved).
    pub fn with_token(name: &str, cluster: &Cluster, token: String) -> Console {
        Console {
            name: name.to_owned(),
            cluster: cluster.clone(),
            http: crate::auth::http(),
            token,
        }
    }

    /// The access token (for the registry's Basic password).
    pub fn token(&self) -> &str {
        &self.token
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cluster.console.trim_end_matches('/'))
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Sends, waiting at most `timeout` for the whole answer.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> anyhow::Result<reqwest::Response> {
        let req = match timeout {
            Some(t) => req.timeout(t),
            None => req,
        };
        let r = req.send().await.map_err(|e| self.unreachable(e))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(self.error_of(r).await)
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let what = if e.is_timeout() {
            "did not answer in time".to_owned()
        } else {
            e.without_url().to_string()
        };
        fail(
            format!(
                "cannot reach the console of cluster `{}` at {}: {what}",
                self.name, self.cluster.console
            ),
            "check that console is up and the URL is right (`lain cluster list`)",
        )
    }

    async fn error_of(&self, r: reqwest::Response) -> anyhow::Error {
        let status = r.status();
        let body: Option<ErrorBody> = r.json().await.ok();
        match (status, body) {
            (StatusCode::UNAUTHORIZED, b) => fail(
                format!(
                    "your login to cluster `{}` is not valid{}",
                    self.name,
                    b.map(|b| format!(": {}", b.message)).unwrap_or_default()
                ),
                format!("run `lain -c {} login`", self.name),
            ),
            (_, Some(b)) => {
                let mut message = b.message;
                if b.code == "invalid_lain_yaml" && !b.diagnostics.is_empty() {
                    message = format!(
                        "the release's lain.yaml is invalid: {}",
                        b.diagnostics.join("; ")
                    );
                }
                let hint = if b.hint.is_empty() {
                    format!("console answered {status} `{}`", b.code)
                } else {
                    b.hint
                };
                CliError::new(message, hint).into()
            }
            (_, None) => fail(
                format!("console of cluster `{}` answered {status}", self.name),
                "check that the URL is console's (`lain cluster list`) and that it is up",
            ),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let r = self
            .send(
                self.request(Method::GET, path),
                Some(Duration::from_secs(30)),
            )
            .await?;
        self.decode(r).await
    }

    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let r = self
            .send(
                self.request(method, path).json(body),
                Some(Duration::from_secs(60)),
            )
            .await?;
        self.decode(r).await
    }

    /// A call whose answer has no body (204).
    pub async fn call_empty(&self, method: Method, path: &str) -> anyhow::Result<()> {
        self.send(self.request(method, path), Some(Duration::from_secs(60)))
            .await?;
        Ok(())
    }

    pub async fn put_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<T> {
        let r = self
            .send(
                self.request(Method::PUT, path)
                    .header("content-type", "application/octet-stream")
                    .body(bytes),
                Some(Duration::from_secs(60)),
            )
            .await?;
        self.decode(r).await
    }

    /// A streamed answer (logs, deployment events): no overall timeout.
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.send(self.request(Method::GET, path), None).await
    }

    async fn decode<T: DeserializeOwned>(&self, r: reqwest::Response) -> anyhow::Result<T> {
        let bytes = r.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            fail(
                format!("console's answer is not what this lain expects: {e}"),
                "update lain to the cluster's version",
            )
        })
    }
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_segments() {
        assert_eq!(super::enc("web.admin"), "web.admin");
        assert_eq!(super::enc("a b/c"), "a%20b%2Fc");
    }
}
