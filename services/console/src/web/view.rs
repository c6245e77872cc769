//! What every page shares: the frame ([`Layout`]), rendering a template
//! into a response ([`Page`]), error pages ([`WebError`]), the headers
//! of every `/ui` answer, and formatting of times and sizes.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::api::Api;
use crate::error::{ApiError, ErrorBody};

/// The frame of a page: its title, the signed-in user and the form token.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// Which main navigation entry is current (`apps`, `cluster`, `audit`).
    pub nav: &'static str,
    pub user: Option<String>,
    pub admin: bool,
    pub csrf: String,
    pub asset_v: &'static str,
}

impl Layout {
    /// The frame of a page shown to nobody in particular.
    pub fn anonymous(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            nav: "",
            user: None,
            admin: false,
            csrf: String::new(),
            asset_v: super::asset_version(),
        }
    }
}

/// A rendered template as an HTML answer.
pub struct Page<T>(pub T);

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot render a web console page");
                WebError::from(ApiError::Internal(format!("template: {e}"))).into_response()
            }
        }
    }
}

/// A message page: errors, results, signed out.
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub l: Layout,
    pub heading: String,
    pub text: String,
    pub hint: String,
    pub request_id: Option<String>,
    /// (href, label)
    pub links: Vec<(String, String)>,
    /// Announce the message to screen readers (a result).
    pub status_role: bool,
}

/// Why a page cannot be shown. Clone, unlike [`ApiError`]: a request's
/// session error is answered again by each handler that asks for it.
#[derive(Debug, Clone)]
pub enum WebError {
    /// Not signed in: to the login, and back to this path after.
    Login(String),
    /// The sign-in failed (a bad or foreign answer from sso).
    SignIn(String),
    /// The API's answer, as a page with the same status.
    Page { status: StatusCode, body: ErrorBody },
}

impl WebError {
    pub fn not_found(message: &str, hint: &str) -> WebError {
        ApiError::not_found(message, hint).into()
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code = e.code(), error = %e, "web console request failed");
        }
        let mut body = e.body();
        if let ApiError::Unauthenticated(a) = &e {
            if !a.is_unavailable() {
                body.hint = "sign in again".into();
            }
        }
        WebError::Page { status, body }
    }
}

impl From<crate::db::DbError> for WebError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Login(here) => {
                let to = format!(
                    "/ui/login?return_to={}",
                    form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
                );
                let mut r = StatusCode::SEE_OTHER.into_response();
                if let Ok(v) = HeaderValue::from_str(&to) {
                    r.headers_mut().insert(LOCATION, v);
                }
                r
            }
            WebError::SignIn(why) => {
                tracing::info!(reason = %why, "web console sign-in failed");
                let page = Message {
                    l: Layout::anonymous("Sign-in failed"),
                    heading: "Sign-in failed".into(),
                    text: why,
                    hint: "Sign in again from the start. If it keeps failing, tell the console operator the time it happened.".into(),
                    request_id: None,
                    links: vec![("/ui/login".into(), "Sign in again".into())],
                    status_role: false,
                };
                (StatusCode::BAD_REQUEST, Page(page)).into_response()
            }
            WebError::Page { status, body } => {
                let heading = match status.as_u16() {
                    401 => "Not signed in",
                    403 => "Not allowed",
                    404 => "Not found",
                    409 => "Conflict",
                    400 | 413 | 422 => "Cannot do that",
                    _ if status.is_server_error() => "Console cannot answer now",
                    _ => "Error",
                };
                let mut text = body.message;
                for d in &body.diagnostics {
                    text.push('\n');
                    text.push_str(d);
                }
                let page = Message {
                    l: Layout::anonymous(heading),
                    heading: heading.into(),
                    text,
                    hint: body.hint,
                    request_id: None,
                    links: vec![("/ui/".into(), "Back to the apps".into())],
                    status_role: false,
                };
                (status, Page(page)).into_response()
            }
        }
    }
}

/// Marks an answer as not to be cached (pages show live state and forms
/// carry the session's token).
pub fn no_store(h: &mut HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Adds the security headers to every `/ui` answer: a strict CSP (no
/// inline script or style; forms post only here and to sso, where
/// sign-out goes), no framing, no sniffing, no referrer to other sites,
/// and no caching unless the answer says otherwise (static files).
pub async fn headers(State(api): State<Api>, request: Request, next: Next) -> Response {
    let mut r = next.run(request).await;
    let sso = api
        .web()
        .map(|w| w.sso_origin().to_owned())
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self' {sso}; frame-ancestors 'none'; base-uri 'none'"
    );
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp.trim()) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(CACHE_CONTROL) {
        no_store(h);
    }
    r
}

/// Unix milliseconds as `2026-11-22 10:42:03 UTC`.
pub fn when(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "-".into())
}

/// Unix milliseconds as `HH:MM` UTC (chart axes).
pub fn clock(ms: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "-".into())
}

/// How long ago `ms` was, at `now_ms`: `42s`, `5m`, `3h`, `2d`.
pub fn age(ms: i64, now_ms: i64) -> String {
    let s = (now_ms - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Bytes in binary units: `512 MiB`, `2.0 GiB`.
pub fn size(b: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    let f = b as f64;
    if f >= GIB {
        format!("{:.1} GiB", f / GIB)
    } else {
        format!("{:.0} MiB", f / MIB)
    }
}

/// Thousandths of a core as cores: `0.5`, `2`.
pub fn cores(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{:.1}", millis as f64 / 1000.0)
    }
}

/// A percentage, 0 to 100, of `used` in `total` (0 when there is none).
pub fn percent(used: u64, total: u64) -> u32 {
    if total == 0 {
        0
    } else {
        ((used.min(total) as f64 / total as f64) * 100.0).round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(when(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
        assert_eq!(clock(1_795_000_000_000), "11:06");
        assert_eq!(age(0, 42_000), "42s");
        assert_eq!(age(0, 300_000), "5m");
        assert_eq!(age(0, 3 * 3_600_000), "3h");
        assert_eq!(age(0, 2 * 86_400_000), "2d");
        assert_eq!(age(10, 0), "0s");
        assert_eq!(size(512 << 20), "512 MiB");
        assert_eq!(size(2 << 30), "2.0 GiB");
        assert_eq!(cores(500), "0.5");
        assert_eq!(cores(2000), "2");
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(9, 3), 100);
    }
}
