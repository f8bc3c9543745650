//! The sans-IO client core: encodes requests into an outgoing byte buffer, decodes the
//! incoming byte stream, matches replies to requests by `req_id`, and queues watch events
//! per token. It never blocks and never touches a transport; [`super::Client`] drives it.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Error;
use crate::transport::TransportError;
use crate::wire::{HEADER_LEN, Header, MessageType, Reply, Request, WireError, frame_len};

/// Events queued per watch before the oldest are dropped (see [`Error::WatchLagged`]).
pub const DEFAULT_WATCH_QUEUE_LIMIT: usize = 1024;

/// A request's reply, type-checked against the request but not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    pub msg_type: MessageType,
    pub payload: Vec<u8>,
}

/// One watch event: the path that changed (as xenstored reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub path: String,
}

/// Messages that arrived but fit nothing; counted, logged, and otherwise ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Replies whose `req_id` matches no request in flight.
    pub unknown_req_id: u64,
    /// Watch events whose token matches no registered watch.
    pub unknown_watch_token: u64,
    /// Watch events that did not parse.
    pub malformed_watch_events: u64,
}

#[derive(Debug)]
enum Slot {
    Waiting {
        expected: MessageType,
    },
    Done(Result<RawReply, Error>),
    /// Timed out, cancelled, or fire-and-forget: the reply is discarded.
    Abandoned,
}

#[derive(Debug, Default)]
struct WatchQueue {
    events: VecDeque<WatchEvent>,
    dropped: u64,
}

/// The client's protocol state machine.
#[derive(Debug)]
pub struct Connection {
    next_req_id: u32,
    outgoing: Vec<u8>,
    sent: usize,
    incoming: Vec<u8>,
    requests: BTreeMap<u32, Slot>,
    watches: BTreeMap<Vec<u8>, WatchQueue>,
    watch_queue_limit: usize,
    anomalies: Anomalies,
    closed: Option<Error>,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    pub fn new() -> Self {
        Connection {
            next_req_id: 1,
            outgoing: Vec::new(),
            sent: 0,
            incoming: Vec::new(),
            requests: BTreeMap::new(),
            watches: BTreeMap::new(),
            watch_queue_limit: DEFAULT_WATCH_QUEUE_LIMIT,
            anomalies: Anomalies::default(),
            closed: None,
        }
    }

    pub fn set_watch_queue_limit(&mut self, limit: usize) {
        self.watch_queue_limit = limit.max(1);
    }

    /// Why the connection is closed, if it is.
    pub fn closed(&self) -> Option<&Error> {
        self.closed.as_ref()
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    fn allocate_req_id(&mut self) -> u32 {
        // Skip ids still in flight (possible only after 2^32 requests with a stuck one).
        loop {
            let id = self.next_req_id;
            self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
            if !self.requests.contains_key(&id) {
                return id;
            }
        }
    }

    /// Queues a request; returns its `req_id`.
    pub fn send(&mut self, request: &Request<'_>, tx_id: u32) -> Result<u32, Error> {
        self.enqueue(
            request,
            tx_id,
            Slot::Waiting {
                expected: request.msg_type(),
            },
        )
    }

    /// Queues a request whose reply nobody waits for (e.g. UNWATCH of a dropped watch).
    pub fn send_detached(&mut self, request: &Request<'_>, tx_id: u32) -> Result<u32, Error> {
        self.enqueue(request, tx_id, Slot::Abandoned)
    }

    fn enqueue(&mut self, request: &Request<'_>, tx_id: u32, slot: Slot) -> Result<u32, Error> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        let id = self.allocate_req_id();
        request
            .encode(id, tx_id, &mut self.outgoing)
            .map_err(Error::InvalidRequest)?;
        self.requests.insert(id, slot);
        Ok(id)
    }

    /// Bytes waiting to be written to the transport.
    pub fn pending_output(&self) -> &[u8] {
        &self.outgoing[self.sent..]
    }

    /// Marks `n` bytes of [`pending_output`](Self::pending_output) as written.
    pub fn consume_output(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.outgoing.len());
        if self.sent == self.outgoing.len() {
            self.outgoing.clear();
            self.sent = 0;
        } else if self.sent > 64 * 1024 {
            self.outgoing.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Feeds bytes read from the transport. Returns true if any request completed or any
    /// watch event was queued (so waiters should be woken).
    pub fn receive(&mut self, bytes: &[u8]) -> bool {
        if self.closed.is_some() {
            return false;
        }
        self.incoming.extend_from_slice(bytes);
        let mut progressed = false;
        let mut start = 0;
        loop {
            match frame_len(&self.incoming[start..]) {
                Ok(Some(len)) => {
                    let frame = &self.incoming[start..start + len];
                    // frame_len validated the header already.
                    if let Ok(header) = Header::parse(frame) {
                        let payload = frame[HEADER_LEN..].to_vec();
                        progressed |= self.dispatch(header, &payload);
                    }
                    start += len;
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("xenstore: unrecoverable framing error: {e}");
                    self.close(Error::Protocol(e));
                    return true;
                }
            }
        }
        self.incoming.drain(..start);
        progressed
    }

    fn dispatch(&mut self, header: Header, payload: &[u8]) -> bool {
        if header.msg_type == MessageType::WatchEvent as u32 {
            return self.dispatch_watch_event(payload);
        }
        let Some(slot) = self.requests.get_mut(&header.req_id) else {
            self.anomalies.unknown_req_id += 1;
            log::warn!(
                "xenstore: reply type {} for unknown req_id {} ignored",
                header.msg_type,
                header.req_id
            );
            return false;
        };
        let expected = match slot {
            Slot::Waiting { expected } => *expected,
            Slot::Abandoned => {
                self.requests.remove(&header.req_id);
                return false;
            }
            Slot::Done(_) => {
                // A second reply for the same id: the first one stands.
                self.anomalies.unknown_req_id += 1;
                log::warn!(
                    "xenstore: duplicate reply for req_id {} ignored",
                    header.req_id
                );
                return false;
            }
        };
        let result = if header.msg_type == MessageType::Error as u32 {
            match Reply::parse(header.msg_type, payload) {
                Ok(Reply::Error(e)) => match e.code() {
                    Some(code) => Err(Error::Xenstore(code)),
                    None => Err(Error::UnknownXenstoreError(
                        String::from_utf8_lossy(e.raw()).to_string(),
                    )),
                },
                Ok(_) => Err(Error::MalformedReply(WireError::UnexpectedValue)),
                Err(e) => Err(Error::MalformedReply(e)),
            }
        } else if header.msg_type == expected as u32 {
            Ok(RawReply {
                msg_type: expected,
                payload: payload.to_vec(),
            })
        } else {
            Err(Error::UnexpectedReply {
                expected,
                got: header.msg_type,
            })
        };
        *slot = Slot::Done(result);
        true
    }

    fn dispatch_watch_event(&mut self, payload: &[u8]) -> bool {
        let (path, token) = match Reply::parse(MessageType::WatchEvent as u32, payload) {
            Ok(Reply::WatchEvent { path, token }) => (path, token),
            _ => {
                self.anomalies.malformed_watch_events += 1;
                log::warn!("xenstore: malformed watch event ignored");
                return false;
            }
        };
        let Some(queue) = self.watches.get_mut(token) else {
            // Also expected briefly after an UNWATCH; harmless either way.
            self.anomalies.unknown_watch_token += 1;
            log::debug!("xenstore: watch event for unknown token ignored");
            return false;
        };
        if queue.events.len() >= self.watch_queue_limit {
            queue.events.pop_front();
            queue.dropped += 1;
        }
        queue.events.push_back(WatchEvent {
            path: path.to_string(),
        });
        true
    }

    /// Takes the outcome of request `id` if it is known.
    pub fn take_reply(&mut self, id: u32) -> Option<Result<RawReply, Error>> {
        match self.requests.get(&id) {
            Some(Slot::Done(_)) => match self.requests.remove(&id) {
                Some(Slot::Done(result)) => Some(result),
                _ => None,
            },
            Some(Slot::Waiting { .. }) => {
                let e = self.closed.clone()?;
                self.requests.remove(&id);
                Some(Err(e))
            }
            Some(Slot::Abandoned) | None => None,
        }
    }

    /// Gives up on request `id`; a reply that still arrives is discarded silently.
    pub fn abandon(&mut self, id: u32) {
        match self.requests.get_mut(&id) {
            Some(slot @ Slot::Waiting { .. }) => *slot = Slot::Abandoned,
            Some(Slot::Done(_)) => {
                self.requests.remove(&id);
            }
            _ => {}
        }
    }

    /// Starts queueing events for `token` (call before sending the WATCH).
    pub fn register_watch(&mut self, token: &[u8]) {
        self.watches.entry(token.to_vec()).or_default();
    }

    pub fn unregister_watch(&mut self, token: &[u8]) {
        self.watches.remove(token);
    }

    pub fn is_watch_registered(&self, token: &[u8]) -> bool {
        self.watches.contains_key(token)
    }

    /// Next queued event for `token`, or a lag notice if events were dropped since the
    /// last call. `None` if nothing is queued.
    pub fn next_watch_event(&mut self, token: &[u8]) -> Option<Result<WatchEvent, Error>> {
        let queue = self.watches.get_mut(token)?;
        if queue.dropped > 0 {
            let dropped = core::mem::take(&mut queue.dropped);
            return Some(Err(Error::WatchLagged { dropped }));
        }
        queue.events.pop_front().map(Ok)
    }

    /// Closes the connection: every request in flight fails with `reason`, and so does
    /// every later request.
    pub fn close(&mut self, reason: Error) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason.clone());
        for slot in self.requests.values_mut() {
            if let Slot::Waiting { .. } = slot {
                *slot = Slot::Done(Err(reason.clone()));
            }
        }
        self.requests
            .retain(|_, slot| !matches!(slot, Slot::Abandoned));
        self.outgoing.clear();
        self.sent = 0;
        self.incoming.clear();
    }

    /// Closes the connection because the transport failed or reached end of stream.
    pub fn transport_failed(&mut self, error: TransportError) {
        self.close(match error {
            TransportError::Closed => Error::Disconnected,
            e => Error::Transport(e),
        });
    }

    /// Number of requests waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.requests
            .values()
            .filter(|s| matches!(s, Slot::Waiting { .. }))
            .count()
    }
}
