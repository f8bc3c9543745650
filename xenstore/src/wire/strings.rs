//! Nul-terminated string arguments and decimal numbers, the building blocks of payloads.

use super::WireError;

/// A payload made of zero or more nul-terminated strings, validated on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StringList<'a> {
    bytes: &'a [u8],
}

impl<'a> StringList<'a> {
    /// Accepts an empty slice or one that ends with a nul.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        match bytes.last() {
            None | Some(0) => Ok(StringList { bytes }),
            Some(_) => Err(WireError::MissingNul),
        }
    }

    /// Like [`parse`](Self::parse), and also requires every string to be UTF-8.
    pub fn parse_utf8(bytes: &'a [u8]) -> Result<Self, WireError> {
        let list = Self::parse(bytes)?;
        core::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8)?;
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.bytes.iter().filter(|b| **b == 0).count()
    }

    pub fn iter_bytes(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        let body = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        let mut parts = body.split(|b| *b == 0);
        // `split` on an empty body yields one empty item; an empty list has none.
        let empty = bytes.is_empty();
        core::iter::from_fn(move || if empty { None } else { parts.next() })
    }

    /// Iterates the strings as `&str`; strings that are not UTF-8 are skipped, so use this
    /// only on lists built with [`parse_utf8`](Self::parse_utf8).
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.iter_bytes()
            .filter_map(|s| core::str::from_utf8(s).ok())
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Splits `payload` into exactly `N` nul-terminated arguments.
pub fn split_exact<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], WireError> {
    let list = StringList::parse(payload)?;
    let found = list.len();
    if found != N {
        return Err(WireError::ArgumentCount { expected: N, found });
    }
    let mut out: [&[u8]; N] = [&[]; N];
    for (slot, s) in out.iter_mut().zip(list.iter_bytes()) {
        *slot = s;
    }
    Ok(out)
}

/// Splits off the first nul-terminated argument; returns it and the remaining bytes.
pub fn split_first(payload: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let nul = payload
        .iter()
        .position(|b| *b == 0)
        .ok_or(WireError::MissingNul)?;
    Ok((&payload[..nul], &payload[nul + 1..]))
}

pub fn as_utf8(bytes: &[u8]) -> Result<&str, WireError> {
    core::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8)
}

/// A plain decimal number: one or more ASCII digits, no sign, no spaces, no overflow.
pub fn parse_decimal(digits: &[u8]) -> Result<u64, WireError> {
    if digits.is_empty() || digits.len() > 20 {
        return Err(WireError::InvalidNumber);
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(WireError::InvalidNumber);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((d - b'0') as u64))
            .ok_or(WireError::InvalidNumber)?;
    }
    Ok(value)
}

pub fn parse_decimal_as<T: TryFrom<u64>>(digits: &[u8]) -> Result<T, WireError> {
    T::try_from(parse_decimal(digits)?).map_err(|_| WireError::InvalidNumber)
}
