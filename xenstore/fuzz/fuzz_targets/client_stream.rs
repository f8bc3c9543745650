//! A hostile daemon's byte stream, split at arbitrary points, fed to the client core with
//! requests and watches outstanding: no panic, and the core stays consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::client::Connection;
use xenstore::wire::Request;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let mut c = Connection::new();
    c.register_watch(b"xsrs1");
    let ids: Vec<u32> = ["/a", "/b", "/c"]
        .iter()
        .map(|p| c.send(&Request::Read { path: p }, 0).unwrap())
        .collect();
    let chunk = (split as usize).max(1);
    for part in stream.chunks(chunk) {
        c.receive(part);
        while c.next_watch_event(b"xsrs1").is_some() {}
    }
    for id in ids {
        let _ = c.take_reply(id);
    }
    let _ = c.anomalies();
});
