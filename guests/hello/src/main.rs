//! `hello`: prints a greeting, its command line, memory size and the Xen version,
//! exercises the heap, and powers off.
//!
//! Command-line words (`extra=` in xl-configs/hello.cfg):
//! `greeting=<word>` changes the greeting; `panic` makes it panic (to see a crash
//! reported); `oom` makes it allocate until memory runs out; `fault` makes it write
//! through a null pointer (a CPU fault, reported by xen-pv's trap handlers); `reboot`
//! ends with a reboot request instead of a poweroff.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use xen_pv::{Env, Shutdown, println};

xen_pv::entry!(main);

fn main(env: &Env) -> Result<Shutdown, String> {
    let cmdline = env.cmdline();
    let greeting = cmdline.get("greeting").unwrap_or("Hello");
    println!("{greeting} from a Rust unikernel on Xen!");
    println!("command line: \"{}\"", cmdline.as_str());
    println!("memory: {} MiB", env.memory_bytes() >> 20);
    println!("Xen version: {}", env.xen_version());

    if cmdline.has("panic") {
        panic!("panic requested on the command line");
    }
    if cmdline.has("fault") {
        println!("writing through a null pointer...");
        // SAFETY: none; this deliberately faults (page 0 is unmapped after boot) to show
        // how a guest bug is reported.
        unsafe { core::ptr::write_volatile(core::ptr::without_provenance_mut::<u64>(8), 1) };
        println!("not reached");
    }

    let (free_before, managed) = xen_pv::mm::frame_stats();
    let allocated = exercise_heap()?;
    let (free_after, _) = xen_pv::mm::frame_stats();
    println!(
        "heap: allocated and freed {allocated} bytes; {free_after} of {managed} pages free (was {free_before})"
    );

    if cmdline.has("oom") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(Vec::with_capacity(1 << 20));
        }
    }

    let up = xen_pv::time::uptime();
    log::info!(
        "uptime {}.{:06} s, wall clock {} s since the epoch",
        up.as_secs(),
        up.subsec_micros(),
        xen_pv::time::wall_clock().as_secs()
    );
    println!("Goodbye.");
    Ok(if cmdline.has("reboot") {
        Shutdown::Reboot
    } else {
        Shutdown::Poweroff
    })
}

/// Allocate a mix of collections and check their contents, returning the bytes used.
fn exercise_heap() -> Result<usize, String> {
    let mut squares: Vec<u64> = (0..100_000u64).map(|i| i * i).collect();
    let mut index: BTreeMap<u64, String> = BTreeMap::new();
    for i in (0..1000u64).step_by(7) {
        index.insert(i, alloc::format!("entry-{i}"));
    }
    let big: Vec<u8> = alloc::vec![0xa5; 8 << 20];
    if squares[99_999] != 99_999 * 99_999
        || index.get(&994).map(String::as_str) != Some("entry-994")
        || big.iter().any(|&b| b != 0xa5)
    {
        return Err(String::from(
            "heap self-check failed: collection contents are wrong",
        ));
    }
    squares.truncate(10);
    squares.shrink_to_fit();
    Ok(100_000 * 8 + index.len() * 16 + big.len())
}
