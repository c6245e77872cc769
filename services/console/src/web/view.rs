//! What every page shares: the frame ([`Layout`]), rendering a template
//! into a response ([`Page`]), error pages ([`WebError`]), status badges,
//! the headers of every `/ui` answer, and formatting of times, sizes and
//! URL path segments.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

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

/// A message page: errors, results, signed out. It shows the request's
/// id (what the console operator finds the log lines by).
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub l: Layout,
    pub heading: String,
    pub text: String,
    pub hint: String,
    /// (href, label)
    pub links: Vec<(String, String)>,
    /// Announce the message to screen readers (a result).
    pub status_role: bool,
}

impl Message {
    fn request_id(&self) -> Option<String> {
        REQUEST_ID.try_with(Clone::clone).ok().flatten()
    }
}

tokio::task_local! {
    /// The `x-request-id` of the request being answered (set by
    /// [`headers`]), for the pages that show it.
    static REQUEST_ID: Option<String>;
}

/// A status as a badge: its CSS class and its words, with a symbol, so
/// that colour is never the only sign.
#[derive(Debug, Clone)]
pub struct Badge {
    pub class: &'static str,
    pub label: String,
}

impl Badge {
    /// The badge of a state, health, phase, outcome, liveness or audit
    /// result as the API names it (`rolled_back`, `healthy`, ...).
    pub fn of(word: &str) -> Badge {
        let (class, symbol) = match word {
            "healthy" | "converged" | "succeeded" | "alive" | "ok" | "running" | "serving"
            | "reachable" => ("ok", "✓"),
            "progressing" | "pending" | "starting" | "creating" | "rolling_out" => ("info", "…"),
            "rolled_back" => ("warn", "↶"),
            "suspect" | "unhealthy" | "degraded" | "draining" | "stopping" => ("warn", "!"),
            "denied" => ("warn", "⊘"),
            "failed" | "lost" | "exited" | "error" | "unreachable" | "no_leader" => ("bad", "✗"),
            _ => ("muted", "–"),
        };
        Badge {
            class,
            label: format!("{symbol} {}", word.replace('_', " ")),
        }
    }
}

/// Why a page cannot be shown.
#[derive(Debug)]
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
        WebError::Page {
            status,
            body: e.body(),
        }
    }
}

impl From<crate::db::DbError> for WebError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, text, hint, links) = match self {
            WebError::Login(here) => {
                let to = format!(
                    "/ui/login?return_to={}",
                    form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
                );
                return Redirect::to(&to).into_response();
            }
            WebError::SignIn(why) => {
                tracing::info!(reason = %why, "web console sign-in failed");
                (
                    StatusCode::BAD_REQUEST,
                    "Sign-in failed",
                    why,
                    "Sign in again from the start. If it keeps failing, tell the console operator the time it happened.".to_owned(),
                    vec![("/ui/login".to_owned(), "Sign in again".to_owned())],
                )
            }
            WebError::Page { status, body } => {
                let heading = match status.as_u16() {
                    401 => "Not signed in",
                    403 => "Not allowed",
                    404 => "Not found",
                    405 => "Not a form of this page",
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
                (
                    status,
                    heading,
                    text,
                    body.hint,
                    vec![("/ui/".to_owned(), "Back to the apps".to_owned())],
                )
            }
        };
        let page = Message {
            l: Layout::anonymous(heading),
            heading: heading.into(),
            text,
            hint,
            links,
            status_role: false,
        };
        (status, Page(page)).into_response()
    }
}

/// Adds the security headers to every `/ui` answer: a strict CSP (no
/// inline script or style; forms post only here and to sso, where
/// sign-out goes), no framing, no sniffing, no referrer to other sites,
/// and no caching unless the answer says otherwise (static files). It
/// also makes the request's id known to the pages that show it.
pub async fn headers(State(api): State<Api>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut r = REQUEST_ID.scope(id, next.run(request)).await;
    let h = r.headers_mut();
    let csp = api.web().map(|w| w.csp.clone()).unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; style-src 'self'; frame-ancestors 'none'")
    });
    h.insert(CONTENT_SECURITY_POLICY, csp);
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(CACHE_CONTROL) {
        // Pages show live state and forms carry the session's token.
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A value as one URL path segment (`/`, `?`, `#`, `%`, space, ... escaped).
pub fn seg(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'+');
    utf8_percent_encode(s, SEGMENT).to_string()
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
    duration(now_ms - ms)
}

/// A duration in milliseconds, roughly: `42s`, `5m`, `3h`, `2d`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
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
        assert_eq!(duration(90_000), "1m");
        assert_eq!(seg("a b/c?d%+e"), "a%20b%2Fc%3Fd%25%2Be");
        assert_eq!(seg("web.worker-1_x"), "web.worker-1_x");
        let b = Badge::of("rolled_back");
        assert_eq!((b.class, b.label.as_str()), ("warn", "↶ rolled back"));
        assert_eq!(Badge::of("whatever").class, "muted");
    }
}
