//! The Raft type configuration ([`TypeConfig`]) shared by every partition group: node ids and
//! addresses, the [`Command`]s a partition's log carries and the [`Response`]s applying them
//! yields, plus the storage-error helpers the log store and state machine use.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::service::{Mutation, Precondition};

/// A node's id in the cluster (`--node-id`).
pub type NodeId = u64;

/// What the cluster knows about a node: the address of its gRPC listener, which serves both the
/// Raft transport and the client-facing services.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `host:port` of the node's gRPC listener.
    pub addr: String,
}

impl Node {
    /// A node listening on `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        Node { addr: addr.into() }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// A condition on a key, checked when a [`Command::Batch`] is applied (the log's copy of
/// [`Precondition`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// The key holds exactly this value.
    ValueEquals(Vec<u8>, Vec<u8>),
    /// The key is absent.
    Absent(Vec<u8>),
    /// The key is present.
    Present(Vec<u8>),
}

impl Check {
    /// The key the check reads.
    pub fn key(&self) -> &[u8] {
        match self {
            Check::ValueEquals(k, _) | Check::Absent(k) | Check::Present(k) => k,
        }
    }

    /// Whether the check holds for a key currently holding `current`.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match self {
            Check::ValueEquals(_, v) => current == Some(v.as_slice()),
            Check::Absent(_) => current.is_none(),
            Check::Present(_) => current.is_some(),
        }
    }
}

impl From<Precondition> for Check {
    fn from(p: Precondition) -> Self {
        match p {
            Precondition::ValueEquals { key, value } => Check::ValueEquals(key, value),
            Precondition::Absent { key } => Check::Absent(key),
            Precondition::Present { key } => Check::Present(key),
        }
    }
}

/// One write of a [`Command::Batch`] (the log's copy of [`Mutation`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Set a key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Vec<u8>),
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put(k, _) | Write::Delete(k) => k,
        }
    }
}

impl From<Mutation> for Write {
    fn from(m: Mutation) -> Self {
        match m {
            Mutation::Put { key, value } => Write::Put(key, value),
            Mutation::Delete { key } => Write::Delete(key),
        }
    }
}

/// A request replicated through one partition's log. Keys are user keys; every key of a command
/// belongs to the partition whose log carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Apply `writes` atomically if every check holds.
    Batch {
        /// Conditions that must all hold.
        checks: Vec<Check>,
        /// The writes.
        writes: Vec<Write>,
    },
    /// Add `delta` to the decimal integer at `key` (absent counts as 0).
    Incr {
        /// The counter's key.
        key: Vec<u8>,
        /// The amount to add.
        delta: i64,
    },
    /// Remove every key of the partition.
    Clear,
    /// Several independent commands in one log entry, applied in order: the leader coalesces
    /// concurrent clients' commands so they share one append (and one fsync) on every replica.
    /// Each keeps its own outcome ([`Response::Multi`]); none depends on another succeeding.
    Multi(Vec<Command>),
}

impl Command {
    /// Roughly how many bytes the command adds to a log entry.
    pub fn approx_size(&self) -> usize {
        match self {
            Command::Batch { checks, writes } => {
                let checks: usize = checks
                    .iter()
                    .map(|c| match c {
                        Check::ValueEquals(k, v) => k.len() + v.len(),
                        Check::Absent(k) | Check::Present(k) => k.len(),
                    })
                    .sum();
                let writes: usize = writes
                    .iter()
                    .map(|w| match w {
                        Write::Put(k, v) => k.len() + v.len(),
                        Write::Delete(k) => k.len(),
                    })
                    .sum();
                8 + checks + writes
            }
            Command::Incr { key, .. } => 16 + key.len(),
            Command::Clear => 1,
            Command::Multi(cmds) => 4 + cmds.iter().map(Command::approx_size).sum::<usize>(),
        }
    }
}

/// Why an [`Command::Incr`] was refused (it then changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncrError {
    /// The stored value is not a decimal 64-bit integer.
    NotAnInteger,
    /// The result would not fit in an `i64`.
    Overflow,
}

/// What applying one log entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A blank or membership entry: nothing for a client.
    None,
    /// The outcome of a [`Command::Batch`].
    Batch {
        /// Whether the checks held and the writes were applied.
        applied: bool,
        /// The index of the first check that failed.
        failed_check: Option<u32>,
        /// How many deleted keys existed before the batch.
        deleted: u64,
    },
    /// The outcome of a [`Command::Incr`].
    Incr(Result<i64, IncrError>),
    /// A [`Command::Clear`] was applied.
    Cleared,
    /// The outcomes of a [`Command::Multi`], one per command, in order.
    Multi(Vec<Response>),
}

openraft::declare_raft_types!(
    /// The openraft type configuration of Strata's partition groups.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// openraft's storage error for this configuration.
pub type StorageError = openraft::StorageError<NodeId>;

/// A storage error about `subject`/`verb` caused by `source`.
pub(crate) fn storage_error(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    source: &(impl std::error::Error + 'static),
) -> StorageError {
    StorageError::IO {
        source: openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(source)),
    }
}

/// Encodes a value for the engine or the wire with postcard.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(v)
}

/// Decodes a value encoded by [`encode`]; bad bytes are an error, never a panic.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_reject_garbage() {
        let cmd = Command::Batch {
            checks: vec![Check::ValueEquals(b"k".to_vec(), b"v".to_vec())],
            writes: vec![
                Write::Put(b"k".to_vec(), b"w".to_vec()),
                Write::Delete(b"x".to_vec()),
            ],
        };
        let bytes = encode(&cmd).unwrap();
        assert_eq!(decode::<Command>(&bytes).unwrap(), cmd);
        assert!(decode::<Command>(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode::<Command>(&[0xff, 0xff, 0xff]).is_err());
    }
}
