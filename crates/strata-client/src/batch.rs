//! [`Batch`]: a conditional atomic batch (puts and deletes guarded by per-key preconditions,
//! like an etcd transaction without an else branch), and its [`BatchOutcome`].

use strata_proto::v1 as pb;

/// A batch under construction.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) req: pb::BatchRequest,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Every precondition held and the ops were applied.
    pub applied: bool,
    /// When not applied, the index of the first failed precondition.
    pub failed_precondition: Option<usize>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn condition(mut self, key: &[u8], c: pb::precondition::Condition) -> Self {
        self.req.preconditions.push(pb::Precondition {
            key: key.to_vec(),
            condition: Some(c),
        });
        self
    }

    /// Requires `key` to hold exactly `value`.
    pub fn if_equals(self, key: &[u8], value: &[u8]) -> Self {
        self.condition(
            key,
            pb::precondition::Condition::ValueEquals(value.to_vec()),
        )
    }

    /// Requires `key` to be absent.
    pub fn if_absent(self, key: &[u8]) -> Self {
        self.condition(key, pb::precondition::Condition::Absent(pb::Empty {}))
    }

    /// Requires `key` to exist.
    pub fn if_present(self, key: &[u8]) -> Self {
        self.condition(key, pb::precondition::Condition::Present(pb::Empty {}))
    }

    /// Sets `key` to `value`.
    pub fn put(mut self, key: &[u8], value: &[u8]) -> Self {
        self.req.ops.push(pb::BatchOp {
            op: Some(pb::batch_op::Op::Put(pb::PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
            })),
        });
        self
    }

    /// Deletes `key`.
    pub fn delete(mut self, key: &[u8]) -> Self {
        self.req.ops.push(pb::BatchOp {
            op: Some(pb::batch_op::Op::Delete(pb::DeleteRequest {
                key: key.to_vec(),
            })),
        });
        self
    }

    /// The key that decides where the batch is routed: its first precondition's or operation's
    /// (a cluster refuses a batch whose keys span partitions anyway).
    pub(crate) fn first_key(&self) -> &[u8] {
        fn op_key(op: &pb::BatchOp) -> Option<&[u8]> {
            match &op.op {
                Some(pb::batch_op::Op::Put(p)) => Some(&p.key),
                Some(pb::batch_op::Op::Delete(d)) => Some(&d.key),
                None => None,
            }
        }
        self.req
            .preconditions
            .first()
            .map(|c| c.key.as_slice())
            .or_else(|| self.req.ops.iter().find_map(op_key))
            .unwrap_or_default()
    }

    /// True when the batch has no conditions: its retry would be harmless.
    pub fn is_unconditional(&self) -> bool {
        self.req.preconditions.is_empty()
    }
}
