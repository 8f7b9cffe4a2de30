//! Which partition owns a key, and where a partition's data and Raft state live in the engine.
//!
//! A key's slot is CRC16-XMODEM of the key (or of its `{hash tag}`) modulo [`SLOTS`], exactly as
//! Redis Cluster computes it, so cluster-aware Redis clients can later route straight to a node.
//! A cluster has `P` partitions (a power of two fixed at creation), each owning the contiguous
//! slot range `[p * 16384 / P, (p + 1) * 16384 / P)`.
//!
//! Engine keys are laid out so one partition's user data is one contiguous range and each Raft
//! group's state sits under its own prefix:
//!
//! ```text
//! DATA_TAG  partition:u16 BE  user key          user data of one partition
//! META_TAG  0x0000            record key        the meta group's cluster description
//! RAFT_TAG  group:u64 BE      sub-tag [suffix]  Raft log, vote, committed, purged, applied
//! ```
//!
//! A [`Keyspace`] names the range one group's state machine replicates: a partition's user
//! data, or the meta group's records.
//!
//! [`Placement`] says which nodes hold a partition's replicas; today every node holds every
//! partition ([`AllNodes`]); consistent hashing will implement the same trait.

use std::collections::BTreeSet;

pub use strata_proto::slot::{SLOTS, crc16_xmodem, hash_tag, slot};

/// Default number of partitions of a new cluster.
pub const DEFAULT_PARTITIONS: u16 = 64;

/// Leading byte of every engine key holding user data.
pub const DATA_TAG: u8 = 0x64; // 'd'

/// Leading byte of every engine key holding Raft state.
pub const RAFT_TAG: u8 = 0x72; // 'r'

/// Leading byte of the engine keys holding the meta group's records.
pub const META_TAG: u8 = 0x6d; // 'm'

/// A partition number, `0..P`.
pub type PartitionId = u16;

/// A Raft group id: [`META_GROUP`] for the meta group, `partition + 1` for a partition's group.
pub type GroupId = u64;

/// The group id of the meta group (membership and the partition map).
pub const META_GROUP: GroupId = 0;

/// The Raft group that replicates `partition`.
pub fn group_of(partition: PartitionId) -> GroupId {
    GroupId::from(partition) + 1
}

/// The partition a (non-meta) group replicates, `None` for the meta group or an id out of range.
pub fn partition_of_group(group: GroupId) -> Option<PartitionId> {
    group
        .checked_sub(1)
        .and_then(|p| PartitionId::try_from(p).ok())
}

/// How keys map to partitions in a cluster of `P` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMap {
    partitions: u16,
}

/// A partition count that is zero, not a power of two, or more than [`SLOTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("partition count {0} must be a power of two between 1 and 16384")]
pub struct InvalidPartitionCount(pub u16);

impl Default for PartitionMap {
    fn default() -> Self {
        PartitionMap {
            partitions: DEFAULT_PARTITIONS,
        }
    }
}

impl PartitionMap {
    /// A map of `partitions` partitions, which must be a power of two in `1..=16384`.
    pub fn new(partitions: u16) -> Result<Self, InvalidPartitionCount> {
        if partitions == 0 || !partitions.is_power_of_two() || partitions > SLOTS {
            return Err(InvalidPartitionCount(partitions));
        }
        Ok(PartitionMap { partitions })
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// Every partition id, in order.
    pub fn all(&self) -> impl Iterator<Item = PartitionId> + use<> {
        0..self.partitions
    }

    /// Slots per partition.
    pub fn slots_per_partition(&self) -> u16 {
        SLOTS / self.partitions
    }

    /// The partition that owns `slot`.
    pub fn partition_of_slot(&self, slot: u16) -> PartitionId {
        strata_proto::slot::partition_of_slot(slot, self.partitions)
    }

    /// The partition that owns `key`.
    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        self.partition_of_slot(slot(key))
    }

    /// The slots `[first, last]` a partition owns (inclusive, as `CLUSTER SLOTS` reports them).
    pub fn slot_range(&self, partition: PartitionId) -> (u16, u16) {
        let per = self.slots_per_partition();
        let first = partition.saturating_mul(per);
        (first, first.saturating_add(per - 1))
    }
}

/// Bytes the cluster prepends to a user key in the engine: open a cluster node's store with
/// this much [`key_prefix_room`](strata_engine::Options::key_prefix_room).
pub const DATA_PREFIX_LEN: usize = 3;

/// The engine key prefix of a partition's user data.
pub fn data_prefix(partition: PartitionId) -> [u8; DATA_PREFIX_LEN] {
    let [hi, lo] = partition.to_be_bytes();
    [DATA_TAG, hi, lo]
}

/// The engine key holding `user_key` of `partition`.
pub fn data_key(partition: PartitionId, user_key: &[u8]) -> Vec<u8> {
    Keyspace::Partition(partition).key(user_key)
}

/// The engine key range `[start, end)` holding all of a partition's user data.
pub fn data_range(partition: PartitionId) -> (Vec<u8>, Vec<u8>) {
    let start = data_prefix(partition).to_vec();
    let end = match partition.checked_add(1) {
        Some(next) => data_prefix(next).to_vec(),
        None => vec![DATA_TAG + 1],
    };
    (start, end)
}

/// The user key of an engine data key of `partition`, `None` if it belongs elsewhere.
pub fn user_key(partition: PartitionId, engine_key: &[u8]) -> Option<&[u8]> {
    Keyspace::Partition(partition).user_key(engine_key)
}

/// The engine key range whose contents one Raft group's state machine replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyspace {
    /// The user data of one partition, replicated by its group ([`group_of`]).
    Partition(PartitionId),
    /// The cluster's description, replicated by the meta group ([`META_GROUP`]).
    Meta,
}

impl Keyspace {
    /// The keyspace group `group` replicates, `None` for an id no group has.
    pub fn of_group(group: GroupId) -> Option<Keyspace> {
        if group == META_GROUP {
            return Some(Keyspace::Meta);
        }
        partition_of_group(group).map(Keyspace::Partition)
    }

    /// The group that replicates this keyspace.
    pub fn group(self) -> GroupId {
        match self {
            Keyspace::Partition(p) => group_of(p),
            Keyspace::Meta => META_GROUP,
        }
    }

    /// The engine key prefix of every key in the keyspace.
    pub fn prefix(self) -> [u8; DATA_PREFIX_LEN] {
        match self {
            Keyspace::Partition(p) => data_prefix(p),
            Keyspace::Meta => [META_TAG, 0, 0],
        }
    }

    /// The engine key holding `key` of this keyspace.
    pub fn key(self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(DATA_PREFIX_LEN + key.len());
        k.extend_from_slice(&self.prefix());
        k.extend_from_slice(key);
        k
    }

    /// The engine key range `[start, end)` holding the whole keyspace.
    pub fn range(self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Keyspace::Partition(p) => data_range(p),
            Keyspace::Meta => (vec![META_TAG, 0, 0], vec![META_TAG, 0, 1]),
        }
    }

    /// The key within this keyspace of engine key `engine_key`, `None` if it lies elsewhere.
    pub fn user_key(self, engine_key: &[u8]) -> Option<&[u8]> {
        engine_key.strip_prefix(&self.prefix()[..])
    }
}

impl std::fmt::Display for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keyspace::Partition(p) => write!(f, "partition {p}"),
            Keyspace::Meta => f.write_str("the meta group"),
        }
    }
}

/// The engine key prefix of a Raft group's state.
pub fn raft_prefix(group: GroupId) -> [u8; 9] {
    let mut p = [0u8; 9];
    p[0] = RAFT_TAG;
    p[1..].copy_from_slice(&group.to_be_bytes());
    p
}

/// The engine key of one piece of a group's Raft state: the group prefix, a sub-tag byte and an
/// optional suffix (a log index for log entries).
pub fn raft_key(group: GroupId, sub: u8, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + suffix.len());
    k.extend_from_slice(&raft_prefix(group));
    k.push(sub);
    k.extend_from_slice(suffix);
    k
}

/// Which nodes hold the replicas of each partition. The cluster asks only this trait, so
/// consistent-hash placement can replace [`AllNodes`] without touching the Raft glue.
pub trait Placement: Send + Sync + std::fmt::Debug {
    /// The nodes that should hold a replica of `partition`, given the cluster's members.
    fn replicas(&self, partition: PartitionId, members: &BTreeSet<u64>) -> BTreeSet<u64>;
}

/// Every partition on every node: the placement of small (3 or 5 node) clusters.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllNodes;

impl Placement for AllNodes {
    fn replicas(&self, _partition: PartitionId, members: &BTreeSet<u64>) -> BTreeSet<u64> {
        members.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // The standard check value of CRC-16/XMODEM, and Redis's own test vector.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
    }

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on a real Redis.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"hello"), 866);
        assert_eq!(slot(b"somekey"), 11058);
        assert_eq!(slot(b""), 0);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
    }

    #[test]
    fn hash_tag_rules() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        // Empty tag: the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        // Only the first `{` and the first `}` after it count.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        // No closing brace.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"}{"), b"}{");
    }

    #[test]
    fn partitions_cover_slots() {
        let map = PartitionMap::new(8).unwrap();
        assert_eq!(map.slots_per_partition(), 2048);
        assert_eq!(map.partition_of_slot(0), 0);
        assert_eq!(map.partition_of_slot(2047), 0);
        assert_eq!(map.partition_of_slot(2048), 1);
        assert_eq!(map.partition_of_slot(16383), 7);
        assert_eq!(map.slot_range(7), (14336, 16383));
        assert_eq!(map.partition_of(b"foo"), 12182 / 2048);
        assert_eq!(PartitionMap::default().partitions(), 64);
        assert!(PartitionMap::new(0).is_err());
        assert!(PartitionMap::new(6).is_err());
        assert!(PartitionMap::new(32768).is_err());
        assert!(PartitionMap::new(16384).is_ok());
    }

    #[test]
    fn data_keys_are_contiguous_per_partition() {
        let (start, end) = data_range(3);
        for key in [&b""[..], b"a", b"\xff\xff\xff"] {
            let k = data_key(3, key);
            assert!(k >= start && k < end);
            assert_eq!(user_key(3, &k), Some(key));
            assert_eq!(user_key(4, &k), None);
        }
        assert!(data_key(2, b"\xff") < start);
        assert!(data_key(4, b"") >= end);
        let (_, last_end) = data_range(u16::MAX);
        assert!(data_key(u16::MAX, b"\xff\xff") < last_end);
        // Raft state never falls in a data range.
        assert!(raft_key(1, b'l', &[]) > data_range(u16::MAX).1);
    }

    #[test]
    fn keyspaces_do_not_overlap() {
        let (meta_start, meta_end) = Keyspace::Meta.range();
        let meta_key = Keyspace::Meta.key(b"cluster");
        assert!(meta_key >= meta_start && meta_key < meta_end);
        assert_eq!(Keyspace::Meta.user_key(&meta_key), Some(&b"cluster"[..]));
        assert!(
            meta_start >= data_range(u16::MAX).1,
            "after every partition's data"
        );
        assert!(
            meta_end <= raft_prefix(META_GROUP).to_vec(),
            "before any Raft state"
        );
        assert_eq!(Keyspace::Partition(3).key(b"k"), data_key(3, b"k"));
        assert_eq!(Keyspace::of_group(META_GROUP), Some(Keyspace::Meta));
        assert_eq!(Keyspace::of_group(4), Some(Keyspace::Partition(3)));
        assert_eq!(Keyspace::Partition(3).group(), 4);
        assert_eq!(Keyspace::Meta.to_string(), "the meta group");
    }

    #[test]
    fn group_ids() {
        assert_eq!(group_of(0), 1);
        assert_eq!(partition_of_group(1), Some(0));
        assert_eq!(partition_of_group(META_GROUP), None);
        assert_eq!(partition_of_group(70000), None);
    }
}
