//! Logging in to a cluster's sso and keeping the token fresh.
//!
//! Three ways in: the OAuth 2.0 device flow (RFC 8628) for people, a token
//! given on stdin, and a client-credentials profile for scripts and CI.
//! Tokens live in `credentials.toml` (see [`crate::config`]); an access
//! token about to expire is refreshed (refresh token, or the client
//! credentials again) before a call, and the new one saved.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::config::{Cluster, Credential, Credentials};
use crate::error::fail;

/// Seconds before expiry at which a token is renewed.
const RENEW_BEFORE: u64 = 30;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The HTTP client every call uses: bounded connect time, no proxies
/// from the environment surprises beyond reqwest's defaults.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("lain/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// The endpoints of sso's discovery document the CLI uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SsoEndpoints {
    pub token_endpoint: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

pub async fn discover(http: &reqwest::Client, issuer: &str) -> anyhow::Result<SsoEndpoints> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    well_known(
        http,
        &url,
        &format!("sso at {issuer}"),
        "check that sso is up and reachable from here",
    )
    .await
}

/// GETs a well-known JSON document of `what` (bounded to 10 s); any
/// failure is `cannot reach WHAT: ...` with `hint`.
pub async fn well_known<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    hint: &str,
) -> anyhow::Result<T> {
    let unreachable = |e: String| fail(format!("cannot reach {what}: {e}"), hint);
    let r = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| unreachable(e.without_url().to_string()))?;
    if !r.status().is_success() {
        return Err(unreachable(format!("{url} answered {}", r.status())));
    }
    r.json()
        .await
        .map_err(|e| unreachable(format!("{url} is not the expected document: {e}")))
}

/// A token endpoint answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An OAuth error answer.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> anyhow::Result<Result<TokenAnswer, OAuthError>> {
    let mut req = http
        .post(endpoint)
        .timeout(Duration::from_secs(15))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.map_err(|e| {
        fail(
            format!("cannot reach sso's token endpoint: {}", e.without_url()),
            "check that sso is up and reachable from here",
        )
    })?;
    let status = r.status();
    let body = r.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&body).map(Ok).map_err(|e| {
            fail(
                format!("sso's token answer is not usable: {e}"),
                "check that the cluster's sso is a lain sso",
            )
        });
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(e) => Ok(Err(e)),
        Err(_) => Err(fail(
            format!("sso's token endpoint answered {status}"),
            "check that sso is up, then retry",
        )),
    }
}

fn describe(e: &OAuthError) -> String {
    match &e.error_description {
        Some(d) => format!("{} ({d})", e.error),
        None => e.error.clone(),
    }
}

/// The device flow: prints where to approve, opens a browser when there
/// is one, and polls until the user approves, denies or the code expires.
pub async fn device_login(
    http: &reqwest::Client,
    cluster: &Cluster,
    open_browser: bool,
) -> anyhow::Result<Credential> {
    #[derive(Deserialize)]
    struct DeviceAnswer {
        device_code: String,
        user_code: String,
        verification_uri: String,
        #[serde(default)]
        verification_uri_complete: Option<String>,
        expires_in: u64,
        #[serde(default)]
        interval: Option<u64>,
    }
    let sso = discover(http, &cluster.sso).await?;
    let Some(device_endpoint) = sso.device_authorization_endpoint.as_deref() else {
        return Err(fail(
            format!("sso at {} does not offer the device flow", cluster.sso),
            "log in with `lain login --token-stdin`, or ask an admin to enable the device grant for the CLI's client",
        ));
    };
    let r = http
        .post(device_endpoint)
        .timeout(Duration::from_secs(15))
        .form(&[
            ("client_id", cluster.client_id.as_str()),
            ("scope", "openid"),
        ])
        .send()
        .await
        .map_err(|e| {
            fail(
                format!("cannot reach sso at {}: {}", cluster.sso, e.without_url()),
                "check that sso is up and reachable from here",
            )
        })?;
    if !r.status().is_success() {
        let e: Option<OAuthError> = r.json().await.ok();
        return Err(fail(
            format!(
                "sso refused to start a device login for client `{}`: {}",
                cluster.client_id,
                e.map(|e| describe(&e)).unwrap_or_else(|| "no reason given".into())
            ),
            "the cluster's sso needs a public client for the CLI with the device_code grant; ask an admin",
        ));
    }
    let d: DeviceAnswer = r.json().await.map_err(|e| {
        fail(
            format!("sso's device answer is not usable: {e}"),
            "check that the cluster's sso is a lain sso",
        )
    })?;
    let url = d
        .verification_uri_complete
        .clone()
        .unwrap_or_else(|| d.verification_uri.clone());
    eprintln!(
        "To log in, open {} and enter the code {}",
        d.verification_uri, d.user_code
    );
    if open_browser && try_open_browser(&url) {
        eprintln!("(a browser was opened at {url})");
    }
    eprintln!("Waiting for you to approve...");
    let deadline = now() + d.expires_in;
    let mut interval = d.interval.unwrap_or(5).max(1);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if now() > deadline {
            return Err(fail(
                "the login code expired before it was approved",
                "run `lain login` again and approve within the time given",
            ));
        }
        let answer = token_request(
            http,
            &sso.token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &d.device_code),
                ("client_id", &cluster.client_id),
            ],
            None,
        )
        .await?;
        match answer {
            Ok(t) => return Ok(user_credential(t)),
            Err(e) if e.error == "authorization_pending" => {}
            Err(e) if e.error == "slow_down" => interval += 5,
            Err(e) if e.error == "access_denied" => {
                return Err(fail(
                    "the login was denied on sso's page",
                    "run `lain login` again and approve it",
                ))
            }
            Err(e) => {
                return Err(fail(
                    format!("the login failed: {}", describe(&e)),
                    "run `lain login` again",
                ))
            }
        }
    }
}

fn user_credential(t: TokenAnswer) -> Credential {
    Credential::User {
        expires_at: t
            .expires_in
            .map(|s| now() + s)
            .unwrap_or_else(|| jwt_exp(&t.access_token).unwrap_or(0)),
        access_token: t.access_token,
        refresh_token: t.refresh_token,
    }
}

/// Opens `url` in a browser when the session has one (`$BROWSER`, or a
/// display and `xdg-open`). Never fails the login.
fn try_open_browser(url: &str) -> bool {
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let program = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => b,
        _ if has_display => "xdg-open".to_owned(),
        _ => return false,
    };
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// The `exp` of a JWT, without checking it (the server does).
pub fn jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

/// A client-credentials token.
pub async fn client_token(
    http: &reqwest::Client,
    cluster: &Cluster,
    client_id: &str,
    client_secret: &str,
) -> anyhow::Result<(String, u64)> {
    let sso = discover(http, &cluster.sso).await?;
    match token_request(
        http,
        &sso.token_endpoint,
        &[("grant_type", "client_credentials")],
        Some((client_id, client_secret)),
    )
    .await?
    {
        Ok(t) => {
            let exp = t
                .expires_in
                .map(|s| now() + s)
                .or_else(|| jwt_exp(&t.access_token))
                .unwrap_or(0);
            Ok((t.access_token, exp))
        }
        Err(e) => Err(fail(
            format!("sso refused client `{client_id}`: {}", describe(&e)),
            "check the client id and secret (`lain login --client-id ID --client-secret-stdin`)",
        )),
    }
}

/// The access token for cluster `name`, renewed first when it is about to
/// expire (and the renewed credential saved).
pub async fn access_token(
    http: &reqwest::Client,
    name: &str,
    cluster: &Cluster,
) -> anyhow::Result<String> {
    // Read, renewed and saved under the lock: a concurrent `lain` waits,
    // then finds the renewed token.
    let _lock = tokio::task::block_in_place(crate::config::lock_credentials)?;
    let mut creds = Credentials::load()?;
    let not_logged_in = || {
        fail(
            format!("you are not logged in to cluster `{name}`"),
            format!("run `lain login` (or `lain -c {name} login`)"),
        )
    };
    let cred = creds
        .clusters
        .get(name)
        .cloned()
        .ok_or_else(not_logged_in)?;
    let fresh = |exp: u64| exp == 0 || exp > now() + RENEW_BEFORE;
    let renewed = match cred {
        Credential::User {
            access_token,
            expires_at,
            ..
        } if fresh(expires_at) => return Ok(access_token),
        Credential::User {
            refresh_token: Some(refresh),
            ..
        } => {
            let sso = discover(http, &cluster.sso).await?;
            match token_request(
                http,
                &sso.token_endpoint,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh),
                    ("client_id", &cluster.client_id),
                ],
                None,
            )
            .await?
            {
                Ok(t) => {
                    let mut c = user_credential(t);
                    // sso rotates refresh tokens; keep the old one only if
                    // it sent none.
                    if let Credential::User { refresh_token, .. } = &mut c {
                        if refresh_token.is_none() {
                            *refresh_token = Some(refresh);
                        }
                    }
                    c
                }
                Err(e) => {
                    return Err(fail(
                        format!(
                            "your login to cluster `{name}` has expired ({})",
                            describe(&e)
                        ),
                        format!("run `lain -c {name} login`"),
                    ))
                }
            }
        }
        Credential::User { .. } => {
            return Err(fail(
                format!("your login to cluster `{name}` has expired"),
                format!("run `lain -c {name} login`"),
            ))
        }
        Credential::Client {
            access_token: Some(t),
            expires_at,
            ..
        } if fresh(expires_at) => return Ok(t),
        Credential::Client {
            client_id,
            client_secret,
            ..
        } => {
            let (token, exp) = client_token(http, cluster, &client_id, &client_secret).await?;
            Credential::Client {
                client_id,
                client_secret,
                access_token: Some(token),
                expires_at: exp,
            }
        }
    };
    let token = match &renewed {
        Credential::User { access_token, .. } => access_token.clone(),
        Credential::Client { access_token, .. } => access_token.clone().unwrap_or_default(),
    };
    creds.clusters.insert(name.to_owned(), renewed);
    creds.save()?;
    Ok(token)
}

/// Revokes a refresh token at sso (best effort: logout succeeds locally
/// either way).
pub async fn revoke(http: &reqwest::Client, cluster: &Cluster, token: &str) -> bool {
    let Ok(sso) = discover(http, &cluster.sso).await else {
        return false;
    };
    let Some(endpoint) = sso.revocation_endpoint else {
        return false;
    };
    http.post(endpoint)
        .timeout(Duration::from_secs(10))
        .form(&[("token", token), ("client_id", cluster.client_id.as_str())])
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_without_verifying() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!("{}.{}.sig", b64("{}"), b64(r#"{"exp":1700000000}"#));
        assert_eq!(jwt_exp(&t), Some(1_700_000_000));
        assert_eq!(jwt_exp("garbage"), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
    }
}
