//! Leases with a background keep-alive and a way to notice their loss.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::error::{Result, StoreError};
use crate::store::{LeaseId, Store, StoreOptions};

// gRPC NOT_FOUND: etcd's "requested lease not found".
const GRPC_NOT_FOUND: i32 = 5;

/// Exponential backoff with jitter between reconnect attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(options: &StoreOptions) -> Self {
        Self {
            min: options.backoff_min,
            max: options.backoff_max.max(options.backoff_min),
            next: options.backoff_min,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: the current step (`backoff_min`, doubling up to
    /// `backoff_max`) jittered to 80-120% so that many clients reconnecting
    /// after an etcd restart do not arrive in lockstep, and never more than
    /// `backoff_max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let factor = 0.8 + f64::from(nanos % 1000) / 2500.0;
        step.mul_f64(factor).min(self.max)
    }
}

fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::LeaseKeepAliveError(msg) => msg.contains("not found"),
        etcd_client::Error::GRpcStatus(s) => s.code() as i32 == GRPC_NOT_FOUND,
        _ => false,
    }
}

/// A granted lease, kept alive in the background at a third of its TTL
/// until [`Lease::revoke`], [`Lease::stop_keep_alive`] or drop.
///
/// Dropping a `Lease` stops renewing it without revoking it: its keys
/// vanish when the TTL runs out, exactly as if the process had crashed.
/// Call [`Lease::revoke`] to remove them at once.
#[derive(Debug)]
pub struct Lease {
    id: LeaseId,
    ttl: Duration,
    store: Store,
    lost_tx: Arc<watch::Sender<bool>>,
    lost_rx: watch::Receiver<bool>,
    stop_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Store {
    /// Grants a lease of at least `ttl` (etcd rounds up to whole seconds
    /// and to its minimum TTL) and starts keeping it alive.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<Lease> {
        let secs = i64::try_from(ttl.as_millis().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let granted_at = Instant::now();
        let mut client = self.client().lease_client();
        let resp = self.call("lease grant", client.grant(secs, None)).await?;
        if !resp.error().is_empty() {
            return Err(StoreError::Etcd {
                endpoints: self.endpoints().join(","),
                op: "lease grant",
                detail: resp.error().to_owned(),
            });
        }
        let id = LeaseId(resp.id());
        let ttl = Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(1).max(1));
        let (lost_tx, lost_rx) = watch::channel(false);
        let lost_tx = Arc::new(lost_tx);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(keep_alive_loop(
            self.clone(),
            id,
            ttl,
            granted_at + ttl,
            lost_tx.clone(),
            stop_rx,
        ));
        Ok(Lease {
            id,
            ttl,
            store: self.clone(),
            lost_tx,
            lost_rx,
            stop_tx,
            task,
        })
    }

    /// Revokes any lease by id (an operator's or a test's tool: it deletes
    /// every key attached to the lease at once).
    pub async fn revoke_lease(&self, id: LeaseId) -> Result<()> {
        let mut client = self.client().lease_client();
        match self.call("lease revoke", client.revoke(id.0)).await {
            Ok(_) => Ok(()),
            Err(StoreError::Etcd { detail, .. }) if detail.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether etcd still holds the lease (it may have under a second left).
    pub(crate) async fn lease_alive(&self, id: LeaseId) -> Result<bool> {
        let mut client = self.client().lease_client();
        match self
            .call("lease time-to-live", client.time_to_live(id.0, None))
            .await
        {
            // etcd answers -1 for an expired or revoked lease.
            Ok(resp) => Ok(resp.ttl() >= 0),
            Err(StoreError::Etcd { detail, .. }) if detail.contains("not found") => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Lease {
    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// The TTL etcd granted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether the lease is known or presumed gone.
    pub fn is_lost(&self) -> bool {
        *self.lost_rx.borrow()
    }

    /// Resolves once the lease is lost: etcd reported it gone, or it could
    /// not be renewed before its TTL ran out (so it must be presumed gone).
    /// The TTL is counted from when the last successful renewal was sent,
    /// less a safety margin (a tenth of the TTL, at most 1 s), so the holder
    /// gives up before etcd can have expired the lease, even while etcd is
    /// unreachable and reconnects are backing off.
    pub async fn lost(&self) {
        let mut rx = self.lost_rx.clone();
        // A closed channel means the keep-alive is gone: presume lost.
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// A receiver that turns `true` when the lease is lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.lost_rx.clone()
    }

    /// Stops renewing without revoking: the lease expires after its TTL
    /// and is then reported lost. Simulates a crash in tests; lets a
    /// holder step down without deleting its keys early.
    pub fn stop_keep_alive(&self) {
        self.stop_tx.send_replace(true);
    }

    /// Stops the keep-alive and revokes the lease, deleting its keys now.
    /// The lease is lost afterwards, whatever the result.
    pub async fn revoke(&self) -> Result<()> {
        self.stop_tx.send_replace(true);
        self.task.abort();
        let result = self.store.revoke_lease(self.id).await;
        self.lost_tx.send_replace(true);
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The task stays until the TTL runs out to flag subscribers.
        self.stop_tx.send_replace(true);
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Sender dropped or `true` sent: either way, stop renewing.
    let _ = stop.wait_for(|s| *s).await;
}

/// How long before the computed expiry the holder gives the lease up: a
/// tenth of the TTL, at most a second. The expiry itself is counted from
/// when the last successful renewal was *sent*, so it is already no later
/// than etcd's; the margin also covers timer and scheduling delays here.
pub(crate) fn safety_margin(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_secs(1))
}

async fn keep_alive_loop(
    store: Store,
    id: LeaseId,
    ttl: Duration,
    mut expires: Instant,
    lost: Arc<watch::Sender<bool>>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = ttl / 3;
    let margin = safety_margin(ttl);
    let request_timeout = store.options().request_timeout;
    let mut backoff = Backoff::new(store.options());
    // Every wait below ends by `deadline`: past it the lease must be
    // presumed gone, whatever etcd or the connection are doing.
    let give_up = |expires: Instant| expires.checked_sub(margin).unwrap_or(expires);
    'open: loop {
        let deadline = give_up(expires);
        let sent = Instant::now();
        if sent >= deadline {
            break;
        }
        let mut client = store.client().lease_client();
        let opened = tokio::select! {
            r = timeout_at(deadline.min(sent + request_timeout), client.keep_alive(id.0)) => r,
            () = stopped(&mut stop) => break 'open,
        };
        let (mut keeper, mut stream) = match opened {
            Ok(Ok(pair)) => {
                // The first response renewed the lease to its full TTL.
                expires = sent + ttl;
                backoff.reset();
                pair
            }
            Ok(Err(e)) if lease_not_found(&e) => {
                tracing::warn!(lease = %id, "lease not found; it expired or was revoked");
                lost.send_replace(true);
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %id, error = %e, "lease keep-alive failed; retrying");
                let wake = deadline.min(Instant::now() + backoff.next_delay());
                tokio::select! {
                    () = sleep_until(wake) => {}
                    () = stopped(&mut stop) => break 'open,
                }
                continue;
            }
            Err(_) => {
                tracing::warn!(lease = %id, "lease keep-alive timed out; retrying");
                continue;
            }
        };
        loop {
            let deadline = give_up(expires);
            tokio::select! {
                () = sleep_until(deadline.min(Instant::now() + interval)) => {}
                () = stopped(&mut stop) => break 'open,
            }
            let sent = Instant::now();
            if sent >= deadline {
                break 'open;
            }
            let limit = deadline.min(sent + request_timeout);
            if !matches!(timeout_at(limit, keeper.keep_alive()).await, Ok(Ok(()))) {
                continue 'open;
            }
            match timeout_at(limit, stream.message()).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    let granted = Duration::from_secs(u64::try_from(resp.ttl()).unwrap_or(1));
                    expires = sent + granted;
                }
                Ok(Ok(Some(_))) => {
                    tracing::warn!(lease = %id, "lease expired or was revoked");
                    lost.send_replace(true);
                    return;
                }
                Ok(Err(e)) if lease_not_found(&e) => {
                    lost.send_replace(true);
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => continue 'open,
            }
        }
    }
    // Stopped, or out of time: the lease lives at most until `expires`.
    sleep_until(give_up(expires)).await;
    if !*stop.borrow() {
        tracing::warn!(lease = %id, "lease could not be renewed within its TTL; presumed lost");
    }
    lost.send_replace(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(min_ms: u64, max_ms: u64) -> StoreOptions {
        StoreOptions {
            backoff_min: Duration::from_millis(min_ms),
            backoff_max: Duration::from_millis(max_ms),
            ..StoreOptions::default()
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_never_exceeds_the_maximum() {
        let mut b = Backoff::new(&options(100, 1000));
        let mut step = 100.0;
        for _ in 0..10 {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            let (low, high) = (step * 0.8, (step * 1.2_f64).min(1000.0));
            assert!(
                d >= low - 1e-6 && d <= high + 1e-6,
                "{d} ms not in {low}..={high}"
            );
            step = (step * 2.0).min(1000.0);
        }
        b.reset();
        let d = b.next_delay();
        assert!(
            d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
            "{d:?}"
        );
    }

    #[test]
    fn backoff_with_max_below_min_uses_min() {
        let mut b = Backoff::new(&options(500, 100));
        for _ in 0..5 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(400) && d <= Duration::from_millis(500),
                "{d:?}"
            );
        }
    }

    #[test]
    fn safety_margin_is_a_tenth_of_the_ttl_up_to_a_second() {
        assert_eq!(
            safety_margin(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
        assert_eq!(
            safety_margin(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }
}
