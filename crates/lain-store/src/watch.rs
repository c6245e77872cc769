//! List-then-watch of a prefix that survives compaction and etcd restarts.
//!
//! A [`Watch`] first delivers a snapshot ([`WatchEvent::Reset`]), then
//! every put and delete under the prefix in revision order, each exactly
//! once. If etcd goes away it reconnects with backoff and resumes from the
//! revision after the last one delivered; if that revision has been
//! compacted meanwhile, it re-lists and delivers a new `Reset`. A consumer
//! that replaces its state on `Reset` and applies puts and deletes in
//! order always holds the state of the prefix at the last revision seen.
//!
//! A watch never pushes back on etcd. Every watch, lease keep-alive and
//! request of a [`Store`] shares one HTTP/2 connection, and data a stream
//! leaves unread holds that connection's flow-control window: a few
//! stalled streams would stall everything else on it, keep-alive replies
//! included (and with them leases and leadership). So the watch task keeps
//! reading into a bounded buffer, and when a consumer falls [`BUFFER`]
//! events behind, the task cancels its etcd watch, waits until the
//! consumer has drained the buffer, re-lists and delivers a new `Reset`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchStream, Watcher};
use futures::Stream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{sleep, Instant};

use crate::error::{Result, StoreError};
use crate::keys::{KeyPrefix, StoreKey};
use crate::lease::Backoff;
use crate::store::{entry_from_kv, Entry, InvalidEntry, Revision, Store, MAX_MESSAGE_BYTES};

/// Events buffered between the watch task and its consumer. A consumer
/// that falls this far behind gets a `Reset` instead of the backlog (see
/// the module docs): the task never stops reading from etcd.
pub const BUFFER: usize = 256;

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

/// A running watch; stopped on drop. Read it promptly: a consumer more
/// than [`BUFFER`] events behind gets a [`WatchEvent::Reset`] in place of
/// the events it missed.
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

/// Aborts a spawned task when dropped, so that neither a timeout nor a
/// cancelled caller leaves it running.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` in a task of its own for at most `limit`: `None` on timeout.
/// The task is aborted on timeout and when the returned future is dropped.
async fn isolated<F>(limit: Duration, fut: F) -> Option<Result<F::Output, JoinError>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut task = AbortOnDrop(tokio::spawn(fut));
    tokio::time::timeout(limit, &mut task.0).await.ok()
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
    let timeout = store.options().request_timeout;
    match isolated(
        timeout,
        async move { client.watch(key, Some(options)).await },
    )
    .await
    {
        Some(Ok(Ok(pair))) => Ok(pair),
        Some(Ok(Err(e))) => Err(store.map_err(op, e)),
        Some(Err(join)) => Err(StoreError::Etcd {
            endpoints: store.endpoints().join(","),
            op,
            detail: format!("watch creation failed: {join}"),
        }),
        None => Err(StoreError::Timeout {
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
    /// The consumer fell [`BUFFER`] events behind; re-list once it has
    /// caught up.
    Overflow,
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
    // Whether the last stream, too, ended on compaction: the first
    // compaction re-lists at once, a repeated one backs off.
    let mut compacted_again = false;
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
                    // No etcd stream is open while this waits.
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
        let end = stream(
            &store,
            &prefix,
            start,
            &mut next,
            &tx,
            &connected,
            &mut backoff,
        )
        .await;
        connected.send_replace(false);
        let compacted = matches!(end, StreamEnd::Compacted);
        match end {
            StreamEnd::Closed => return,
            StreamEnd::Compacted => {
                tracing::info!(prefix, start, "watch: history compacted; re-listing");
                next = None;
                if compacted_again {
                    sleep(backoff.next_delay()).await;
                }
            }
            StreamEnd::Failed => sleep(backoff.next_delay()).await,
            StreamEnd::Overflow => {
                tracing::warn!(
                    prefix,
                    behind = BUFFER,
                    "watch: consumer fell behind; re-listing once it has caught up"
                );
                next = None;
                match tx.reserve_many(BUFFER).await {
                    Ok(permits) => drop(permits),
                    Err(_) => return,
                }
            }
        }
        compacted_again = compacted;
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
    // No progress notifications: etcd 3.4 may send one ahead of events
    // still pending for the watcher (etcd-io/etcd#15220), so their
    // revision is no safe place to resume from.
    let options = WatchOptions::new().with_prefix().with_start_revision(start);
    let (_watcher, mut events) =
        match open_watch(store, "watch", prefix.as_bytes().to_vec(), options).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(prefix, error = %e, "watch: cannot open; retrying");
                return StreamEnd::Failed;
            }
        };
    connected.send_replace(true);
    let opened = Instant::now();
    let mut healthy = false;
    let end = loop {
        let resp = match events.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                tracing::warn!(prefix, "watch: stream closed by etcd; resuming");
                break StreamEnd::Failed;
            }
            Err(e) => {
                tracing::warn!(prefix, error = %store.map_err("watch", e), "watch: stream failed; resuming");
                break StreamEnd::Failed;
            }
        };
        if resp.compact_revision() > 0 {
            break StreamEnd::Compacted;
        }
        if resp.canceled() {
            tracing::warn!(
                prefix,
                reason = resp.cancel_reason(),
                "watch: canceled by etcd; resuming"
            );
            break StreamEnd::Failed;
        }
        // The first good message: reconnecting worked, start backoff over.
        // (A watch etcd cancels at once keeps backing off instead.)
        if !healthy {
            healthy = true;
            backoff.reset();
        }
        // etcd sends nothing below the start revision and revisions only
        // grow along a stream, so every event here is new.
        let mut last = None;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let rev = kv.mod_revision();
            last = Some(rev);
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
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return StreamEnd::Overflow,
                Err(TrySendError::Closed(_)) => return StreamEnd::Closed,
            }
        }
        // A response never splits one revision's events (fragmenting is
        // off), so everything up to `last` is delivered.
        if let Some(last) = last {
            *next = Some(last + 1);
        }
    };
    // A stream that stayed up a while was fine even without any event.
    if !healthy && opened.elapsed() >= store.options().backoff_max {
        backoff.reset();
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    async fn dropped_soon(flag: &AtomicBool) -> bool {
        for _ in 0..200 {
            if flag.load(Ordering::SeqCst) {
                return true;
            }
            sleep(Duration::from_millis(5)).await;
        }
        false
    }

    fn hanging(flag: &Arc<AtomicBool>) -> impl Future<Output = ()> + Send + 'static {
        let guard = SetOnDrop(flag.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
    }

    #[tokio::test]
    async fn an_isolated_task_is_aborted_on_timeout() {
        let flag = Arc::new(AtomicBool::new(false));
        let result = isolated(Duration::from_millis(20), hanging(&flag)).await;
        assert!(result.is_none());
        assert!(dropped_soon(&flag).await, "the timed-out task lingers");
    }

    #[tokio::test]
    async fn an_isolated_task_is_aborted_when_its_caller_goes_away() {
        let flag = Arc::new(AtomicBool::new(false));
        let call = isolated(Duration::from_secs(60), hanging(&flag));
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
        assert!(dropped_soon(&flag).await, "the abandoned task lingers");
    }

    #[tokio::test]
    async fn an_isolated_panic_is_an_error() {
        let result = isolated(Duration::from_secs(5), async { panic!("boom") }).await;
        assert!(matches!(result, Some(Err(e)) if e.is_panic()));
    }
}
