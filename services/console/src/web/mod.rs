//! The web console under `/ui/`: server-rendered pages (askama templates
//! compiled into the binary), a little plain JavaScript for live updates
//! over SSE, and sign-in through sso (authorization code with PKCE).
//!
//! It has no logic of its own for what it shows or changes: pages read
//! through the same functions as `/api/v1`, and every action calls the
//! API's own handler with the signed-in user's [`Ctx`], so authorization
//! and the audit log are the API's (entries made here carry
//! `"via": "web"`). The JSON API never accepts the session cookie.
//!
//! * [`auth`]: login, callback, logout, sessions, CSRF and Origin checks.
//! * [`pages`]: the read-only pages; [`actions`]: confirm, then act.
//! * [`live`]: the SSE streams; [`history`]: the samples the charts draw.
//!
//! Design: docs/decisions/0008-web-console.md.

mod actions;
pub(crate) mod auth;
pub mod history;
mod live;
mod pages;
mod view;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::Api;
use crate::config::Config;

pub use auth::Web;
pub use view::WebError;

/// The web console's routes: `/ui`, `/ui/` and everything under it, with
/// its own HTML fallbacks and the pages' security headers (merged into
/// the API's router by [`Api::router`]).
pub(crate) fn router(api: &Api) -> Router<Api> {
    let pages = Router::new()
        .route("/login", get(auth::login))
        .route("/callback", get(auth::callback))
        .route("/logout", post(auth::logout))
        .route("/logged-out", get(auth::logged_out))
        .route("/static/{file}", get(static_file))
        .route("/apps/{app}", get(pages::app))
        .route("/apps/{app}/live", get(live::app))
        .route("/apps/{app}/releases", get(pages::releases))
        .route("/apps/{app}/deployments/{id}", get(pages::deployment))
        .route("/apps/{app}/deployments/{id}/live", get(live::deployment))
        .route(
            "/apps/{app}/procs/{proc}/scale",
            get(actions::scale_confirm).post(actions::scale),
        )
        .route(
            "/apps/{app}/deploy",
            get(actions::deploy_confirm).post(actions::deploy),
        )
        .route(
            "/apps/{app}/rollback",
            get(actions::rollback_confirm).post(actions::rollback),
        )
        .route(
            "/apps/{app}/maintainers",
            get(actions::maintainer_add_confirm).post(actions::maintainer_add),
        )
        .route(
            "/apps/{app}/maintainers/{subject}/remove",
            get(actions::maintainer_remove_confirm).post(actions::maintainer_remove),
        )
        .route("/apps/{app}/procs/{proc}/logs", get(pages::logs))
        .route("/apps/{app}/procs/{proc}/logs/stream", get(live::logs))
        .route("/cluster", get(pages::cluster))
        .route(
            "/nodes/{name}/{flag}",
            get(actions::node_confirm).post(actions::node),
        )
        .route("/audit", get(pages::audit))
        .fallback(|| async {
            WebError::not_found("no such page", "start from the apps list at /ui/")
        })
        .method_not_allowed_fallback(|| async {
            WebError::Page {
                status: StatusCode::METHOD_NOT_ALLOWED,
                body: crate::error::ErrorBody {
                    code: "method_not_allowed".into(),
                    message: "this page does not take this method".into(),
                    hint: "use the page's own links and forms".into(),
                    diagnostics: Vec::new(),
                },
            }
        });
    // `nest` serves `/ui` itself, not `/ui/`: the apps list is routed here.
    Router::new()
        .route("/ui", get(root))
        .route("/ui/", get(pages::apps))
        .nest("/ui", pages)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            view::headers,
        ))
}

/// `GET /`: the web console.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/ui/")
}

/// Sets up the web console from `[web]`, when there is one.
pub fn load(config: &Config) -> anyhow::Result<Option<Web>> {
    config
        .web
        .as_ref()
        .map(|w| Web::load(config, w))
        .transpose()
}

/// Starts what the web console runs in the background (the sampler the
/// charts draw from), until console stops.
pub fn spawn_background(api: &Api) {
    if let Ok(web) = api.web() {
        tokio::spawn(history::run(api.clone(), web.clone()));
    }
}

const CSS: &str = include_str!("../../static/console.css");
const JS: &str = include_str!("../../static/console.js");

/// `GET /ui/static/{file}`: the stylesheet and the script, compiled in.
/// Their URLs carry a hash of their content, so they are cached for good.
async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return WebError::not_found("no such file", "reload the page").into_response(),
    };
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `?v=` of the static files: a short hash of both, so a new build is
/// never served from a stale cache.
pub(crate) fn asset_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(CSS);
        h.update(JS);
        h.finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::CSS;

    /// A `--name: #rrggbb` of the stylesheet, as linear-light luminance.
    fn luminance(hex: &str) -> f64 {
        let hex = hex.trim_start_matches('#');
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    }

    fn var(name: &str) -> String {
        let at = CSS
            .find(&format!("--{name}:"))
            .unwrap_or_else(|| panic!("--{name}"));
        CSS[at..]
            .split(':')
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_owned()
    }

    fn ratio(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    /// WCAG 2.2 AA: 4.5 for text, 3 for UI parts (borders, focus).
    #[test]
    fn colours_meet_contrast_minimums() {
        let white = "#ffffff".to_owned();
        let text_pairs = [
            ("text", "bg"),
            ("muted", "bg"),
            ("muted", "soft"),
            ("accent", "bg"),
            ("accent", "soft"),
            ("ok", "ok-bg"),
            ("warn", "warn-bg"),
            ("bad", "bad-bg"),
            ("info", "info-bg"),
            ("warn", "bg"),
        ];
        for (fg, bg) in text_pairs {
            let r = ratio(&var(fg), &var(bg));
            assert!(r >= 4.5, "{fg} on {bg}: {r:.2}");
        }
        for bg in ["accent", "bad"] {
            let r = ratio(&white, &var(bg));
            assert!(r >= 4.5, "white on {bg}: {r:.2}");
        }
        let r = ratio(&var("line"), &var("bg"));
        assert!(r >= 3.0, "borders: {r:.2}");
        // The log view's own colours.
        for fg in ["#e6edf3", "#9198a1", "#ffa198"] {
            let r = ratio(fg, "#0d1117");
            assert!(r >= 4.5, "{fg} on the log: {r:.2}");
        }
    }
}
