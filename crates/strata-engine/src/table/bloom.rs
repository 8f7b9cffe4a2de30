//! Bloom filters over user keys: a table keeps one so that a point lookup for a key the table
//! does not hold is usually answered without reading a data block.
//!
//! # Format
//!
//! A filter is a bit array of `ceil(n * bits_per_key / 8)` bytes (at least 8) followed by one
//! byte holding the number of probes `k`. Each key is hashed once with XXH3-64; the `k` probe
//! positions come from double hashing the two 32-bit halves of that hash
//! (`h1 + i * h2 mod bits`), which behaves like `k` independent hashes at a fraction of the cost.

use xxhash_rust::xxh3::xxh3_64;

/// The bits per key used when nothing else is configured (about 1% false positives).
pub const DEFAULT_BITS_PER_KEY: usize = 10;

/// The most probes a filter may use; more only costs time.
pub const MAX_PROBES: u8 = 30;

/// Smallest bit array, so that tiny filters do not degenerate.
const MIN_BYTES: usize = 8;

/// Builds and queries bloom filters. The filter itself is a plain byte slice, so it can be
/// stored in a table block, sent over the network or kept anywhere else.
#[derive(Debug, Clone, Copy, Default)]
pub struct BloomFilter;

impl BloomFilter {
    /// The 64-bit hash a key is filtered by.
    pub fn hash(key: &[u8]) -> u64 {
        xxh3_64(key)
    }

    /// The number of probes for `bits_per_key`: `round(bits_per_key * ln 2)`, clamped to
    /// `1..=30`, which minimises the false-positive rate for that many bits.
    pub fn num_probes(bits_per_key: usize) -> u8 {
        let k = (bits_per_key as f64 * std::f64::consts::LN_2).round();
        k.clamp(1.0, f64::from(MAX_PROBES)) as u8
    }

    /// Builds a filter holding `keys`.
    pub fn build<I, K>(keys: I, bits_per_key: usize) -> Vec<u8>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let hashes: Vec<u64> = keys.into_iter().map(|k| Self::hash(k.as_ref())).collect();
        Self::build_from_hashes(&hashes, bits_per_key)
    }

    /// Builds a filter from key hashes computed with [`BloomFilter::hash`].
    pub fn build_from_hashes(hashes: &[u64], bits_per_key: usize) -> Vec<u8> {
        let k = Self::num_probes(bits_per_key);
        let bits = hashes.len().saturating_mul(bits_per_key);
        let bytes = bits.div_ceil(8).max(MIN_BYTES);
        let mut filter = vec![0u8; bytes + 1];
        let nbits = (bytes * 8) as u64;
        for &h in hashes {
            for pos in probes(h, k, nbits) {
                if let Some(byte) = filter.get_mut((pos / 8) as usize) {
                    *byte |= 1 << (pos % 8);
                }
            }
        }
        if let Some(last) = filter.last_mut() {
            *last = k;
        }
        filter
    }

    /// True if `filter` may hold `key`; false means it certainly does not.
    pub fn may_contain(filter: &[u8], key: &[u8]) -> bool {
        Self::may_contain_hash(filter, Self::hash(key))
    }

    /// [`BloomFilter::may_contain`] for a hash computed with [`BloomFilter::hash`]. A malformed
    /// filter (see [`BloomFilter::is_well_formed`]) answers true: it cannot rule anything out.
    pub fn may_contain_hash(filter: &[u8], hash: u64) -> bool {
        let Some((&k, bits)) = filter.split_last() else {
            return true;
        };
        if !Self::is_well_formed(filter) {
            return true;
        }
        let nbits = (bits.len() * 8) as u64;
        probes(hash, k, nbits).all(|pos| {
            bits.get((pos / 8) as usize)
                .is_some_and(|b| b & (1 << (pos % 8)) != 0)
        })
    }

    /// True if `filter` has a non-empty bit array and a probe count in `1..=30`.
    pub fn is_well_formed(filter: &[u8]) -> bool {
        match filter.split_last() {
            Some((&k, bits)) => !bits.is_empty() && (1..=MAX_PROBES).contains(&k),
            None => false,
        }
    }
}

/// The `k` bit positions probed for `hash` in an array of `nbits` bits (`nbits > 0`).
fn probes(hash: u64, k: u8, nbits: u64) -> impl Iterator<Item = u64> {
    let h1 = hash & 0xffff_ffff;
    let h2 = hash >> 32;
    (0..u64::from(k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % nbits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        format!("key{i:010}").into_bytes()
    }

    #[test]
    fn probes_follow_bits_per_key() {
        assert_eq!(BloomFilter::num_probes(0), 1);
        assert_eq!(BloomFilter::num_probes(1), 1);
        assert_eq!(BloomFilter::num_probes(10), 7);
        assert_eq!(BloomFilter::num_probes(100), 30);
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        const N: u64 = 100_000;
        let filter = BloomFilter::build((0..N).map(key), DEFAULT_BITS_PER_KEY);
        assert_eq!(filter.len(), (N as usize * 10).div_ceil(8) + 1);
        for i in 0..N {
            assert!(BloomFilter::may_contain(&filter, &key(i)), "false negative");
        }
        let fp = (N..2 * N)
            .filter(|&i| BloomFilter::may_contain(&filter, &key(i)))
            .count();
        let rate = fp as f64 / N as f64;
        println!(
            "bloom false-positive rate at 10 bits/key: {:.3}%",
            rate * 100.0
        );
        assert!(rate <= 0.012, "false-positive rate {rate} above 1.2%");
    }

    #[test]
    fn empty_filter_rejects_everything() {
        let filter = BloomFilter::build(std::iter::empty::<&[u8]>(), 10);
        assert!(BloomFilter::is_well_formed(&filter));
        assert!(!BloomFilter::may_contain(&filter, b"anything"));
    }

    #[test]
    fn malformed_filters_cannot_rule_out() {
        assert!(BloomFilter::may_contain(&[], b"a"));
        assert!(BloomFilter::may_contain(&[7], b"a"));
        assert!(BloomFilter::may_contain(&[0, 0, 0, 0], b"a"));
        assert!(BloomFilter::may_contain(&[0, 0, 0, 31], b"a"));
        assert!(!BloomFilter::is_well_formed(&[0, 0, 0, 31]));
    }
}
