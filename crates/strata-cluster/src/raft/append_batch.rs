//! [`AppendQueue`]: the AppendEntries of every group on this node to one peer, sent together.
//!
//! Each Raft group replicates on its own, so a node leading several partitions would send each
//! peer one AppendEntries per group per round, and then one more per group to pass on the new
//! commit index: every one a gRPC call of its own, with its own HTTP/2 stream, syscalls and
//! wake-ups on both sides. The queue sends one call at a time per peer; the requests that
//! arrive while it is out go in the next call together ([`RaftBatch`]), which the peer serves
//! concurrently and answers in one reply. Nothing waits to fill a batch beyond letting the
//! tasks already woken run (the groups of one proposal round see their appends synced at the
//! same moment, see [`ProposalRounds`](crate::raft::rounds::ProposalRounds)): a request with
//! none beside it goes alone as soon as the previous call returns.
//!
//! A commit notice ([`AppendQueue::notice`]: an AppendEntries that only passes on a new commit
//! index) is not a call anybody waits for. It waits up to [`COMMIT_NOTICE_DELAY`] for an append
//! of its group, which carries the same commit index or a newer one and makes it redundant;
//! only a notice that nothing replaced in that time is sent, with the next call or on its own.
//!
//! One slow group must not hold the others back: the next call goes out without waiting for
//! the previous one once that has been out [`MAX_CALL_WAIT`], and the peer answers a batch
//! without the appends still unanswered [`MAX_STRAGGLER_WAIT`] after its first one
//! ([`join_bounded`]); those get an error, and their groups send them again. A peer that does
//! not know batches yet (a rolling upgrade) is sent one call per request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use strata_proto::raft_v1::raft_batch_item::Result as ItemResult;
use strata_proto::raft_v1::{RaftBatch, RaftBatchItem, RaftBatchReply, RaftRequest};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::partition::GroupId;
use crate::raft::network::{MAX_RAFT_MESSAGE, RaftPeer};

/// How long the latest call to a peer may be out before the next one goes without waiting
/// for it.
pub const MAX_CALL_WAIT: Duration = Duration::from_millis(50);

/// How long the reply to a batch waits for its slowest appends once the first is answered.
/// The appends of a batch normally share the peer's log sync and finish together.
pub const MAX_STRAGGLER_WAIT: Duration = Duration::from_millis(50);

/// How long a commit notice waits for an append of its group to pass the commit index on
/// instead. Under load the group's next append comes sooner; an idle group's followers learn
/// of the commit this much later.
pub const COMMIT_NOTICE_DELAY: Duration = Duration::from_millis(10);

/// How many times the sending task lets the tasks already woken run before a call goes out,
/// so the appends of groups synced together join it.
const GATHER_YIELDS: usize = 3;

/// The reply to one queued request: the peer's reply payload, or why there is none.
type Outcome = Result<Vec<u8>, tonic::Status>;

/// A request waiting in the queue, and where its reply goes.
struct Pending {
    request: RaftRequest,
    /// The leader's commit index the AppendEntries carries.
    commit: Option<u64>,
    deadline: Instant,
    /// `None`: a commit notice, whose reply nobody waits for.
    reply: Option<oneshot::Sender<Outcome>>,
}

impl Pending {
    /// Whether the request is still wanted: a notice, or a call whose caller still waits.
    fn wanted(&self) -> bool {
        self.reply.as_ref().is_none_or(|r| !r.is_closed())
    }
}

/// The queue of AppendEntries requests to one peer. Cheap to clone; the task sending them ends
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct AppendQueue {
    tx: mpsc::UnboundedSender<Pending>,
}

impl AppendQueue {
    /// A queue sending to `peer`, with its sending task spawned on the current tokio runtime.
    pub fn start(peer: RaftPeer) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(peer, rx));
        AppendQueue { tx }
    }

    /// Whether the sending task is gone (its runtime shut down), so a new queue is needed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends `request`, an AppendEntries carrying the leader's commit index `commit`, with the
    /// next call and returns the peer's reply payload, or the error of the call or of this
    /// request. The call ends `ttl` from now at the latest, or at a later deadline of a request
    /// sent with it: a caller that must not wait longer bounds its own wait
    /// ([`PeerClient`](crate::raft::network::PeerClient) does). A request whose caller gave up
    /// before its call went out is not sent.
    pub async fn call(&self, request: RaftRequest, commit: Option<u64>, ttl: Duration) -> Outcome {
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            request,
            commit,
            deadline: Instant::now() + ttl,
            reply: Some(reply),
        };
        self.tx
            .send(pending)
            .map_err(|_| tonic::Status::unavailable("the peer's append queue has stopped"))?;
        rx.await
            .unwrap_or_else(|_| Err(tonic::Status::unavailable("the append call was dropped")))
    }

    /// Queues `request`, an AppendEntries without entries that passes on the commit index
    /// `commit` of its group, as a commit notice: it is dropped if an append of the same group
    /// carrying that index or a newer one is queued within [`COMMIT_NOTICE_DELAY`], and sent
    /// then otherwise. Its reply is not awaited.
    pub fn notice(&self, request: RaftRequest, commit: Option<u64>) {
        let _ = self.tx.send(Pending {
            request,
            commit,
            deadline: Instant::now() + COMMIT_NOTICE_DELAY + MAX_CALL_WAIT,
            reply: None,
        });
    }
}

/// Commit notices waiting to be sent, at most one per group: the latest.
#[derive(Default)]
struct Notices {
    waiting: HashMap<GroupId, (Pending, Instant)>,
}

impl Notices {
    /// Holds `notice` until `COMMIT_NOTICE_DELAY` from now, or in place of an older notice of
    /// its group until that one falls due: a group whose commit index keeps moving still has
    /// it sent every `COMMIT_NOTICE_DELAY`.
    fn hold(&mut self, notice: Pending) {
        let group = notice.request.group;
        let due = match self.waiting.get(&group) {
            Some((held, _)) if held.commit > notice.commit => return,
            Some((_, due)) => *due,
            None => Instant::now() + COMMIT_NOTICE_DELAY,
        };
        self.waiting.insert(group, (notice, due));
    }

    /// When the first notice held falls due.
    fn next_due(&self) -> Option<Instant> {
        self.waiting.values().map(|(_, due)| *due).min()
    }

    /// Drops the notice of `append`'s group if `append` passes on its commit index or a newer
    /// one.
    fn replaced_by(&mut self, append: &Pending) {
        let group = append.request.group;
        if self
            .waiting
            .get(&group)
            .is_some_and(|(held, _)| held.commit <= append.commit)
        {
            self.waiting.remove(&group);
        }
    }

    /// Takes the notices due by `now`.
    fn take_due(&mut self, now: Instant) -> Vec<Pending> {
        self.waiting
            .extract_if(|_, (_, due)| *due <= now)
            .map(|(_, (notice, _))| notice)
            .collect()
    }
}

/// The sending task: a call once the previous one is answered (or has been out
/// [`MAX_CALL_WAIT`]), carrying every request queued meanwhile, up to half the message limit
/// (a request alone may use all of it), and the commit notices due by then that no append
/// replaced.
async fn send_batches(peer: RaftPeer, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let no_batches = Arc::new(AtomicBool::new(false));
    let mut previous: Option<(oneshot::Receiver<()>, Instant)> = None;
    let mut notices = Notices::default();
    loop {
        // The next request, or `None` when a notice falls due first. The task ends with the
        // last sender (the notices held are dropped: the node is going away).
        let first = match notices.next_due() {
            None => Some(rx.recv().await),
            Some(due) => tokio::select! {
                next = rx.recv() => Some(next),
                () = tokio::time::sleep_until(due) => None,
            },
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        match first {
            Some(None) => return,
            Some(Some(p)) if p.reply.is_none() => {
                notices.hold(p);
                continue;
            }
            Some(Some(p)) => {
                bytes += p.request.payload.len();
                batch.push(p);
            }
            None => {}
        }
        if let Some((answered, sent)) = previous.take() {
            let _ = tokio::time::timeout_at(sent + MAX_CALL_WAIT, answered).await;
        }
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
            while bytes < MAX_RAFT_MESSAGE / 2 {
                let Ok(next) = rx.try_recv() else { break };
                if next.reply.is_none() {
                    notices.hold(next);
                    continue;
                }
                bytes += next.request.payload.len();
                batch.push(next);
            }
        }
        batch.retain(Pending::wanted);
        for append in &batch {
            notices.replaced_by(append);
        }
        batch.extend(notices.take_due(Instant::now()));
        if batch.is_empty() {
            continue;
        }
        let (answered_tx, answered) = oneshot::channel::<()>();
        let mut peer = peer.clone();
        let no_batches = Arc::clone(&no_batches);
        tokio::spawn(async move {
            send_batch(&mut peer, batch, &no_batches).await;
            drop(answered_tx);
        });
        previous = Some((answered, Instant::now()));
    }
}

/// Sends one batch (a single request as a plain AppendEntries) and hands out the replies. The
/// call is bounded by the latest deadline of its requests. A peer that does not know batches
/// (an older version: the call is unimplemented) fails this one, and is sent plain calls from
/// then on (`no_batches`); openraft sends the failed requests again.
async fn send_batch(peer: &mut RaftPeer, batch: Vec<Pending>, no_batches: &AtomicBool) {
    if batch.len() == 1 || no_batches.load(Ordering::Relaxed) {
        let singles = batch.into_iter().map(|p| {
            let mut peer = peer.clone();
            async move {
                let call = peer.append_entries(p.request);
                let outcome = match tokio::time::timeout_at(p.deadline, call).await {
                    Ok(reply) => reply.map(|r| r.into_inner().payload),
                    Err(_) => Err(timed_out()),
                };
                if let Some(reply) = p.reply {
                    let _ = reply.send(outcome);
                }
            }
        });
        futures::future::join_all(singles).await;
        return;
    }
    let deadline = batch
        .iter()
        .map(|p| p.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let (requests, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let call = peer.append_entries_batch(RaftBatch { requests });
    let items = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(reply)) => reply.into_inner().replies,
        Ok(Err(status)) => {
            if status.code() == tonic::Code::Unimplemented {
                no_batches.store(true, Ordering::Relaxed);
            }
            return fail_all(replies, &status);
        }
        Err(_) => return fail_all(replies, &timed_out()),
    };
    if items.len() != replies.len() {
        let status = tonic::Status::internal(format!(
            "the peer answered {} of {} batched requests",
            items.len(),
            replies.len()
        ));
        return fail_all(replies, &status);
    }
    for (reply, item) in replies.into_iter().zip(items) {
        let Some(reply) = reply else { continue };
        let outcome = match item.result {
            Some(ItemResult::Payload(payload)) => Ok(payload),
            Some(ItemResult::Error(e)) => Err(tonic::Status::internal(e)),
            None => Err(tonic::Status::internal("an empty reply in the batch")),
        };
        let _ = reply.send(outcome);
    }
}

fn timed_out() -> tonic::Status {
    tonic::Status::deadline_exceeded("no reply from the peer in time")
}

fn fail_all(replies: Vec<Option<oneshot::Sender<Outcome>>>, status: &tonic::Status) {
    for reply in replies.into_iter().flatten() {
        let _ = reply.send(Err(status.clone()));
    }
}

/// The peer's reply to a batch from the outcomes of its requests, in order, as
/// [`join_bounded`] gives them: a reply payload, the error of a request, or `None` for one
/// left out as a straggler.
pub fn batch_reply(
    outcomes: impl IntoIterator<Item = Option<Result<Vec<u8>, tonic::Status>>>,
) -> RaftBatchReply {
    let replies = outcomes
        .into_iter()
        .map(|outcome| RaftBatchItem {
            result: Some(match outcome {
                Some(Ok(payload)) => ItemResult::Payload(payload),
                Some(Err(status)) => ItemResult::Error(status.message().to_string()),
                None => ItemResult::Error(format!(
                    "not answered within {MAX_STRAGGLER_WAIT:?} of the batch's first reply"
                )),
            }),
        })
        .collect();
    RaftBatchReply { replies }
}

/// Runs `futures` concurrently and returns their outputs in order, leaving out (as `None`) those
/// still running `straggler_wait` after the first one finished; those are dropped.
pub async fn join_bounded<F: Future>(
    futures: impl IntoIterator<Item = F>,
    straggler_wait: Duration,
) -> Vec<Option<F::Output>> {
    let mut running: FuturesUnordered<_> = futures
        .into_iter()
        .enumerate()
        .map(|(i, f)| async move { (i, f.await) })
        .collect();
    let mut outputs: Vec<Option<F::Output>> = (0..running.len()).map(|_| None).collect();
    let mut cutoff = None;
    loop {
        let next = match cutoff {
            None => running.next().await,
            Some(at) => match tokio::time::timeout_at(at, running.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((i, output)) = next else { break };
        outputs[i] = Some(output);
        cutoff.get_or_insert_with(|| Instant::now() + straggler_wait);
    }
    outputs
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on the first broken assumption"
    )]

    use std::sync::{Arc, Mutex};

    use tonic::Status;

    use super::*;
    use crate::raft::network::Peers;
    use crate::raft::test_peer::{self, Appends};

    /// The group whose appends the test peer never answers.
    const STUCK: u64 = 99;

    /// A request the test peer received: its group and payload.
    type Received = (u64, Vec<u8>);

    /// A peer on a real loopback socket that answers each append with its payload and group,
    /// a moment later (group [`STUCK`]: never), and records the size of every call it gets.
    #[derive(Default, Clone)]
    struct EchoPeer {
        calls: Arc<Mutex<Vec<usize>>>,
        /// Every request received.
        received: Arc<Mutex<Vec<Received>>>,
        /// A peer of an older version: batches are unimplemented.
        old: bool,
    }

    impl EchoPeer {
        /// Waits until the peer has received `n` calls.
        async fn await_calls(&self, n: usize) {
            while self.calls.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        /// The requests received so far, in no particular order.
        fn received(&self) -> Vec<Received> {
            let mut received = self.received.lock().unwrap().clone();
            received.sort();
            received
        }

        /// Waits until the peer has received `n` requests.
        async fn await_received(&self, n: usize) {
            while self.received.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        async fn answer(&self, req: RaftRequest) -> Vec<u8> {
            self.received
                .lock()
                .unwrap()
                .push((req.group, req.payload.clone()));
            if req.group == STUCK {
                std::future::pending::<()>().await;
            }
            // Group 1's calls are slow enough for the tests to queue others behind them.
            let delay = if req.group == 1 { 200 } else { 20 };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut payload = req.payload;
            payload.push(u8::try_from(req.group).unwrap());
            payload
        }
    }

    impl Appends for EchoPeer {
        async fn append(&self, request: RaftRequest) -> Result<Vec<u8>, Status> {
            self.calls.lock().unwrap().push(1);
            Ok(self.answer(request).await)
        }

        async fn append_batch(&self, requests: Vec<RaftRequest>) -> Result<RaftBatchReply, Status> {
            if self.old {
                return Err(Status::unimplemented("AppendEntriesBatch"));
            }
            self.calls.lock().unwrap().push(requests.len());
            let answers = requests
                .into_iter()
                .map(|req| async { Ok(self.answer(req).await) });
            let outcomes = join_bounded(answers, MAX_STRAGGLER_WAIT).await;
            Ok(batch_reply(outcomes))
        }
    }

    async fn start_peer(old: bool) -> (EchoPeer, AppendQueue) {
        let peer = EchoPeer {
            old,
            ..EchoPeer::default()
        };
        let addr = test_peer::serve(peer.clone()).await.unwrap();
        let queue = Peers::default().append_queue(&addr).unwrap();
        (peer, queue)
    }

    fn request(group: u64, payload: &[u8]) -> RaftRequest {
        RaftRequest {
            group,
            payload: payload.to_vec(),
        }
    }

    const TTL: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn requests_queued_during_a_call_share_the_next_one_and_keep_their_replies() {
        let (peer, queue) = start_peer(false).await;
        // The first call goes alone; the ten queued while it is out go together.
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.call(request(1, b"first"), None, TTL).await }
        });
        peer.await_calls(1).await;
        let rest: Vec<_> = (2..12u64)
            .map(|group| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let payload = format!("p{group}");
                    queue
                        .call(request(group, payload.as_bytes()), None, TTL)
                        .await
                })
            })
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), b"first\x01");
        for (group, reply) in (2..12u64).zip(rest) {
            let mut expected = format!("p{group}").into_bytes();
            expected.push(u8::try_from(group).unwrap());
            assert_eq!(reply.await.unwrap().unwrap(), expected, "group {group}");
        }
        assert_eq!(*peer.calls.lock().unwrap(), [1, 10]);
    }

    #[tokio::test]
    async fn a_stuck_append_holds_the_others_back_boundedly() {
        let (peer, queue) = start_peer(false).await;
        let stuck = tokio::spawn({
            let queue = queue.clone();
            async move {
                queue
                    .call(request(STUCK, b"s"), None, Duration::from_secs(2))
                    .await
            }
        });
        peer.await_calls(1).await;
        // Queued behind the stuck call: sent once it has been out MAX_CALL_WAIT.
        let started = Instant::now();
        let reply = queue.call(request(3, b"x"), None, TTL).await.unwrap();
        assert_eq!(reply, b"x\x03");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // In one batch with the stuck group's append, the other appends are answered and the
        // stuck one gets an error a bounded time later.
        let (a, b) = tokio::join!(
            queue.call(request(STUCK, b"s2"), None, TTL),
            queue.call(request(4, b"y"), None, TTL)
        );
        assert!(a.is_err(), "{a:?}");
        assert_eq!(b.unwrap(), b"y\x04");
        assert!(
            stuck.await.unwrap().is_err(),
            "the first stuck call times out"
        );
    }

    #[tokio::test]
    async fn a_peer_without_batches_gets_plain_calls_after_the_first_refusal() {
        let (peer, queue) = start_peer(true).await;
        let pair = || async {
            tokio::join!(
                queue.call(request(1, b"a"), None, TTL),
                queue.call(request(2, b"b"), None, TTL)
            )
        };
        let (a, b) = pair().await;
        assert_eq!(a.unwrap_err().code(), tonic::Code::Unimplemented);
        assert_eq!(b.unwrap_err().code(), tonic::Code::Unimplemented);
        let (a, b) = pair().await;
        assert_eq!(a.unwrap(), b"a\x01");
        assert_eq!(b.unwrap(), b"b\x02");
        assert_eq!(*peer.calls.lock().unwrap(), [1, 1]);
    }

    #[tokio::test]
    async fn a_commit_notice_an_append_of_its_group_passes_on_is_never_sent() {
        let (peer, queue) = start_peer(false).await;
        queue.notice(request(5, b"notice"), Some(3));
        let reply = queue.call(request(5, b"append"), Some(3), TTL).await;
        assert_eq!(reply.unwrap(), b"append\x05");
        tokio::time::sleep(COMMIT_NOTICE_DELAY * 5).await;
        assert_eq!(peer.received(), [(5, b"append".to_vec())]);
    }

    #[tokio::test]
    async fn a_commit_notice_nothing_replaces_is_sent_once_due_and_only_the_latest() {
        let (peer, queue) = start_peer(false).await;
        let started = Instant::now();
        queue.notice(request(6, b"first"), Some(1));
        queue.notice(request(6, b"second"), Some(2));
        queue.notice(request(7, b"other"), Some(9));
        // Neither another group's append nor one of group 6 with an older commit index
        // replaces group 6's notice.
        let (a, b) = tokio::join!(
            queue.call(request(8, b"a"), Some(9), TTL),
            queue.call(request(6, b"b"), Some(1), TTL)
        );
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            (b"a\x08".to_vec(), b"b\x06".to_vec())
        );
        peer.await_received(4).await;
        assert!(started.elapsed() >= COMMIT_NOTICE_DELAY);
        tokio::time::sleep(COMMIT_NOTICE_DELAY * 5).await;
        assert_eq!(
            peer.received(),
            [
                (6, b"b".to_vec()),
                (6, b"second".to_vec()),
                (7, b"other".to_vec()),
                (8, b"a".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn a_commit_index_that_keeps_moving_is_still_passed_on() {
        let (peer, queue) = start_peer(false).await;
        // A notice every 2 ms for 50 ms, each replacing the one before: the first one held
        // sets when they go.
        let mut last = Vec::new();
        for commit in 0..25u64 {
            last = format!("c{commit}").into_bytes();
            queue.notice(request(9, &last), Some(commit));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            !peer.received().is_empty(),
            "no notice went out while the commit index kept moving"
        );
        // The latest one arrives in the end.
        let latest = (9, last);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !peer.received().contains(&latest) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(peer.received().contains(&latest));
    }

    #[tokio::test(start_paused = true)]
    async fn join_bounded_drops_only_the_stragglers() {
        let slow = |ms: u64, v: u32| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            v
        };
        let outputs = join_bounded(
            [
                slow(100, 1),
                slow(120, 2),
                slow(100 + 60_000, 3),
                slow(130, 4),
            ],
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(outputs, [Some(1), Some(2), None, Some(4)]);
        let none: Vec<Option<u32>> =
            join_bounded(Vec::<std::future::Ready<u32>>::new(), Duration::ZERO).await;
        assert!(none.is_empty());
    }
}
