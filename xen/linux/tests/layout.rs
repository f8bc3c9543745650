//! Checks the ioctl structs and numbers of `xen_linux::uapi` against the Linux UAPI headers
//! Debian's libxen-dev ships (`/usr/include/xen/sys/{evtchn,gntdev,gntalloc}.h`): a C
//! program compiled against them prints `sizeof`/`offsetof`/constant values, and each must
//! equal the Rust one. Needs gcc and libxen-dev (`cargo xtask setup` installs them).

use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use xen_linux::uapi::*;

struct Check {
    c_expr: String,
    rust: u64,
}

macro_rules! layout {
    ($checks:ident, $rust:ty = $c:literal { $($field:ident => $cfield:literal),* $(,)? }) => {{
        $checks.push(Check { c_expr: format!("sizeof({})", $c), rust: size_of::<$rust>() as u64 });
        $($checks.push(Check {
            c_expr: format!("offsetof({}, {})", $c, $cfield),
            rust: offset_of!($rust, $field) as u64,
        });)*
    }};
}

fn checks() -> Vec<Check> {
    let mut c = Vec::new();
    layout!(c, EvtchnBindVirq = "struct ioctl_evtchn_bind_virq" { virq => "virq" });
    layout!(c, EvtchnBindInterdomain = "struct ioctl_evtchn_bind_interdomain" {
        remote_domain => "remote_domain", remote_port => "remote_port",
    });
    layout!(c, EvtchnBindUnboundPort = "struct ioctl_evtchn_bind_unbound_port" {
        remote_domain => "remote_domain",
    });
    layout!(c, EvtchnPort = "struct ioctl_evtchn_unbind" { port => "port" });
    layout!(c, EvtchnPort = "struct ioctl_evtchn_notify" { port => "port" });
    layout!(c, GntdevGrantRef = "struct ioctl_gntdev_grant_ref" {
        domid => "domid", gref => "ref",
    });
    // The head of the variable-length struct: its fields, and refs[] right after it.
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntdev_map_grant_ref, refs)".into(),
        rust: size_of::<GntdevMapGrantRefHead>() as u64,
    });
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntdev_map_grant_ref, count)".into(),
        rust: offset_of!(GntdevMapGrantRefHead, count) as u64,
    });
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntdev_map_grant_ref, index)".into(),
        rust: offset_of!(GntdevMapGrantRefHead, index) as u64,
    });
    layout!(c, GntdevUnmapGrantRef = "struct ioctl_gntdev_unmap_grant_ref" {
        index => "index", count => "count",
    });
    layout!(c, UnmapNotify = "struct ioctl_gntdev_unmap_notify" {
        index => "index", action => "action", event_channel_port => "event_channel_port",
    });
    layout!(c, UnmapNotify = "struct ioctl_gntalloc_unmap_notify" {
        index => "index", action => "action", event_channel_port => "event_channel_port",
    });
    layout!(c, GntdevGrantCopySegment = "struct ioctl_gntdev_grant_copy_segment" {
        source => "source", dest => "dest", len => "len", flags => "flags", status => "status",
    });
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.ref)".into(),
        rust: 0,
    });
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.offset)".into(),
        rust: 4,
    });
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.domid)".into(),
        rust: 6,
    });
    layout!(c, GntdevGrantCopy = "struct ioctl_gntdev_grant_copy" {
        count => "count", segments => "segments",
    });
    c.push(Check {
        c_expr: "offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids)".into(),
        rust: size_of::<GntallocAllocGrefHead>() as u64,
    });
    for (field, rust) in [
        ("domid", offset_of!(GntallocAllocGrefHead, domid)),
        ("flags", offset_of!(GntallocAllocGrefHead, flags)),
        ("count", offset_of!(GntallocAllocGrefHead, count)),
        ("index", offset_of!(GntallocAllocGrefHead, index)),
    ] {
        c.push(Check {
            c_expr: format!("offsetof(struct ioctl_gntalloc_alloc_gref, {field})"),
            rust: rust as u64,
        });
    }
    c.push(Check {
        c_expr: "sizeof(struct ioctl_gntalloc_alloc_gref)".into(),
        rust: GNTALLOC_ALLOC_GREF_SIZE as u64,
    });
    layout!(c, GntallocDeallocGref = "struct ioctl_gntalloc_dealloc_gref" {
        index => "index", count => "count",
    });

    let mut k = |expr: &str, v: u64| {
        c.push(Check {
            c_expr: expr.into(),
            rust: v,
        })
    };
    k("IOCTL_EVTCHN_BIND_VIRQ", IOCTL_EVTCHN_BIND_VIRQ);
    k(
        "IOCTL_EVTCHN_BIND_INTERDOMAIN",
        IOCTL_EVTCHN_BIND_INTERDOMAIN,
    );
    k(
        "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
        IOCTL_EVTCHN_BIND_UNBOUND_PORT,
    );
    k("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND);
    k("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY);
    k("IOCTL_EVTCHN_RESET", IOCTL_EVTCHN_RESET);
    k("IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF);
    k("IOCTL_GNTDEV_UNMAP_GRANT_REF", IOCTL_GNTDEV_UNMAP_GRANT_REF);
    k(
        "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
        IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
    );
    k("IOCTL_GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY);
    k("IOCTL_GNTALLOC_ALLOC_GREF", IOCTL_GNTALLOC_ALLOC_GREF);
    k("IOCTL_GNTALLOC_DEALLOC_GREF", IOCTL_GNTALLOC_DEALLOC_GREF);
    k(
        "IOCTL_GNTALLOC_SET_UNMAP_NOTIFY",
        IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
    );
    k("GNTALLOC_FLAG_WRITABLE", GNTALLOC_FLAG_WRITABLE.into());
    k("UNMAP_NOTIFY_CLEAR_BYTE", UNMAP_NOTIFY_CLEAR_BYTE.into());
    k("UNMAP_NOTIFY_SEND_EVENT", UNMAP_NOTIFY_SEND_EVENT.into());
    k("GNTCOPY_source_gref", GNTCOPY_SOURCE_GREF.into());
    k("GNTCOPY_dest_gref", GNTCOPY_DEST_GREF.into());
    c
}

fn run_c(checks: &[Check]) -> Vec<u64> {
    for h in ["evtchn.h", "gntdev.h", "gntalloc.h"] {
        let path = Path::new("/usr/include/xen/sys").join(h);
        assert!(
            path.exists(),
            "{} is missing: install Debian's libxen-dev (cargo xtask setup does)",
            path.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("xen-linux-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut src = String::from(
        "#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n\
         #include <sys/ioctl.h>\n#include <xen/xen.h>\n#include <xen/grant_table.h>\n\
         #include <xen/sys/evtchn.h>\n#include <xen/sys/gntdev.h>\n\
         #include <xen/sys/gntalloc.h>\n\
         int main(void) {\n",
    );
    for c in checks {
        src.push_str(&format!(
            "    printf(\"%llu\\n\", (unsigned long long)({}));\n",
            c.c_expr
        ));
    }
    src.push_str("    return 0;\n}\n");
    let c_file = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c_file, src).unwrap();
    let out = Command::new("gcc")
        .args([
            "-std=gnu11",
            "-D__XEN_INTERFACE_VERSION__=__XEN_LATEST_INTERFACE_VERSION__",
        ])
        .arg(&c_file)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("gcc must be installed to check the ioctl layouts");
    assert!(
        out.status.success(),
        "compiling the layout probe failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn ioctl_structs_and_numbers_match_the_linux_uapi_headers() {
    let checks = checks();
    let c_values = run_c(&checks);
    assert_eq!(c_values.len(), checks.len());
    let mismatches: Vec<String> = checks
        .iter()
        .zip(&c_values)
        .filter(|(check, c)| check.rust != **c)
        .map(|(check, c)| format!("{}: C says {c}, Rust has {}", check.c_expr, check.rust))
        .collect();
    assert!(
        mismatches.is_empty(),
        "mismatches against /usr/include/xen/sys:\n{}",
        mismatches.join("\n")
    );
}
