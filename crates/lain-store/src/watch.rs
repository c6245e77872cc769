//! List-then-watch of a prefix that survives compaction and etcd restarts.
//!
//! A [`Watch`] first delivers a snapshot ([`WatchEvent::Reset`]), then
//! every put and delete under the prefix in revision order, each exactly
//! once. If etcd goes away it reconnects with backoff and resumes from the
//! revision after the last one delivered; if that revision has been
//! compacted meanwhile, it re-lists and delivers a new `Reset`. A consumer
//! that replaces its state on `Reset` and applies puts and deletes in
//! order always holds the state of the prefix at the last revision seen.

use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_client::{EventType, WatchOptions, WatchStream, Watcher};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep;

use crate::error::{Result, StoreError};
use crate::keys::{KeyPrefix, StoreKey};
use crate::lease::Backoff;
use crate::store::{entry_from_kv, Entry, InvalidEntry, Revision, Store, MAX_MESSAGE_BYTES};

/// Events buffered between the watch task and its consumer. When the
/// consumer falls behind, the task stops reading from etcd (which keeps
/// the history) instead of growing without bound.
const BUFFER: usize = 256;

/// One change under a watched prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<K: StoreKey> {
    /// The complete state of the prefix at `revision`: replace whatever
    /// was known before. The first event of every watch started with
    /// [`Store::watch`], and sent again after a compaction gap.
    Reset {
        items: Vec<Entry<K>>,
        invalid: Vec<InvalidEntry>,
        revision: Revision,
    },
    /// A key was created or changed.
    Put(Entry<K>),
    /// A key was deleted (or its lease expired) at `revision`.
    Delete { key: K, revision: Revision },
    /// A put whose key or value could not be read. A consumer holding an
    /// older value for that key should drop it.
    Invalid(InvalidEntry),
}

impl<K: StoreKey> WatchEvent<K> {
    /// The revision the event happened at (for `Reset`, of the snapshot).
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Reset { revision, .. } | WatchEvent::Delete { revision, .. } => *revision,
            WatchEvent::Put(e) => e.mod_revision,
            WatchEvent::Invalid(i) => i.mod_revision,
        }
    }
}

/// A running watch; stopped on drop.
#[derive(Debug)]
pub struct Watch<K: StoreKey> {
    rx: mpsc::Receiver<WatchEvent<K>>,
    connected: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl<K: StoreKey> Watch<K> {
    /// The next event. Returns `None` only if the watch task died, which
    /// it does not do by itself: it retries etcd failures forever.
    pub async fn next(&mut self) -> Option<WatchEvent<K>> {
        self.rx.recv().await
    }

    /// Whether the watch currently has a live stream to etcd.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// A receiver of the connected flag, to wait for (re)connection.
    pub fn connection(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }
}

impl<K: StoreKey> Stream for Watch<K> {
    type Item = WatchEvent<K>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl<K: StoreKey> Drop for Watch<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// Watches every key under `prefix`: a [`WatchEvent::Reset`] with the
    /// current state first, then changes. Spawns a task, so it must be
    /// called within a tokio runtime.
    pub fn watch<K: StoreKey>(&self, prefix: &KeyPrefix<K>) -> Watch<K> {
        self.spawn_watch(prefix, None)
    }

    /// Watches changes under `prefix` from `revision` on (inclusive), for a
    /// consumer that already holds the state as of `revision - 1`. If that
    /// history is compacted, the watch starts with a `Reset` instead.
    pub fn watch_from<K: StoreKey>(&self, prefix: &KeyPrefix<K>, revision: Revision) -> Watch<K> {
        self.spawn_watch(prefix, Some(revision.max(1)))
    }

    fn spawn_watch<K: StoreKey>(&self, prefix: &KeyPrefix<K>, from: Option<Revision>) -> Watch<K> {
        let (tx, rx) = mpsc::channel(BUFFER);
        let (connected_tx, connected) = watch::channel(false);
        let task = tokio::spawn(run::<K>(
            self.clone(),
            prefix.path().to_owned(),
            from,
            tx,
            connected_tx,
        ));
        Watch {
            rx,
            connected,
            task,
        }
    }
}

/// Opens an etcd watch under the request timeout. etcd-client asserts on
/// an unexpected first response; opening in a task of its own turns such a
/// panic into an error instead of taking the caller down.
pub(crate) async fn open_watch(
    store: &Store,
    op: &'static str,
    key: Vec<u8>,
    options: WatchOptions,
) -> Result<(Watcher, WatchStream)> {
    let mut client = store
        .client()
        .watch_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let open = tokio::spawn(async move { client.watch(key, Some(options)).await });
    let timeout = store.options().request_timeout;
    match tokio::time::timeout(timeout, open).await {
        Ok(Ok(Ok(pair))) => Ok(pair),
        Ok(Ok(Err(e))) => Err(store.map_err(op, e)),
        Ok(Err(join)) => Err(StoreError::Etcd {
            endpoints: store.endpoints().join(","),
            op,
            detail: format!("watch creation failed: {join}"),
        }),
        Err(_) => Err(StoreError::Timeout {
            endpoints: store.endpoints().join(","),
            op,
            timeout,
        }),
    }
}

/// What ended one watch stream.
enum StreamEnd {
    /// The consumer is gone; stop.
    Closed,
    /// History up to the resume revision is compacted; re-list.
    Compacted,
    /// etcd or the connection failed; back off and resume.
    Failed,
}

async fn run<K: StoreKey>(
    store: Store,
    prefix: String,
    from: Option<Revision>,
    tx: mpsc::Sender<WatchEvent<K>>,
    connected: watch::Sender<bool>,
) {
    // The next revision to deliver; `None` means a snapshot is needed.
    let mut next = from;
    let mut backoff = Backoff::new(store.options());
    loop {
        let start = match next {
            Some(rev) => rev,
            None => match store.list_raw(&prefix).await {
                Ok((kvs, revision)) => {
                    let mut items = Vec::with_capacity(kvs.len());
                    let mut invalid = Vec::new();
                    for kv in &kvs {
                        match entry_from_kv::<K>(kv) {
                            Ok(e) => items.push(e),
                            Err(bad) => invalid.push(bad),
                        }
                    }
                    let reset = WatchEvent::Reset {
                        items,
                        invalid,
                        revision,
                    };
                    if tx.send(reset).await.is_err() {
                        return;
                    }
                    next = Some(revision + 1);
                    revision + 1
                }
                Err(e) => {
                    connected.send_replace(false);
                    tracing::warn!(prefix, error = %e, "watch: listing failed; retrying");
                    sleep(backoff.next_delay()).await;
                    continue;
                }
            },
        };
        match stream(
            &store,
            &prefix,
            start,
            &mut next,
            &tx,
            &connected,
            &mut backoff,
        )
        .await
        {
            StreamEnd::Closed => return,
            StreamEnd::Compacted => {
                tracing::info!(prefix, start, "watch: history compacted; re-listing");
                next = None;
            }
            StreamEnd::Failed => {
                connected.send_replace(false);
                sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Opens a watch from `start` and forwards events until it ends, keeping
/// `next` at the revision after the last delivered one.
async fn stream<K: StoreKey>(
    store: &Store,
    prefix: &str,
    start: Revision,
    next: &mut Option<Revision>,
    tx: &mpsc::Sender<WatchEvent<K>>,
    connected: &watch::Sender<bool>,
    backoff: &mut Backoff,
) -> StreamEnd {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_progress_notify();
    let (_watcher, mut events) =
        match open_watch(store, "watch", prefix.as_bytes().to_vec(), options).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(prefix, error = %e, "watch: cannot open; retrying");
                return StreamEnd::Failed;
            }
        };
    connected.send_replace(true);
    backoff.reset();
    loop {
        let resp = match events.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                tracing::warn!(prefix, "watch: stream closed by etcd; resuming");
                return StreamEnd::Failed;
            }
            Err(e) => {
                tracing::warn!(prefix, error = %store.map_err("watch", e), "watch: stream failed; resuming");
                return StreamEnd::Failed;
            }
        };
        if resp.compact_revision() > 0 {
            return StreamEnd::Compacted;
        }
        if resp.canceled() {
            tracing::warn!(
                prefix,
                reason = resp.cancel_reason(),
                "watch: canceled by etcd; resuming"
            );
            return StreamEnd::Failed;
        }
        let resume = next.unwrap_or(start);
        if resp.events().is_empty() {
            // A progress notification: no event before its revision is
            // pending, so a resume may start after it. Created responses
            // carry the current revision, not progress; skip those.
            if !resp.created() {
                if let Some(h) = resp.header() {
                    if h.revision() + 1 > resume {
                        *next = Some(h.revision() + 1);
                    }
                }
            }
            continue;
        }
        let mut last = resume - 1;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let rev = kv.mod_revision();
            // Already delivered before a reconnect.
            if rev < resume {
                continue;
            }
            last = last.max(rev);
            let event = match ev.event_type() {
                EventType::Put => match entry_from_kv::<K>(kv) {
                    Ok(entry) => WatchEvent::Put(entry),
                    Err(bad) => WatchEvent::Invalid(bad),
                },
                EventType::Delete => {
                    let parsed = std::str::from_utf8(kv.key())
                        .ok()
                        .and_then(|p| K::parse(p).ok());
                    match parsed {
                        Some(key) => WatchEvent::Delete { key, revision: rev },
                        // Its put was reported invalid already.
                        None => continue,
                    }
                }
            };
            if tx.send(event).await.is_err() {
                return StreamEnd::Closed;
            }
        }
        // A response never splits one revision's events (fragmenting is
        // off), so everything up to `last` is delivered.
        if last + 1 > resume {
            *next = Some(last + 1);
        }
    }
}
