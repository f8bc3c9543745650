//! The verification exchange every example peer speaks, the same as Xen-libxenvchan's peer
//! in `vchan/interop/vchan-peer.c`: the source sends a seeded byte pattern in chunks of
//! 1..=1000 bytes, alternating packet and stream I/O, and checks each echo; the echo side
//! writes back whatever it reads until the peer closes. Shared by `guests/vchan-echo`,
//! `vchan-cat --source` and `vchan-shm-peer`, so all of them test the same thing.

use crate::{Error, Vchan, VchanPlatform, VchanStore};

/// Byte `i` of the pattern for `seed`.
pub fn pattern(i: u64, seed: u64) -> u8 {
    (i.wrapping_mul(131)
        .wrapping_add(seed.wrapping_mul(7))
        .wrapping_add(i >> 9)) as u8
}

/// Length of chunk `k` (1..=1000, varying so packets hit every ring offset).
pub fn chunk_len(k: u64) -> usize {
    ((k * 37) % 1000) as usize + 1
}

/// Send `bytes` bytes of the pattern and verify that each chunk comes back unchanged.
/// Fails with [`Error::EchoMismatch`] at the first chunk that differs.
pub async fn source_and_verify<P: VchanPlatform, S: VchanStore>(
    v: &mut Vchan<'_, P, S>,
    bytes: u64,
    seed: u64,
) -> Result<(), Error> {
    let (mut out, mut back) = ([0u8; 1000], [0u8; 1000]);
    let (mut off, mut k) = (0u64, 0u64);
    while off < bytes {
        let n = chunk_len(k).min((bytes - off) as usize);
        for (i, b) in out[..n].iter_mut().enumerate() {
            *b = pattern(off + i as u64, seed);
        }
        if k % 2 == 0 {
            v.send(&out[..n]).await?;
            v.recv(&mut back[..n]).await?;
        } else {
            v.write_all(&out[..n]).await?;
            v.read_exact(&mut back[..n]).await?;
        }
        if let Some(i) = (0..n).find(|&i| out[i] != back[i]) {
            return Err(Error::EchoMismatch {
                offset: off + i as u64,
            });
        }
        off += n as u64;
        k += 1;
    }
    Ok(())
}

/// Write back everything read until the peer closes, `buf.len()` bytes at most per read
/// (large buffers matter with large rings); returns the bytes echoed.
pub async fn echo<P: VchanPlatform, S: VchanStore>(
    v: &mut Vchan<'_, P, S>,
    buf: &mut [u8],
) -> Result<u64, Error> {
    let mut total = 0u64;
    loop {
        let n = v.read(buf).await?;
        if n == 0 {
            return Ok(total);
        }
        v.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}
