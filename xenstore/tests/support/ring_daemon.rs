//! A minimal xenstored for the server end of a xenstore ring page, shared by the ring
//! and sim tests: a flat map of nodes, watches that fire on writes at or below their path,
//! transactions that apply directly (no isolation), and replies encoded with this crate's
//! codec. Flow control both ways, notifications only (no polling).
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use xen_platform::{EventChannels, Port};
use xen_ring::{SharedMem, xenstore as layout};
use xenstore::wire::{
    ErrorCode, ErrorReply, Reply, Request, StringList, decode_request, frame_len,
};

#[derive(Default)]
pub struct DaemonControl {
    /// Stop answering (a hung xenstored).
    pub mute: Cell<bool>,
    /// Requests served.
    pub served: Cell<u32>,
}

/// A minimal xenstored for the other end of the ring: a flat map of nodes, watches that
/// fire on writes below their path, and the reply encoding from this crate's codec.
pub async fn serve<E: EventChannels>(
    page: SharedMem<'_>,
    events: &E,
    port: Port,
    control: Rc<DaemonControl>,
) {
    let (mut requests, mut replies) = layout::server(page).unwrap();
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut watches: Vec<(String, Vec<u8>)> = Vec::new();
    let mut inbox = Vec::new();
    let mut outbox: Vec<u8> = Vec::new();
    let mut next_tx = 0u32;
    loop {
        let mut buf = [0u8; 300];
        // A broken ring (hostile indexes) ends the connection, as in xenstored.
        let Ok(n) = requests.read(&mut buf) else {
            return;
        };
        inbox.extend_from_slice(&buf[..n]);
        if n > 0 && events.notify(port).is_err() {
            return;
        }
        loop {
            let len = match frame_len(&inbox) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => return, // framing lost: drop the connection
            };
            let frame: Vec<u8> = inbox.drain(..len).collect();
            if control.mute.get() {
                continue;
            }
            control.served.set(control.served.get() + 1);
            let Ok((header, request)) = decode_request(&frame) else {
                return;
            };
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    let _ = Reply::Error(ErrorReply::new(e.error_code())).encode(
                        header.req_id,
                        0,
                        &mut outbox,
                    );
                    continue;
                }
            };
            let mut events_out = Vec::new();
            let reply_bytes;
            let reply = match request {
                Request::Read { path } => match store.get(path) {
                    Some(v) => Reply::Read { value: v },
                    None => Reply::Error(ErrorReply::new(ErrorCode::ENOENT)),
                },
                Request::Write { path, value } => {
                    store.insert(path.to_string(), value.to_vec());
                    for (wpath, token) in &watches {
                        if path == wpath || path.starts_with(&format!("{wpath}/")) {
                            events_out.push((path.to_string(), token.clone()));
                        }
                    }
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::Directory { path } => {
                    let prefix = format!("{path}/");
                    reply_bytes = store
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .filter(|rest| !rest.contains('/'))
                        .flat_map(|name| name.bytes().chain([0]))
                        .collect::<Vec<u8>>();
                    Reply::Directory {
                        children: StringList::parse(&reply_bytes).unwrap(),
                    }
                }
                Request::Watch { path, token } => {
                    watches.push((path.to_string(), token.to_vec()));
                    events_out.push((path.to_string(), token.to_vec()));
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::Unwatch { path, token } => {
                    watches.retain(|(p, t)| !(p == path && t == token));
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::Mkdir { path } => {
                    store.entry(path.to_string()).or_default();
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::Rm { path } => {
                    let below = format!("{path}/");
                    store.retain(|k, _| k != path && !k.starts_with(&below));
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::TransactionStart => {
                    next_tx += 1;
                    Reply::TransactionStart { tx_id: next_tx }
                }
                Request::TransactionEnd { .. } => Reply::Ack {
                    msg_type: request.msg_type(),
                },
                Request::GetDomainPath { domid } => {
                    reply_bytes = format!("/local/domain/{domid}").into_bytes();
                    Reply::GetDomainPath {
                        path: std::str::from_utf8(&reply_bytes).unwrap(),
                    }
                }
                _ => Reply::Error(ErrorReply::new(ErrorCode::ENOSYS)),
            };
            reply
                .encode(header.req_id, header.tx_id, &mut outbox)
                .unwrap();
            for (path, token) in events_out {
                Reply::WatchEvent {
                    path: &path,
                    token: &token,
                }
                .encode(0, 0, &mut outbox)
                .unwrap();
            }
        }
        // Write out as much as fits; the guest notifies when it has consumed some.
        let Ok(written) = replies.write(&outbox) else {
            return;
        };
        outbox.drain(..written);
        if written > 0 && events.notify(port).is_err() {
            return;
        }
        if n == 0 && written == 0 && events.wait(port).await.is_err() {
            return;
        }
    }
}
