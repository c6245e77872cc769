//! The live parts of pages, as Server-Sent Events read by
//! `static/console.js`:
//!
//! * `/ui/apps/{app}/live`: `procs`, the server-rendered instance tables
//!   (the page's own template), and `summary`, one line of text, on every
//!   change of the app's desired state, rollouts or instances;
//! * `/ui/apps/{app}/deployments/{id}/live`: the same, and `done` (state,
//!   error, badge) once the deployment's rollout ends;
//! * `/ui/apps/{app}/procs/{proc}/logs/stream`: `line` per output record
//!   (JSON, shown as text, never as HTML), `failure`, then `end`.
//!
//! The instance streams read etcd once (each watch's first snapshot) and
//! then keep their copy current from the watch events. Every stream ends
//! after [`MAX_STREAM`], when its session ends (checked every
//! [`SESSION_CHECK`]) or when console stops; the browser reconnects, and
//! the session is checked again.

use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::Event;
use axum::response::Response;
use futures::StreamExt;
use lain_store::{DesiredKey, ObservedKey, RolloutKey};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::Session;
use super::pages;
use super::view::{Badge, WebError};
use crate::api::status::{assemble, Mirror};
use crate::api::{self, sse, store_error};
use crate::error::ApiError;
use crate::track::AppRollouts;

/// The longest a stream stays open before the browser must reconnect.
const MAX_STREAM: Duration = Duration::from_secs(600);
/// How often a stream checks that its session still exists.
const SESSION_CHECK: Duration = Duration::from_secs(60);
/// Changes closer together than this are sent as one.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Why a stream's task stops waiting: its client went, its time or
/// session is up, or console stops.
async fn ended(s: &Session, tx: &mpsc::Sender<Event>, until: tokio::time::Instant) {
    let stopping = s.api.stopping();
    let session = async {
        let mut every = tokio::time::interval(SESSION_CHECK);
        every.tick().await;
        loop {
            every.tick().await;
            if !s.is_live().await {
                return;
            }
        }
    };
    tokio::select! {
        _ = tx.closed() => {}
        _ = tokio::time::sleep_until(until) => {}
        _ = stopping.cancelled() => {}
        _ = session => {}
    }
}

/// `GET /ui/apps/{app}/live`.
pub async fn app(s: Session, Path(app): Path<String>) -> Result<Response, WebError> {
    follow(s, app, None).await
}

/// `GET /ui/apps/{app}/deployments/{id}/live`.
pub async fn deployment(
    s: Session,
    Path((app, id)): Path<(String, i64)>,
) -> Result<Response, WebError> {
    let d = api::deploy::get_deployment(&s.api, &app, id).await?;
    let generation = d
        .generation
        .filter(|_| !d.state.is_final())
        .map(|g| g as u64);
    follow(s, app, generation).await
}

/// The instance stream of `app`; with the `generation` of a deployment
/// still in progress, also its outcome.
async fn follow(s: Session, app: String, generation: Option<u64>) -> Result<Response, WebError> {
    // The read rule of the API's status: any caller, 404 for no such app.
    let _app = api::apps::show_app(s.state(), s.ctx(), Path(app.clone())).await?;
    let store = s.api.store()?.clone();
    let (observed, rollouts, desired) = (
        ObservedKey::of_app(&app).map_err(|e| store_error(e.into()))?,
        RolloutKey::of_app(&app).map_err(|e| store_error(e.into()))?,
        DesiredKey::of_app(&app).map_err(|e| store_error(e.into()))?,
    );
    let (tx, rx) = mpsc::channel::<Event>(8);
    let until = tokio::time::Instant::now() + MAX_STREAM;
    tokio::spawn(async move {
        let (mut w1, mut w2, mut w3) = (
            store.watch(&observed),
            store.watch(&rollouts),
            store.watch(&desired),
        );
        let (mut m1, mut m2, mut m3) = (Mirror::default(), Mirror::default(), Mirror::default());
        let mut last = String::new();
        let mut waiting = generation;
        let stop = ended(&s, &tx, until);
        tokio::pin!(stop);
        loop {
            // Wait for a change, then let a burst of them settle.
            tokio::select! {
                _ = &mut stop => return,
                e = w1.next() => match e { Some(e) => m1.apply(e), None => return },
                e = w2.next() => match e { Some(e) => m2.apply(e), None => return },
                e = w3.next() => match e { Some(e) => m3.apply(e), None => return },
            }
            let settle = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = &mut settle => break,
                    Some(e) = w1.next() => m1.apply(e),
                    Some(e) = w2.next() => m2.apply(e),
                    Some(e) = w3.next() => m3.apply(e),
                }
            }
            let status = assemble(&app, m3.entries(), m1.entries(), m2.entries());
            let fragment = pages::procs_fragment(&status);
            match fragment.render() {
                Ok(html) if html != last => {
                    let summary = Event::default()
                        .event("summary")
                        .data(pages::app_health(&status).1);
                    if tx
                        .send(Event::default().event("procs").data(&html))
                        .await
                        .is_err()
                        || tx.send(summary).await.is_err()
                    {
                        return;
                    }
                    last = html;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot render the procs fragment");
                    return;
                }
            }
            if let Some(generation) = waiting {
                let rollouts = AppRollouts::new(
                    m3.entries().cloned().collect(),
                    m2.entries().cloned().collect(),
                );
                if let Some((state, error)) = rollouts.outcome(generation) {
                    let badge = Badge::of(&state.to_string());
                    let done = json!({
                        "state": state.to_string(),
                        "error": error,
                        "label": badge.label,
                        "class": badge.class,
                    });
                    if tx
                        .send(Event::default().event("done").data(done.to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    waiting = None;
                }
            }
        }
    });
    Ok(sse(rx))
}

#[derive(Deserialize)]
pub struct LogParams {
    #[serde(default)]
    instance: String,
}

/// The longest log line shown; a longer one is cut, never dropped.
const MAX_LINE: usize = 16 * 1024;
/// The most held of one record while its end has not come; a record
/// longer than this is dropped with a marker.
const MAX_RECORD: usize = 1024 * 1024;

/// `GET /ui/apps/{app}/procs/{proc}/logs/stream?instance=N`: the API's
/// log stream (NDJSON from deployd) as SSE. Maintainers and admins.
pub async fn logs(
    s: Session,
    Path((app, proc_name)): Path<(String, String)>,
    q: Result<Query<LogParams>, QueryRejection>,
) -> Result<Response, WebError> {
    let Query(q) = q.map_err(ApiError::from)?;
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/x-ndjson"));
    let upstream = api::logs::logs(
        s.state(),
        s.ctx(),
        Path((app, proc_name)),
        Ok(Query(api::logs::LogsQuery {
            instance: q.instance,
            follow: Some("true".into()),
            tail: Some("200".into()),
            timestamps: Some("true".into()),
        })),
        headers,
    )
    .await?;
    let until = tokio::time::Instant::now() + MAX_STREAM;
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut body = Body::new(upstream.into_body()).into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut overlong = false;
        let stop = ended(&s, &tx, until);
        tokio::pin!(stop);
        loop {
            let chunk = tokio::select! {
                _ = &mut stop => None,
                c = body.next() => c,
            };
            let Some(Ok(chunk)) = chunk else { break };
            let mut rest = &chunk[..];
            while let Some(at) = rest.iter().position(|b| *b == b'\n') {
                let record = if overlong {
                    overlong = false;
                    pending.clear();
                    Some(log_event(
                        br#"{"stream":"stderr","line":"[a log record over 1 MiB was dropped]"}"#,
                    ))
                } else {
                    pending.extend_from_slice(&rest[..at]);
                    Some(log_event(&std::mem::take(&mut pending)))
                };
                rest = &rest[at + 1..];
                if let Some(Some(e)) = record {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            }
            if !overlong {
                pending.extend_from_slice(rest);
                if pending.len() > MAX_RECORD {
                    overlong = true;
                    pending = Vec::new();
                }
            }
        }
        if let Some(e) = log_event(&pending) {
            let _ = tx.send(e).await;
        }
        let _ = tx.send(Event::default().event("end").data("{}")).await;
    });
    Ok(sse(rx))
}

/// One NDJSON record of the API's log stream as an event: `line` with the
/// record (its `line` cut to [`MAX_LINE`]), or `failure` for its
/// `{"error"}` record.
fn log_event(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let cut = |s: &str| s.chars().take(MAX_LINE).collect::<String>();
    Some(match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.get("error").is_some() => Event::default().event("failure").data(v.to_string()),
        Ok(mut v) => {
            if let Some(serde_json::Value::String(line)) = v.get_mut("line") {
                if line.chars().count() > MAX_LINE {
                    *line = cut(line);
                }
            }
            Event::default().event("line").data(v.to_string())
        }
        // Not JSON: sent as a plain line.
        Err(_) => Event::default()
            .event("line")
            .data(json!({ "stream": "stdout", "line": cut(text) }).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(e: Event) -> String {
        // Event's Display is not public; its debug form holds the fields.
        format!("{e:?}")
    }

    #[test]
    fn records_become_events() {
        assert!(log_event(b"\n").is_none());
        let e = render(log_event(br#"{"stream":"stdout","line":"<b>hi</b>"}"#).unwrap());
        assert!(e.contains("line") && e.contains("<b>hi</b>"), "{e}");
        let e = render(log_event(br#"{"error":"instance gone"}"#).unwrap());
        assert!(e.contains("error") && e.contains("instance gone"), "{e}");
        let e = render(log_event(b"not json").unwrap());
        assert!(e.contains("not json") && e.contains("stdout"), "{e}");
        // A long line keeps its record: stream and time stay, the line is cut.
        let long = format!(
            r#"{{"stream":"stderr","time":"t1","line":"{}"}}"#,
            "x".repeat(MAX_LINE + 50)
        );
        let e = render(log_event(long.as_bytes()).unwrap());
        assert!(e.contains("stderr") && e.contains("t1"), "{e}");
        assert!(!e.contains(&"x".repeat(MAX_LINE + 1)), "cut");
    }
}
