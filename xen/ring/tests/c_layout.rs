//! The ring layouts against Xen's own headers: a C probe compiled against
//! `/usr/include/xen` (Debian's libxen-dev) checks every offset and ring size.

use c_layout::Probe;
use xen_ring::{console, sring, xenstore};

/// `sizeof(union blkif_sring_entry)` on x86_64: a 112-byte request is the larger member.
const BLKIF_ENTRY: usize = 112;

#[test]
fn offsets_match_xen_headers() {
    let mut p = Probe::new(&[
        "xen/io/ring.h",
        "xen/io/console.h",
        "xen/io/xs_wire.h",
        "xen/io/blkif.h",
        "xen/io/libxenvchan.h",
    ]);
    p.prelude(
        "struct req12 { uint32_t a[3]; };\n\
         struct rsp8 { uint32_t a[2]; };\n\
         DEFINE_RING_TYPES(t12, struct req12, struct rsp8);",
    );
    let u = |v: usize| v as u64;
    let sr = "struct blkif_sring";
    p.check(format!("offsetof({sr}, req_prod)"), u(sring::REQ_PROD))
        .check(format!("offsetof({sr}, req_event)"), u(sring::REQ_EVENT))
        .check(format!("offsetof({sr}, rsp_prod)"), u(sring::RSP_PROD))
        .check(format!("offsetof({sr}, rsp_event)"), u(sring::RSP_EVENT))
        .check(format!("offsetof({sr}, pvt)"), u(sring::PVT))
        .check(format!("offsetof({sr}, ring)"), u(sring::HEADER_SIZE))
        .check("sizeof(union blkif_sring_entry)", u(BLKIF_ENTRY))
        .check(
            "__CONST_RING_SIZE(blkif, 4096)",
            sring::ring_size(4096, BLKIF_ENTRY) as u64,
        )
        .check(
            "__CONST_RING_SIZE(blkif, 4 * 4096)",
            sring::ring_size(4 * 4096, BLKIF_ENTRY) as u64,
        )
        .check(
            "sizeof(union t12_sring_entry)",
            u(sring::entry_size::<[u32; 3], [u32; 2]>()),
        )
        .check(
            "__CONST_RING_SIZE(t12, 4096)",
            sring::ring_size(4096, 12) as u64,
        );
    let ci = "struct xencons_interface";
    p.check(format!("offsetof({ci}, in)"), u(console::IN))
        .check(format!("offsetof({ci}, out)"), u(console::OUT))
        .check(format!("sizeof((({ci} *)0)->in)"), u(console::IN_SIZE))
        .check(format!("sizeof((({ci} *)0)->out)"), u(console::OUT_SIZE))
        .check(format!("offsetof({ci}, in_cons)"), u(console::IN_CONS))
        .check(format!("offsetof({ci}, in_prod)"), u(console::IN_PROD))
        .check(format!("offsetof({ci}, out_cons)"), u(console::OUT_CONS))
        .check(format!("offsetof({ci}, out_prod)"), u(console::OUT_PROD))
        .check(format!("sizeof({ci})"), u(console::INTERFACE_SIZE));
    let xi = "struct xenstore_domain_interface";
    p.check(format!("offsetof({xi}, req)"), u(xenstore::REQ))
        .check(format!("offsetof({xi}, rsp)"), u(xenstore::RSP))
        .check(format!("offsetof({xi}, req_cons)"), u(xenstore::REQ_CONS))
        .check(format!("offsetof({xi}, req_prod)"), u(xenstore::REQ_PROD))
        .check(format!("offsetof({xi}, rsp_cons)"), u(xenstore::RSP_CONS))
        .check(format!("offsetof({xi}, rsp_prod)"), u(xenstore::RSP_PROD))
        .check(
            format!("offsetof({xi}, server_features)"),
            u(xenstore::SERVER_FEATURES),
        )
        .check(
            format!("offsetof({xi}, connection)"),
            u(xenstore::CONNECTION),
        )
        .check(format!("offsetof({xi}, error)"), u(xenstore::ERROR))
        .check(format!("sizeof({xi})"), u(xenstore::INTERFACE_SIZE))
        .constant("XENSTORE_RING_SIZE", u(xenstore::RING_SIZE));
    // The byte-ring tests attach vchan ends at these offsets.
    let vi = "struct vchan_interface";
    p.check(format!("offsetof({vi}, left.cons)"), 0)
        .check(format!("offsetof({vi}, left.prod)"), 4)
        .check(format!("offsetof({vi}, right.cons)"), 8)
        .check(format!("offsetof({vi}, right.prod)"), 12);
    p.assert_matches();
}
