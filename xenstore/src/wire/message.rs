//! Typed representations of every request and reply payload, parsed from and emitted to
//! bytes. Parsing is strict where xenstored is strict (argument counts, paths, numbers)
//! and tolerant of the optional trailing nul some daemons add or omit on replies.

use alloc::vec::Vec;

use super::path::{self, PathUse};
use super::perms::{DomId, PermList, Permission, decimal_len, write_decimal};
use super::strings::{
    StringList, as_utf8, parse_decimal, parse_decimal_as, split_exact, split_first,
};
use super::{ErrorCode, HEADER_LEN, Header, MessageType, PAYLOAD_MAX, WireError};

/// The permission argument of SET_PERMS: parsed from the wire or supplied by a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perms<'a> {
    Wire(PermList<'a>),
    List(&'a [Permission]),
}

impl<'a> Perms<'a> {
    pub fn to_vec(&self) -> Vec<Permission> {
        match self {
            Perms::Wire(list) => list.to_vec(),
            Perms::List(list) => list.to_vec(),
        }
    }
}

/// A request payload (client to daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Read {
        path: &'a str,
    },
    /// Modern two-argument form; the legacy `NONE`/`CREATE` flag forms are not produced.
    Write {
        path: &'a str,
        value: &'a [u8],
    },
    Mkdir {
        path: &'a str,
    },
    Rm {
        path: &'a str,
    },
    Directory {
        path: &'a str,
    },
    /// `offset` is a byte offset into the node's concatenated child list.
    DirectoryPart {
        path: &'a str,
        offset: u32,
    },
    GetPerms {
        path: &'a str,
    },
    SetPerms {
        path: &'a str,
        perms: Perms<'a>,
    },
    Watch {
        path: &'a str,
        token: &'a [u8],
    },
    Unwatch {
        path: &'a str,
        token: &'a [u8],
    },
    ResetWatches,
    TransactionStart,
    TransactionEnd {
        commit: bool,
    },
    /// `gfn` is the guest frame of the domain's xenstore ring, `port` its event channel.
    Introduce {
        domid: DomId,
        gfn: u64,
        port: u32,
    },
    Release {
        domid: DomId,
    },
    GetDomainPath {
        domid: DomId,
    },
    IsDomainIntroduced {
        domid: DomId,
    },
    Resume {
        domid: DomId,
    },
    SetTarget {
        domid: DomId,
        target: DomId,
    },
    /// Raw payload: a command name and its arguments as nul-terminated strings (some
    /// commands carry binary data, so it is not split here).
    Control {
        payload: &'a [u8],
    },
}

fn parse_path(bytes: &[u8], usage: PathUse) -> Result<&str, WireError> {
    let p = as_utf8(bytes)?;
    path::validate(p, usage)?;
    Ok(p)
}

fn one_path(payload: &[u8], usage: PathUse) -> Result<&str, WireError> {
    let [p] = split_exact::<1>(payload)?;
    parse_path(p, usage)
}

fn one_domid(payload: &[u8]) -> Result<DomId, WireError> {
    let [d] = split_exact::<1>(payload)?;
    parse_decimal_as(d)
}

fn check_token(token: &[u8]) -> Result<(), WireError> {
    if token.contains(&0) {
        Err(WireError::InvalidArgument)
    } else {
        Ok(())
    }
}

/// Strips one optional trailing nul from a reply value.
fn strip_nul(payload: &[u8]) -> &[u8] {
    payload.strip_suffix(&[0]).unwrap_or(payload)
}

impl<'a> Request<'a> {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Request::Read { .. } => MessageType::Read,
            Request::Write { .. } => MessageType::Write,
            Request::Mkdir { .. } => MessageType::Mkdir,
            Request::Rm { .. } => MessageType::Rm,
            Request::Directory { .. } => MessageType::Directory,
            Request::DirectoryPart { .. } => MessageType::DirectoryPart,
            Request::GetPerms { .. } => MessageType::GetPerms,
            Request::SetPerms { .. } => MessageType::SetPerms,
            Request::Watch { .. } => MessageType::Watch,
            Request::Unwatch { .. } => MessageType::Unwatch,
            Request::ResetWatches => MessageType::ResetWatches,
            Request::TransactionStart => MessageType::TransactionStart,
            Request::TransactionEnd { .. } => MessageType::TransactionEnd,
            Request::Introduce { .. } => MessageType::Introduce,
            Request::Release { .. } => MessageType::Release,
            Request::GetDomainPath { .. } => MessageType::GetDomainPath,
            Request::IsDomainIntroduced { .. } => MessageType::IsDomainIntroduced,
            Request::Resume { .. } => MessageType::Resume,
            Request::SetTarget { .. } => MessageType::SetTarget,
            Request::Control { .. } => MessageType::Control,
        }
    }

    /// Parses a request payload of the given raw type (daemon side).
    pub fn parse(msg_type: u32, payload: &'a [u8]) -> Result<Self, WireError> {
        if payload.len() > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(payload.len()));
        }
        let ty = MessageType::try_from(msg_type)?;
        Ok(match ty {
            MessageType::Read => Request::Read {
                path: one_path(payload, PathUse::Node)?,
            },
            MessageType::Mkdir => Request::Mkdir {
                path: one_path(payload, PathUse::Node)?,
            },
            MessageType::Rm => Request::Rm {
                path: one_path(payload, PathUse::Node)?,
            },
            MessageType::Directory => Request::Directory {
                path: one_path(payload, PathUse::Node)?,
            },
            MessageType::GetPerms => Request::GetPerms {
                path: one_path(payload, PathUse::SpecialAllowed)?,
            },
            MessageType::Write => {
                // The value is everything after the path's nul and may itself contain nuls.
                let (p, value) = split_first(payload)?;
                Request::Write {
                    path: parse_path(p, PathUse::Node)?,
                    value,
                }
            }
            MessageType::DirectoryPart => {
                let [p, off] = split_exact::<2>(payload)?;
                Request::DirectoryPart {
                    path: parse_path(p, PathUse::Node)?,
                    offset: parse_decimal_as(off)?,
                }
            }
            MessageType::SetPerms => {
                let (p, rest) = split_first(payload)?;
                let perms = PermList::parse(rest)?;
                Request::SetPerms {
                    path: parse_path(p, PathUse::SpecialAllowed)?,
                    perms: Perms::Wire(perms),
                }
            }
            MessageType::Watch | MessageType::Unwatch => {
                let [p, token] = split_exact::<2>(payload)?;
                let path = parse_path(p, PathUse::SpecialAllowed)?;
                if ty == MessageType::Watch {
                    Request::Watch { path, token }
                } else {
                    Request::Unwatch { path, token }
                }
            }
            // Both daemons ignore these payloads; clients send a single empty string.
            MessageType::ResetWatches => Request::ResetWatches,
            MessageType::TransactionStart => Request::TransactionStart,
            MessageType::TransactionEnd => {
                let [flag] = split_exact::<1>(payload)?;
                match flag {
                    b"T" => Request::TransactionEnd { commit: true },
                    b"F" => Request::TransactionEnd { commit: false },
                    _ => return Err(WireError::UnexpectedValue),
                }
            }
            MessageType::Introduce => {
                let [d, gfn, port] = split_exact::<3>(payload)?;
                Request::Introduce {
                    domid: parse_decimal_as(d)?,
                    gfn: parse_decimal(gfn)?,
                    port: parse_decimal_as(port)?,
                }
            }
            MessageType::Release => Request::Release {
                domid: one_domid(payload)?,
            },
            MessageType::GetDomainPath => Request::GetDomainPath {
                domid: one_domid(payload)?,
            },
            MessageType::IsDomainIntroduced => Request::IsDomainIntroduced {
                domid: one_domid(payload)?,
            },
            MessageType::Resume => Request::Resume {
                domid: one_domid(payload)?,
            },
            MessageType::SetTarget => {
                let [d, t] = split_exact::<2>(payload)?;
                Request::SetTarget {
                    domid: parse_decimal_as(d)?,
                    target: parse_decimal_as(t)?,
                }
            }
            MessageType::Control => {
                StringList::parse(payload)?;
                if payload.is_empty() {
                    return Err(WireError::ArgumentCount {
                        expected: 1,
                        found: 0,
                    });
                }
                Request::Control { payload }
            }
            MessageType::WatchEvent | MessageType::Error => {
                return Err(WireError::UnexpectedMessageType(msg_type));
            }
        })
    }

    /// Checks what the caller supplied before it goes on the wire.
    pub fn validate(&self) -> Result<(), WireError> {
        match *self {
            Request::Read { path }
            | Request::Write { path, .. }
            | Request::Mkdir { path }
            | Request::Rm { path }
            | Request::Directory { path }
            | Request::DirectoryPart { path, .. } => path::validate(path, PathUse::Node)?,
            Request::GetPerms { path } => path::validate(path, PathUse::SpecialAllowed)?,
            Request::SetPerms { path, perms } => {
                path::validate(path, PathUse::SpecialAllowed)?;
                if let Perms::List([]) = perms {
                    return Err(WireError::ArgumentCount {
                        expected: 1,
                        found: 0,
                    });
                }
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                path::validate(path, PathUse::SpecialAllowed)?;
                check_token(token)?;
            }
            Request::Control { payload } => {
                StringList::parse(payload)?;
                if payload.is_empty() {
                    return Err(WireError::ArgumentCount {
                        expected: 1,
                        found: 0,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends the payload bytes to `out`.
    pub fn emit_payload(&self, out: &mut Vec<u8>) {
        match *self {
            Request::Read { path }
            | Request::Mkdir { path }
            | Request::Rm { path }
            | Request::Directory { path }
            | Request::GetPerms { path } => push_str(out, path.as_bytes()),
            Request::Write { path, value } => {
                push_str(out, path.as_bytes());
                out.extend_from_slice(value);
            }
            Request::DirectoryPart { path, offset } => {
                push_str(out, path.as_bytes());
                push_decimal(out, offset as u64);
            }
            Request::SetPerms { path, perms } => {
                push_str(out, path.as_bytes());
                match perms {
                    Perms::Wire(list) => out.extend_from_slice(list.as_bytes()),
                    Perms::List(list) => list.iter().for_each(|p| push_perm(out, p)),
                }
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                push_str(out, path.as_bytes());
                push_str(out, token);
            }
            Request::ResetWatches | Request::TransactionStart => push_str(out, b""),
            Request::TransactionEnd { commit } => push_str(out, if commit { b"T" } else { b"F" }),
            Request::Introduce { domid, gfn, port } => {
                push_decimal(out, domid as u64);
                push_decimal(out, gfn);
                push_decimal(out, port as u64);
            }
            Request::Release { domid }
            | Request::GetDomainPath { domid }
            | Request::IsDomainIntroduced { domid }
            | Request::Resume { domid } => push_decimal(out, domid as u64),
            Request::SetTarget { domid, target } => {
                push_decimal(out, domid as u64);
                push_decimal(out, target as u64);
            }
            Request::Control { payload } => out.extend_from_slice(payload),
        }
    }

    /// Validates, then appends header and payload to `out`. On error `out` is unchanged.
    pub fn encode(&self, req_id: u32, tx_id: u32, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.validate()?;
        encode_with(out, self.msg_type(), req_id, tx_id, |o| {
            self.emit_payload(o)
        })
    }
}

/// The body of an `XS_ERROR` reply, e.g. `ENOENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReply<'a> {
    raw: &'a [u8],
}

impl<'a> ErrorReply<'a> {
    pub fn new(code: ErrorCode) -> Self {
        ErrorReply {
            raw: code.as_str().as_bytes(),
        }
    }
    /// The known error, or `None` for a string this crate does not know.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_wire(self.raw)
    }
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// A reply payload (daemon to client), including unsolicited watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Read {
        value: &'a [u8],
    },
    Directory {
        children: StringList<'a>,
    },
    /// One slice of a large child list; `complete` once the end has been reached.
    DirectoryPart {
        generation: u64,
        children: StringList<'a>,
        complete: bool,
    },
    GetPerms {
        perms: PermList<'a>,
    },
    TransactionStart {
        tx_id: u32,
    },
    GetDomainPath {
        path: &'a str,
    },
    IsDomainIntroduced {
        introduced: bool,
    },
    Control {
        payload: &'a [u8],
    },
    /// `OK` acknowledging a request of this type.
    Ack {
        msg_type: MessageType,
    },
    Error(ErrorReply<'a>),
    WatchEvent {
        path: &'a str,
        token: &'a [u8],
    },
}

impl<'a> Reply<'a> {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Reply::Read { .. } => MessageType::Read,
            Reply::Directory { .. } => MessageType::Directory,
            Reply::DirectoryPart { .. } => MessageType::DirectoryPart,
            Reply::GetPerms { .. } => MessageType::GetPerms,
            Reply::TransactionStart { .. } => MessageType::TransactionStart,
            Reply::GetDomainPath { .. } => MessageType::GetDomainPath,
            Reply::IsDomainIntroduced { .. } => MessageType::IsDomainIntroduced,
            Reply::Control { .. } => MessageType::Control,
            Reply::Ack { msg_type } => *msg_type,
            Reply::Error(_) => MessageType::Error,
            Reply::WatchEvent { .. } => MessageType::WatchEvent,
        }
    }

    /// Parses a reply payload of the given raw type (client side).
    pub fn parse(msg_type: u32, payload: &'a [u8]) -> Result<Self, WireError> {
        if payload.len() > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(payload.len()));
        }
        let ty = MessageType::try_from(msg_type)?;
        Ok(match ty {
            MessageType::Read => Reply::Read { value: payload },
            MessageType::Directory => Reply::Directory {
                children: StringList::parse_utf8(payload)?,
            },
            MessageType::DirectoryPart => {
                let (generation, rest) = split_first(payload)?;
                let generation = parse_decimal(generation)?;
                // The list ends with an extra empty string once the end is reached.
                let (children, complete) = if rest == [0] {
                    (&rest[..0], true)
                } else if let Some(body) = rest.strip_suffix(&[0, 0]) {
                    (&rest[..body.len() + 1], true)
                } else {
                    (rest, false)
                };
                Reply::DirectoryPart {
                    generation,
                    children: StringList::parse_utf8(children)?,
                    complete,
                }
            }
            MessageType::GetPerms => Reply::GetPerms {
                perms: PermList::parse(payload)?,
            },
            MessageType::TransactionStart => Reply::TransactionStart {
                tx_id: parse_decimal_as(strip_nul(payload))?,
            },
            MessageType::GetDomainPath => {
                let p = as_utf8(strip_nul(payload))?;
                path::validate(p, PathUse::Node)?;
                Reply::GetDomainPath { path: p }
            }
            MessageType::IsDomainIntroduced => match strip_nul(payload) {
                b"T" => Reply::IsDomainIntroduced { introduced: true },
                b"F" => Reply::IsDomainIntroduced { introduced: false },
                _ => return Err(WireError::UnexpectedValue),
            },
            MessageType::Control => Reply::Control { payload },
            MessageType::Error => {
                let raw = strip_nul(payload);
                if raw.is_empty() || raw.contains(&0) {
                    return Err(WireError::UnexpectedValue);
                }
                Reply::Error(ErrorReply { raw })
            }
            MessageType::WatchEvent => {
                let (p, rest) = split_first(payload)?;
                let (token, _extra) = split_first(rest)?;
                let p = as_utf8(p)?;
                if p.is_empty() {
                    return Err(WireError::InvalidPath(super::PathError::Empty));
                }
                Reply::WatchEvent { path: p, token }
            }
            MessageType::Write
            | MessageType::Mkdir
            | MessageType::Rm
            | MessageType::SetPerms
            | MessageType::Watch
            | MessageType::Unwatch
            | MessageType::ResetWatches
            | MessageType::TransactionEnd
            | MessageType::Introduce
            | MessageType::Release
            | MessageType::Resume
            | MessageType::SetTarget => {
                if strip_nul(payload) != b"OK" {
                    return Err(WireError::UnexpectedValue);
                }
                Reply::Ack { msg_type: ty }
            }
        })
    }

    /// Appends the payload bytes to `out`.
    pub fn emit_payload(&self, out: &mut Vec<u8>) {
        match *self {
            Reply::Read { value } => out.extend_from_slice(value),
            Reply::Directory { children } => out.extend_from_slice(children.as_bytes()),
            Reply::DirectoryPart {
                generation,
                children,
                complete,
            } => {
                push_decimal(out, generation);
                out.extend_from_slice(children.as_bytes());
                if complete {
                    out.push(0);
                }
            }
            Reply::GetPerms { perms } => out.extend_from_slice(perms.as_bytes()),
            Reply::TransactionStart { tx_id } => push_decimal(out, tx_id as u64),
            Reply::GetDomainPath { path } => push_str(out, path.as_bytes()),
            Reply::IsDomainIntroduced { introduced } => {
                push_str(out, if introduced { b"T" } else { b"F" })
            }
            Reply::Control { payload } => out.extend_from_slice(payload),
            Reply::Ack { .. } => push_str(out, b"OK"),
            Reply::Error(e) => push_str(out, e.raw),
            Reply::WatchEvent { path, token } => {
                push_str(out, path.as_bytes());
                push_str(out, token);
            }
        }
    }

    /// Appends header and payload to `out`; fails (leaving `out` unchanged) if the payload
    /// exceeds the limit, e.g. a directory too large for one DIRECTORY reply.
    pub fn encode(&self, req_id: u32, tx_id: u32, out: &mut Vec<u8>) -> Result<(), WireError> {
        if let Reply::WatchEvent { token, .. } = self {
            check_token(token)?;
        }
        encode_with(out, self.msg_type(), req_id, tx_id, |o| {
            self.emit_payload(o)
        })
    }
}

fn encode_with(
    out: &mut Vec<u8>,
    ty: MessageType,
    req_id: u32,
    tx_id: u32,
    emit: impl FnOnce(&mut Vec<u8>),
) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    emit(out);
    let len = out.len() - start - HEADER_LEN;
    if len > PAYLOAD_MAX {
        out.truncate(start);
        return Err(WireError::PayloadTooLong(len));
    }
    let header = Header::new(ty, req_id, tx_id, len);
    out[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
    Ok(())
}

fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let n = decimal_len(v);
    let at = out.len();
    out.resize(at + n, 0);
    write_decimal(v, &mut out[at..]);
    out.push(0);
}

fn push_perm(out: &mut Vec<u8>, p: &Permission) {
    let at = out.len();
    out.resize(at + p.encoded_len(), 0);
    p.write_to(&mut out[at..]);
    out.push(0);
}
