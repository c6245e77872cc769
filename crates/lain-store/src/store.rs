//! The [`Store`] handle: typed reads, writes, compare-and-swap and
//! transactions against etcd.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use crate::error::{Result, StoreError};
use crate::keys::{Component, KeyError, KeyPrefix, Prefix, StoreKey};
use crate::value::{self, DecodeError};

/// An etcd revision. 0 means "absent" wherever a key's revision is expected.
pub type Revision = i64;

/// Keys per page when listing: big prefixes (10,000 observed instances)
/// would otherwise exceed gRPC's message size limit.
const LIST_PAGE: i64 = 1000;

/// Largest gRPC message the client accepts (watch batches can be big).
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;

// gRPC status codes, compared as integers so that no other crate has to
// link tonic to classify errors.
const GRPC_CANCELLED: i32 = 1;
const GRPC_UNKNOWN: i32 = 2;
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

/// How a [`Store`] talks to etcd.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Time to establish a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Time for any single request (get, put, txn, lease grant...).
    pub request_timeout: Duration,
    /// HTTP/2 ping interval and timeout, so a dead connection under a
    /// long-lived watch is noticed even without traffic.
    pub keep_alive_interval: Duration,
    pub keep_alive_timeout: Duration,
    /// Reconnect backoff bounds for watches, keep-alives and campaigns.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The component this store writes for. When set, writes outside the
    /// component's prefixes fail with [`StoreError::NotWriter`]; daemons
    /// set it, tests and operator tools may leave it unset.
    pub writer: Option<Component>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            writer: None,
        }
    }
}

/// A lease id. Keys put with it vanish when the lease expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A key with its decoded value and etcd metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<K: StoreKey> {
    pub key: K,
    pub value: K::Value,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the last write; what compare-and-swap compares.
    pub mod_revision: Revision,
    pub lease: Option<LeaseId>,
}

/// Why a stored key or value under a listed prefix could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("bad key: {0}")]
    Key(#[from] KeyError),
    #[error("bad value: {0}")]
    Decode(#[from] DecodeError),
}

/// A key under a listed or watched prefix that could not be read. It is
/// reported rather than failing the whole listing, so one bad writer
/// cannot blind every reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    pub key: String,
    pub mod_revision: Revision,
    pub error: EntryError,
}

/// The result of listing a prefix: a consistent snapshot at `revision`.
#[derive(Debug, Clone)]
pub struct Listing<K: StoreKey> {
    pub items: Vec<Entry<K>>,
    pub invalid: Vec<InvalidEntry>,
    pub revision: Revision,
}

pub(crate) fn entry_from_kv<K: StoreKey>(kv: &KeyValue) -> Result<Entry<K>, InvalidEntry> {
    let invalid = |error: EntryError| InvalidEntry {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        mod_revision: kv.mod_revision(),
        error,
    };
    let path = std::str::from_utf8(kv.key()).map_err(|_| {
        invalid(EntryError::Key(KeyError::Malformed {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            expected: "a UTF-8 path",
        }))
    })?;
    let key = K::parse(path).map_err(|e| invalid(e.into()))?;
    let value = value::decode::<K::Value>(kv.value()).map_err(|e| invalid(e.into()))?;
    Ok(Entry {
        key,
        value,
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

/// The first key after every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only reachable for an all-0xff prefix, which the schema never builds.
    vec![0]
}

fn encode_for<K: StoreKey>(key: &K, value: &K::Value) -> Result<Vec<u8>> {
    value::encode(value).map_err(|error| StoreError::Encode {
        key: key.path(),
        error,
    })
}

struct Inner {
    client: Client,
    endpoints: Vec<String>,
    endpoints_text: String,
    options: StoreOptions,
}

/// A connection to etcd. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    writer: Option<Component>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("endpoints", &self.inner.endpoints)
            .field("writer", &self.writer)
            .finish()
    }
}

impl Store {
    /// Connects with default options and checks that etcd answers.
    pub async fn connect<E: AsRef<str>>(endpoints: &[E]) -> Result<Store> {
        Self::connect_with(endpoints, StoreOptions::default()).await
    }

    /// Connects to `endpoints` (URLs like `http://127.0.0.1:2379`) and
    /// checks, within the connect timeout, that etcd answers.
    pub async fn connect_with<E: AsRef<str>>(
        endpoints: &[E],
        options: StoreOptions,
    ) -> Result<Store> {
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.as_ref().to_owned()).collect();
        if endpoints.is_empty() {
            return Err(StoreError::BadEndpoint {
                endpoint: String::new(),
                detail: "no etcd endpoint given".into(),
            });
        }
        for e in &endpoints {
            if !e.starts_with("http://") {
                return Err(StoreError::BadEndpoint {
                    endpoint: e.clone(),
                    detail:
                        "expected http://HOST:PORT (TLS endpoints are not supported by this build)"
                            .into(),
                });
            }
        }
        let endpoints_text = endpoints.join(",");
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(options.keep_alive_interval, options.keep_alive_timeout)
            .with_keep_alive_while_idle(true);
        let timeout = options.connect_timeout + options.request_timeout;
        let client =
            match tokio::time::timeout(timeout, Client::connect(endpoints.clone(), Some(connect)))
                .await
            {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    return Err(StoreError::BadEndpoint {
                        endpoint: endpoints_text,
                        detail: e.to_string(),
                    })
                }
                Err(_) => {
                    return Err(StoreError::Timeout {
                        endpoints: endpoints_text,
                        op: "connect",
                        timeout,
                    })
                }
            };
        let writer = options.writer;
        let store = Store {
            inner: Arc::new(Inner {
                client,
                endpoints,
                endpoints_text,
                options,
            }),
            writer,
        };
        // The client connects lazily; ask for something so that a wrong
        // address fails here, naming the endpoint, not at first use.
        store.current_revision_op("connect").await?;
        Ok(store)
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The component this handle writes for, if restricted.
    pub fn writer(&self) -> Option<Component> {
        self.writer
    }

    /// The same connection, writing for `component` (e.g. console's node
    /// API uses `store.as_writer(Component::NodeManagement)`).
    pub fn as_writer(&self, component: Component) -> Store {
        Store {
            inner: self.inner.clone(),
            writer: Some(component),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn check_writer(&self, prefix: Prefix) -> Result<()> {
        match self.writer {
            Some(component) if component != prefix.writer() => Err(StoreError::NotWriter {
                component,
                prefix,
                writer: prefix.writer(),
            }),
            _ => Ok(()),
        }
    }

    /// Turns a client error into a [`StoreError`] naming the endpoints.
    pub(crate) fn map_err(&self, op: &'static str, e: etcd_client::Error) -> StoreError {
        let endpoints = self.inner.endpoints_text.clone();
        match &e {
            etcd_client::Error::GRpcStatus(s) => {
                let code = s.code() as i32;
                // A connection dropped mid-request surfaces as CANCELLED
                // ("operation was canceled") or UNKNOWN ("transport error");
                // this client never cancels requests itself, so both mean
                // etcd went away and are as transient as UNAVAILABLE.
                let dropped = code == GRPC_CANCELLED
                    || (code == GRPC_UNKNOWN
                        && (s.message().contains("transport error")
                            || s.message().contains("canceled")));
                if code == GRPC_UNAVAILABLE || dropped {
                    StoreError::Unavailable {
                        endpoints,
                        op,
                        detail: s.message().to_owned(),
                    }
                } else if code == GRPC_DEADLINE_EXCEEDED {
                    StoreError::Timeout {
                        endpoints,
                        op,
                        timeout: self.inner.options.request_timeout,
                    }
                } else {
                    tracing::debug!(op, code, message = s.message(), "etcd refused a request");
                    StoreError::Etcd {
                        endpoints,
                        op,
                        detail: s.message().to_owned(),
                    }
                }
            }
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                StoreError::Unavailable {
                    endpoints,
                    op,
                    detail: e.to_string(),
                }
            }
            _ => StoreError::Etcd {
                endpoints,
                op,
                detail: e.to_string(),
            },
        }
    }

    /// Runs one request under the request timeout.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        let timeout = self.inner.options.request_timeout;
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_err(op, e)),
            Err(_) => Err(StoreError::Timeout {
                endpoints: self.inner.endpoints_text.clone(),
                op,
                timeout,
            }),
        }
    }

    /// The etcd cluster's members, each checked on its own client URL
    /// (like `etcdctl endpoint health`): a member that does not answer a
    /// status request within `timeout` is reported unhealthy.
    pub async fn members(&self, timeout: Duration) -> Result<Vec<Member>> {
        let mut cluster = self.client().cluster_client();
        let resp = self.call("member list", cluster.member_list()).await?;
        let checks = resp.members().iter().map(|m| {
            let urls: Vec<String> = m.client_urls().to_vec();
            let name = m.name().to_owned();
            async move {
                let healthy = match urls.first() {
                    Some(_) => tokio::time::timeout(timeout, async {
                        let options = ConnectOptions::new().with_connect_timeout(timeout);
                        let mut c = Client::connect(&urls, Some(options)).await?;
                        c.status().await
                    })
                    .await
                    .is_ok_and(|r| r.is_ok()),
                    None => false,
                };
                Member {
                    name,
                    client_urls: urls,
                    healthy,
                }
            }
        });
        Ok(futures::future::join_all(checks).await)
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> Result<Revision> {
        self.current_revision_op("current revision").await
    }

    async fn current_revision_op(&self, op: &'static str) -> Result<Revision> {
        let mut kv = self.client().kv_client();
        let resp = self
            .call(
                op,
                kv.get(
                    "/lain/config/cluster",
                    Some(GetOptions::new().with_keys_only()),
                ),
            )
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Reads one key.
    pub async fn get<K: StoreKey>(&self, key: &K) -> Result<Option<Entry<K>>> {
        let mut kv = self.client().kv_client();
        let path = key.path();
        let resp = self.call("get", kv.get(path.as_str(), None)).await?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => entry_from_kv::<K>(kv)
                .map(Some)
                .map_err(|invalid| match invalid.error {
                    EntryError::Decode(error) => StoreError::Decode { key: path, error },
                    EntryError::Key(e) => StoreError::Key(e),
                }),
        }
    }

    /// Writes one key unconditionally; returns the write's revision.
    pub async fn put<K: StoreKey>(&self, key: &K, value: &K::Value) -> Result<Revision> {
        self.put_opts(key, value, None).await
    }

    /// Writes one key attached to a lease: it vanishes with the lease.
    pub async fn put_with_lease<K: StoreKey>(
        &self,
        key: &K,
        value: &K::Value,
        lease: LeaseId,
    ) -> Result<Revision> {
        self.put_opts(key, value, Some(lease)).await
    }

    async fn put_opts<K: StoreKey>(
        &self,
        key: &K,
        value: &K::Value,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        self.check_writer(K::PREFIX)?;
        let bytes = encode_for(key, value)?;
        let options = lease.map(|l| PutOptions::new().with_lease(l.0));
        let mut kv = self.client().kv_client();
        let resp = self.call("put", kv.put(key.path(), bytes, options)).await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Writes `key` only if its mod revision is `expected` (0: only if it
    /// does not exist). Fails with [`StoreError::Conflict`] otherwise.
    pub async fn put_if<K: StoreKey>(
        &self,
        key: &K,
        value: &K::Value,
        expected: Revision,
    ) -> Result<Revision> {
        let mut txn = Transaction::new();
        txn.put_if(key, value, expected)?;
        self.commit(txn).await
    }

    /// Deletes one key; returns whether it existed.
    pub async fn delete<K: StoreKey>(&self, key: &K) -> Result<bool> {
        self.check_writer(K::PREFIX)?;
        let mut kv = self.client().kv_client();
        let resp = self.call("delete", kv.delete(key.path(), None)).await?;
        Ok(resp.deleted() > 0)
    }

    /// Deletes `key` only if its mod revision is `expected`.
    pub async fn delete_if<K: StoreKey>(&self, key: &K, expected: Revision) -> Result<Revision> {
        let mut txn = Transaction::new();
        txn.delete_if(key, expected);
        self.commit(txn).await
    }

    /// Deletes every key under `prefix`; returns how many there were.
    pub async fn delete_prefix<K: StoreKey>(&self, prefix: &KeyPrefix<K>) -> Result<i64> {
        self.check_writer(K::PREFIX)?;
        let mut kv = self.client().kv_client();
        let resp = self
            .call(
                "delete prefix",
                kv.delete(prefix.path(), Some(DeleteOptions::new().with_prefix())),
            )
            .await?;
        Ok(resp.deleted())
    }

    /// Lists every key under `prefix` as one consistent snapshot.
    pub async fn list<K: StoreKey>(&self, prefix: &KeyPrefix<K>) -> Result<Listing<K>> {
        let (kvs, revision) = self.list_raw(prefix.path()).await?;
        let mut listing = Listing {
            items: Vec::with_capacity(kvs.len()),
            invalid: Vec::new(),
            revision,
        };
        for kv in &kvs {
            match entry_from_kv::<K>(kv) {
                Ok(e) => listing.items.push(e),
                Err(bad) => listing.invalid.push(bad),
            }
        }
        Ok(listing)
    }

    /// Lists raw key-values under `prefix` in pages, all read at the
    /// revision of the first page so that the pages form one snapshot.
    pub(crate) async fn list_raw(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let end = prefix_end(prefix.as_bytes());
        let mut kv = self
            .client()
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut out = Vec::new();
        let mut revision = 0;
        let mut start = prefix.as_bytes().to_vec();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut resp = self
                .call("list", kv.get(start.clone(), Some(options)))
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let more = resp.more();
            let kvs = resp.take_kvs();
            let Some(last) = kvs.last() else {
                break;
            };
            // The next page starts right after the last key of this one.
            start = last.key().to_vec();
            start.push(0);
            out.extend(kvs);
            if !more {
                break;
            }
        }
        Ok((out, revision))
    }

    /// Commits a transaction: all its writes happen atomically if all its
    /// conditions hold. Returns the revision of the commit.
    pub async fn commit(&self, txn: Transaction) -> Result<Revision> {
        self.commit_fenced(txn, None).await
    }

    pub(crate) async fn commit_fenced(
        &self,
        txn: Transaction,
        fence: Option<&Fence>,
    ) -> Result<Revision> {
        for prefix in &txn.writes {
            self.check_writer(*prefix)?;
        }
        let mut compares = Vec::with_capacity(txn.checks.len() + 1);
        let mut reads = Vec::with_capacity(txn.checks.len() + 1);
        if let Some(f) = fence {
            compares.push(Compare::create_revision(
                f.key.as_str(),
                CompareOp::Equal,
                f.create_revision,
            ));
            reads.push(TxnOp::get(f.key.as_str(), None));
        }
        for (key, expected) in &txn.checks {
            compares.push(Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                *expected,
            ));
            reads.push(TxnOp::get(key.as_str(), None));
        }
        // On failure, read the compared keys in the same transaction so the
        // error reports what the compare actually saw.
        let etcd_txn = Txn::new().when(compares).and_then(txn.ops).or_else(reads);
        let mut kv = self.client().kv_client();
        let resp = self.call("transaction", kv.txn(etcd_txn)).await?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let seen: Vec<(Revision, Revision)> = resp
            .op_responses()
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map_or((0, 0), |kv| (kv.create_revision(), kv.mod_revision())),
                _ => (0, 0),
            })
            .collect();
        let mut seen = seen.into_iter();
        if let Some(f) = fence {
            let (create, _) = seen.next().unwrap_or((0, 0));
            if create != f.create_revision {
                return Err(StoreError::NotLeader {
                    election: f.election.clone(),
                });
            }
        }
        let mut first = None;
        for ((key, expected), (_, current)) in txn.checks.iter().zip(seen) {
            let conflict = StoreError::Conflict {
                key: key.clone(),
                expected: *expected,
                current,
            };
            if current != *expected {
                return Err(conflict);
            }
            first.get_or_insert(conflict);
        }
        // Unreachable in practice: the compares failed but the reads in the
        // same transaction match. Report the first condition anyway.
        Err(first.unwrap_or(StoreError::Conflict {
            key: String::new(),
            expected: 0,
            current: 0,
        }))
    }

    /// Compacts etcd's history up to `revision`. Watchers resuming from
    /// before it get a fresh snapshot ([`crate::WatchEvent::Reset`]).
    pub async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.client().kv_client();
        self.call(
            "compact",
            kv.compact(revision, Some(CompactionOptions::new().with_physical())),
        )
        .await?;
        Ok(())
    }
}

/// The condition under which a leader's writes may apply: its candidate
/// key still exists with the create revision it won with.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    pub key: String,
    pub create_revision: Revision,
    pub election: String,
}

/// A multi-key transaction: conditions on mod revisions, then writes,
/// applied atomically by [`Store::commit`] (or fenced by
/// [`crate::Leadership::commit`]).
///
/// ```no_run
/// # async fn example(
/// #     store: &lain_store::Store,
/// #     procs: Vec<lain_store::DesiredProc>,
/// #     stale: lain_store::DesiredKey,
/// # ) -> lain_store::Result<()> {
/// use lain_store::{DesiredKey, Transaction};
/// let mut txn = Transaction::new();
/// for proc in &procs {
///     txn.put(&DesiredKey::new(&proc.app, &proc.proc)?, proc)?;
/// }
/// txn.delete(&stale);
/// store.commit(txn).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Transaction {
    checks: Vec<(String, Revision)>,
    ops: Vec<TxnOp>,
    writes: Vec<Prefix>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the transaction has neither conditions nor writes.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.ops.is_empty()
    }

    /// Requires `key` to be at mod revision `expected` (0: absent) without
    /// writing it.
    pub fn require<K: StoreKey>(&mut self, key: &K, expected: Revision) -> &mut Self {
        self.checks.push((key.path(), expected));
        self
    }

    pub fn put<K: StoreKey>(&mut self, key: &K, value: &K::Value) -> Result<&mut Self> {
        let bytes = encode_for(key, value)?;
        self.ops.push(TxnOp::put(key.path(), bytes, None));
        self.writes.push(K::PREFIX);
        Ok(self)
    }

    pub fn put_with_lease<K: StoreKey>(
        &mut self,
        key: &K,
        value: &K::Value,
        lease: LeaseId,
    ) -> Result<&mut Self> {
        let bytes = encode_for(key, value)?;
        self.ops.push(TxnOp::put(
            key.path(),
            bytes,
            Some(PutOptions::new().with_lease(lease.0)),
        ));
        self.writes.push(K::PREFIX);
        Ok(self)
    }

    /// Puts `key` if its mod revision is `expected` (0: create-only).
    pub fn put_if<K: StoreKey>(
        &mut self,
        key: &K,
        value: &K::Value,
        expected: Revision,
    ) -> Result<&mut Self> {
        self.put(key, value)?;
        Ok(self.require(key, expected))
    }

    pub fn delete<K: StoreKey>(&mut self, key: &K) -> &mut Self {
        self.ops.push(TxnOp::delete(key.path(), None));
        self.writes.push(K::PREFIX);
        self
    }

    /// Deletes `key` if its mod revision is `expected`.
    pub fn delete_if<K: StoreKey>(&mut self, key: &K, expected: Revision) -> &mut Self {
        self.delete(key);
        self.require(key, expected)
    }

    /// Deletes every key under `prefix`. etcd refuses a transaction that
    /// also puts a key inside that range; delete stale keys one by one
    /// when replacing a set.
    pub fn delete_prefix<K: StoreKey>(&mut self, prefix: &KeyPrefix<K>) -> &mut Self {
        self.ops.push(TxnOp::delete(
            prefix.path(),
            Some(DeleteOptions::new().with_prefix()),
        ));
        self.writes.push(K::PREFIX);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/lain/desired/"), b"/lain/desired0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}

/// An etcd member as [`Store::members`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub client_urls: Vec<String>,
    /// It answered a status request on its own client URL.
    pub healthy: bool,
}
