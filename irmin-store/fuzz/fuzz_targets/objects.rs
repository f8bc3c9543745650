//! Object parsers: loose-object header, tree, commit, tag, zlib. Decoding must never
//! panic, and whatever decodes must re-decode to the same value after encoding.
#![no_main]

use irmin_store::object::{parse_object_header, Commit, Tag, Tree};
use irmin_store::zlib;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_object_header(data);
    let _ = Tag::decode(data);
    if let Ok(t) = Tree::decode(data) {
        let enc = t.encode();
        assert_eq!(enc, data, "trees are canonical: decode accepts only what encode makes");
    }
    if let Ok(c) = Commit::decode(data) {
        assert_eq!(Commit::decode(&c.encode()).unwrap(), c);
    }
    if let Ok(inflated) = zlib::inflate_limited(data, 1 << 20) {
        let _ = parse_object_header(&inflated);
    }
    if data.len() > 4 {
        let claimed = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let _ = zlib::inflate_exact(&data[4..], claimed);
    }
});
