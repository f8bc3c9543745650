//! zlib helpers over `miniz_oxide` (pure Rust, works in `no_std + alloc`).

use alloc::vec;
use alloc::vec::Vec;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
    deflate_flags,
};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use crate::error::{CorruptKind, Error, Result};

/// Compression level used for loose objects and pack entries. Git's default for loose
/// objects (`core.looseCompression`) is 1: best speed; the store writes small objects
/// on the hot path, so it makes the same trade.
pub const FAST: u8 = 1;

/// Inputs up to this size are compressed with the static Huffman code: building dynamic
/// tables costs more than it saves on small objects (trees, commits, small values).
const STATIC_MAX: usize = 16 * 1024;

/// Inputs up to this size are written as a single stored (uncompressed) deflate block:
/// resetting a compressor clears ~160 KiB of state, which costs far more than the few
/// bytes compression would save on a tree or commit this small.
const STORE_MAX: usize = 512;

/// A zlib stream holding one stored block: header, block, Adler-32.
fn stored(parts: &[&[u8]], total: usize, out: &mut Vec<u8>) {
    out.reserve(total + 11);
    // CMF: deflate, 32K window; FLG: fastest level, check bits so (CMF*256+FLG) % 31 == 0.
    out.extend_from_slice(&[0x78, 0x01]);
    out.push(1); // BFINAL, BTYPE=00 (stored)
    let len = total as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    let mut adler = adler2::Adler32::new();
    for p in parts {
        out.extend_from_slice(p);
        adler.write_slice(p);
    }
    out.extend_from_slice(&adler.checksum().to_be_bytes());
}

/// A reusable zlib compressor (the compressor state is large; allocating and clearing it
/// per object dominated the cost of writing small objects).
pub struct Deflater {
    small: alloc::boxed::Box<CompressorOxide>,
    large: alloc::boxed::Box<CompressorOxide>,
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflater {
    pub fn new() -> Self {
        // Positive window bits: zlib header and Adler-32 trailer.
        let flags = create_comp_flags_from_zip_params(FAST as i32, 15, 0);
        let static_flags = flags | deflate_flags::TDEFL_FORCE_ALL_STATIC_BLOCKS;
        Deflater {
            small: alloc::boxed::Box::new(CompressorOxide::new(static_flags)),
            large: alloc::boxed::Box::new(CompressorOxide::new(flags)),
        }
    }

    /// zlib-compress the concatenation of `parts`, appending to `out`.
    pub fn deflate_into(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total <= STORE_MAX {
            stored(parts, total, out);
            return;
        }
        let d = if total <= STATIC_MAX {
            &mut self.small
        } else {
            &mut self.large
        };
        d.reset();
        // Worst case: stored blocks (5 bytes per 64 KiB) plus header and trailer.
        let start = out.len();
        let bound = total + total / 64 + 5 * (total / 65535 + 1) + 32;
        out.resize(start + bound, 0);
        let mut pos = start;
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            let flush = if i == last {
                TDEFLFlush::Finish
            } else {
                TDEFLFlush::None
            };
            let mut input: &[u8] = part;
            loop {
                let (status, used, written) = compress(d, input, &mut out[pos..], flush);
                pos += written;
                input = &input[used..];
                match status {
                    TDEFLStatus::Done => break,
                    TDEFLStatus::Okay if input.is_empty() && flush == TDEFLFlush::None => break,
                    TDEFLStatus::Okay => {
                        // Output space ran short: grow and continue.
                        let len = out.len();
                        out.resize(len + bound / 2 + 64, 0);
                    }
                    _ => unreachable_status(),
                }
            }
        }
        out.truncate(pos);
    }

    pub fn deflate(&mut self, parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        self.deflate_into(parts, &mut v);
        v
    }
}

/// The in-memory compressor only fails on invalid parameters, which are constants here.
#[cold]
fn unreachable_status() {
    debug_assert!(false, "miniz_oxide rejected constant parameters");
}

/// zlib-compress the concatenation of `parts`.
pub fn deflate(parts: &[&[u8]], level: u8) -> Vec<u8> {
    if parts.len() == 1 {
        return miniz_oxide::deflate::compress_to_vec_zlib(parts[0], level);
    }
    let total = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(total);
    for p in parts {
        buf.extend_from_slice(p);
    }
    miniz_oxide::deflate::compress_to_vec_zlib(&buf, level)
}

/// Inflate a zlib stream that must produce exactly `expected` bytes. Returns the data and
/// the number of input bytes consumed (so a pack parser can find the next entry).
pub fn inflate_exact(input: &[u8], expected: usize) -> Result<(Vec<u8>, usize)> {
    // Deflate cannot expand more than ~1032:1; a larger claimed size is a lie, and
    // believing it would mean a huge allocation from a few hostile bytes.
    if expected > input.len().saturating_mul(1032).saturating_add(64) {
        return Err(Error::corrupt(CorruptKind::LengthMismatch));
    }
    let mut state = DecompressorOxide::new();
    let mut out = vec![0u8; expected.max(1)];
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
        | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32
        | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, consumed, written) = decompress(&mut state, input, &mut out, 0, flags);
    match status {
        TINFLStatus::Done if written == expected => {
            out.truncate(expected);
            Ok((out, consumed))
        }
        TINFLStatus::Done | TINFLStatus::HasMoreOutput => {
            Err(Error::corrupt(CorruptKind::LengthMismatch))
        }
        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
            Err(Error::corrupt(CorruptKind::Truncated))
        }
        _ => Err(Error::corrupt(CorruptKind::BadZlib)),
    }
}

/// Inflate a whole zlib stream of unknown size, refusing to grow past `limit` bytes.
pub fn inflate_limited(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(input, limit).map_err(|e| {
        match e.status {
            TINFLStatus::HasMoreOutput => Error::corrupt(CorruptKind::LengthMismatch),
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                Error::corrupt(CorruptKind::Truncated)
            }
            _ => Error::corrupt(CorruptKind::BadZlib),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_consumed() {
        let data = b"hello hello hello hello";
        let mut z = deflate(&[&data[..5], &data[5..]], FAST);
        let zlen = z.len();
        z.extend_from_slice(b"TRAILING");
        let (out, used) = inflate_exact(&z, data.len()).unwrap();
        assert_eq!(out, data);
        assert_eq!(used, zlen);
        assert!(inflate_exact(&z, data.len() - 1).is_err());
        assert!(inflate_exact(&z[..zlen - 3], data.len()).is_err());
        assert_eq!(inflate_limited(&z[..zlen], 1000).unwrap(), data);
        assert!(inflate_limited(&z[..zlen], 5).is_err());
        let (empty, _) = inflate_exact(&deflate(&[b""], FAST), 0).unwrap();
        assert!(empty.is_empty());
        assert!(inflate_exact(&z, usize::MAX / 2).is_err());
        let mut d = Deflater::new();
        for len in [0usize, 1, 100, 512, 513, 2048, 2049, 70_000, 300_000] {
            let input: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let z = d.deflate(&[&input[..len / 3], &input[len / 3..]]);
            assert_eq!(inflate_limited(&z, 1 << 20).unwrap(), input, "{len}");
        }
    }
}
