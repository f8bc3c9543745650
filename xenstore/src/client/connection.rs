//! The sans-IO client core: encodes requests into an outgoing byte buffer, decodes the
//! incoming byte stream, matches replies to requests by `req_id`, and queues watch events
//! per token. It never blocks and never touches a transport; [`super::Client`] drives it.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Error;
use crate::transport::TransportError;
use crate::wire::{HEADER_LEN, Header, MessageType, PAYLOAD_MAX, Reply, Request, WireError};

/// Events queued per watch before the oldest are dropped (see [`Error::WatchLagged`]).
pub const DEFAULT_WATCH_QUEUE_LIMIT: usize = 1024;

/// Abandoned requests (timed out, cancelled, fire-and-forget) remembered so that their late
/// replies are recognised; beyond this the oldest are forgotten, so a daemon that never
/// answers cannot make the client grow without bound.
pub const ABANDONED_LIMIT: usize = 1024;

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
    /// Bytes of an oversized message still to be skipped.
    discard: usize,
    /// Number of `Slot::Abandoned` entries in `requests`.
    abandoned: usize,
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
            discard: 0,
            abandoned: 0,
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
        if let Slot::Abandoned = slot {
            self.abandoned += 1;
        }
        self.requests.insert(id, slot);
        self.forget_oldest_abandoned();
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
    ///
    /// A message longer than `XENSTORE_PAYLOAD_MAX` (oxenstored sends those on sockets,
    /// e.g. for large directories) fails only the request it answers: its length is still
    /// known, so its bytes are skipped and the stream stays in sync.
    pub fn receive(&mut self, bytes: &[u8]) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let mut bytes = bytes;
        if self.discard > 0 {
            let n = self.discard.min(bytes.len());
            self.discard -= n;
            bytes = &bytes[n..];
        }
        self.incoming.extend_from_slice(bytes);
        let mut progressed = false;
        let mut start = 0;
        while self.incoming.len() - start >= HEADER_LEN {
            let Ok(header) = Header::decode(&self.incoming[start..]) else {
                break;
            };
            if header.len as usize > PAYLOAD_MAX {
                progressed |= self.oversized(header);
                let available = self.incoming.len() - start - HEADER_LEN;
                let skip = (header.len as usize).min(available);
                self.discard = header.len as usize - skip;
                start += HEADER_LEN + skip;
                continue;
            }
            let total = header.total_len();
            if self.incoming.len() - start < total {
                break;
            }
            let payload = self.incoming[start + HEADER_LEN..start + total].to_vec();
            progressed |= self.dispatch(header, &payload);
            start += total;
        }
        self.incoming.drain(..start);
        progressed
    }

    fn oversized(&mut self, header: Header) -> bool {
        let error = Error::MalformedReply(WireError::PayloadTooLong(header.len as usize));
        log::warn!(
            "xenstore: skipping message type {} req_id {} with oversized payload of {} bytes",
            header.msg_type,
            header.req_id,
            header.len
        );
        if header.msg_type == MessageType::WatchEvent as u32 {
            self.anomalies.malformed_watch_events += 1;
            return false;
        }
        match self.requests.get_mut(&header.req_id) {
            Some(slot @ Slot::Waiting { .. }) => {
                *slot = Slot::Done(Err(error));
                true
            }
            Some(Slot::Abandoned) => {
                self.remove_abandoned(header.req_id);
                false
            }
            _ => {
                self.anomalies.unknown_req_id += 1;
                false
            }
        }
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
                self.remove_abandoned(header.req_id);
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
            Some(slot @ Slot::Waiting { .. }) => {
                *slot = Slot::Abandoned;
                self.abandoned += 1;
                self.forget_oldest_abandoned();
            }
            Some(Slot::Done(_)) => {
                self.requests.remove(&id);
            }
            _ => {}
        }
    }

    fn forget_oldest_abandoned(&mut self) {
        if self.abandoned <= ABANDONED_LIMIT {
            return;
        }
        // Oldest first: ids grow (after a wrap the order is off, which only matters for
        // which late replies are still recognised).
        let excess = self.abandoned - ABANDONED_LIMIT;
        let victims: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Abandoned))
            .map(|(id, _)| *id)
            .take(excess)
            .collect();
        for id in victims {
            self.remove_abandoned(id);
        }
    }

    fn remove_abandoned(&mut self, id: u32) {
        if let Some(Slot::Abandoned) = self.requests.remove(&id) {
            self.abandoned -= 1;
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
        self.abandoned = 0;
        self.outgoing.clear();
        self.sent = 0;
        self.incoming.clear();
        self.discard = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ErrorCode, ErrorReply};

    fn reply_bytes(reply: &Reply<'_>, req_id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(req_id, 0, &mut out).unwrap();
        out
    }

    fn raw_message(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Header {
            msg_type: ty,
            req_id,
            tx_id: 0,
            len: payload.len() as u32,
        }
        .to_bytes()
        .to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn replies_match_by_req_id_in_any_order_and_split_anywhere() {
        let mut c = Connection::new();
        let a = c.send(&Request::Read { path: "/a" }, 0).unwrap();
        let b = c.send(&Request::Read { path: "/b" }, 0).unwrap();
        assert_ne!(a, b);
        assert!(!c.pending_output().is_empty());
        let n = c.pending_output().len();
        c.consume_output(n);
        let mut bytes = reply_bytes(&Reply::Read { value: b"B" }, b);
        bytes.extend(reply_bytes(
            &Reply::Error(ErrorReply::new(ErrorCode::ENOENT)),
            a,
        ));
        for chunk in bytes.chunks(3) {
            c.receive(chunk);
        }
        assert_eq!(
            c.take_reply(a),
            Some(Err(Error::Xenstore(ErrorCode::ENOENT)))
        );
        assert_eq!(c.take_reply(b).unwrap().unwrap().payload, b"B");
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn oversized_reply_fails_only_its_request() {
        let mut c = Connection::new();
        let big = c.send(&Request::Directory { path: "/big" }, 0).unwrap();
        let next = c.send(&Request::Read { path: "/x" }, 0).unwrap();
        let mut bytes = raw_message(MessageType::Directory as u32, big, &[b'a'; 9000]);
        bytes.extend(reply_bytes(&Reply::Read { value: b"ok" }, next));
        for chunk in bytes.chunks(4096) {
            c.receive(chunk);
        }
        assert_eq!(
            c.take_reply(big),
            Some(Err(Error::MalformedReply(WireError::PayloadTooLong(9000))))
        );
        assert_eq!(c.take_reply(next).unwrap().unwrap().payload, b"ok");
        assert!(c.closed().is_none());
    }

    #[test]
    fn strays_are_counted_not_fatal() {
        let mut c = Connection::new();
        let id = c.send(&Request::Read { path: "/a" }, 0).unwrap();
        c.register_watch(b"tok");
        let mut bytes = reply_bytes(&Reply::Read { value: b"?" }, id + 100);
        bytes.extend(reply_bytes(
            &Reply::WatchEvent {
                path: "/w",
                token: b"other",
            },
            0,
        ));
        bytes.extend(raw_message(MessageType::WatchEvent as u32, 0, b"no-nul"));
        bytes.extend(raw_message(99, id, b"what"));
        bytes.extend(reply_bytes(
            &Reply::WatchEvent {
                path: "/w/x",
                token: b"tok",
            },
            0,
        ));
        c.receive(&bytes);
        assert_eq!(c.anomalies().unknown_req_id, 1);
        assert_eq!(c.anomalies().unknown_watch_token, 1);
        assert_eq!(c.anomalies().malformed_watch_events, 1);
        assert_eq!(
            c.take_reply(id),
            Some(Err(Error::UnexpectedReply {
                expected: MessageType::Read,
                got: 99
            }))
        );
        assert_eq!(
            c.next_watch_event(b"tok"),
            Some(Ok(WatchEvent {
                path: "/w/x".into()
            }))
        );
        assert_eq!(c.next_watch_event(b"tok"), None);
        assert!(c.closed().is_none());
        // Still usable.
        let again = c.send(&Request::Read { path: "/a" }, 0).unwrap();
        c.receive(&reply_bytes(&Reply::Read { value: b"v" }, again));
        assert_eq!(c.take_reply(again).unwrap().unwrap().payload, b"v");
    }

    #[test]
    fn abandoned_requests_swallow_late_replies() {
        let mut c = Connection::new();
        let id = c.send(&Request::Read { path: "/a" }, 0).unwrap();
        c.abandon(id);
        c.receive(&reply_bytes(&Reply::Read { value: b"late" }, id));
        assert_eq!(c.anomalies(), Anomalies::default());
        assert_eq!(c.take_reply(id), None);
    }

    #[test]
    fn abandoned_requests_are_bounded() {
        let mut c = Connection::new();
        let first = c.send(&Request::Read { path: "/a" }, 0).unwrap();
        c.abandon(first);
        for _ in 0..ABANDONED_LIMIT + 10 {
            let id = c.send(&Request::Read { path: "/a" }, 0).unwrap();
            c.abandon(id);
        }
        assert_eq!(c.requests.len(), ABANDONED_LIMIT);
        // The oldest was forgotten: its late reply is now a stray.
        c.receive(&reply_bytes(&Reply::Read { value: b"late" }, first));
        assert_eq!(c.anomalies().unknown_req_id, 1);
        // A recent one is still recognised.
        let recent = *c.requests.keys().last().unwrap();
        c.receive(&reply_bytes(&Reply::Read { value: b"late" }, recent));
        assert_eq!(c.anomalies().unknown_req_id, 1);
        assert_eq!(c.abandoned, ABANDONED_LIMIT - 1);
    }

    #[test]
    fn watch_queue_overflow_reports_lag() {
        let mut c = Connection::new();
        c.set_watch_queue_limit(2);
        c.register_watch(b"t");
        for p in ["/a", "/b", "/c"] {
            c.receive(&reply_bytes(
                &Reply::WatchEvent {
                    path: p,
                    token: b"t",
                },
                0,
            ));
        }
        assert_eq!(
            c.next_watch_event(b"t"),
            Some(Err(Error::WatchLagged { dropped: 1 }))
        );
        assert_eq!(c.next_watch_event(b"t").unwrap().unwrap().path, "/b");
        assert_eq!(c.next_watch_event(b"t").unwrap().unwrap().path, "/c");
    }

    #[test]
    fn closing_fails_everything_in_flight_and_later() {
        let mut c = Connection::new();
        let id = c.send(&Request::Read { path: "/a" }, 0).unwrap();
        c.transport_failed(TransportError::Closed);
        assert_eq!(c.take_reply(id), Some(Err(Error::Disconnected)));
        assert_eq!(
            c.send(&Request::Read { path: "/a" }, 0),
            Err(Error::Disconnected)
        );
    }
}
