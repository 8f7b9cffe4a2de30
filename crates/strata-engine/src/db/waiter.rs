//! How a queued write learns its fate. A blocking writer parks its thread until it is told to
//! lead the next group or given its outcome; an async writer holds a [`PendingWrite`], a future
//! completed by whichever thread committed its batch. Async writers never lead: a group that
//! reaches one is handed to the store's committer thread instead, so an async runtime's worker
//! never blocks in `fdatasync` and never waits in the queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::lock;
use crate::error::Result;

/// What a parked writer is told when it is woken.
pub(crate) enum Turn {
    /// The previous leader handed over: take the queue and commit it.
    Lead,
    /// A leader committed this writer's batch with this outcome.
    Done(Result<()>),
}

/// A blocking writer's mailbox (or the committer thread's). Each writer is woken on its own
/// (thread park/unpark), only when its batch is committed or it is to lead the next group, so a
/// group's end costs one wake-up per member rather than waking every queued writer.
pub(crate) struct ThreadWaiter {
    thread: std::thread::Thread,
    turn: Mutex<Option<Turn>>,
}

impl ThreadWaiter {
    /// A mailbox for the calling thread.
    pub fn current() -> Self {
        Self::for_thread(std::thread::current())
    }

    /// A mailbox for `thread`.
    pub fn for_thread(thread: std::thread::Thread) -> Self {
        ThreadWaiter {
            thread,
            turn: Mutex::new(None),
        }
    }

    pub fn tell(&self, turn: Turn) {
        *lock(&self.turn) = Some(turn);
        self.thread.unpark();
    }

    /// Wakes the thread without telling it anything (to look at the shutdown flag).
    pub fn nudge(&self) {
        self.thread.unpark();
    }

    /// What the thread has been told, if anything.
    pub fn take(&self) -> Option<Turn> {
        lock(&self.turn).take()
    }

    /// Parks until told to lead or given an outcome.
    pub fn wait(&self) -> Turn {
        loop {
            if let Some(turn) = self.take() {
                return turn;
            }
            // A wake-up that raced ahead of the park makes it return at once.
            std::thread::park();
        }
    }
}

/// An async writer's mailbox: the outcome once known, and the waker of the task awaiting it.
#[derive(Default)]
pub(crate) struct TaskWaiter {
    slot: Mutex<TaskSlot>,
}

#[derive(Default)]
struct TaskSlot {
    outcome: Option<Result<()>>,
    waker: Option<Waker>,
}

impl TaskWaiter {
    pub fn complete(&self, outcome: Result<()>) {
        let mut slot = lock(&self.slot);
        slot.outcome = Some(outcome);
        let waker = slot.waker.take();
        drop(slot);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Who is told about a queued request.
pub(crate) enum Notify {
    Thread(Arc<ThreadWaiter>),
    Task(Arc<TaskWaiter>),
}

impl Notify {
    /// True for the blocking writer `me`.
    pub fn is(&self, me: &Arc<ThreadWaiter>) -> bool {
        matches!(self, Notify::Thread(t) if Arc::ptr_eq(t, me))
    }

    pub fn done(&self, outcome: Result<()>) {
        match self {
            Notify::Thread(t) => t.tell(Turn::Done(outcome)),
            Notify::Task(t) => t.complete(outcome),
        }
    }
}

/// A write queued with [`Db::write_queued`](crate::Db::write_queued): resolves to its outcome
/// once the batch is committed (and synced, if asked). The batch is already in the queue, in
/// order with every other write, whether or not this is ever polled; dropping it does not
/// cancel the write.
#[must_use = "the write's outcome, durability included, is known only by awaiting it"]
pub struct PendingWrite {
    state: PendingState,
}

enum PendingState {
    /// Refused before it was queued, or already reported.
    Ready(Option<Result<()>>),
    Queued(Arc<TaskWaiter>),
}

impl PendingWrite {
    pub(crate) fn ready(outcome: Result<()>) -> Self {
        PendingWrite {
            state: PendingState::Ready(Some(outcome)),
        }
    }

    pub(crate) fn queued(waiter: Arc<TaskWaiter>) -> Self {
        PendingWrite {
            state: PendingState::Queued(waiter),
        }
    }
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued = matches!(self.state, PendingState::Queued(_));
        f.debug_struct("PendingWrite")
            .field("queued", &queued)
            .finish()
    }
}

impl Future for PendingWrite {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let waiter = match &mut self.state {
            PendingState::Ready(outcome) => {
                return Poll::Ready(outcome.take().unwrap_or(Ok(())));
            }
            PendingState::Queued(w) => Arc::clone(w),
        };
        let mut slot = lock(&waiter.slot);
        match slot.outcome.take() {
            Some(outcome) => {
                drop(slot);
                self.state = PendingState::Ready(None);
                Poll::Ready(outcome)
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
