//! How a key hashes to a slot and a slot to a partition: part of the protocol, since a client
//! that routes each request to its partition's leader must compute exactly what the cluster
//! does.
//!
//! A key's slot is CRC16-XMODEM of the key (or of its `{hash tag}`) modulo [`SLOTS`], as Redis
//! Cluster computes it. A cluster of `P` partitions (a power of two) gives partition `p` the
//! contiguous slots `[p * 16384 / P, (p + 1) * 16384 / P)`.

/// Number of hash slots, as in Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16 with the XMODEM parameters (polynomial 0x1021, initial value 0, no reflection), the
/// checksum Redis Cluster hashes keys with.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The part of `key` that is hashed: the bytes between the first `{` and the first `}` after it,
/// when that is non-empty; otherwise the whole key (Redis Cluster's hash tag rule).
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = key.get(open + 1..).unwrap_or_default();
        if let Some(close) = rest.iter().position(|&b| b == b'}')
            && close > 0
        {
            return rest.get(..close).unwrap_or_default();
        }
    }
    key
}

/// The Redis Cluster hash slot of `key`, `0..16384`.
pub fn slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) % SLOTS
}

/// The partition that owns `slot` in a cluster of `partitions` partitions (a power of two in
/// `1..=16384`; anything else is treated as 1).
pub fn partition_of_slot(slot: u16, partitions: u16) -> u16 {
    let per_partition = match partitions {
        p if p.is_power_of_two() && p <= SLOTS => SLOTS / p,
        _ => SLOTS,
    };
    (slot % SLOTS) / per_partition
}
