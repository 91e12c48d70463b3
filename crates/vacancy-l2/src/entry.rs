//! How a versioned value is laid out in Redis, and the script that writes it.
//!
//! An entry is one Redis string: a 16-character lowercase hex header holding the version, then
//! the caller's bytes. One string (not a hash) so that a batch read is a plain `MGET`. The
//! header is the version with its sign bit flipped, so unsigned order of headers is signed order
//! of versions; the write script compares it as two 32-bit halves, exactly (Lua numbers are
//! doubles) and independently of the server's collation locale.
//!
//! This module must never interpret the value: it is opaque bytes.

use bytes::Bytes;

/// The length of the version header in front of every stored value.
pub(crate) const HEADER_LEN: usize = 16;

/// A value read from the cache with the version it was written with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The version the writer gave; a later write only lands with a greater one.
    pub version: i64,
    /// The caller's bytes, exactly as written.
    pub value: Bytes,
}

/// The version header: 16 hex digits of the version with its sign bit flipped.
pub(crate) fn header(version: i64) -> String {
    format!("{:016x}", (version as u64) ^ (1 << 63))
}

/// Header and value, as stored.
pub(crate) fn encode(version: i64, value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER_LEN + value.len());
    entry.extend_from_slice(header(version).as_bytes());
    entry.extend_from_slice(value);
    entry
}

/// A stored string that is not an entry of ours (written by someone else, or truncated).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NotAnEntry;

pub(crate) fn decode(raw: Bytes) -> Result<Versioned, NotAnEntry> {
    let head = raw.get(..HEADER_LEN).ok_or(NotAnEntry)?;
    let head = std::str::from_utf8(head).map_err(|_| NotAnEntry)?;
    if !head.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(NotAnEntry);
    }
    let flipped = u64::from_str_radix(head, 16).map_err(|_| NotAnEntry)?;
    Ok(Versioned {
        version: (flipped ^ (1 << 63)) as i64,
        value: raw.slice(HEADER_LEN..),
    })
}

/// `KEYS[1]`: the entry. `ARGV[1]`: the new header; `ARGV[2]`: the whole new entry (header and
/// value); `ARGV[3]`: the TTL in milliseconds. Returns 1 if written, 0 if the stored version is
/// newer or equal (nothing changed). A stored string that is not an entry is overwritten.
/// Touches only `KEYS[1]`, so it runs on Redis Cluster.
pub(crate) const PUT_SCRIPT: &str = r#"
local function half(h, from)
  return tonumber(string.sub(h, from, from + 7), 16)
end
local current = redis.call('GET', KEYS[1])
if current and string.len(current) >= 16 then
  local old_hi, old_lo = half(current, 1), half(current, 9)
  if old_hi and old_lo then
    local new_hi, new_lo = half(ARGV[1], 1), half(ARGV[1], 9)
    if new_hi < old_hi or (new_hi == old_hi and new_lo <= old_lo) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_version() {
        for version in [i64::MIN, -1, 0, 1, 5, 1 << 53, (1 << 53) + 1, i64::MAX] {
            let raw = Bytes::from(encode(version, b"\x00calendar\xff"));
            assert_eq!(
                decode(raw),
                Ok(Versioned {
                    version,
                    value: Bytes::from_static(b"\x00calendar\xff")
                })
            );
        }
    }

    #[test]
    fn header_order_is_version_order() {
        let versions = [
            i64::MIN,
            -2,
            -1,
            0,
            1,
            2,
            (1 << 53) + 1,
            (1 << 53) + 2,
            i64::MAX,
        ];
        for pair in versions.windows(2) {
            assert!(header(pair[0]) < header(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn strings_that_are_not_entries_are_refused() {
        for raw in [
            &b""[..],
            b"0123",
            b"zzzzzzzzzzzzzzzzvalue",
            b"0000000000000000",
        ] {
            let decoded = decode(Bytes::copy_from_slice(raw));
            if raw.len() == HEADER_LEN {
                assert!(decoded.is_ok(), "an empty value is still an entry");
            } else {
                assert_eq!(decoded, Err(NotAnEntry), "{raw:?}");
            }
        }
        assert_eq!(
            decode(Bytes::from_static(b"00000000000000A0")),
            Err(NotAnEntry),
            "upper case is not ours"
        );
    }
}
