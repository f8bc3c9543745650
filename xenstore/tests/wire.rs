//! Codec properties: every request and reply survives encode -> parse -> encode, parsing
//! arbitrary bytes never panics, and the path/permission/error rules hold.

use proptest::prelude::*;
use xenstore::client::Connection;
use xenstore::wire::{
    ABS_PATH_MAX, Access, ErrorCode, ErrorReply, HEADER_LEN, Header, MessageType, PAYLOAD_MAX,
    Packet, PathError, PathUse, PermList, Permission, Perms, REL_PATH_MAX, Reply, Request,
    StringList, WireError, frame_len, path,
};

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_@-]{1,12}"
}

fn abs_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..6).prop_map(|segs| {
        if segs.is_empty() {
            "/".to_string()
        } else {
            format!("/{}", segs.join("/"))
        }
    })
}

fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        abs_path(),
        prop::collection::vec(segment(), 1..4).prop_map(|s| s.join("/")),
        Just("@introduceDomain".to_string()),
        Just("@releaseDomain".to_string()),
    ]
}

fn node_path() -> impl Strategy<Value = String> {
    any_path().prop_filter("node", |p| !p.starts_with('@'))
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..24)
}

fn perm() -> impl Strategy<Value = Permission> {
    (
        any::<u16>(),
        prop_oneof![
            Just(Access::None),
            Just(Access::Read),
            Just(Access::Write),
            Just(Access::Both)
        ],
    )
        .prop_map(|(d, a)| Permission::new(d, a))
}

#[derive(Debug, Clone)]
enum OwnedRequest {
    Read(String),
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    Directory(String),
    DirectoryPart(String, u32),
    GetPerms(String),
    SetPerms(String, Vec<Permission>),
    Watch(String, Vec<u8>),
    Unwatch(String, Vec<u8>),
    ResetWatches,
    TransactionStart,
    TransactionEnd(bool),
    Introduce(u16, u64, u32),
    Release(u16),
    GetDomainPath(u16),
    IsDomainIntroduced(u16),
    Resume(u16),
    SetTarget(u16, u16),
    Control(Vec<String>),
}

impl OwnedRequest {
    fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let control;
        let req = match self {
            OwnedRequest::Read(p) => Request::Read { path: p },
            OwnedRequest::Write(p, v) => Request::Write { path: p, value: v },
            OwnedRequest::Mkdir(p) => Request::Mkdir { path: p },
            OwnedRequest::Rm(p) => Request::Rm { path: p },
            OwnedRequest::Directory(p) => Request::Directory { path: p },
            OwnedRequest::DirectoryPart(p, o) => Request::DirectoryPart {
                path: p,
                offset: *o,
            },
            OwnedRequest::GetPerms(p) => Request::GetPerms { path: p },
            OwnedRequest::SetPerms(p, l) => Request::SetPerms {
                path: p,
                perms: Perms::List(l),
            },
            OwnedRequest::Watch(p, t) => Request::Watch { path: p, token: t },
            OwnedRequest::Unwatch(p, t) => Request::Unwatch { path: p, token: t },
            OwnedRequest::ResetWatches => Request::ResetWatches,
            OwnedRequest::TransactionStart => Request::TransactionStart,
            OwnedRequest::TransactionEnd(c) => Request::TransactionEnd { commit: *c },
            OwnedRequest::Introduce(d, g, p) => Request::Introduce {
                domid: *d,
                gfn: *g,
                port: *p,
            },
            OwnedRequest::Release(d) => Request::Release { domid: *d },
            OwnedRequest::GetDomainPath(d) => Request::GetDomainPath { domid: *d },
            OwnedRequest::IsDomainIntroduced(d) => Request::IsDomainIntroduced { domid: *d },
            OwnedRequest::Resume(d) => Request::Resume { domid: *d },
            OwnedRequest::SetTarget(d, t) => Request::SetTarget {
                domid: *d,
                target: *t,
            },
            OwnedRequest::Control(args) => {
                control = args
                    .iter()
                    .flat_map(|a| a.bytes().chain([0]))
                    .collect::<Vec<u8>>();
                Request::Control { payload: &control }
            }
        };
        f(&req)
    }
}

fn request() -> impl Strategy<Value = OwnedRequest> {
    prop_oneof![
        node_path().prop_map(OwnedRequest::Read),
        (node_path(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(p, v)| OwnedRequest::Write(p, v)),
        node_path().prop_map(OwnedRequest::Mkdir),
        node_path().prop_map(OwnedRequest::Rm),
        node_path().prop_map(OwnedRequest::Directory),
        (node_path(), any::<u32>()).prop_map(|(p, o)| OwnedRequest::DirectoryPart(p, o)),
        any_path().prop_map(OwnedRequest::GetPerms),
        (any_path(), prop::collection::vec(perm(), 1..6))
            .prop_map(|(p, l)| OwnedRequest::SetPerms(p, l)),
        (any_path(), token()).prop_map(|(p, t)| OwnedRequest::Watch(p, t)),
        (any_path(), token()).prop_map(|(p, t)| OwnedRequest::Unwatch(p, t)),
        Just(OwnedRequest::ResetWatches),
        Just(OwnedRequest::TransactionStart),
        any::<bool>().prop_map(OwnedRequest::TransactionEnd),
        (any::<u16>(), any::<u64>(), any::<u32>())
            .prop_map(|(d, g, p)| OwnedRequest::Introduce(d, g, p)),
        any::<u16>().prop_map(OwnedRequest::Release),
        any::<u16>().prop_map(OwnedRequest::GetDomainPath),
        any::<u16>().prop_map(OwnedRequest::IsDomainIntroduced),
        any::<u16>().prop_map(OwnedRequest::Resume),
        (any::<u16>(), any::<u16>()).prop_map(|(d, t)| OwnedRequest::SetTarget(d, t)),
        prop::collection::vec("[a-z-]{1,10}", 1..4).prop_map(OwnedRequest::Control),
    ]
}

proptest! {
    #[test]
    fn request_round_trips(req in request(), req_id: u32, tx_id: u32) {
        req.with(|r| {
            let mut bytes = Vec::new();
            r.encode(req_id, tx_id, &mut bytes).unwrap();
            prop_assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(packet.req_id(), req_id);
            prop_assert_eq!(packet.tx_id(), tx_id);
            prop_assert_eq!(packet.msg_type(), Ok(r.msg_type()));
            let parsed = Request::parse(packet.msg_type_raw(), packet.payload()).unwrap();
            match (r, &parsed) {
                (Request::SetPerms { path: a, perms: pa }, Request::SetPerms { path: b, perms: pb }) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(pa.to_vec(), pb.to_vec());
                }
                _ => prop_assert_eq!(r, &parsed),
            }
            let mut again = Vec::new();
            parsed.encode(req_id, tx_id, &mut again).unwrap();
            prop_assert_eq!(again, bytes);
            Ok(())
        })?;
    }

    #[test]
    fn reply_round_trips(
        children in prop::collection::vec("[a-z0-9_-]{1,16}", 0..20),
        perms in prop::collection::vec(perm(), 1..5),
        value in prop::collection::vec(any::<u8>(), 0..128),
        path in node_path(),
        tok in token(),
        generation: u64,
        tx: u32,
        complete: bool,
        flag: bool,
        code in prop::sample::select(ErrorCode::ALL.to_vec()),
    ) {
        let list: Vec<u8> = children.iter().flat_map(|c| c.bytes().chain([0])).collect();
        let perm_bytes: Vec<u8> = perms.iter().flat_map(|p| p.to_string().into_bytes().into_iter().chain([0])).collect();
        let replies = [
            Reply::Read { value: &value },
            Reply::Directory { children: StringList::parse(&list).unwrap() },
            Reply::DirectoryPart { generation, children: StringList::parse(&list).unwrap(), complete: complete || children.is_empty() },
            Reply::GetPerms { perms: PermList::parse(&perm_bytes).unwrap() },
            Reply::TransactionStart { tx_id: tx },
            Reply::GetDomainPath { path: &path },
            Reply::IsDomainIntroduced { introduced: flag },
            Reply::Ack { msg_type: MessageType::Write },
            Reply::Ack { msg_type: MessageType::TransactionEnd },
            Reply::Error(ErrorReply::new(code)),
            Reply::WatchEvent { path: &path, token: &tok },
        ];
        for reply in replies {
            let mut bytes = Vec::new();
            reply.encode(7, 0, &mut bytes).unwrap();
            let header = Header::parse(&bytes).unwrap();
            let parsed = Reply::parse(header.msg_type, &bytes[HEADER_LEN..]).unwrap();
            prop_assert_eq!(parsed, reply);
        }
        prop_assert_eq!(perms.clone(), PermList::parse(&perm_bytes).unwrap().to_vec());
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(ty in 0u32..30, payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::parse(ty, &payload);
        let _ = Reply::parse(ty, &payload);
        let _ = Header::parse(&payload);
        let _ = frame_len(&payload);
        let _ = PermList::parse(&payload);
        let mut c = Connection::new();
        c.register_watch(b"t");
        c.receive(&payload);
    }

    #[test]
    fn valid_generated_paths_validate(p in any_path()) {
        prop_assert_eq!(path::validate(&p, PathUse::SpecialAllowed), Ok(()));
    }
}

#[test]
fn path_rules_match_cxenstored() {
    use PathUse::*;
    assert_eq!(path::validate("/", Node), Ok(()));
    assert_eq!(path::validate("/local/domain/0/name", Node), Ok(()));
    assert_eq!(path::validate("device/vif/0", Node), Ok(()));
    assert_eq!(path::validate("", Node), Err(PathError::Empty));
    assert_eq!(path::validate("/a/", Node), Err(PathError::TrailingSlash));
    assert_eq!(path::validate("/a//b", Node), Err(PathError::DoubleSlash));
    assert_eq!(path::validate("/a b", Node), Err(PathError::InvalidChar(2)));
    assert_eq!(path::validate("/a.b", Node), Err(PathError::InvalidChar(2)));
    assert_eq!(
        path::validate("@releaseDomain", Node),
        Err(PathError::SpecialNotAllowed)
    );
    assert_eq!(path::validate("@releaseDomain", SpecialAllowed), Ok(()));
    let long_abs = format!("/{}", "a".repeat(ABS_PATH_MAX));
    assert_eq!(path::validate(&long_abs, Node), Err(PathError::TooLong));
    // Below /local/domain/N/ the relative limit applies.
    let ok_rel = format!("/local/domain/12/{}", "b".repeat(REL_PATH_MAX));
    assert_eq!(path::validate(&ok_rel, Node), Ok(()));
    let long_rel = format!("/local/domain/12/{}", "b".repeat(REL_PATH_MAX + 1));
    assert_eq!(path::validate(&long_rel, Node), Err(PathError::TooLong));
    // Elsewhere the whole path counts.
    assert_eq!(
        path::validate(&format!("/tool/{}", "d".repeat(2042)), Node),
        Ok(())
    );
    assert_eq!(
        path::validate(&format!("/tool/{}", "d".repeat(2043)), Node),
        Err(PathError::TooLong)
    );
    assert_eq!(
        path::validate(&"c".repeat(REL_PATH_MAX + 1), Node),
        Err(PathError::TooLong)
    );
    assert_eq!(path::validate(&"c".repeat(REL_PATH_MAX), Node), Ok(()));
}

#[test]
fn requests_with_bad_fields_are_rejected() {
    let e = |ty: MessageType, p: &[u8]| Request::parse(ty as u32, p).unwrap_err();
    assert_eq!(e(MessageType::Read, b"/a"), WireError::MissingNul);
    assert_eq!(
        e(MessageType::Read, b"/a\0/b\0"),
        WireError::ArgumentCount {
            expected: 1,
            found: 2
        }
    );
    assert_eq!(
        e(MessageType::Read, b"/a b\0"),
        WireError::InvalidPath(PathError::InvalidChar(2))
    );
    assert_eq!(e(MessageType::Read, b"\xff\0"), WireError::NotUtf8);
    assert_eq!(e(MessageType::Write, b"/a"), WireError::MissingNul);
    assert_eq!(
        e(MessageType::DirectoryPart, b"/a\0-1\0"),
        WireError::InvalidNumber
    );
    assert_eq!(
        e(MessageType::SetPerms, b"/a\0"),
        WireError::ArgumentCount {
            expected: 1,
            found: 0
        }
    );
    assert_eq!(
        e(MessageType::SetPerms, b"/a\0x1\0"),
        WireError::InvalidPermission
    );
    assert_eq!(
        e(MessageType::SetPerms, b"/a\0r70000\0"),
        WireError::InvalidPermission
    );
    assert_eq!(
        e(MessageType::TransactionEnd, b"X\0"),
        WireError::UnexpectedValue
    );
    assert_eq!(
        e(MessageType::Release, b"65536\0"),
        WireError::InvalidNumber
    );
    assert_eq!(
        e(MessageType::WatchEvent, b"/a\0t\0"),
        WireError::UnexpectedMessageType(15)
    );
    assert_eq!(
        Request::parse(20, b"").unwrap_err(),
        WireError::UnknownMessageType(20)
    );
    assert_eq!(
        Request::parse(0xffff, b"").unwrap_err(),
        WireError::UnknownMessageType(0xffff)
    );
    // WRITE values may contain nuls.
    assert_eq!(
        Request::parse(MessageType::Write as u32, b"/a\0x\0y").unwrap(),
        Request::Write {
            path: "/a",
            value: b"x\0y"
        }
    );
    // Oversized payloads are refused when encoding, leaving the buffer untouched.
    let mut out = vec![1, 2, 3];
    let big = vec![b'v'; PAYLOAD_MAX];
    assert_eq!(
        Request::Write {
            path: "/a",
            value: &big
        }
        .encode(1, 0, &mut out),
        Err(WireError::PayloadTooLong(PAYLOAD_MAX + 3))
    );
    assert_eq!(out, [1, 2, 3]);
    assert_eq!(
        Request::Watch {
            path: "/a",
            token: b"bad\0token"
        }
        .encode(1, 0, &mut out),
        Err(WireError::InvalidArgument)
    );
}

#[test]
fn replies_in_both_daemon_dialects() {
    let ty = |t: MessageType| t as u32;
    // Acks and scalar replies with or without the trailing nul.
    assert!(matches!(
        Reply::parse(ty(MessageType::Write), b"OK\0"),
        Ok(Reply::Ack { .. })
    ));
    assert!(matches!(
        Reply::parse(ty(MessageType::Write), b"OK"),
        Ok(Reply::Ack { .. })
    ));
    assert_eq!(
        Reply::parse(ty(MessageType::Write), b"NO\0"),
        Err(WireError::UnexpectedValue)
    );
    assert_eq!(
        Reply::parse(ty(MessageType::TransactionStart), b"17\0"),
        Ok(Reply::TransactionStart { tx_id: 17 })
    );
    assert_eq!(
        Reply::parse(ty(MessageType::GetDomainPath), b"/local/domain/3"),
        Ok(Reply::GetDomainPath {
            path: "/local/domain/3"
        })
    );
    // DIRECTORY_PART: end marked by an extra empty string.
    match Reply::parse(ty(MessageType::DirectoryPart), b"5\0a\0b\0\0").unwrap() {
        Reply::DirectoryPart {
            generation: 5,
            children,
            complete: true,
        } => {
            assert_eq!(children.iter().collect::<Vec<_>>(), ["a", "b"])
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Reply::parse(ty(MessageType::DirectoryPart), b"5\0a\0"),
        Ok(Reply::DirectoryPart {
            complete: false,
            ..
        })
    ));
    assert!(matches!(
        Reply::parse(ty(MessageType::DirectoryPart), b"5\0\0"),
        Ok(Reply::DirectoryPart { complete: true, .. })
    ));
    assert_eq!(
        Reply::parse(ty(MessageType::Directory), b"a\0b"),
        Err(WireError::MissingNul)
    );
    assert_eq!(
        Reply::parse(ty(MessageType::Error), b"EQUOTA\0").map(|r| match r {
            Reply::Error(e) => e.code(),
            _ => None,
        }),
        Ok(Some(ErrorCode::EQUOTA))
    );
}

#[test]
fn error_codes_round_trip() {
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_wire(code.as_str().as_bytes()), Some(code));
    }
    assert_eq!(ErrorCode::from_wire(b"EWHATEVER"), None);
}

#[test]
fn header_limits() {
    let mut h = Header {
        msg_type: 2,
        req_id: 1,
        tx_id: 0,
        len: PAYLOAD_MAX as u32 + 1,
    }
    .to_bytes();
    assert_eq!(
        Header::parse(&h),
        Err(WireError::PayloadTooLong(PAYLOAD_MAX + 1))
    );
    assert_eq!(
        frame_len(&h),
        Err(WireError::PayloadTooLong(PAYLOAD_MAX + 1))
    );
    h[12..].copy_from_slice(&4u32.to_ne_bytes());
    assert_eq!(frame_len(&h), Ok(None));
    assert_eq!(Header::parse(&h[..15]), Err(WireError::Truncated));
    assert_eq!(
        Packet::new_checked(&h[..]).unwrap_err(),
        WireError::Truncated
    );
    assert_eq!(MessageType::try_from(21), Ok(MessageType::ResetWatches));
    assert_eq!(MessageType::try_from(22), Ok(MessageType::DirectoryPart));
}

#[test]
fn daemon_side_decoding() {
    use xenstore::wire::decode_request;
    let mut frame = Vec::new();
    Request::Write {
        path: "/a",
        value: b"v",
    }
    .encode(9, 3, &mut frame)
    .unwrap();
    let (header, request) = decode_request(&frame).unwrap();
    assert_eq!((header.req_id, header.tx_id), (9, 3));
    assert_eq!(
        request,
        Ok(Request::Write {
            path: "/a",
            value: b"v"
        })
    );
    // Well framed, bad payload: answered with EINVAL under the same req_id.
    let bad = [
        &Header {
            msg_type: 2,
            req_id: 5,
            tx_id: 0,
            len: 3,
        }
        .to_bytes()[..],
        b"a b",
    ]
    .concat();
    let (header, request) = decode_request(&bad).unwrap();
    assert_eq!(header.req_id, 5);
    assert_eq!(request.unwrap_err().error_code(), ErrorCode::EINVAL);
    let unknown = Header {
        msg_type: 20,
        req_id: 6,
        tx_id: 0,
        len: 0,
    }
    .to_bytes();
    assert_eq!(
        decode_request(&unknown).unwrap().1,
        Err(WireError::UnknownMessageType(20))
    );
    assert_eq!(
        decode_request(&frame[..frame.len() - 1]).unwrap_err(),
        WireError::Truncated
    );
    assert_eq!(
        WireError::PayloadTooLong(5000).error_code(),
        ErrorCode::E2BIG
    );
}
