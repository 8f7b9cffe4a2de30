//! [`Group`]: one Raft group hosted by a node (a partition's, or the meta group) — its openraft
//! instance, and the coalescing of the client traffic the node serves while it leads the group.
//!
//! openraft 0.9 handles each proposal on its own: the group's core task appends the entry and
//! waits for the append to be synced before it takes the next one, so concurrent clients of one
//! partition would pay one fsync each, in a row, on every replica. The leader therefore queues
//! concurrent writes and proposes them as one [`Command::Multi`] entry (one append, one sync on
//! each replica, one apply batch for all of them), one such proposal at a time: the writes that
//! arrive while it is replicated make up the next.
//!
//! Linearizable reads are coalesced the same way: openraft confirms leadership with a round of
//! heartbeats per `ensure_linearizable` call, so the reads waiting while one confirmation is in
//! flight share the next one. Each read is answered by a confirmation that began after the read
//! arrived, which is all a read index needs to be linearizable.
//!
//! A confirmation also gives the leader a read lease (when the node's configuration enables
//! them): for a while after the heartbeats it sent, no other node can become leader, because
//! every follower that acknowledged them refuses to vote for `election_timeout_max` after it
//! heard from the leader (openraft's leader lease, which a restarted follower honours too: its
//! vote is loaded as just renewed). So until `started + read_lease` (a fraction of that) the
//! leader serves reads at its last log index without asking anyone, renewing the lease in the
//! background while reads keep coming, as TiKV's lease reads do. Any vote request the node
//! receives for the group ends the lease at once, before openraft sees it, and a lease is only
//! used in the term it was confirmed in.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{Raft, ServerState};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::partition::Keyspace;
use crate::raft::forward::{self, ForwardError};
use crate::raft::lock;
use crate::raft::rounds::{ProposalRounds, RoundMember};
use crate::raft::status::ReadCounts;
use crate::raft::types::{Command, Response, TypeConfig};

/// Most commands coalesced into one log entry.
const MAX_COMMANDS_PER_ENTRY: usize = 256;
/// Most bytes of commands coalesced into one log entry (a larger command travels alone).
const MAX_BYTES_PER_ENTRY: usize = 1 << 20;

/// The longest a read under a lease waits for the leader to apply its log up to the read
/// index; past it the read is refused (certainly without effect) and retried.
const LEASED_APPLY_WAIT: Duration = Duration::from_secs(2);

type Reply<T> = oneshot::Sender<Result<T, ForwardError>>;

/// Writes waiting to be proposed, and whether the group is in a proposal round (waiting for
/// one or proposing in one). One coalesced proposal at a time: openraft's core syncs each
/// append before it takes the next proposal anyway, and two in flight halved the batches for
/// no overlap (3-node cluster, 8 partitions, 64 clients: 3,379-3,512 writes/s with two,
/// 3,948-4,207 with one, alternated in one run).
#[derive(Default)]
struct Proposals {
    queue: VecDeque<(Command, Reply<Response>)>,
    in_round: bool,
}

/// Reads waiting for a leadership confirmation, and whether one is in flight.
#[derive(Default)]
struct Reads {
    waiting: Vec<Reply<Option<u64>>>,
    in_flight: bool,
}

/// Leadership confirmed by a quorum: no other leader before `until`, in `term`.
#[derive(Debug, Clone, Copy)]
struct Lease {
    term: u64,
    until: Instant,
}

/// The group's read lease, and how many times it was revoked (a confirmation that began before
/// a revocation must not grant a lease).
#[derive(Debug, Default)]
struct LeaseState {
    lease: Option<Lease>,
    revocations: u64,
}

/// A read served under the lease.
struct LeasedRead {
    /// The leader's last log index: everything committed before the read began is at or below.
    index: Option<u64>,
    /// Whether the leader has applied up to `index` already.
    applied: bool,
    /// Whether the lease is half spent, so a confirmation should renew it.
    renew: bool,
}

/// One Raft group on this node. Shared through an [`Arc`].
pub struct Group {
    raft: Raft<TypeConfig>,
    keyspace: Keyspace,
    /// How long after a confirmation began the leader reads under its lease; zero: never.
    read_lease: Duration,
    proposals: Mutex<Proposals>,
    rounds: Arc<ProposalRounds<Group>>,
    reads: Mutex<Reads>,
    lease: Mutex<LeaseState>,
    leased_reads: AtomicU64,
    confirmations: AtomicU64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

impl Group {
    /// The group replicating `keyspace`, run by `raft`, reading under a lease for `read_lease`
    /// after each leadership confirmation (zero: every read is confirmed). `read_lease` must be
    /// well under openraft's leader lease (`election_timeout_max`). Its writes are proposed in
    /// `rounds`, shared by the node's groups.
    pub fn new(
        raft: Raft<TypeConfig>,
        keyspace: Keyspace,
        read_lease: Duration,
        rounds: Arc<ProposalRounds<Group>>,
    ) -> Arc<Group> {
        Arc::new(Group {
            raft,
            keyspace,
            read_lease,
            proposals: Mutex::default(),
            rounds,
            reads: Mutex::default(),
            lease: Mutex::default(),
            leased_reads: AtomicU64::new(0),
            confirmations: AtomicU64::new(0),
        })
    }

    /// The group's openraft instance.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The keyspace the group replicates.
    pub fn keyspace(&self) -> Keyspace {
        self.keyspace
    }

    /// How this node has served linearizable reads of the group as its leader.
    pub fn read_counts(&self) -> ReadCounts {
        ReadCounts {
            leased: self.leased_reads.load(Ordering::Relaxed),
            confirmations: self.confirmations.load(Ordering::Relaxed),
        }
    }

    /// Proposes `cmd` (this node should lead the partition) and waits until it is committed and
    /// applied here, coalesced with the writes of other clients. The errors are those of
    /// [`forward::leader_write`], shared by every command of the entry.
    pub async fn write(self: &Arc<Self>, cmd: Command) -> Result<Response, ForwardError> {
        let (tx, rx) = oneshot::channel();
        let join = {
            let mut p = lock(&self.proposals);
            p.queue.push_back((cmd, tx));
            !std::mem::replace(&mut p.in_round, true)
        };
        if join {
            self.rounds.ready(Arc::clone(self));
        }
        rx.await.unwrap_or_else(|_| {
            Err(ForwardError::Unknown(format!(
                "{}: the proposal task ended without an answer",
                self.keyspace
            )))
        })
    }

    /// Proposes the next coalesced entry of what is queued, in round `round` of `rounds`, and
    /// tells `rounds` when it is done.
    async fn propose_next(self: Arc<Self>, rounds: Arc<ProposalRounds<Group>>, round: u64) {
        let batch = take_batch(&mut lock(&self.proposals).queue);
        if !batch.is_empty() {
            self.propose(batch).await;
        }
        let more = {
            let mut p = lock(&self.proposals);
            p.in_round = !p.queue.is_empty();
            p.in_round
        };
        rounds.done(self, round, more);
    }

    /// Proposes `batch` as one entry and answers each of its writers.
    async fn propose(&self, batch: Vec<(Command, Reply<Response>)>) {
        let (mut cmds, replies): (Vec<Command>, Vec<Reply<Response>>) = batch.into_iter().unzip();
        let n = cmds.len();
        let cmd = if n == 1 {
            cmds.swap_remove(0)
        } else {
            Command::Multi(cmds)
        };
        let outcomes = match forward::leader_write(&self.raft, self.keyspace, cmd).await {
            Ok(response) if n == 1 => vec![Ok(response)],
            Ok(Response::Multi(outcomes)) if outcomes.len() == n => {
                outcomes.into_iter().map(Ok).collect()
            }
            Ok(other) => vec![
                Err(ForwardError::Failed(format!(
                    "{}: {n} coalesced commands answered with {other:?}",
                    self.keyspace
                )));
                n
            ],
            Err(e) => vec![Err(e); n],
        };
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }

    /// The index a linearizable read of the partition must see, once this node (its leader)
    /// has applied up to it: under the read lease, the leader's last log index; otherwise
    /// openraft's read index, confirmed by a quorum after this call began (see
    /// [`forward::leader_read_index`]) and shared with the reads waiting beside this one.
    pub async fn read_index(self: &Arc<Self>) -> Result<Option<u64>, ForwardError> {
        if let Some(read) = self.leased_read() {
            self.leased_reads.fetch_add(1, Ordering::Relaxed);
            if read.renew {
                self.start_confirmations();
            }
            if !read.applied {
                self.raft
                    .wait(Some(LEASED_APPLY_WAIT))
                    .applied_index_at_least(read.index, "leased read")
                    .await
                    .map_err(|e| {
                        ForwardError::Refused(format!(
                            "{}: leader behind its read index: {e}",
                            self.keyspace
                        ))
                    })?;
            }
            return Ok(read.index);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.reads).waiting.push(tx);
        self.start_confirmations();
        rx.await.unwrap_or_else(|_| {
            Err(ForwardError::Refused(format!(
                "{}: the read barrier task ended without an answer",
                self.keyspace
            )))
        })
    }

    /// Ends the read lease: a node is campaigning, and this node's vote may help it win.
    /// Called before the group sees any vote request.
    pub fn revoke_lease(&self) {
        let mut state = lock(&self.lease);
        state.lease = None;
        state.revocations += 1;
    }

    /// The read this node may serve under its lease right now, if it holds one.
    fn leased_read(&self) -> Option<LeasedRead> {
        if self.read_lease.is_zero() {
            return None;
        }
        let lease = lock(&self.lease).lease?;
        let now = Instant::now();
        if now >= lease.until {
            return None;
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.state != ServerState::Leader || m.current_term != lease.term {
            return None;
        }
        Some(LeasedRead {
            index: m.last_log_index,
            applied: m.last_applied.map(|l| l.index) >= m.last_log_index,
            renew: lease.until - now < self.read_lease / 2,
        })
    }

    /// Starts the confirmation task unless it runs: it confirms at least once (renewing the
    /// lease), then again while reads wait.
    fn start_confirmations(self: &Arc<Self>) {
        let launch = !std::mem::replace(&mut lock(&self.reads).in_flight, true);
        if launch {
            tokio::spawn(Arc::clone(self).confirm_waiting());
        }
    }

    /// Runs leadership confirmations, the first at once and then until no read waits: each
    /// answers the reads that were waiting when it began.
    async fn confirm_waiting(self: Arc<Self>) {
        let mut first = true;
        loop {
            let waiting = {
                let mut r = lock(&self.reads);
                if r.waiting.is_empty() && !first {
                    r.in_flight = false;
                    return;
                }
                std::mem::take(&mut r.waiting)
            };
            first = false;
            let result = self.confirm().await;
            for reply in waiting {
                let _ = reply.send(result.clone());
            }
        }
    }

    /// One leadership confirmation, which grants a lease from the moment it began when it
    /// succeeds and no vote request arrived meanwhile.
    async fn confirm(&self) -> Result<Option<u64>, ForwardError> {
        let term = self.raft.metrics().borrow().current_term;
        let revocations = lock(&self.lease).revocations;
        let started = Instant::now();
        self.confirmations.fetch_add(1, Ordering::Relaxed);
        let result = forward::leader_read_index(&self.raft, self.keyspace).await;
        if result.is_ok() && !self.read_lease.is_zero() {
            let mut state = lock(&self.lease);
            if state.revocations == revocations {
                let until = started + self.read_lease;
                let longer = state
                    .lease
                    .is_none_or(|l| l.term != term || l.until < until);
                if longer {
                    state.lease = Some(Lease { term, until });
                }
            }
        }
        result
    }
}

impl RoundMember for Group {
    fn propose_in(self: Arc<Self>, rounds: Arc<ProposalRounds<Group>>, round: u64) {
        tokio::spawn(self.propose_next(rounds, round));
    }
}

/// Takes the commands of the next entry off the front of `queue`: at least one, then more while
/// they fit [`MAX_COMMANDS_PER_ENTRY`] and [`MAX_BYTES_PER_ENTRY`].
fn take_batch(queue: &mut VecDeque<(Command, Reply<Response>)>) -> Vec<(Command, Reply<Response>)> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some((cmd, _)) = queue.front() {
        let size = cmd.approx_size();
        if !batch.is_empty()
            && (batch.len() == MAX_COMMANDS_PER_ENTRY || bytes + size > MAX_BYTES_PER_ENTRY)
        {
            break;
        }
        bytes += size;
        if let Some(item) = queue.pop_front() {
            batch.push(item);
        }
    }
    batch
}
