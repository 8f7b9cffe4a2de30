//! [`UnsyncedTail`]: the entries a leader put in its own log ahead of their sync, and what they
//! hold back until it is done.
//!
//! openraft 0.9 starts replicating an entry only once the leader's log store reports it
//! flushed, so each write would pay the leader's sync and then a follower's, one after the
//! other. A leader may instead write its disk while it replicates (the Raft thesis, section
//! 10.2.1; etcd does): the log store reports a leader's own entries flushed at once, keeps
//! them here until their sync is done (the engine makes them visible only then, so the log
//! reader serves them from here meanwhile), and two things make up for what openraft then
//! believes too early, that the leader's copy counts towards the quorum:
//!
//! - the state machine applies no entry before its sync is done ([`UnsyncedTail::wait_synced`]),
//!   so a client hears of a write, and a read sees it, only once a quorum, the leader among
//!   them, has it on disk (besides the leader's own, openraft counts only followers' synced
//!   appends);
//! - AppendEntries tell followers of no commit beyond the synced part of the leader's log
//!   ([`UnsyncedTail::commit_bound`]), so no follower applies an entry that a crash of the
//!   leader could still take from the quorum.
//!
//! What a crash of the leader loses is then only what nobody acted on: a write in it was never
//! acknowledged, and the next leader may drop it. Only entries of the leader's own term after
//! one already synced take this path (the first entry of a term, its blank one, is synced
//! before it is reported), so whatever the bound lets followers commit is an entry of the
//! current term on a quorum of disks, as Raft's commit rule asks.

use std::collections::VecDeque;
use std::sync::Arc;

use openraft::LogId;
use tokio::sync::watch;

use crate::raft::types::{NodeId, TypeConfig};

type Entry = openraft::Entry<TypeConfig>;

/// One write of a leader's own entries whose sync is not done yet.
#[derive(Debug)]
struct Unsynced {
    /// The log store's number for the write (its writes are queued in this order).
    ticket: u64,
    /// The log id before its first entry.
    prev: Option<LogId<NodeId>>,
    entries: Vec<Entry>,
}

impl Unsynced {
    /// The index of its first entry.
    fn first_index(&self) -> u64 {
        self.prev.map_or(0, |p| p.index + 1)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first; their entries are consecutive and end the log.
    writes: VecDeque<Unsynced>,
    /// Why a sync failed: nothing more is applied, and the failure is reported.
    failed: Option<String>,
}

/// A group's entries appended ahead of their sync. Clones share the state.
#[derive(Debug, Clone)]
pub struct UnsyncedTail {
    state: Arc<watch::Sender<State>>,
}

impl Default for UnsyncedTail {
    fn default() -> Self {
        UnsyncedTail {
            state: Arc::new(watch::Sender::new(State::default())),
        }
    }
}

impl UnsyncedTail {
    /// Records `entries`, written by the log store's write `ticket` and not synced yet; `prev`
    /// is the log id before the first of them.
    pub fn push(&self, ticket: u64, prev: Option<LogId<NodeId>>, entries: Vec<Entry>) {
        self.state.send_modify(|s| {
            s.writes.push_back(Unsynced {
                ticket,
                prev,
                entries,
            })
        });
    }

    /// The log store's write `ticket` is synced, and with it every write queued before it.
    pub fn synced(&self, ticket: u64) {
        self.state.send_if_modified(|s| {
            let before = s.writes.len();
            while s.writes.front().is_some_and(|w| w.ticket <= ticket) {
                s.writes.pop_front();
            }
            s.writes.len() != before
        });
    }

    /// A sync failed: the entries stay held back, and [`UnsyncedTail::wait_synced`] fails.
    pub fn failed(&self, error: String) {
        self.state.send_modify(|s| {
            s.failed.get_or_insert(error);
        });
    }

    /// The log is cut at `index`: entries from there on are gone (their writes still count
    /// as queued until a later write is synced).
    pub fn truncate_from(&self, index: u64) {
        self.state.send_modify(|s| {
            for w in &mut s.writes {
                w.entries.retain(|e| e.log_id.index < index);
            }
        });
    }

    /// The entries with indexes in `start..end` held here, in order.
    pub fn entries(&self, start: u64, end: u64) -> Vec<Entry> {
        let state = self.state.borrow();
        state
            .writes
            .iter()
            .flat_map(|w| &w.entries)
            .filter(|e| (start..end).contains(&e.log_id.index))
            .cloned()
            .collect()
    }

    /// The commit a leader may tell its followers of, given openraft's `committed`: nothing
    /// beyond what precedes its oldest unsynced entry.
    pub fn commit_bound(&self, committed: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let state = self.state.borrow();
        let Some(oldest) = state.writes.front() else {
            return committed;
        };
        match committed {
            Some(c) if c.index >= oldest.first_index() => oldest.prev,
            _ => committed,
        }
    }

    /// Waits until no entry at or below `index` waits for its sync; an error if a sync failed.
    pub async fn wait_synced(&self, index: u64) -> Result<(), String> {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| {
                s.failed.is_some() || s.writes.front().is_none_or(|w| w.first_index() > index)
            })
            .await
            .map_err(|e| e.to_string())?;
        match &state.failed {
            Some(e) => Err(format!("the leader's log sync failed: {e}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on the first broken assumption"
    )]

    use std::time::Duration;

    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        indexes
            .map(|i| Entry {
                log_id: log_id(term, i),
                payload: EntryPayload::Blank,
            })
            .collect()
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn entries_are_held_back_until_their_write_or_a_later_one_is_synced() {
        let tail = UnsyncedTail::default();
        assert_eq!(tail.commit_bound(Some(log_id(2, 9))), Some(log_id(2, 9)));
        tail.wait_synced(100).await.unwrap();

        tail.push(1, Some(log_id(2, 4)), entries(2, 5..=6));
        tail.push(2, Some(log_id(2, 6)), entries(2, 7..=7));
        assert_eq!(indexes(&tail.entries(0, 100)), [5, 6, 7]);
        assert_eq!(indexes(&tail.entries(6, 7)), [6]);
        // Followers hear of no commit past index 4 while 5 waits for its sync.
        assert_eq!(tail.commit_bound(Some(log_id(2, 7))), Some(log_id(2, 4)));
        assert_eq!(tail.commit_bound(Some(log_id(2, 3))), Some(log_id(2, 3)));
        tail.wait_synced(4).await.unwrap();

        let waiting = tokio::spawn({
            let tail = tail.clone();
            async move { tail.wait_synced(6).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "index 6 is not synced yet");
        tail.synced(1);
        waiting.await.unwrap().unwrap();
        assert_eq!(tail.commit_bound(Some(log_id(2, 7))), Some(log_id(2, 6)));
        assert_eq!(indexes(&tail.entries(0, 100)), [7]);

        // A later write's sync covers every earlier one (the engine syncs in queue order).
        tail.push(3, Some(log_id(2, 7)), entries(2, 8..=8));
        tail.synced(4);
        assert_eq!(tail.entries(0, 100).len(), 0);
        assert_eq!(tail.commit_bound(Some(log_id(2, 8))), Some(log_id(2, 8)));
    }

    #[tokio::test]
    async fn a_failed_sync_keeps_the_entries_held_back_and_is_reported() {
        let tail = UnsyncedTail::default();
        tail.push(1, Some(log_id(1, 1)), entries(1, 2..=3));
        tail.failed("disk gone".into());
        let err = tail.wait_synced(2).await.unwrap_err();
        assert!(err.contains("disk gone"), "{err}");
        assert_eq!(tail.commit_bound(Some(log_id(1, 3))), Some(log_id(1, 1)));
    }

    #[test]
    fn a_cut_log_serves_nothing_from_the_cut_on() {
        let tail = UnsyncedTail::default();
        tail.push(1, Some(log_id(1, 1)), entries(1, 2..=5));
        tail.truncate_from(4);
        assert_eq!(indexes(&tail.entries(0, 100)), [2, 3]);
    }
}
