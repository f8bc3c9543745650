//! Recovery of the block log from arbitrary device contents: must never panic, and
//! whatever it recovers must be readable without panics.
#![no_main]

use irmin_store::backend::block::{BlockDevice, BlockLog, MemoryBlockDevice};
use irmin_store::Repo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sectors = (data.len() / 512 + 2) as u64;
    let mut dev = MemoryBlockDevice::new(512, sectors);
    // Keep a valid superblock most of the time so replay is exercised.
    let Ok(log) = BlockLog::format(dev.clone(), 7) else { return };
    dev = log.into_device();
    let mut padded = data.to_vec();
    padded.resize((sectors as usize - 1) * 512, 0);
    if dev.write(1, &padded).is_err() {
        return;
    }
    if let Ok(log) = BlockLog::open(dev) {
        let repo = Repo::new(log);
        for (_, id) in repo.branches().unwrap_or_default() {
            let _ = repo.log(id, 16);
        }
    }
});
