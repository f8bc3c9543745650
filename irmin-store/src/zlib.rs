//! zlib helpers over `miniz_oxide` (pure Rust, works in `no_std + alloc`).

use alloc::vec;
use alloc::vec::Vec;

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use crate::error::{CorruptKind, Error, Result};

/// Compression level used for loose objects and pack entries. Git's default for loose
/// objects (`core.looseCompression`) is 1: best speed; the store writes small objects
/// on the hot path, so it makes the same trade.
pub const FAST: u8 = 1;

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
    }
}
