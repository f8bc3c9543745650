//! Checks every ABI type against Debian libxen-dev's headers: a C program compiled against
//! `/usr/include/xen` prints `sizeof`/`offsetof` for each type and field, and each value
//! must equal the Rust one. Needs gcc and libxen-dev (`cargo xtask` installs them).

use c_layout::{Probe, layout};

/// The headers every check is compiled against (Debian's libxen-dev).
const HEADERS: &[&str] = &[
    "xen/xen.h",
    "xen/sched.h",
    "xen/vcpu.h",
    "xen/event_channel.h",
    "xen/grant_table.h",
    "xen/elfnote.h",
    "xen/io/console.h",
];

use xen_abi::console::XenconsInterface;
use xen_abi::event_channel::*;
use xen_abi::grant_table::*;
use xen_abi::mm::{MmuUpdate, MmuextOp, TrapInfo};
use xen_abi::sched::{SchedPoll, SchedShutdown};
use xen_abi::shared_info::*;
use xen_abi::start_info::StartInfo;
use xen_abi::vcpu::VcpuSetSingleshotTimer;

fn struct_probe() -> Probe {
    let mut c = Probe::new(HEADERS);
    layout!(c, StartInfo = "struct start_info" {
        magic => "magic", nr_pages => "nr_pages", shared_info => "shared_info",
        flags => "flags", store_mfn => "store_mfn", store_evtchn => "store_evtchn",
        console_mfn => "console.domU.mfn", console_evtchn => "console.domU.evtchn",
        pt_base => "pt_base", nr_pt_frames => "nr_pt_frames", mfn_list => "mfn_list",
        mod_start => "mod_start", mod_len => "mod_len", cmd_line => "cmd_line",
        first_p2m_pfn => "first_p2m_pfn", nr_p2m_frames => "nr_p2m_frames",
    });
    layout!(c, VcpuTimeInfo = "struct vcpu_time_info" {
        version => "version", tsc_timestamp => "tsc_timestamp", system_time => "system_time",
        tsc_to_system_mul => "tsc_to_system_mul", tsc_shift => "tsc_shift", flags => "flags",
    });
    layout!(c, ArchVcpuInfo = "struct arch_vcpu_info" { cr2 => "cr2", pad => "pad" });
    layout!(c, VcpuInfo = "struct vcpu_info" {
        evtchn_upcall_pending => "evtchn_upcall_pending",
        evtchn_upcall_mask => "evtchn_upcall_mask",
        evtchn_pending_sel => "evtchn_pending_sel", arch => "arch", time => "time",
    });
    layout!(c, ArchSharedInfo = "struct arch_shared_info" {
        max_pfn => "max_pfn", pfn_to_mfn_frame_list_list => "pfn_to_mfn_frame_list_list",
        nmi_reason => "nmi_reason", p2m_cr3 => "p2m_cr3", p2m_vaddr => "p2m_vaddr",
        p2m_generation => "p2m_generation",
    });
    layout!(c, SharedInfo = "struct shared_info" {
        vcpu_info => "vcpu_info", evtchn_pending => "evtchn_pending",
        evtchn_mask => "evtchn_mask", wc_version => "wc_version", wc_sec => "wc_sec",
        wc_nsec => "wc_nsec", wc_sec_hi => "wc_sec_hi", arch => "arch",
    });
    layout!(c, XenconsInterface = "struct xencons_interface" {
        in_ => "in", out => "out", in_cons => "in_cons", in_prod => "in_prod",
        out_cons => "out_cons", out_prod => "out_prod",
    });
    layout!(c, SchedShutdown = "struct sched_shutdown" { reason => "reason" });
    layout!(c, SchedPoll = "struct sched_poll" {
        ports => "ports", nr_ports => "nr_ports", timeout => "timeout",
    });
    layout!(c, VcpuSetSingleshotTimer = "struct vcpu_set_singleshot_timer" {
        timeout_abs_ns => "timeout_abs_ns", flags => "flags",
    });
    layout!(c, MmuUpdate = "struct mmu_update" { ptr => "ptr", val => "val" });
    layout!(c, TrapInfo = "struct trap_info" {
        vector => "vector", flags => "flags", cs => "cs", address => "address",
    });
    layout!(c, MmuextOp = "struct mmuext_op" { cmd => "cmd", arg1 => "arg1", arg2 => "arg2" });
    layout!(c, EvtchnAllocUnbound = "struct evtchn_alloc_unbound" {
        dom => "dom", remote_dom => "remote_dom", port => "port",
    });
    layout!(c, EvtchnBindInterdomain = "struct evtchn_bind_interdomain" {
        remote_dom => "remote_dom", remote_port => "remote_port", local_port => "local_port",
    });
    layout!(c, EvtchnBindVirq = "struct evtchn_bind_virq" {
        virq => "virq", vcpu => "vcpu", port => "port",
    });
    layout!(c, EvtchnPortArg = "struct evtchn_send" { port => "port" });
    layout!(c, EvtchnPortArg = "struct evtchn_close" { port => "port" });
    layout!(c, EvtchnPortArg = "struct evtchn_unmask" { port => "port" });
    layout!(c, EvtchnStatus = "struct evtchn_status" {
        dom => "dom", port => "port", status => "status", vcpu => "vcpu", u => "u",
    });
    layout!(c, GrantEntryV1 = "struct grant_entry_v1" {
        flags => "flags", domid => "domid", frame => "frame",
    });
    layout!(c, GnttabSetupTable = "struct gnttab_setup_table" {
        dom => "dom", nr_frames => "nr_frames", status => "status", frame_list => "frame_list",
    });
    layout!(c, GnttabQuerySize = "struct gnttab_query_size" {
        dom => "dom", nr_frames => "nr_frames", max_nr_frames => "max_nr_frames",
        status => "status",
    });
    layout!(c, GnttabMapGrantRef = "struct gnttab_map_grant_ref" {
        host_addr => "host_addr", flags => "flags", r#ref => "ref", dom => "dom",
        status => "status", handle => "handle", dev_bus_addr => "dev_bus_addr",
    });
    layout!(c, GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref" {
        host_addr => "host_addr", dev_bus_addr => "dev_bus_addr", handle => "handle",
        status => "status",
    });
    layout!(c, GnttabCopyPtr = "struct gnttab_copy_ptr" {
        u => "u", domid => "domid", offset => "offset",
    });
    layout!(c, GnttabCopy = "struct gnttab_copy" {
        source => "source", dest => "dest", len => "len", flags => "flags", status => "status",
    });
    c
}

/// Constants whose values must match the headers too.
fn constant_probe() -> Probe {
    use xen_abi::*;
    let mut c = Probe::new(HEADERS);
    let mut k = |expr: &str, v: usize| {
        c.constant(expr, v as u64);
    };
    k("__HYPERVISOR_mmu_update", hypercall::MMU_UPDATE as usize);
    k(
        "__HYPERVISOR_update_va_mapping",
        hypercall::UPDATE_VA_MAPPING as usize,
    );
    k("__HYPERVISOR_xen_version", hypercall::XEN_VERSION as usize);
    k("__HYPERVISOR_console_io", hypercall::CONSOLE_IO as usize);
    k(
        "__HYPERVISOR_grant_table_op",
        hypercall::GRANT_TABLE_OP as usize,
    );
    k("__HYPERVISOR_vcpu_op", hypercall::VCPU_OP as usize);
    k("__HYPERVISOR_mmuext_op", hypercall::MMUEXT_OP as usize);
    k("__HYPERVISOR_sched_op", hypercall::SCHED_OP as usize);
    k(
        "__HYPERVISOR_event_channel_op",
        hypercall::EVENT_CHANNEL_OP as usize,
    );
    k("__HYPERVISOR_memory_op", hypercall::MEMORY_OP as usize);
    k(
        "__HYPERVISOR_set_timer_op",
        hypercall::SET_TIMER_OP as usize,
    );
    k("SCHEDOP_poll", sched::SCHEDOP_POLL as usize);
    k("SCHEDOP_shutdown", sched::SCHEDOP_SHUTDOWN as usize);
    k("SHUTDOWN_crash", sched::ShutdownReason::Crash as usize);
    k(
        "VCPUOP_set_singleshot_timer",
        vcpu::VCPUOP_SET_SINGLESHOT_TIMER as usize,
    );
    k(
        "EVTCHNOP_alloc_unbound",
        event_channel::EVTCHNOP_ALLOC_UNBOUND as usize,
    );
    k(
        "EVTCHNOP_bind_interdomain",
        event_channel::EVTCHNOP_BIND_INTERDOMAIN as usize,
    );
    k("EVTCHNOP_unmask", event_channel::EVTCHNOP_UNMASK as usize);
    k("GNTTABOP_copy", grant_table::GNTTABOP_COPY as usize);
    k(
        "GNTTABOP_query_size",
        grant_table::GNTTABOP_QUERY_SIZE as usize,
    );
    k("GTF_reading", grant_table::GTF_READING as usize);
    k("GTF_writing", grant_table::GTF_WRITING as usize);
    k("GNTMAP_host_map", grant_table::GNTMAP_HOST_MAP as usize);
    k("GNTMAP_readonly", grant_table::GNTMAP_READONLY as usize);
    k("MMUEXT_PIN_L1_TABLE", mm::MMUEXT_PIN_L1_TABLE as usize);
    k("FLAT_KERNEL_CS", mm::FLAT_KERNEL_CS as usize);
    k(
        "__HYPERVISOR_set_trap_table",
        hypercall::SET_TRAP_TABLE as usize,
    );
    k("MACH2PHYS_VIRT_START", mm::MACH2PHYS_VIRT_START as usize);
    k("MAX_GUEST_CMDLINE", start_info::MAX_GUEST_CMDLINE);
    k("XEN_ELFNOTE_PHYS32_ENTRY", elfnote::PHYS32_ENTRY as usize);
    k("DOMID_SELF", DOMID_SELF as usize);
    k("XEN_LEGACY_MAX_VCPUS", shared_info::LEGACY_MAX_VCPUS);
    c
}

#[test]
fn struct_layouts_match_libxen_dev_headers() {
    struct_probe().assert_matches();
}

#[test]
fn constants_match_libxen_dev_headers() {
    constant_probe().assert_matches();
}
