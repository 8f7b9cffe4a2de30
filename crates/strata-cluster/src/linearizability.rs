//! A linearizability checker for key-value histories, in the Wing–Gong / Knossos / Porcupine line.
//!
//! A history is a set of [`Operation`]s recorded by concurrent clients: each has the time it was
//! invoked and, if the client saw an answer, the time it completed and what it returned. The
//! model is one register per key (put, get, delete, compare-and-swap), and since
//! linearizability is compositional the history is split by key and each key is checked alone.
//!
//! For each key the checker searches for a total order of the operations that respects real
//! time (an operation that completed before another was invoked comes first) and in which every
//! operation's result is what the register would return. The search is Wing and Gong's
//! backtracking over a doubly linked list of call and return events, with Lowe's memoization of
//! (set of linearized operations, register state) pairs, which prunes the exponential blow-up
//! on the histories real tests produce.
//!
//! An operation whose outcome the client never learned (a timeout, a lost connection) is
//! *indeterminate*: it may have taken effect at any point after its invocation, or never. It is
//! modelled as completing at +infinity with any result, and the search need not linearize it.
//! An operation the server refused with an error is one that certainly did not happen, and is
//! left out of the history by the recorder.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set the key to a value.
    Put(Vec<u8>),
    /// Read the key.
    Get,
    /// Remove the key.
    Delete,
    /// Set the key to `new` (or remove it when `None`) if it currently holds `expected`
    /// (`None`: absent).
    Cas {
        /// The value the key must hold.
        expected: Option<Vec<u8>>,
        /// The value to store when it does.
        new: Option<Vec<u8>>,
    },
}

/// What a completed operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    /// A write completed.
    Ok,
    /// A read returned this value (`None`: absent).
    Value(Option<Vec<u8>>),
    /// A compare-and-swap applied (`true`) or found another value (`false`).
    Swapped(bool),
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The client (process) that issued it; informational.
    pub client: u64,
    /// The key it is about.
    pub key: Vec<u8>,
    /// What it asked for.
    pub op: Op,
    /// When it was invoked (any monotonic clock, e.g. nanoseconds since the test started).
    pub invoked: u64,
    /// When it completed and what it returned; `None` when the outcome is unknown.
    pub completed: Option<(u64, Ret)>,
}

/// The verdict of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// No valid order exists for the operations on `key`.
    NotLinearizable {
        /// The first key (in key order) whose history is not linearizable.
        key: Vec<u8>,
    },
    /// The search for `key` gave up after the step budget; nothing is proven.
    Unknown {
        /// The key whose search was cut short.
        key: Vec<u8>,
    },
}

/// Steps of the search per key after which [`check`] answers [`Verdict::Unknown`].
pub const DEFAULT_STEP_BUDGET: u64 = 50_000_000;

/// Checks that `history` is linearizable for the one-register-per-key model, starting from an
/// empty store.
pub fn check(history: &[Operation]) -> Verdict {
    check_with_budget(history, DEFAULT_STEP_BUDGET)
}

/// [`check`] with an explicit step budget per key.
pub fn check_with_budget(history: &[Operation], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&[u8], Vec<&Operation>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_slice()).or_default().push(op);
    }
    for (key, ops) in by_key {
        match check_key(&ops, budget) {
            KeyVerdict::Ok => {}
            KeyVerdict::Illegal => {
                return Verdict::NotLinearizable { key: key.to_vec() };
            }
            KeyVerdict::OutOfBudget => return Verdict::Unknown { key: key.to_vec() },
        }
    }
    Verdict::Linearizable
}

enum KeyVerdict {
    Ok,
    Illegal,
    OutOfBudget,
}

/// A value interned to a small id, so the register state is a cheap `Option<u32>`.
type ValueId = u32;

#[derive(Debug, Clone, Copy)]
enum IOp {
    Put(ValueId),
    Get,
    Delete,
    Cas {
        expected: Option<ValueId>,
        new: Option<ValueId>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IRet {
    Ok,
    Value(Option<ValueId>),
    Swapped(bool),
    /// The outcome is unknown: any result is acceptable.
    Any,
}

/// Applies `op` to `state`; `None` when `ret` is not what the register would return.
fn step(state: Option<ValueId>, op: IOp, ret: IRet) -> Option<Option<ValueId>> {
    match op {
        IOp::Put(v) => matches!(ret, IRet::Ok | IRet::Any).then_some(Some(v)),
        IOp::Delete => matches!(ret, IRet::Ok | IRet::Any).then_some(None),
        IOp::Get => match ret {
            IRet::Value(v) if v == state => Some(state),
            IRet::Any => Some(state),
            _ => None,
        },
        IOp::Cas { expected, new } => {
            let swaps = state == expected;
            match ret {
                IRet::Swapped(s) if s == swaps => Some(if swaps { new } else { state }),
                IRet::Any => Some(if swaps { new } else { state }),
                _ => None,
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Event {
    /// The operation (index into the key's operation list).
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event, if it has one.
    matched: Option<usize>,
    prev: usize,
    next: Option<usize>,
}

/// A set of operation indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(n: usize) -> Self {
        BitSet(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn clear(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }
}

struct Interner<'a>(HashMap<&'a [u8], ValueId>);

impl<'a> Interner<'a> {
    fn id(&mut self, v: &'a [u8]) -> ValueId {
        let next = ValueId::try_from(self.0.len()).unwrap_or(ValueId::MAX);
        *self.0.entry(v).or_insert(next)
    }
    fn opt(&mut self, v: &'a Option<Vec<u8>>) -> Option<ValueId> {
        v.as_deref().map(|v| self.id(v))
    }
}

fn check_key(ops: &[&Operation], budget: u64) -> KeyVerdict {
    let mut values = Interner(HashMap::new());
    // Indeterminate reads change nothing and constrain nothing: drop them.
    let mut iops: Vec<(IOp, IRet, u64, Option<u64>)> = Vec::with_capacity(ops.len());
    for o in ops {
        let iop = match &o.op {
            Op::Put(v) => IOp::Put(values.id(v)),
            Op::Get => IOp::Get,
            Op::Delete => IOp::Delete,
            Op::Cas { expected, new } => IOp::Cas {
                expected: values.opt(expected),
                new: values.opt(new),
            },
        };
        let (ret, done) = match &o.completed {
            None if matches!(iop, IOp::Get) => continue,
            None => (IRet::Any, None),
            Some((t, r)) => {
                let r = match r {
                    Ret::Ok => IRet::Ok,
                    Ret::Value(v) => IRet::Value(values.opt(v)),
                    Ret::Swapped(s) => IRet::Swapped(*s),
                };
                (r, Some(*t))
            }
        };
        iops.push((iop, ret, o.invoked, done));
    }
    // An indeterminate put whose value nothing ever observed can be left out: in any order that
    // includes it, only reads could sit between it and the next write, and none returned its
    // value, so the same order without it is just as valid. This keeps the search from
    // branching on every timed-out write of a failover.
    let observed: HashSet<ValueId> = iops
        .iter()
        .filter_map(|(op, ret, _, _)| match (op, ret) {
            (_, IRet::Value(Some(v))) => Some(*v),
            (
                IOp::Cas {
                    expected: Some(v), ..
                },
                _,
            ) => Some(*v),
            _ => None,
        })
        .collect();
    iops.retain(
        |(op, ret, _, _)| !matches!((op, ret), (IOp::Put(v), IRet::Any) if !observed.contains(v)),
    );

    // Events sorted by time; at equal times calls come first, so operations that touch at an
    // instant count as concurrent (the permissive reading of an ambiguous clock).
    let mut times: Vec<(u64, bool, usize)> = Vec::with_capacity(iops.len() * 2);
    for (i, (_, _, invoked, done)) in iops.iter().enumerate() {
        times.push((*invoked, false, i));
        if let Some(t) = done {
            times.push((*t, true, i));
        }
    }
    times.sort_unstable_by_key(|&(t, is_return, i)| (t, is_return, i));

    // Event 0 is the list head; events 1.. follow in time order.
    let mut events = Vec::with_capacity(times.len() + 1);
    events.push(Event {
        op: usize::MAX,
        is_call: false,
        matched: None,
        prev: 0,
        next: None,
    });
    let mut call_event = vec![0usize; iops.len()];
    for (pos, &(_, is_return, i)) in times.iter().enumerate() {
        let idx = pos + 1;
        events.push(Event {
            op: i,
            is_call: !is_return,
            matched: None,
            prev: idx - 1,
            next: None,
        });
        if let Some(prev) = events.get_mut(idx - 1) {
            prev.next = Some(idx);
        }
        if is_return {
            if let Some(call) = events.get_mut(call_event[i]) {
                call.matched = Some(idx);
            }
        } else {
            call_event[i] = idx;
        }
    }

    let mut remaining = iops.iter().filter(|o| o.3.is_some()).count();
    let mut cache: HashSet<(BitSet, Option<ValueId>)> = HashSet::new();
    let mut linearized = BitSet::new(iops.len());
    let mut state: Option<ValueId> = None;
    let mut stack: Vec<(usize, Option<ValueId>)> = Vec::new();
    let mut entry = events.first().and_then(|h| h.next);
    let mut steps = 0u64;

    while remaining > 0 {
        steps += 1;
        if steps > budget {
            return KeyVerdict::OutOfBudget;
        }
        let Some(e) = entry else {
            // Only calls of indeterminate operations are left to try, and every determinate
            // return has been passed: impossible while `remaining > 0`, but end the search as
            // failed rather than loop.
            return KeyVerdict::Illegal;
        };
        let ev = events[e];
        if ev.is_call {
            let (op, ret, _, _) = iops[ev.op];
            if let Some(next_state) = step(state, op, ret) {
                let mut lin = linearized.clone();
                lin.set(ev.op);
                if cache.insert((lin.clone(), next_state)) {
                    stack.push((e, state));
                    state = next_state;
                    linearized = lin;
                    lift(&mut events, e);
                    if ev.matched.is_some() {
                        remaining -= 1;
                    }
                    entry = events.first().and_then(|h| h.next);
                    continue;
                }
            }
            entry = ev.next;
        } else {
            // A return whose operation is not linearized yet: undo the last choice.
            let Some((call, prev_state)) = stack.pop() else {
                return KeyVerdict::Illegal;
            };
            state = prev_state;
            let call_ev = events[call];
            linearized.clear(call_ev.op);
            unlift(&mut events, call);
            if call_ev.matched.is_some() {
                remaining += 1;
            }
            entry = events[call].next;
        }
    }
    KeyVerdict::Ok
}

/// Unlinks a call event and its return event from the list.
fn lift(events: &mut [Event], call: usize) {
    unlink(events, call);
    if let Some(ret) = events[call].matched {
        unlink(events, ret);
    }
}

/// Relinks what [`lift`] unlinked (in reverse order, so the saved neighbours are valid).
fn unlift(events: &mut [Event], call: usize) {
    if let Some(ret) = events[call].matched {
        relink(events, ret);
    }
    relink(events, call);
}

fn unlink(events: &mut [Event], i: usize) {
    let Event { prev, next, .. } = events[i];
    events[prev].next = next;
    if let Some(n) = next {
        events[n].prev = prev;
    }
}

fn relink(events: &mut [Event], i: usize) {
    let Event { prev, next, .. } = events[i];
    events[prev].next = Some(i);
    if let Some(n) = next {
        events[n].prev = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, key: &str, op: Op, invoked: u64, done: Option<(u64, Ret)>) -> Operation {
        Operation {
            client,
            key: key.as_bytes().to_vec(),
            op,
            invoked,
            completed: done,
        }
    }
    fn put(v: &str) -> Op {
        Op::Put(v.as_bytes().to_vec())
    }
    fn val(v: &str) -> Ret {
        Ret::Value(Some(v.as_bytes().to_vec()))
    }

    #[test]
    fn sequential_history_passes() {
        let h = vec![
            op(1, "k", put("a"), 0, Some((1, Ret::Ok))),
            op(1, "k", Op::Get, 2, Some((3, val("a")))),
            op(1, "k", Op::Delete, 4, Some((5, Ret::Ok))),
            op(1, "k", Op::Get, 6, Some((7, Ret::Value(None)))),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_fails() {
        let h = vec![
            op(1, "k", put("a"), 0, Some((1, Ret::Ok))),
            op(1, "k", put("b"), 2, Some((3, Ret::Ok))),
            // Invoked after `b` was acknowledged, yet sees `a`.
            op(2, "k", Op::Get, 4, Some((5, val("a")))),
        ];
        assert_eq!(check(&h), Verdict::NotLinearizable { key: b"k".to_vec() });
    }

    #[test]
    fn read_of_never_written_value_fails() {
        let h = vec![op(1, "k", Op::Get, 0, Some((1, val("ghost"))))];
        assert!(matches!(check(&h), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn overlapping_ops_with_a_valid_order_pass() {
        // Two concurrent writes and reads that saw them in the order b, a.
        let h = vec![
            op(1, "k", put("a"), 0, Some((10, Ret::Ok))),
            op(2, "k", put("b"), 1, Some((9, Ret::Ok))),
            op(3, "k", Op::Get, 2, Some((3, val("b")))),
            op(4, "k", Op::Get, 4, Some((11, val("a")))),
            op(5, "k", Op::Get, 12, Some((13, val("a")))),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
    }

    #[test]
    fn reads_that_disagree_on_order_fail() {
        // Both writes finish before either read starts; reads see b then a, then b again.
        let h = vec![
            op(1, "k", put("a"), 0, Some((5, Ret::Ok))),
            op(2, "k", put("b"), 0, Some((5, Ret::Ok))),
            op(3, "k", Op::Get, 6, Some((7, val("b")))),
            op(3, "k", Op::Get, 8, Some((9, val("a")))),
        ];
        assert!(matches!(check(&h), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn indeterminate_writes_may_or_may_not_happen() {
        // The write of `b` timed out; a later read may see it...
        let seen = vec![
            op(1, "k", put("a"), 0, Some((1, Ret::Ok))),
            op(2, "k", put("b"), 2, None),
            op(3, "k", Op::Get, 100, Some((101, val("b")))),
        ];
        assert_eq!(check(&seen), Verdict::Linearizable);
        // ...or not.
        let unseen = vec![
            op(1, "k", put("a"), 0, Some((1, Ret::Ok))),
            op(2, "k", put("b"), 2, None),
            op(3, "k", Op::Get, 100, Some((101, val("a")))),
        ];
        assert_eq!(check(&unseen), Verdict::Linearizable);
        // But it cannot take effect before it was invoked.
        let early = vec![
            op(3, "k", Op::Get, 0, Some((1, val("b")))),
            op(2, "k", put("b"), 2, None),
        ];
        assert!(matches!(check(&early), Verdict::NotLinearizable { .. }));
        // And once seen, it cannot un-happen.
        let flicker = vec![
            op(1, "k", put("a"), 0, Some((1, Ret::Ok))),
            op(2, "k", put("b"), 2, None),
            op(3, "k", Op::Get, 10, Some((11, val("b")))),
            op(3, "k", Op::Get, 12, Some((13, val("a")))),
        ];
        assert!(matches!(check(&flicker), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn compare_and_swap() {
        let h = vec![
            op(1, "k", put("a"), 0, Some((1, Ret::Ok))),
            op(
                2,
                "k",
                Op::Cas {
                    expected: Some(b"a".to_vec()),
                    new: Some(b"b".to_vec()),
                },
                2,
                Some((5, Ret::Swapped(true))),
            ),
            op(
                3,
                "k",
                Op::Cas {
                    expected: Some(b"a".to_vec()),
                    new: Some(b"c".to_vec()),
                },
                3,
                Some((6, Ret::Swapped(false))),
            ),
            op(4, "k", Op::Get, 7, Some((8, val("b")))),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
        let mut both_won = h.clone();
        both_won[2].completed = Some((6, Ret::Swapped(true)));
        assert!(matches!(check(&both_won), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn keys_are_checked_independently() {
        let h = vec![
            op(1, "a", put("1"), 0, Some((1, Ret::Ok))),
            op(1, "b", put("2"), 0, Some((1, Ret::Ok))),
            op(2, "a", Op::Get, 2, Some((3, val("1")))),
            op(2, "b", Op::Get, 2, Some((3, val("1")))),
        ];
        assert_eq!(check(&h), Verdict::NotLinearizable { key: b"b".to_vec() });
    }

    /// A pseudo-random generator, so the test needs no dependency and is reproducible.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Simulates `clients` clients against a true linearizable register store: each operation
    /// takes effect at one instant between its invocation and completion.
    fn simulated_history(seed: u64, ops: usize, keys: usize, clients: u64) -> Vec<Operation> {
        let mut rng = seed;
        let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut history = Vec::new();
        let mut clock = 0u64;
        let mut pending: Vec<(u64, u64, Operation)> = Vec::new(); // (effect time, end, op)
        for n in 0..ops {
            clock += xorshift(&mut rng) % 3;
            let key = format!("k{}", xorshift(&mut rng) % keys as u64).into_bytes();
            let kind = xorshift(&mut rng) % 10;
            let op = match kind {
                0..=3 => Op::Put(format!("v{n}").into_bytes()),
                4 => Op::Delete,
                _ => Op::Get,
            };
            let effect = clock + 1 + xorshift(&mut rng) % 20;
            let end = effect + 1 + xorshift(&mut rng) % 20;
            pending.push((
                effect,
                end,
                Operation {
                    client: n as u64 % clients,
                    key,
                    op,
                    invoked: clock,
                    completed: None,
                },
            ));
        }
        pending.sort_by_key(|p| p.0);
        for (i, (_, end, mut o)) in pending.into_iter().enumerate() {
            let ret = match &o.op {
                Op::Put(v) => {
                    store.insert(o.key.clone(), v.clone());
                    Ret::Ok
                }
                Op::Delete => {
                    store.remove(&o.key);
                    Ret::Ok
                }
                Op::Get => Ret::Value(store.get(&o.key).cloned()),
                Op::Cas { .. } => Ret::Ok,
            };
            // Every 50th write times out: its outcome is unknown to the client.
            let lost = i % 50 == 7 && !matches!(o.op, Op::Get);
            o.completed = (!lost).then_some((end, ret));
            history.push(o);
        }
        history
    }

    #[test]
    fn thousands_of_ops_check_quickly() {
        let started = std::time::Instant::now();
        for seed in 1..=3 {
            let h = simulated_history(seed * 7919, 4000, 100, 16);
            assert_eq!(check(&h), Verdict::Linearizable);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_stale_read_in_a_big_history_is_found() {
        let mut h = simulated_history(42, 4000, 100, 16);
        // Make one late read of a key report a value overwritten long before.
        let key = b"k3".to_vec();
        let first_put = h
            .iter()
            .find(|o| o.key == key && matches!(o.op, Op::Put(_)) && o.completed.is_some())
            .cloned()
            .unwrap();
        let Op::Put(old) = first_put.op else {
            unreachable!()
        };
        let end = h
            .iter()
            .filter_map(|o| o.completed.as_ref().map(|c| c.0))
            .max()
            .unwrap();
        h.push(op(
            99,
            "k3",
            put("fresh"),
            end + 1,
            Some((end + 2, Ret::Ok)),
        ));
        h.push(Operation {
            client: 98,
            key,
            op: Op::Get,
            invoked: end + 3,
            completed: Some((end + 4, Ret::Value(Some(old)))),
        });
        assert_eq!(
            check(&h),
            Verdict::NotLinearizable {
                key: b"k3".to_vec()
            }
        );
    }
}
