//! [`ProposalRounds`]: the groups a node leads propose their coalesced writes in rounds, together.
//!
//! Each group proposes one coalesced entry at a time ([`Group`](crate::raft::group::Group)),
//! and on their own the groups' Raft rounds drift apart: every group pays for its own log sync
//! on each replica and its own AppendEntries to each peer, one after the other. With rounds, a
//! group whose entry is done does not propose its next one at once: it waits until every
//! proposal of the round is done, and then every group with writes waiting proposes at the
//! same moment. Their appends then share one sync on the leader, travel to each peer in one
//! message ([`AppendQueue`](crate::raft::append_batch::AppendQueue)), share one sync on each
//! follower and come back in one reply, as a single group's would.
//!
//! A round waits at most [`MAX_ROUND_WAIT`] for its proposals: then the groups waiting start
//! the next round without it, and a proposal still out (a group without a quorum, or busy
//! installing a snapshot) no longer holds any round back.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::raft::lock;

/// The longest the groups with writes waiting wait for the current round to end.
pub const MAX_ROUND_WAIT: Duration = Duration::from_millis(20);

/// A group taking part in rounds.
pub trait RoundMember: Sized + Send + Sync + 'static {
    /// Proposes the member's next entry as part of round `round`, and then calls
    /// [`ProposalRounds::done`] with it (on a task of its own: this must not block).
    fn propose_in(self: Arc<Self>, rounds: Arc<ProposalRounds<Self>>, round: u64);
}

/// The proposal rounds of one node's groups. Shared through an [`Arc`].
pub struct ProposalRounds<M> {
    state: Mutex<RoundState<M>>,
}

struct RoundState<M> {
    /// The number of the current round.
    current: u64,
    /// Proposals of the current round not done yet.
    remaining: usize,
    /// Members with writes queued, waiting for the next round.
    waiting: Vec<Arc<M>>,
}

impl<M> std::fmt::Debug for ProposalRounds<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("ProposalRounds")
            .field("current", &s.current)
            .field("remaining", &s.remaining)
            .field("waiting", &s.waiting.len())
            .finish()
    }
}

impl<M> Default for ProposalRounds<M> {
    fn default() -> Self {
        ProposalRounds {
            state: Mutex::new(RoundState {
                current: 0,
                remaining: 0,
                waiting: Vec::new(),
            }),
        }
    }
}

impl<M> ProposalRounds<M> {
    fn lock(&self) -> MutexGuard<'_, RoundState<M>> {
        lock(&self.state)
    }
}

impl<M: RoundMember> ProposalRounds<M> {
    /// `member` has writes queued and no proposal out: it proposes now if no round is under
    /// way, or with the next round.
    pub fn ready(self: &Arc<Self>, member: Arc<M>) {
        let s = self.lock();
        self.enqueue(s, member);
    }

    /// `member`'s proposal in round `round` is done; `more`: it has writes queued for the next.
    pub fn done(self: &Arc<Self>, member: Arc<M>, round: u64, more: bool) {
        let mut s = self.lock();
        if round == s.current {
            s.remaining = s.remaining.saturating_sub(1);
        }
        if more {
            self.enqueue(s, member);
        } else if s.remaining == 0 {
            self.start_round(s);
        }
    }

    /// Queues `member` for the next round, which starts at once if the current one is over;
    /// the first member to wait for a round starts the timer that bounds the wait.
    fn enqueue(self: &Arc<Self>, mut s: MutexGuard<'_, RoundState<M>>, member: Arc<M>) {
        s.waiting.push(member);
        if s.remaining == 0 {
            return self.start_round(s);
        }
        if s.waiting.len() == 1 {
            let round = s.current;
            let rounds = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(MAX_ROUND_WAIT).await;
                let s = rounds.lock();
                if s.current == round {
                    rounds.start_round(s);
                }
            });
        }
    }

    /// Starts a round of the waiting members, if any.
    fn start_round(self: &Arc<Self>, mut s: MutexGuard<'_, RoundState<M>>) {
        if s.waiting.is_empty() {
            return;
        }
        let members = std::mem::take(&mut s.waiting);
        s.current += 1;
        s.remaining = members.len();
        let round = s.current;
        drop(s);
        for member in members {
            member.propose_in(Arc::clone(self), round);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on the first broken assumption"
    )]

    use super::*;

    /// The proposals asked for, in order: the member's name and the round.
    type Log = Arc<Mutex<Vec<(&'static str, u64)>>>;

    /// A member that records the rounds it is asked to propose in and does nothing else: the
    /// test says when each proposal is done.
    struct Recorder {
        name: &'static str,
        log: Log,
    }

    impl RoundMember for Recorder {
        fn propose_in(self: Arc<Self>, _rounds: Arc<ProposalRounds<Self>>, round: u64) {
            self.log.lock().unwrap().push((self.name, round));
        }
    }

    fn members(names: &[&'static str]) -> (Vec<Arc<Recorder>>, Log) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let members = names
            .iter()
            .map(|&name| {
                Arc::new(Recorder {
                    name,
                    log: Arc::clone(&log),
                })
            })
            .collect();
        (members, log)
    }

    fn taken(log: &Log) -> Vec<(&'static str, u64)> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn members_done_early_wait_for_the_round_then_propose_together() {
        let (m, log) = members(&["a", "b", "c"]);
        let rounds = Arc::new(ProposalRounds::default());
        rounds.ready(Arc::clone(&m[0]));
        assert_eq!(taken(&log), [("a", 1)], "an idle node proposes at once");
        rounds.ready(Arc::clone(&m[1]));
        rounds.ready(Arc::clone(&m[2]));
        assert_eq!(taken(&log), [], "b and c wait for round 1");
        rounds.done(Arc::clone(&m[0]), 1, true);
        assert_eq!(taken(&log), [("b", 2), ("c", 2), ("a", 2)]);
        // Round 2: a and c finish with more to write, b last.
        rounds.done(Arc::clone(&m[0]), 2, true);
        rounds.done(Arc::clone(&m[2]), 2, true);
        assert_eq!(taken(&log), []);
        rounds.done(Arc::clone(&m[1]), 2, false);
        assert_eq!(taken(&log), [("a", 3), ("c", 3)]);
        rounds.done(Arc::clone(&m[0]), 3, false);
        rounds.done(Arc::clone(&m[2]), 3, false);
        assert_eq!(taken(&log), []);
        rounds.ready(Arc::clone(&m[1]));
        assert_eq!(
            taken(&log),
            [("b", 4)],
            "after the last round the node is idle again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_proposal_holds_the_others_back_only_until_the_wait_ends() {
        let (m, log) = members(&["stuck", "b"]);
        let rounds = Arc::new(ProposalRounds::default());
        rounds.ready(Arc::clone(&m[0]));
        rounds.ready(Arc::clone(&m[1]));
        assert_eq!(taken(&log), [("stuck", 1)]);
        tokio::time::sleep(MAX_ROUND_WAIT / 2).await;
        assert_eq!(taken(&log), [], "b still waits for round 1");
        tokio::time::sleep(MAX_ROUND_WAIT).await;
        assert_eq!(taken(&log), [("b", 2)], "the wait is bounded");
        // Round 2 is b's alone: the stuck proposal of round 1 does not hold it.
        rounds.done(Arc::clone(&m[1]), 2, true);
        assert_eq!(taken(&log), [("b", 3)]);
        // The straggler finishing later does not end round 3, and joins the next one.
        rounds.done(Arc::clone(&m[0]), 1, true);
        assert_eq!(taken(&log), []);
        rounds.done(Arc::clone(&m[1]), 3, false);
        assert_eq!(taken(&log), [("stuck", 4)]);
    }
}
