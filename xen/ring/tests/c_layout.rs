//! The ring layouts against Xen's own headers: compiles a C program with the system C
//! compiler against `/usr/include/xen` (Debian's libxen-dev) and compares every offset.

use std::process::Command;

use xen_ring::{console, sring, xenstore};

const PROGRAM: &str = r#"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/io/ring.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>
#include <xen/io/blkif.h>
#include <xen/io/libxenvchan.h>
#define P(name, value) printf("%s %lu\n", name, (unsigned long)(value))
struct req12 { uint32_t a[3]; };
struct rsp8 { uint32_t a[2]; };
DEFINE_RING_TYPES(t12, struct req12, struct rsp8);
int main(void) {
    P("sring.req_prod", offsetof(struct blkif_sring, req_prod));
    P("sring.req_event", offsetof(struct blkif_sring, req_event));
    P("sring.rsp_prod", offsetof(struct blkif_sring, rsp_prod));
    P("sring.rsp_event", offsetof(struct blkif_sring, rsp_event));
    P("sring.pvt", offsetof(struct blkif_sring, pvt));
    P("sring.ring", offsetof(struct blkif_sring, ring));
    P("blkif.entry", sizeof(union blkif_sring_entry));
    P("blkif.size1", __CONST_RING_SIZE(blkif, 4096));
    P("blkif.size4", __CONST_RING_SIZE(blkif, 4 * 4096));
    P("t12.entry", sizeof(union t12_sring_entry));
    P("t12.size1", __CONST_RING_SIZE(t12, 4096));
    P("cons.in", offsetof(struct xencons_interface, in));
    P("cons.out", offsetof(struct xencons_interface, out));
    P("cons.in_size", sizeof(((struct xencons_interface *)0)->in));
    P("cons.out_size", sizeof(((struct xencons_interface *)0)->out));
    P("cons.in_cons", offsetof(struct xencons_interface, in_cons));
    P("cons.in_prod", offsetof(struct xencons_interface, in_prod));
    P("cons.out_cons", offsetof(struct xencons_interface, out_cons));
    P("cons.out_prod", offsetof(struct xencons_interface, out_prod));
    P("cons.size", sizeof(struct xencons_interface));
    P("xs.req", offsetof(struct xenstore_domain_interface, req));
    P("xs.rsp", offsetof(struct xenstore_domain_interface, rsp));
    P("xs.req_cons", offsetof(struct xenstore_domain_interface, req_cons));
    P("xs.req_prod", offsetof(struct xenstore_domain_interface, req_prod));
    P("xs.rsp_cons", offsetof(struct xenstore_domain_interface, rsp_cons));
    P("xs.rsp_prod", offsetof(struct xenstore_domain_interface, rsp_prod));
    P("xs.server_features", offsetof(struct xenstore_domain_interface, server_features));
    P("xs.connection", offsetof(struct xenstore_domain_interface, connection));
    P("xs.error", offsetof(struct xenstore_domain_interface, error));
    P("xs.size", sizeof(struct xenstore_domain_interface));
    P("xs.ring_size", XENSTORE_RING_SIZE);
    P("vchan.left_cons", offsetof(struct vchan_interface, left.cons));
    P("vchan.left_prod", offsetof(struct vchan_interface, left.prod));
    P("vchan.right_cons", offsetof(struct vchan_interface, right.cons));
    P("vchan.right_prod", offsetof(struct vchan_interface, right.prod));
    return 0;
}
"#;

#[test]
fn offsets_match_xen_headers() {
    let header = std::path::Path::new("/usr/include/xen/io/ring.h");
    assert!(
        header.exists(),
        "{} missing: install Debian's libxen-dev (the ABI reference)",
        header.display()
    );
    let dir = std::env::temp_dir().join(format!("xen-ring-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, PROGRAM).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "compiling {}", src.display());
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8(out.stdout).unwrap();
    let c = |name: &str| -> usize {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} not printed"))
            .parse()
            .unwrap()
    };
    assert_eq!(c("sring.req_prod"), sring::REQ_PROD);
    assert_eq!(c("sring.req_event"), sring::REQ_EVENT);
    assert_eq!(c("sring.rsp_prod"), sring::RSP_PROD);
    assert_eq!(c("sring.rsp_event"), sring::RSP_EVENT);
    assert_eq!(c("sring.pvt"), sring::PVT);
    assert_eq!(c("sring.ring"), sring::HEADER_SIZE);
    assert_eq!(
        c("blkif.size1"),
        sring::ring_size(4096, c("blkif.entry")) as usize
    );
    assert_eq!(
        c("blkif.size4"),
        sring::ring_size(4 * 4096, c("blkif.entry")) as usize
    );
    assert_eq!(c("t12.entry"), sring::entry_size::<[u32; 3], [u32; 2]>());
    assert_eq!(c("t12.size1"), sring::ring_size(4096, 12) as usize);
    assert_eq!(c("cons.in"), console::IN);
    assert_eq!(c("cons.out"), console::OUT);
    assert_eq!(c("cons.in_size"), console::IN_SIZE);
    assert_eq!(c("cons.out_size"), console::OUT_SIZE);
    assert_eq!(c("cons.in_cons"), console::IN_CONS);
    assert_eq!(c("cons.in_prod"), console::IN_PROD);
    assert_eq!(c("cons.out_cons"), console::OUT_CONS);
    assert_eq!(c("cons.out_prod"), console::OUT_PROD);
    assert_eq!(c("cons.size"), console::INTERFACE_SIZE);
    assert_eq!(c("xs.req"), xenstore::REQ);
    assert_eq!(c("xs.rsp"), xenstore::RSP);
    assert_eq!(c("xs.req_cons"), xenstore::REQ_CONS);
    assert_eq!(c("xs.req_prod"), xenstore::REQ_PROD);
    assert_eq!(c("xs.rsp_cons"), xenstore::RSP_CONS);
    assert_eq!(c("xs.rsp_prod"), xenstore::RSP_PROD);
    assert_eq!(c("xs.server_features"), xenstore::SERVER_FEATURES);
    assert_eq!(c("xs.connection"), xenstore::CONNECTION);
    assert_eq!(c("xs.error"), xenstore::ERROR);
    assert_eq!(c("xs.size"), xenstore::INTERFACE_SIZE);
    assert_eq!(c("xs.ring_size"), xenstore::RING_SIZE);
    // The byte-ring tests attach vchan ends at these offsets.
    assert_eq!(
        (
            c("vchan.left_cons"),
            c("vchan.left_prod"),
            c("vchan.right_cons"),
            c("vchan.right_prod")
        ),
        (0, 4, 8, 12)
    );
}
