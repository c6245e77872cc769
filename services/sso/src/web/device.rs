//! The device authorization grant (RFC 8628): `/device_authorization`
//! for the device, `/device` for the user's browser.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::authorize::{
    busy_page, check_login, csrf_failed_page, csrf_ok, csrf_token, current_session, locked_page,
    Login,
};
use super::{authenticate_client, check_scope, ClientAddr, Params, Shared};
use crate::domain::{Client, DEVICE_GRANT};
use crate::error::OAuthError;
use crate::grants::Device;
use crate::html::{self, esc};
use crate::secret::Secret;
use crate::{now, AppState};

pub(super) async fn device_authorization(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match inner(&st, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn inner(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let p = Params::parse(body)?;
    let client = authenticate_client(st, headers, &p).await?;
    if !client.allows(DEVICE_GRANT) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "client `{}` may not use the device grant",
            client.client_id
        )));
    }
    let scope = check_scope(p.get("scope"))?;
    let tc = &st.cfg.tokens;
    let interval = tc.device_poll_interval_secs as i64;
    let (device_code, user_code) = st
        .db
        .create_device(
            &client.client_id,
            &scope,
            interval,
            now() + tc.device_code_secs as i64,
        )
        .await?;
    let uri = format!("{}/device", st.issuer);
    let mut r = Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?user_code={user_code}"),
        "expires_in": tc.device_code_secs,
        "interval": interval,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The first step: a form asking for the code shown on the device. A
/// GET form: it only leads to the confirmation page.
fn code_form(code: &str, error: Option<&str>, status: StatusCode) -> Response {
    let err = error
        .map(|e| format!("<p class=\"err\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<p>Enter the code shown on your device.</p>{err}\
         <form method=\"get\" action=\"/device\">\
         <label for=\"user_code\">Code</label><input id=\"user_code\" name=\"user_code\" value=\"{code}\" required autocomplete=\"off\">\
         <button type=\"submit\">Continue</button></form>",
        code = esc(code),
    );
    html::page(status, "Device sign-in", &body)
}

/// The second step: what the device asks for, the code to compare with
/// the device's, and the approve/deny form.
#[allow(clippy::too_many_arguments)]
fn device_form(
    st: &AppState,
    headers: &HeaderMap,
    device: &Device,
    client: Option<&Client>,
    code: &str,
    signed_in: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, set) = csrf_token(st, headers);
    let err = error
        .map(|e| format!("<p class=\"err\">{}</p>", esc(e)))
        .unwrap_or_default();
    let who = match signed_in {
        Some(u) => format!("<p>Signed in as <b>{}</b>.</p>", esc(u)),
        None => "<label for=\"username\">User name</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
                 <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>"
            .to_owned(),
    };
    let (name, id, audience) = match client {
        Some(c) => (c.name.as_str(), c.client_id.as_str(), c.audience.as_str()),
        None => (device.client_id.as_str(), device.client_id.as_str(), ""),
    };
    let scopes = if device.scope.is_empty() {
        "(none)".to_owned()
    } else {
        device.scope.clone()
    };
    let body = format!(
        "<p class=\"warn\"><b>Only approve if you started this sign-in yourself, on your own device, just now.</b> \
         Someone who sent you this link or code could otherwise get access to your account.</p>{err}\
         <p>The application <b>{name}</b> (client <code>{id}</code>) asks to act as you with the scopes \
         <b>{scopes}</b>{aud}.</p>\
         <p>Code: <b style=\"font-size:1.4em;letter-spacing:.1em\">{code}</b></p>\
         <form method=\"post\" action=\"/device\">{hidden}\
         <label><input type=\"checkbox\" name=\"confirm_code\" value=\"yes\" required>\
         This is the code shown on my device, and I started this sign-in.</label>\
         {who}<button type=\"submit\" name=\"action\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button></form>",
        name = esc(name),
        id = esc(id),
        scopes = esc(&scopes),
        aud = if audience.is_empty() {
            String::new()
        } else {
            format!(", for the services of <b>{}</b>", esc(audience))
        },
        hidden = html::hidden(&[("csrf", &csrf), ("user_code", code)]),
        code = esc(code),
    );
    let mut r = html::page(status, "Device sign-in", &body);
    if let Some(c) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

fn unavailable(what: &str) -> Response {
    html::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "sso is unavailable",
        &format!("sso cannot {what} its database; retry in a moment."),
    )
}

const UNKNOWN_CODE: &str =
    "Unknown or expired code. Check the code on your device, or start the sign-in there again.";

/// A pending, unexpired device authorization by user code, counted
/// against the address's limit when the code is wrong (user codes are
/// short). `Err` is the page to answer.
async fn lookup(
    st: &AppState,
    addr: ClientAddr,
    code: &str,
) -> Result<(Device, Option<Client>), Response> {
    let t = now();
    let attempt = st.limiter.reserve(None, addr.0, t).map_err(locked_page)?;
    let device = match st.db.device_by_user_code(code).await {
        Ok(Some(d)) if d.status == "pending" && d.expires_at > t => d,
        Ok(_) => {
            attempt.failed(now());
            return Err(code_form(code, Some(UNKNOWN_CODE), StatusCode::BAD_REQUEST));
        }
        Err(e) => {
            attempt.release();
            tracing::error!(error = %e, "device lookup failed");
            return Err(unavailable("read"));
        }
    };
    attempt.release();
    let client = match st.db.get_client(&device.client_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return Err(unavailable("read"));
        }
    };
    Ok((device, client))
}

pub(super) async fn get_device(
    State(st): State<Shared>,
    addr: ClientAddr,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some(code) = p.get("user_code") else {
        return code_form("", None, StatusCode::OK);
    };
    let (device, client) = match lookup(&st, addr, code).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let session = current_session(&st, &headers).await;
    device_form(
        &st,
        &headers,
        &device,
        client.as_ref(),
        code,
        session.as_ref().map(|s| s.0.as_str()),
        None,
        StatusCode::OK,
    )
}

pub(super) async fn post_device(
    State(st): State<Shared>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(p) = Params::parse(&body) else {
        return html::message(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "A form field was given twice; reload the page.",
        );
    };
    if !csrf_ok(&st, &headers, &p) {
        return csrf_failed_page();
    }
    let code = p.get("user_code").unwrap_or("");
    let (device, client) = match lookup(&st, addr, code).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let session = current_session(&st, &headers).await;
    let signed_in = session.as_ref().map(|s| s.0.as_str());
    let form = |err: &str, status| {
        device_form(
            &st,
            &headers,
            &device,
            client.as_ref(),
            code,
            signed_in,
            Some(err),
            status,
        )
    };
    let approve = p.get("action") != Some("deny");
    if approve && p.get("confirm_code") != Some("yes") {
        return form(
            "Confirm that this code is the one shown on your device, and that you started this sign-in.",
            StatusCode::BAD_REQUEST,
        );
    }
    let user = match signed_in {
        Some(u) => u.to_owned(),
        None => {
            let (Some(user), Some(pw)) = (p.get("username"), p.get("password")) else {
                return form(
                    "Enter your user name and password.",
                    StatusCode::BAD_REQUEST,
                );
            };
            match check_login(&st, addr, user, Secret::new(pw)).await {
                Ok(Login::Ok) => user.to_owned(),
                Ok(Login::Locked(secs)) => return locked_page(secs),
                Ok(Login::Busy) => return busy_page(),
                Ok(Login::Failed) => {
                    return form(
                        "Wrong user name or password, or the account is disabled.",
                        StatusCode::UNAUTHORIZED,
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, "login failed");
                    return unavailable("read");
                }
            }
        }
    };
    match st
        .db
        .device_decide(&device.device_code_hash, &user, approve)
        .await
    {
        Ok(true) if approve => html::message(
            StatusCode::OK,
            "Device approved",
            "You are signed in on your device. You can close this page.",
        ),
        Ok(true) => html::message(
            StatusCode::OK,
            "Device denied",
            "The device sign-in was denied.",
        ),
        Ok(false) => form(
            "This code was already used or has expired.",
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => {
            tracing::error!(error = %e, "device decision failed");
            unavailable("write")
        }
    }
}
