//! Pack streams, pack indexes and deltas from a hostile peer.
#![no_main]

use irmin_store::pack::{apply_delta, index_pack, PackIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PackIndex::parse(data);
    // Make the trailer checksum valid sometimes so parsing goes past it.
    let _ = index_pack(data, &|_| Ok(None));
    if data.len() > 32 && data.starts_with(b"PACK") {
        let mut fixed = data[..data.len() - 20].to_vec();
        let mut h = irmin_store::hash::Sha1Hasher::new();
        h.update(&fixed);
        fixed.extend_from_slice(h.finish().as_bytes());
        let _ = index_pack(&fixed, &|_| Ok(None));
    }
    if let Some((&split, rest)) = data.split_first() {
        let at = (split as usize).min(rest.len());
        let _ = apply_delta(&rest[..at], &rest[at..]);
    }
});
