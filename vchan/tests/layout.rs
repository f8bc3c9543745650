//! `struct vchan_interface` against Xen's own header: compiles a C probe with the system C
//! compiler against `/usr/include/xen/io/libxenvchan.h` (Debian's libxen-dev) and compares
//! every offset, the size and the constants.

use std::process::Command;

use vchan::layout::{self, VchanInterface};

const PROBE: &str = r#"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/io/libxenvchan.h>
#define P(name, value) printf("%s %lu\n", name, (unsigned long)(value))
int main(void) {
    P("left", offsetof(struct vchan_interface, left));
    P("right", offsetof(struct vchan_interface, right));
    P("cons", offsetof(struct ring_shared, cons));
    P("prod", offsetof(struct ring_shared, prod));
    P("ring_shared_size", sizeof(struct ring_shared));
    P("left_order", offsetof(struct vchan_interface, left_order));
    P("right_order", offsetof(struct vchan_interface, right_order));
    P("order_size", sizeof(((struct vchan_interface *)0)->left_order));
    P("cli_live", offsetof(struct vchan_interface, cli_live));
    P("srv_live", offsetof(struct vchan_interface, srv_live));
    P("cli_notify", offsetof(struct vchan_interface, cli_notify));
    P("srv_notify", offsetof(struct vchan_interface, srv_notify));
    P("grants", offsetof(struct vchan_interface, grants));
    P("grant_size", sizeof(((struct vchan_interface *)0)->grants[0]));
    P("size", sizeof(struct vchan_interface));
    P("notify_write", VCHAN_NOTIFY_WRITE);
    P("notify_read", VCHAN_NOTIFY_READ);
    return 0;
}
"#;

#[test]
fn vchan_interface_matches_libxenvchan_h() {
    let header = std::path::Path::new("/usr/include/xen/io/libxenvchan.h");
    assert!(
        header.exists(),
        "{} missing: install Debian's libxen-dev (the ABI reference)",
        header.display()
    );
    let dir = std::env::temp_dir().join(format!("vchan-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    let exe = dir.join("probe");
    std::fs::write(&src, PROBE).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "C probe failed to compile");
    let out = Command::new(&exe).output().expect("running the probe");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8(out.stdout).unwrap();
    let c: std::collections::HashMap<&str, usize> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    let ours = [
        ("left", layout::LEFT),
        ("right", layout::RIGHT),
        ("cons", layout::CONS),
        ("prod", layout::PROD),
        ("ring_shared_size", size_of::<layout::RingShared>()),
        ("left_order", layout::LEFT_ORDER),
        ("right_order", layout::RIGHT_ORDER),
        ("order_size", 2),
        ("cli_live", layout::CLI_LIVE),
        ("srv_live", layout::SRV_LIVE),
        ("cli_notify", layout::CLI_NOTIFY),
        ("srv_notify", layout::SRV_NOTIFY),
        ("grants", layout::GRANTS),
        ("grant_size", 4),
        ("size", size_of::<VchanInterface>()),
        ("notify_write", layout::NOTIFY_WRITE as usize),
        ("notify_read", layout::NOTIFY_READ as usize),
    ];
    assert_eq!(c.len(), ours.len(), "probe output: {text}");
    for (name, value) in ours {
        assert_eq!(c[name], value, "{name}: C says {}, we say {value}", c[name]);
    }
}
