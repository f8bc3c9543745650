//! Checks the ioctl structs and numbers of `xen_linux::uapi` against the Linux UAPI headers
//! Debian's libxen-dev ships (`/usr/include/xen/sys/{evtchn,gntdev,gntalloc}.h`): a C
//! program compiled against them prints `sizeof`/`offsetof`/constant values, and each must
//! equal the Rust one. Needs gcc and libxen-dev (`cargo xtask setup` installs them).

use std::mem::{offset_of, size_of};

use c_layout::{Probe, layout};

use xen_linux::uapi::*;

fn probe() -> Probe {
    let mut c = Probe::new(&[
        "sys/ioctl.h",
        "xen/xen.h",
        "xen/grant_table.h",
        "xen/sys/evtchn.h",
        "xen/sys/gntdev.h",
        "xen/sys/gntalloc.h",
    ]);
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
    c.check(
        "offsetof(struct ioctl_gntdev_map_grant_ref, refs)",
        size_of::<GntdevMapGrantRefHead>() as u64,
    );
    c.check(
        "offsetof(struct ioctl_gntdev_map_grant_ref, count)",
        offset_of!(GntdevMapGrantRefHead, count) as u64,
    );
    c.check(
        "offsetof(struct ioctl_gntdev_map_grant_ref, index)",
        offset_of!(GntdevMapGrantRefHead, index) as u64,
    );
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
    c.check(
        "offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.ref)",
        0,
    );
    c.check(
        "offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.offset)",
        4,
    );
    c.check(
        "offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.domid)",
        6,
    );
    layout!(c, GntdevGrantCopy = "struct ioctl_gntdev_grant_copy" {
        count => "count", segments => "segments",
    });
    c.check(
        "offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids)",
        size_of::<GntallocAllocGrefHead>() as u64,
    );
    for (field, rust) in [
        ("domid", offset_of!(GntallocAllocGrefHead, domid)),
        ("flags", offset_of!(GntallocAllocGrefHead, flags)),
        ("count", offset_of!(GntallocAllocGrefHead, count)),
        ("index", offset_of!(GntallocAllocGrefHead, index)),
    ] {
        c.check(
            format!("offsetof(struct ioctl_gntalloc_alloc_gref, {field})"),
            rust as u64,
        );
    }
    c.check(
        "sizeof(struct ioctl_gntalloc_alloc_gref)",
        GNTALLOC_ALLOC_GREF_SIZE as u64,
    );
    layout!(c, GntallocDeallocGref = "struct ioctl_gntalloc_dealloc_gref" {
        index => "index", count => "count",
    });

    let mut k = |expr: &str, v: u64| {
        c.constant(expr, v);
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

#[test]
fn ioctl_structs_and_numbers_match_the_linux_uapi_headers() {
    probe().assert_matches();
}
