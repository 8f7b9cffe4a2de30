//! Keys and values as db_bench makes them: key `i` is the decimal number zero-padded to
//! `--key-size` bytes (`%016d` for the default 16), a missing key is a present key with `.`
//! appended (so it sorts right after a present key and lands inside the same tables and
//! blocks), and values are slices of a buffer of half-compressible random printable bytes.

use crate::dist::Rng;

/// Formats key numbers into fixed-size keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFormat {
    key_size: usize,
}

/// The fewest bytes a key may have: db_bench's keys are at least the number's digits.
pub const MIN_KEY_SIZE: usize = 1;

impl KeyFormat {
    /// Keys of `key_size` bytes.
    pub fn new(key_size: usize) -> Self {
        KeyFormat {
            key_size: key_size.max(MIN_KEY_SIZE),
        }
    }

    /// The size of a present key in bytes.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// Whether every number in `[0, num)` fits in a key without losing digits.
    pub fn fits(&self, num: u64) -> bool {
        let digits = num.saturating_sub(1).max(1).ilog10() as usize + 1;
        digits <= self.key_size
    }

    /// Writes key number `n` into `buf` (cleared first).
    pub fn present(&self, n: u64, buf: &mut Vec<u8>) {
        buf.clear();
        let digits = format!("{n}");
        let pad = self.key_size.saturating_sub(digits.len());
        buf.resize(pad, b'0');
        buf.extend_from_slice(digits.as_bytes());
    }

    /// Writes a key that no fill ever writes, sorting right after key number `n`.
    pub fn missing(&self, n: u64, buf: &mut Vec<u8>) {
        self.present(n, buf);
        buf.push(b'.');
    }
}

/// db_bench's `RandomGenerator`: 1 MiB (or more, for large values) of 100-byte pieces, each 50
/// random printable bytes repeated, handed out as consecutive slices.
#[derive(Debug, Clone)]
pub struct ValueGenerator {
    data: Vec<u8>,
    pos: usize,
}

/// The fraction of each piece that is random: db_bench's default `--compression_ratio`.
pub const COMPRESSION_RATIO: f64 = 0.5;

impl ValueGenerator {
    /// A generator for values of at most `max_len` bytes, fixed by `seed`.
    pub fn new(seed: u64, max_len: usize) -> Self {
        let mut rng = Rng::new(seed);
        let size = (1 << 20).max(max_len.saturating_mul(2));
        let mut data = Vec::with_capacity(size + 100);
        let raw_len = (100.0 * COMPRESSION_RATIO) as usize;
        let mut raw = Vec::with_capacity(raw_len);
        while data.len() < size {
            raw.clear();
            raw.extend((0..raw_len).map(|_| b' ' + rng.below(95) as u8));
            let mut piece = 0;
            while piece < 100 {
                let take = raw.len().min(100 - piece);
                data.extend_from_slice(raw.get(..take).unwrap_or_default());
                piece += take;
            }
        }
        ValueGenerator { data, pos: 0 }
    }

    /// The next value of `len` bytes (`len` must not exceed the `max_len` given to `new`).
    pub fn next(&mut self, len: usize) -> &[u8] {
        if self.pos + len > self.data.len() {
            self.pos = 0;
        }
        let start = self.pos;
        self.pos += len;
        self.data.get(start..start + len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal_like_db_bench() {
        let f = KeyFormat::new(16);
        let mut k = Vec::new();
        f.present(42, &mut k);
        assert_eq!(k, b"0000000000000042");
        f.present(0, &mut k);
        assert_eq!(k, format!("{:016}", 0).as_bytes());
        f.present(999_999, &mut k);
        assert_eq!(k, format!("{:016}", 999_999).as_bytes());
        let f8 = KeyFormat::new(8);
        f8.present(123, &mut k);
        assert_eq!(k, b"00000123");
    }

    #[test]
    fn key_order_is_numeric_order() {
        let f = KeyFormat::new(16);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for n in [0u64, 9, 10, 99, 100, 12345] {
            f.present(n, &mut a);
            f.present(n + 1, &mut b);
            assert!(a < b);
        }
    }

    #[test]
    fn missing_keys_are_never_present_and_sort_between_neighbours() {
        let num = 5_000u64;
        let f = KeyFormat::new(16);
        let mut present = std::collections::BTreeSet::new();
        let mut k = Vec::new();
        for n in 0..num {
            f.present(n, &mut k);
            present.insert(k.clone());
        }
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        for n in 0..num {
            f.missing(n, &mut k);
            assert!(!present.contains(&k));
            f.present(n, &mut lo);
            f.present(n + 1, &mut hi);
            assert!(
                lo < k && k < hi,
                "missing key must sort between {n} and {}",
                n + 1
            );
        }
    }

    #[test]
    fn fits_counts_digits() {
        assert!(KeyFormat::new(16).fits(1_000_000));
        assert!(KeyFormat::new(6).fits(1_000_000)); // keys 0..=999_999
        assert!(!KeyFormat::new(5).fits(1_000_000));
        assert!(KeyFormat::new(1).fits(10));
        assert!(!KeyFormat::new(1).fits(11));
    }

    #[test]
    fn values_are_half_compressible_printable_bytes() {
        let mut g = ValueGenerator::new(301, 100);
        let v = g.next(100).to_vec();
        assert_eq!(v.len(), 100);
        assert!(v.iter().all(|b| (b' '..=b'~').contains(b)));
        // Each 100-byte piece is 50 random bytes said twice.
        assert_eq!(v[..50], v[50..]);
        let w = g.next(100).to_vec();
        assert_ne!(v, w);
        // Wrapping around the buffer still gives full-length values.
        for _ in 0..20_000 {
            assert_eq!(g.next(100).len(), 100);
        }
        let mut big = ValueGenerator::new(1, 4 << 20);
        assert_eq!(big.next(4 << 20).len(), 4 << 20);
    }
}
