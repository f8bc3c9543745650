//! `struct vchan_interface` against Xen's own header: a C probe compiled against
//! `/usr/include/xen/io/libxenvchan.h` (Debian's libxen-dev) checks every offset, the size
//! and the constants.

use c_layout::Probe;
use vchan::layout::{self, VchanInterface};

#[test]
fn vchan_interface_matches_libxenvchan_h() {
    let mut p = Probe::new(&["xen/io/libxenvchan.h"]);
    let vi = "struct vchan_interface";
    p.check(format!("offsetof({vi}, left)"), layout::LEFT as u64)
        .check(format!("offsetof({vi}, right)"), layout::RIGHT as u64)
        .check("offsetof(struct ring_shared, cons)", layout::CONS as u64)
        .check("offsetof(struct ring_shared, prod)", layout::PROD as u64)
        .check(
            "sizeof(struct ring_shared)",
            size_of::<layout::RingShared>() as u64,
        )
        .check(
            format!("offsetof({vi}, left_order)"),
            layout::LEFT_ORDER as u64,
        )
        .check(
            format!("offsetof({vi}, right_order)"),
            layout::RIGHT_ORDER as u64,
        )
        .check(format!("sizeof((({vi} *)0)->left_order)"), 2)
        .check(format!("offsetof({vi}, cli_live)"), layout::CLI_LIVE as u64)
        .check(format!("offsetof({vi}, srv_live)"), layout::SRV_LIVE as u64)
        .check(
            format!("offsetof({vi}, cli_notify)"),
            layout::CLI_NOTIFY as u64,
        )
        .check(
            format!("offsetof({vi}, srv_notify)"),
            layout::SRV_NOTIFY as u64,
        )
        .check(format!("offsetof({vi}, grants)"), layout::GRANTS as u64)
        .check(format!("sizeof((({vi} *)0)->grants[0])"), 4)
        .check(format!("sizeof({vi})"), size_of::<VchanInterface>() as u64)
        .constant("VCHAN_NOTIFY_WRITE", layout::NOTIFY_WRITE as u64)
        .constant("VCHAN_NOTIFY_READ", layout::NOTIFY_READ as u64);
    p.assert_matches();
}
