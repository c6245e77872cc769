//! The live parts of pages, as Server-Sent Events read by
//! `static/console.js`:
//!
//! * `/ui/apps/{app}/live`: `procs`, the server-rendered procs table
//!   (the same template as the page), on every change of the app's
//!   desired state, rollouts or instances;
//! * `/ui/apps/{app}/deployments/{id}/live`: the API's deployment stream
//!   (`deployment`, `status`, `done`);
//! * `/ui/apps/{app}/procs/{proc}/logs/stream`: `line` per output line
//!   (JSON, shown as text, never as HTML), `error`, then `end`.
//!
//! A stream ends after [`MAX_STREAM`] or when the session's access token
//! expires, whichever is first; the browser reconnects, and the session
//! is checked again.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use lain_store::{DesiredKey, ObservedKey, RolloutKey};
use serde::Deserialize;

use super::auth::WebReq;
use super::pages;
use super::view::WebError;
use crate::api::{self, store_error, Api};
use crate::error::ApiError;

/// The longest a stream stays open before the browser must reconnect.
const MAX_STREAM: Duration = Duration::from_secs(600);
/// Changes closer together than this are sent as one.
const DEBOUNCE: Duration = Duration::from_millis(250);

fn deadline(access_exp: i64) -> tokio::time::Instant {
    let left = (access_exp - crate::db::now_ms() / 1000).max(5) as u64;
    tokio::time::Instant::now() + MAX_STREAM.min(Duration::from_secs(left))
}

fn sse(
    rx: tokio::sync::mpsc::Receiver<Event>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /ui/apps/{app}/live`.
pub async fn app(
    State(api): State<Api>,
    req: WebReq,
    Path(app): Path<String>,
) -> Result<Response, WebError> {
    let s = req.signed()?.clone();
    // The same read rule as the API's status (any caller; 404 for none).
    let axum::Json(first) =
        api::status::status(State(api.clone()), req.ctx(&s), Path(app.clone())).await?;
    let store = api.store()?.clone();
    let (observed, rollouts, desired) = (
        ObservedKey::of_app(&app).map_err(|e| store_error(e.into()))?,
        RolloutKey::of_app(&app).map_err(|e| store_error(e.into()))?,
        DesiredKey::of_app(&app).map_err(|e| store_error(e.into()))?,
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(8);
    let until = deadline(s.access_exp);
    tokio::spawn(async move {
        let mut w1 = store.watch(&observed);
        let mut w2 = store.watch(&rollouts);
        let mut w3 = store.watch(&desired);
        let mut last = String::new();
        let mut status = first;
        loop {
            let html = match pages::procs_fragment(&api, &s, &status).await.render() {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "cannot render the procs fragment");
                    return;
                }
            };
            if html != last {
                if tx
                    .send(Event::default().event("procs").data(&html))
                    .await
                    .is_err()
                {
                    return;
                }
                last = html;
            }
            // Wait for a change, then let a burst of them settle.
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(until) => return,
                e = w1.next() => if e.is_none() { return },
                e = w2.next() => if e.is_none() { return },
                e = w3.next() => if e.is_none() { return },
            }
            tokio::time::sleep(DEBOUNCE).await;
            match api::status::collect(&store, &app).await {
                Ok(st) => status = st,
                Err(e) => tracing::debug!(error = %e, "live procs: cannot read the status"),
            }
        }
    });
    Ok(sse(rx).into_response())
}

/// `GET /ui/apps/{app}/deployments/{id}/live`: the API's own stream.
pub async fn deployment(
    State(api): State<Api>,
    req: WebReq,
    Path((app, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let s = req.signed()?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::not_found(
            format!("app `{app}` has no deployment {id:?}"),
            "pick one from the app's page",
        )
    })?;
    let stream = api::deploy::deployment_events(State(api), req.ctx(s), Path((app, id))).await?;
    Ok(stream.into_response())
}

#[derive(Deserialize)]
pub struct LogParams {
    #[serde(default)]
    instance: String,
}

/// The longest log line sent on (a line is cut, never dropped).
const MAX_LINE: usize = 16 * 1024;

/// `GET /ui/apps/{app}/procs/{proc}/logs/stream?instance=N`: the API's
/// log stream (NDJSON from deployd) as SSE. Maintainers and admins.
pub async fn logs(
    State(api): State<Api>,
    req: WebReq,
    Path((app, proc_name)): Path<(String, String)>,
    q: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let q = q.ok();
    let s = req.signed()?;
    let instance = q.map(|Query(q)| q.instance).unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/x-ndjson"));
    let upstream = api::logs::logs(
        State(api.clone()),
        req.ctx(s),
        Path((app, proc_name)),
        Ok(Query(api::logs::LogsQuery {
            instance,
            follow: Some("true".into()),
            tail: Some("200".into()),
            timestamps: Some("true".into()),
        })),
        headers,
    )
    .await?;
    let until = deadline(s.access_exp);
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut body = Body::new(upstream.into_body()).into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(until) => None,
                c = body.next() => c,
            };
            let Some(Ok(chunk)) = chunk else { break };
            pending.extend_from_slice(&chunk);
            while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                if let Some(e) = log_event(&line) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            }
            if pending.len() > MAX_LINE {
                let line: Vec<u8> = std::mem::take(&mut pending);
                if let Some(e) = log_event(&line) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            }
        }
        if let Some(e) = log_event(&pending) {
            let _ = tx.send(e).await;
        }
        let _ = tx.send(Event::default().event("end").data("{}")).await;
    });
    Ok(sse(rx).into_response())
}

/// One NDJSON record of the API's log stream as an event: `line` with the
/// record as it came, or `error` for its `{"error"}` record.
fn log_event(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let cut: String = text.chars().take(MAX_LINE).collect();
    match serde_json::from_str::<serde_json::Value>(&cut) {
        Ok(v) if v.get("error").is_some() => {
            Some(Event::default().event("error").data(v.to_string()))
        }
        Ok(v) => Some(Event::default().event("line").data(v.to_string())),
        // Not JSON (or cut): sent as a plain line.
        Err(_) => Some(
            Event::default()
                .event("line")
                .data(serde_json::json!({ "stream": "stdout", "line": cut }).to_string()),
        ),
    }
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
    }
}
