//! Any bytes, read as a message in either direction: parsing never panics, and whatever
//! parses re-encodes to bytes that parse to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::wire::{HEADER_LEN, Packet, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let header = packet.header();
    let payload = packet.payload();
    if let Ok(request) = Request::parse(header.msg_type, payload) {
        let mut bytes = Vec::new();
        request.encode(header.req_id, header.tx_id, &mut bytes).expect("parsed request re-encodes");
        let again = Request::parse(header.msg_type, &bytes[HEADER_LEN..]).expect("re-encoded request parses");
        let mut bytes2 = Vec::new();
        again.encode(header.req_id, header.tx_id, &mut bytes2).unwrap();
        assert_eq!(bytes, bytes2);
    }
    if let Ok(reply) = Reply::parse(header.msg_type, payload) {
        let mut bytes = Vec::new();
        if reply.encode(header.req_id, header.tx_id, &mut bytes).is_ok() {
            let again = Reply::parse(header.msg_type, &bytes[HEADER_LEN..]).expect("re-encoded reply parses");
            assert_eq!(again, reply);
        }
    }
});
