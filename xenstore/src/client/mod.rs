//! The async client: [`Connection`] (sans-IO) + a [`Transport`] + a [`Timer`].
//!
//! There is no background task: whichever future is polled (a request, a watch) drives the
//! transport, dispatches what arrived, and wakes the other waiters. When a future finishes
//! or is dropped it wakes the remaining waiters so one of them takes over the transport's
//! waker. This works the same on tokio and on the guest's single-threaded executor.

mod connection;
mod error;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

pub use connection::{Anomalies, Connection, DEFAULT_WATCH_QUEUE_LIMIT, RawReply, WatchEvent};
pub use error::Error;

use crate::transport::{Timer, Transport};
use crate::wire::{DomId, ErrorCode, Permission, Perms, Reply, Request, StringList};

/// Tunables of a [`Client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Per-request timeout: a request without a reply by then fails with [`Error::Timeout`].
    pub request_timeout: Duration,
    /// How often [`Client::transaction`] retries a transaction that ended with `EAGAIN`.
    pub transaction_retries: u32,
    /// How often [`Client::directory`] restarts a DIRECTORY_PART walk when the directory
    /// changes under it.
    pub directory_retries: u32,
    /// Watch events queued per watch before the oldest are dropped.
    pub watch_queue_limit: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            request_timeout: Duration::from_secs(30),
            transaction_retries: 16,
            directory_retries: 8,
            watch_queue_limit: DEFAULT_WATCH_QUEUE_LIMIT,
        }
    }
}

struct State<T> {
    connection: Connection,
    transport: T,
    request_wakers: BTreeMap<u32, Waker>,
    watch_wakers: BTreeMap<Vec<u8>, Waker>,
}

impl<T: Transport> State<T> {
    /// Flushes output and reads input until the transport would block. Returns true when
    /// something arrived or the connection closed, i.e. when waiters should be woken.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        while self.connection.closed().is_none() && !self.connection.pending_output().is_empty() {
            match self
                .transport
                .poll_write(cx, self.connection.pending_output())
            {
                Poll::Ready(Ok(0)) => {
                    self.connection
                        .transport_failed(crate::TransportError::Closed);
                    progressed = true;
                }
                Poll::Ready(Ok(n)) => self.connection.consume_output(n),
                Poll::Ready(Err(e)) => {
                    self.connection.transport_failed(e);
                    progressed = true;
                }
                Poll::Pending => break,
            }
        }
        let mut buf = [0u8; 4096];
        while self.connection.closed().is_none() {
            match self.transport.poll_read(cx, &mut buf) {
                Poll::Ready(Ok(0)) => {
                    self.connection
                        .transport_failed(crate::TransportError::Closed);
                    progressed = true;
                }
                Poll::Ready(Ok(n)) => {
                    progressed |= self.connection.receive(&buf[..n.min(buf.len())])
                }
                Poll::Ready(Err(e)) => {
                    self.connection.transport_failed(e);
                    progressed = true;
                }
                Poll::Pending => break,
            }
        }
        progressed
    }

    /// Takes every registered waker, to be woken once the lock is released (so that no
    /// executor ever re-enters the client from inside `wake`).
    fn take_wakers(&mut self) -> Vec<Waker> {
        let mut wakers: Vec<Waker> = core::mem::take(&mut self.request_wakers)
            .into_values()
            .collect();
        wakers.extend(core::mem::take(&mut self.watch_wakers).into_values());
        wakers
    }
}

fn wake(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

struct Shared<T> {
    state: spin::Mutex<State<T>>,
    next_token: AtomicU64,
    jitter: AtomicU64,
}

impl<T> Shared<T> {
    /// A cheap pseudo-random number (xorshift), for retry backoff only.
    fn jitter(&self) -> u64 {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        x
    }
}

/// An async xenstore client over transport `T`, timing requests out with timer `M`.
///
/// Methods take `&self`, so several requests (and watches) can be in flight at once from
/// one task (`join`) or from several tasks sharing the client.
pub struct Client<T, M> {
    shared: Arc<Shared<T>>,
    timer: M,
    config: ClientConfig,
}

/// Abandons a request if its future is dropped before the reply arrived.
struct InFlight<'a, T: Transport> {
    shared: &'a Shared<T>,
    id: u32,
    finished: bool,
}

impl<T: Transport> Drop for InFlight<'_, T> {
    fn drop(&mut self) {
        let wakers = {
            let mut state = self.shared.state.lock();
            state.request_wakers.remove(&self.id);
            if !self.finished {
                state.connection.abandon(self.id);
            }
            // Hand the transport over: this task may hold the transport's only waker.
            state.take_wakers()
        };
        wake(wakers);
    }
}

impl<T: Transport, M: Timer> Client<T, M> {
    pub fn new(transport: T, timer: M) -> Self {
        Self::with_config(transport, timer, ClientConfig::default())
    }

    pub fn with_config(transport: T, timer: M, config: ClientConfig) -> Self {
        let mut connection = Connection::new();
        connection.set_watch_queue_limit(config.watch_queue_limit);
        let shared = Arc::new(Shared {
            state: spin::Mutex::new(State {
                connection,
                transport,
                request_wakers: BTreeMap::new(),
                watch_wakers: BTreeMap::new(),
            }),
            next_token: AtomicU64::new(1),
            jitter: AtomicU64::new(0),
        });
        // Seeded per client (its heap address) so that contending clients back off
        // differently; xorshift needs a non-zero state.
        let seed = (Arc::as_ptr(&shared) as usize as u64) ^ 0x9E37_79B9_7F4A_7C15;
        shared.jitter.store(seed | 1, Ordering::Relaxed);
        Client {
            shared,
            timer,
            config,
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn timer(&self) -> &M {
        &self.timer
    }

    /// Counts of stray messages seen so far (unknown `req_id`, unknown watch token, ...).
    pub fn anomalies(&self) -> Anomalies {
        self.shared.state.lock().connection.anomalies()
    }

    /// Why the connection is closed, if it is.
    pub fn closed(&self) -> Option<Error> {
        self.shared.state.lock().connection.closed().cloned()
    }

    /// Runs `future`, failing with [`Error::Timeout`] after `duration`.
    pub async fn with_timeout<F: Future>(
        &self,
        duration: Duration,
        future: F,
    ) -> Result<F::Output, Error> {
        let mut future = pin!(future);
        let mut sleep = pin!(self.timer.sleep(duration));
        poll_fn(|cx| {
            if let Poll::Ready(v) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Error::Timeout));
            }
            Poll::Pending
        })
        .await
    }

    /// Sends one request and waits for its reply, with the configured timeout.
    pub async fn request(&self, request: &Request<'_>, tx_id: u32) -> Result<RawReply, Error> {
        let id = self.shared.state.lock().connection.send(request, tx_id)?;
        let mut in_flight = InFlight {
            shared: &self.shared,
            id,
            finished: false,
        };
        let mut sleep = pin!(self.timer.sleep(self.config.request_timeout));
        poll_fn(|cx| {
            let (outcome, wakers) = {
                let mut state = self.shared.state.lock();
                let mut outcome = state.connection.take_reply(id);
                let mut wakers = Vec::new();
                if outcome.is_none() {
                    if state.drive(cx) {
                        wakers = state.take_wakers();
                    }
                    outcome = state.connection.take_reply(id);
                }
                if outcome.is_none() {
                    state.request_wakers.insert(id, cx.waker().clone());
                }
                (outcome, wakers)
            };
            wake(wakers);
            if let Some(result) = outcome {
                // InFlight's drop hands the transport over to the other waiters.
                in_flight.finished = true;
                return Poll::Ready(result);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                log::warn!("xenstore: {} request {id} timed out", request.msg_type());
                return Poll::Ready(Err(Error::Timeout));
            }
            Poll::Pending
        })
        .await
    }

    // ---- typed operations; `tx` is 0 outside a transaction ----

    async fn read_in(&self, tx: u32, path: &str) -> Result<Vec<u8>, Error> {
        let reply = self.request(&Request::Read { path }, tx).await?;
        Ok(reply.payload)
    }

    async fn read_optional_in(&self, tx: u32, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.read_in(tx, path).await {
            Ok(v) => Ok(Some(v)),
            Err(Error::Xenstore(ErrorCode::ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn ack(&self, request: &Request<'_>, tx: u32) -> Result<(), Error> {
        let reply = self.request(request, tx).await?;
        match Reply::parse(reply.msg_type as u32, &reply.payload) {
            Ok(Reply::Ack { .. }) => Ok(()),
            Ok(_) => Err(Error::MalformedReply(
                crate::wire::WireError::UnexpectedValue,
            )),
            Err(e) => Err(Error::MalformedReply(e)),
        }
    }

    async fn directory_in(&self, tx: u32, path: &str) -> Result<Vec<String>, Error> {
        match self.request(&Request::Directory { path }, tx).await {
            Ok(reply) => {
                let list = StringList::parse_utf8(&reply.payload).map_err(Error::MalformedReply)?;
                Ok(list.iter().map(String::from).collect())
            }
            // The child list does not fit one reply (cxenstored says E2BIG; oxenstored sends
            // an oversized reply on sockets): read it in slices.
            Err(
                e @ (Error::Xenstore(ErrorCode::E2BIG)
                | Error::MalformedReply(crate::wire::WireError::PayloadTooLong(_))),
            ) => match self.directory_part_in(tx, path).await {
                // oxenstored 4.17 has no DIRECTORY_PART for socket clients: report the
                // original failure (libxenstore cannot list such a directory either).
                Err(Error::Xenstore(ErrorCode::ENOSYS)) => Err(e),
                other => other,
            },
            Err(e) => Err(e),
        }
    }

    /// Reads a child list with DIRECTORY_PART, restarting when the node's generation count
    /// changes between slices (the directory changed while being read).
    async fn directory_part_in(&self, tx: u32, path: &str) -> Result<Vec<String>, Error> {
        'attempt: for _ in 0..=self.config.directory_retries {
            let mut children = Vec::new();
            let mut offset: u32 = 0;
            let mut generation = None;
            loop {
                let reply = self
                    .request(&Request::DirectoryPart { path, offset }, tx)
                    .await?;
                let parsed = Reply::parse(reply.msg_type as u32, &reply.payload)
                    .map_err(Error::MalformedReply)?;
                let Reply::DirectoryPart {
                    generation: g,
                    children: part,
                    complete,
                } = parsed
                else {
                    return Err(Error::MalformedReply(
                        crate::wire::WireError::UnexpectedValue,
                    ));
                };
                match generation {
                    None => generation = Some(g),
                    Some(first) if first != g => continue 'attempt,
                    Some(_) => {}
                }
                let consumed = part.as_bytes().len();
                children.extend(part.iter().map(String::from));
                if complete {
                    return Ok(children);
                }
                if consumed == 0 {
                    // No progress and not complete: the daemon would make us loop forever.
                    return Err(Error::MalformedReply(
                        crate::wire::WireError::UnexpectedValue,
                    ));
                }
                offset = u32::try_from(consumed)
                    .ok()
                    .and_then(|c| offset.checked_add(c))
                    .ok_or(Error::MalformedReply(crate::wire::WireError::InvalidNumber))?;
            }
        }
        Err(Error::DirectoryUnstable)
    }

    async fn get_permissions_in(&self, tx: u32, path: &str) -> Result<Vec<Permission>, Error> {
        let reply = self.request(&Request::GetPerms { path }, tx).await?;
        match Reply::parse(reply.msg_type as u32, &reply.payload) {
            Ok(Reply::GetPerms { perms }) => Ok(perms.to_vec()),
            Ok(_) => Err(Error::MalformedReply(
                crate::wire::WireError::UnexpectedValue,
            )),
            Err(e) => Err(Error::MalformedReply(e)),
        }
    }

    // ---- public API ----

    /// Reads a node's value.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.read_in(0, path).await
    }

    /// Reads a node's value as UTF-8 text (lossily).
    pub async fn read_string(&self, path: &str) -> Result<String, Error> {
        Ok(String::from_utf8_lossy(&self.read(path).await?).into_owned())
    }

    /// Reads a node's value; `None` if it does not exist.
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.read_optional_in(0, path).await
    }

    /// Writes a node, creating it and missing parents.
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.ack(
            &Request::Write {
                path,
                value: value.as_ref(),
            },
            0,
        )
        .await
    }

    /// Creates a node (and missing parents) with an empty value; fine if it exists.
    pub async fn mkdir(&self, path: &str) -> Result<(), Error> {
        self.ack(&Request::Mkdir { path }, 0).await
    }

    /// Removes a node and everything below it; fine if it does not exist.
    pub async fn rm(&self, path: &str) -> Result<(), Error> {
        self.ack(&Request::Rm { path }, 0).await
    }

    /// Lists a node's children, falling back to DIRECTORY_PART for lists over 4096 bytes.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, Error> {
        self.directory_in(0, path).await
    }

    pub async fn get_permissions(&self, path: &str) -> Result<Vec<Permission>, Error> {
        self.get_permissions_in(0, path).await
    }

    /// Sets a node's permissions; the first entry names the owner and the default access.
    pub async fn set_permissions(&self, path: &str, perms: &[Permission]) -> Result<(), Error> {
        self.ack(
            &Request::SetPerms {
                path,
                perms: Perms::List(perms),
            },
            0,
        )
        .await
    }

    /// The home path of a domain, e.g. `/local/domain/5`.
    pub async fn get_domain_path(&self, domid: DomId) -> Result<String, Error> {
        let reply = self.request(&Request::GetDomainPath { domid }, 0).await?;
        match Reply::parse(reply.msg_type as u32, &reply.payload) {
            Ok(Reply::GetDomainPath { path }) => Ok(path.to_string()),
            Ok(_) => Err(Error::MalformedReply(
                crate::wire::WireError::UnexpectedValue,
            )),
            Err(e) => Err(Error::MalformedReply(e)),
        }
    }

    pub async fn is_domain_introduced(&self, domid: DomId) -> Result<bool, Error> {
        let reply = self
            .request(&Request::IsDomainIntroduced { domid }, 0)
            .await?;
        match Reply::parse(reply.msg_type as u32, &reply.payload) {
            Ok(Reply::IsDomainIntroduced { introduced }) => Ok(introduced),
            Ok(_) => Err(Error::MalformedReply(
                crate::wire::WireError::UnexpectedValue,
            )),
            Err(e) => Err(Error::MalformedReply(e)),
        }
    }

    /// Tells xenstored about a new domain's ring (`gfn`) and event channel (`port`).
    pub async fn introduce(&self, domid: DomId, gfn: u64, port: u32) -> Result<(), Error> {
        self.ack(&Request::Introduce { domid, gfn, port }, 0).await
    }

    pub async fn release(&self, domid: DomId) -> Result<(), Error> {
        self.ack(&Request::Release { domid }, 0).await
    }

    pub async fn resume(&self, domid: DomId) -> Result<(), Error> {
        self.ack(&Request::Resume { domid }, 0).await
    }

    pub async fn set_target(&self, domid: DomId, target: DomId) -> Result<(), Error> {
        self.ack(&Request::SetTarget { domid, target }, 0).await
    }

    /// Removes every watch of this connection in xenstored.
    pub async fn reset_watches(&self) -> Result<(), Error> {
        self.ack(&Request::ResetWatches, 0).await
    }

    /// Sends a CONTROL command (`xenstore-control`); returns the raw reply payload.
    pub async fn control(&self, args: &[&[u8]]) -> Result<Vec<u8>, Error> {
        let mut payload = Vec::new();
        for a in args {
            payload.extend_from_slice(a);
            payload.push(0);
        }
        Ok(self
            .request(&Request::Control { payload: &payload }, 0)
            .await?
            .payload)
    }

    /// Registers a watch on `path` (and everything below it). xenstored sends one event
    /// right away, then one per change.
    pub async fn watch(&self, path: &str) -> Result<Watch<T>, Error> {
        let n = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let token = format!("xsrs{n}").into_bytes();
        self.shared.state.lock().connection.register_watch(&token);
        let watch = Watch {
            shared: self.shared.clone(),
            token,
            path: path.to_string(),
        };
        // On failure `watch` is dropped, which unregisters it locally and sends UNWATCH
        // (answered with ENOENT, discarded).
        self.ack(
            &Request::Watch {
                path,
                token: &watch.token,
            },
            0,
        )
        .await?;
        Ok(watch)
    }

    /// Waits until `predicate` accepts the value of `path` (`None` while it does not exist)
    /// and returns that value. Wrap in [`with_timeout`](Self::with_timeout) to bound it.
    pub async fn wait_until<P>(
        &self,
        path: &str,
        mut predicate: P,
    ) -> Result<Option<Vec<u8>>, Error>
    where
        P: FnMut(Option<&[u8]>) -> bool,
    {
        let mut watch = self.watch(path).await?;
        loop {
            let value = self.read_optional(path).await?;
            if predicate(value.as_deref()) {
                return Ok(value);
            }
            match watch.next().await {
                Ok(_) | Err(Error::WatchLagged { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts a transaction by hand; prefer [`transaction`](Self::transaction).
    pub async fn transaction_start(&self) -> Result<Transaction<'_, T, M>, Error> {
        let reply = self.request(&Request::TransactionStart, 0).await?;
        match Reply::parse(reply.msg_type as u32, &reply.payload) {
            Ok(Reply::TransactionStart { tx_id }) if tx_id != 0 => Ok(Transaction {
                client: self,
                id: tx_id,
                ended: core::sync::atomic::AtomicBool::new(false),
            }),
            Ok(_) => Err(Error::MalformedReply(
                crate::wire::WireError::UnexpectedValue,
            )),
            Err(e) => Err(Error::MalformedReply(e)),
        }
    }

    /// Runs `body` in a transaction and commits it, retrying the whole closure when
    /// xenstored reports a conflict (`EAGAIN`), at most `transaction_retries` times. When
    /// `body` fails the transaction is aborted and its error returned.
    pub async fn transaction<R, F>(&self, mut body: F) -> Result<R, Error>
    where
        F: AsyncFnMut(&Transaction<'_, T, M>) -> Result<R, Error>,
    {
        let mut attempt = 0;
        loop {
            let tx = self.transaction_start().await?;
            let outcome = body(&tx).await;
            let retry = match outcome {
                Ok(value) => match tx.commit().await {
                    Ok(()) => return Ok(value),
                    Err(Error::Xenstore(ErrorCode::EAGAIN)) => true,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    let conflicted = e == Error::Xenstore(ErrorCode::EAGAIN);
                    if let Err(abort_error) = tx.abort().await {
                        if abort_error.is_fatal() {
                            return Err(abort_error);
                        }
                    }
                    if !conflicted {
                        return Err(e);
                    }
                    true
                }
            };
            debug_assert!(retry);
            attempt += 1;
            if attempt > self.config.transaction_retries {
                return Err(Error::Xenstore(ErrorCode::EAGAIN));
            }
            log::debug!("xenstore: transaction conflict, retry {attempt}");
            // Randomised, growing backoff: two writers retrying in lockstep would otherwise
            // keep invalidating each other and one could starve.
            let cap_us = 100u64 << attempt.min(10);
            let delay_us = self.shared.jitter() % cap_us.max(1);
            self.timer.sleep(Duration::from_micros(delay_us)).await;
        }
    }
}

/// An open transaction. Operations through it see a snapshot and are applied atomically by
/// [`commit`](Self::commit). Dropping it without commit or abort aborts it (the abort goes
/// out with the connection's next I/O).
pub struct Transaction<'c, T: Transport, M> {
    client: &'c Client<T, M>,
    id: u32,
    /// Commit or abort was sent: xenstored has ended (or will end) the transaction.
    ended: core::sync::atomic::AtomicBool,
}

impl<T: Transport, M> Drop for Transaction<'_, T, M> {
    fn drop(&mut self) {
        if self.ended.load(Ordering::Relaxed) {
            return;
        }
        let wakers = {
            let mut state = self.client.shared.state.lock();
            if state.connection.closed().is_some() {
                return;
            }
            let abort = Request::TransactionEnd { commit: false };
            if let Err(e) = state.connection.send_detached(&abort, self.id) {
                log::warn!(
                    "xenstore: could not queue the abort of transaction {}: {e}",
                    self.id
                );
            }
            // Someone must flush it.
            state.take_wakers()
        };
        wake(wakers);
    }
}

impl<T: Transport, M: Timer> Transaction<'_, T, M> {
    /// The transaction id xenstored assigned.
    pub fn id(&self) -> u32 {
        self.id
    }
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.client.read_in(self.id, path).await
    }
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.client.read_optional_in(self.id, path).await
    }
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.client
            .ack(
                &Request::Write {
                    path,
                    value: value.as_ref(),
                },
                self.id,
            )
            .await
    }
    pub async fn mkdir(&self, path: &str) -> Result<(), Error> {
        self.client.ack(&Request::Mkdir { path }, self.id).await
    }
    pub async fn rm(&self, path: &str) -> Result<(), Error> {
        self.client.ack(&Request::Rm { path }, self.id).await
    }
    pub async fn directory(&self, path: &str) -> Result<Vec<String>, Error> {
        self.client.directory_in(self.id, path).await
    }
    pub async fn get_permissions(&self, path: &str) -> Result<Vec<Permission>, Error> {
        self.client.get_permissions_in(self.id, path).await
    }
    pub async fn set_permissions(&self, path: &str, perms: &[Permission]) -> Result<(), Error> {
        self.client
            .ack(
                &Request::SetPerms {
                    path,
                    perms: Perms::List(perms),
                },
                self.id,
            )
            .await
    }
    /// Commits; `Err(Xenstore(EAGAIN))` means a conflict and nothing was applied.
    pub async fn commit(&self) -> Result<(), Error> {
        self.end(true).await
    }

    pub async fn abort(&self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&self, commit: bool) -> Result<(), Error> {
        let result = self
            .client
            .ack(&Request::TransactionEnd { commit }, self.id)
            .await;
        // Any answer from xenstored ends the transaction; after a timeout (or if this future
        // is dropped) the drop of `self` still sends an abort, which is harmless if redundant.
        if !matches!(result, Err(Error::Timeout)) {
            self.ended.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// A registered watch: a stream of [`WatchEvent`]s. Dropping it unregisters the watch
/// (the UNWATCH goes out with the connection's next I/O).
pub struct Watch<T: Transport> {
    shared: Arc<Shared<T>>,
    token: Vec<u8>,
    path: String,
}

impl<T: Transport> Watch<T> {
    /// The watched path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Polls for the next event. Watch waits have no timeout (changes may legitimately
    /// take forever); a closed connection ends them with its error.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<WatchEvent, Error>> {
        let (outcome, wakers) = {
            let mut state = self.shared.state.lock();
            let mut outcome = state.connection.next_watch_event(&self.token);
            let mut wakers = Vec::new();
            if outcome.is_none() && state.connection.closed().is_none() && state.drive(cx) {
                wakers = state.take_wakers();
                outcome = state.connection.next_watch_event(&self.token);
            }
            if outcome.is_none() {
                outcome = state.connection.closed().cloned().map(Err);
            }
            match outcome {
                // This task may hold the transport's only waker and may not poll again
                // soon: hand the transport over to the other waiters.
                Some(_) => wakers.extend(state.take_wakers()),
                None => {
                    state
                        .watch_wakers
                        .insert(self.token.clone(), cx.waker().clone());
                }
            }
            (outcome, wakers)
        };
        wake(wakers);
        match outcome {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }

    /// Waits for the next event.
    pub async fn next(&mut self) -> Result<WatchEvent, Error> {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl<T: Transport> Drop for Watch<T> {
    fn drop(&mut self) {
        let wakers = {
            let mut state = self.shared.state.lock();
            state.connection.unregister_watch(&self.token);
            state.watch_wakers.remove(&self.token);
            if state.connection.closed().is_none() {
                let unwatch = Request::Unwatch {
                    path: &self.path,
                    token: &self.token,
                };
                if let Err(e) = state.connection.send_detached(&unwatch, 0) {
                    log::warn!("xenstore: could not queue UNWATCH: {e}");
                }
            }
            state.take_wakers()
        };
        wake(wakers);
    }
}

#[cfg(feature = "futures")]
impl<T: Transport> futures_core::Stream for Watch<T> {
    type Item = Result<WatchEvent, Error>;
    fn poll_next(
        self: core::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        Watch::poll_next(self.get_mut(), cx).map(Some)
    }
}
