//! The device authorization grant (RFC 8628): `/device_authorization`
//! for the device, `/device` for the user's browser.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::authorize::{
    check_login, csrf_failed_page, csrf_ok, csrf_token, current_session, locked_page, Login,
};
use super::{authenticate_client, check_scope, ClientAddr, Params, Shared};
use crate::domain::DEVICE_GRANT;
use crate::error::OAuthError;
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

fn device_form(
    st: &AppState,
    headers: &HeaderMap,
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
    let body = format!(
        "<p>Enter the code shown on your device, check that it matches, and approve.</p>{err}\
         <form method=\"post\" action=\"/device\">{hidden}\
         <label for=\"user_code\">Code</label><input id=\"user_code\" name=\"user_code\" value=\"{code}\" required autocomplete=\"off\">\
         {who}<button type=\"submit\" name=\"action\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
        hidden = html::hidden(&[("csrf", &csrf)]),
        code = esc(code),
    );
    let mut r = html::page(status, "Device sign-in", &body);
    if let Some(c) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

pub(super) async fn get_device(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.unwrap_or_default().as_bytes()).unwrap_or_default();
    let session = current_session(&st, &headers).await;
    device_form(
        &st,
        &headers,
        p.get("user_code").unwrap_or(""),
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
    if !csrf_ok(&headers, &p) {
        return csrf_failed_page();
    }
    let code = p.get("user_code").unwrap_or("");
    let session = current_session(&st, &headers).await;
    let signed_in = session.as_ref().map(|s| s.0.as_str());
    let form = |err: &str, status| device_form(&st, &headers, code, signed_in, Some(err), status);
    let t = now();
    if let Some(secs) = st.limiter.locked(None, addr.0, t) {
        return locked_page(secs);
    }
    let device = match st.db.device_by_user_code(code).await {
        Ok(Some(d)) if d.status == "pending" && d.expires_at > t => d,
        Ok(_) => {
            // Wrong codes count as failures: user codes are short.
            st.limiter.failure(None, addr.0, t);
            return form("Unknown or expired code. Check the code on your device, or start the sign-in there again.", StatusCode::BAD_REQUEST);
        }
        Err(e) => {
            tracing::error!(error = %e, "device lookup failed");
            return html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "sso is unavailable",
                "sso cannot read its database; retry in a moment.",
            );
        }
    };
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
                Ok(Login::Failed) => {
                    return form(
                        "Wrong user name or password, or the account is disabled.",
                        StatusCode::UNAUTHORIZED,
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, "login failed");
                    return html::message(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "sso is unavailable",
                        "sso cannot read its database; retry in a moment.",
                    );
                }
            }
        }
    };
    let approve = p.get("action") != Some("deny");
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
            html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "sso is unavailable",
                "sso cannot write its database; retry in a moment.",
            )
        }
    }
}
