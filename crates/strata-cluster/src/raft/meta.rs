//! The meta group's record: [`ClusterMeta`], the cluster's members (id and gRPC address) and
//! its partition count, replicated by group 0 on every member like a partition's data, as one
//! record in the meta [`Keyspace`](crate::partition::Keyspace::Meta).
//!
//! The record is created once, by the first leader of the meta group of a bootstrapped cluster
//! ([`create_command`]), and changed only by compare-and-swap of the whole record
//! ([`replace_command`]), so concurrent membership changes are serialized and each one bumps
//! its version. What the record says is the desired state; the partition groups are brought in
//! line with it afterwards by the [`reconciler`](super::reconcile).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::raft::membership::MembershipChange;
use crate::raft::types::{Check, Command, NodeId, Write, decode, encode};

/// The key of the record in the meta keyspace.
pub const CLUSTER_KEY: &[u8] = b"cluster";

/// The cluster as the meta group records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Counts the changes: 1 when the cluster was created, one more per membership change.
    pub version: u64,
    /// The number of partitions, fixed at creation.
    pub partitions: u16,
    /// Every member: id to gRPC address.
    pub members: BTreeMap<NodeId, String>,
}

/// A membership change the record refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The change would remove the only member.
    #[error("node {0} is the cluster's last member")]
    LastMember(NodeId),
    /// The node is a member under another address.
    #[error("node {id} is already a member at {addr}; remove it before adding it again")]
    OtherAddress {
        /// The node.
        id: NodeId,
        /// The address the record has for it.
        addr: String,
    },
}

impl ClusterMeta {
    /// The record of a new cluster of `members` and `partitions` partitions.
    pub fn new(partitions: u16, members: BTreeMap<NodeId, String>) -> Self {
        ClusterMeta {
            version: 1,
            partitions,
            members,
        }
    }

    /// The stored form of the record.
    pub fn encode(&self) -> Vec<u8> {
        // Only strings and integers: postcard cannot fail on them.
        encode(self).unwrap_or_default()
    }

    /// The record stored as `bytes`; damaged bytes are an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        decode(bytes)
    }

    /// The members' ids.
    pub fn member_ids(&self) -> BTreeSet<NodeId> {
        self.members.keys().copied().collect()
    }

    /// The record after `change`, with the next version; `None` when it already reflects the
    /// change (adding a member at its address, removing a node that is not one).
    pub fn changed(&self, change: &MembershipChange) -> Result<Option<ClusterMeta>, MetaError> {
        let mut next = self.clone();
        match change {
            MembershipChange::Add { id, addr } => match self.members.get(id) {
                Some(known) if known == addr => return Ok(None),
                Some(known) => {
                    return Err(MetaError::OtherAddress {
                        id: *id,
                        addr: known.clone(),
                    });
                }
                None => {
                    next.members.insert(*id, addr.clone());
                }
            },
            MembershipChange::Remove { id } => {
                if !self.members.contains_key(id) {
                    return Ok(None);
                }
                if self.members.len() == 1 {
                    return Err(MetaError::LastMember(*id));
                }
                next.members.remove(id);
            }
        }
        next.version += 1;
        Ok(Some(next))
    }
}

/// The command that stores `meta` unless a record exists: every bootstrapped node may propose
/// it, and only the first one applied takes effect.
pub fn create_command(meta: &ClusterMeta) -> Command {
    Command::Batch {
        checks: vec![Check::Absent(CLUSTER_KEY.to_vec())],
        writes: vec![Write::Put(CLUSTER_KEY.to_vec(), meta.encode())],
    }
}

/// The command that replaces the record stored as `old` with `new`, applied only while the
/// record is still `old`.
pub fn replace_command(old: &[u8], new: &ClusterMeta) -> Command {
    Command::Batch {
        checks: vec![Check::ValueEquals(CLUSTER_KEY.to_vec(), old.to_vec())],
        writes: vec![Write::Put(CLUSTER_KEY.to_vec(), new.encode())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> ClusterMeta {
        ClusterMeta::new(
            8,
            (1..=3).map(|i| (i, format!("127.0.0.1:740{i}"))).collect(),
        )
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let meta = three();
        let bytes = meta.encode();
        assert_eq!(ClusterMeta::decode(&bytes).unwrap(), meta);
        assert!(ClusterMeta::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ClusterMeta::decode(&[]).is_err());
    }

    #[test]
    fn changes_bump_the_version_and_repeats_change_nothing() {
        let meta = three();
        let add = MembershipChange::Add {
            id: 4,
            addr: "127.0.0.1:7404".into(),
        };
        let added = meta.changed(&add).unwrap().unwrap();
        assert_eq!(added.version, 2);
        assert_eq!(added.member_ids(), BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(added.changed(&add).unwrap(), None);
        let elsewhere = MembershipChange::Add {
            id: 4,
            addr: "127.0.0.1:9999".into(),
        };
        assert!(matches!(
            added.changed(&elsewhere),
            Err(MetaError::OtherAddress { id: 4, .. })
        ));

        let remove = MembershipChange::Remove { id: 1 };
        let removed = added.changed(&remove).unwrap().unwrap();
        assert_eq!(removed.version, 3);
        assert_eq!(removed.member_ids(), BTreeSet::from([2, 3, 4]));
        assert_eq!(removed.changed(&remove).unwrap(), None);

        let alone = ClusterMeta::new(8, BTreeMap::from([(1, "a:1".to_string())]));
        assert_eq!(
            alone.changed(&remove),
            Err(MetaError::LastMember(1)),
            "the last member stays"
        );
    }
}
