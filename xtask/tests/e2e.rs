//! End-to-end tests under a real Xen 4.17 (the lab: Xen + Debian dom0 in QEMU).
//!
//! The whole suite (`xtask::suite::e2e_suite`) runs in ONE lab boot, started by the first
//! test that needs results; every test then checks its own guest. Ignored by default because
//! a boot takes about a minute: `cargo xtask test` runs them (or
//! `cargo test -p xtask --test e2e -- --ignored`).

use std::sync::OnceLock;
use xtask::lab::{GuestSpec, LabRun, RunOptions};

fn lab() -> &'static Result<(Vec<GuestSpec>, LabRun), String> {
    static RUN: OnceLock<Result<(Vec<GuestSpec>, LabRun), String>> = OnceLock::new();
    RUN.get_or_init(|| {
        xtask::suite::run_e2e(
            &RunOptions::default(),
            Some(env!("CARGO_BIN_EXE_xtask").into()),
        )
        .map_err(|e| format!("{e:#}"))
    })
}

/// Asserts that guest `name` behaved as its suite entry expects.
fn assert_guest(name: &str) {
    let (suite, run) = match lab() {
        Ok(r) => r,
        Err(e) => panic!("the lab run failed: {e}"),
    };
    let spec = suite
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not in the suite"));
    let outcome = run.guest(name).expect("every suite guest has an outcome");
    if let Err(report) = outcome.check(spec) {
        panic!("{report}");
    }
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn hello() {
    assert_guest("hello");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn hello_panic_is_reported_as_a_crash() {
    assert_guest("hello-panic");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn hello_out_of_memory_is_reported_as_a_crash() {
    assert_guest("hello-oom");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn xen_core_test() {
    assert_guest("xen-core-test");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn xenstore_test_with_background_dom0_peer() {
    assert_guest("xenstore-test");
}

/// `cargo xtask run`'s path for a real Xen host (xl create + xl console), run in dom0.
#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn xl_run_on_a_real_dom0() {
    assert_guest("hello-xl-run");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn linux_baseline() {
    assert_guest("linux");
}

/// Not a test of speed (nothing fails on timing): records the start-up comparison the
/// summary prints, and checks both guests actually produced console output to compare.
#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn startup_time_is_measured_for_hello_and_linux() {
    let (_, run) = lab()
        .as_ref()
        .unwrap_or_else(|e| panic!("the lab run failed: {e}"));
    for name in ["hello", "linux"] {
        let g = run.guest(name).expect("in the suite");
        assert!(
            g.first_console_line.is_some(),
            "{}",
            g.report("no console line recorded")
        );
        assert!(
            g.create.is_some(),
            "{}",
            g.report("no xl create time recorded")
        );
    }
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn hello_fault_is_reported_and_crashes() {
    assert_guest("hello-fault");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn linux_platform_conformance_in_dom0() {
    assert_guest("linux-platform");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn vchan_interop_with_libxenvchan_and_linux() {
    assert_guest("vchan-echo");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn xs_cli_in_dom0_over_socket_and_xenbus_device() {
    assert_guest("xs-dom0");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn hello_reboot_is_reported_as_a_reboot() {
    assert_guest("hello-reboot");
}

#[test]
#[ignore = "needs the Xen lab: cargo xtask test"]
fn irmin_store_in_a_guest_writes_git_objects() {
    assert_guest("irmin-demo");
}
