//! [`PendingReplies`]: the encoded replies of one pipeline, held back until the writes they
//! acknowledge are durable. A connection runs every request already buffered with
//! [`Durability::Deferred`](strata_cluster::Durability::Deferred) writes, then syncs once; only
//! if that sync succeeds do the write replies go out as they are, otherwise each of them becomes
//! the sync's error, so no client is told a write succeeded that a crash could lose.

use std::ops::Range;

use bytes::BytesMut;

use super::reply::Reply;

/// Encoded replies waiting to be written to the socket.
#[derive(Debug)]
pub struct PendingReplies {
    buf: BytesMut,
    /// Byte ranges in `buf` of the replies to writes that are not yet known to be durable.
    unsynced: Vec<Range<usize>>,
}

impl PendingReplies {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        PendingReplies {
            buf: BytesMut::with_capacity(capacity),
            unsynced: Vec::new(),
        }
    }

    /// Appends `reply`; `after_write` marks the reply to a write command, which may only be sent
    /// once a sync has made the pipeline's writes durable.
    pub fn push(&mut self, reply: &Reply, after_write: bool) {
        let start = self.buf.len();
        reply.encode(&mut self.buf);
        if after_write {
            self.unsynced.push(start..self.buf.len());
        }
    }

    /// Bytes of replies held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no reply is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// True when some reply acknowledges a write that has not been synced yet.
    pub fn needs_sync(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Records that a sync made every write so far durable: the replies may go out as they are.
    pub fn synced(&mut self) {
        self.unsynced.clear();
    }

    /// Records that the sync failed: every reply to a write of the pipeline is replaced by
    /// `error`, since those writes may be lost. Other replies are kept.
    pub fn sync_failed(&mut self, error: &Reply) {
        let mut rebuilt = BytesMut::with_capacity(self.buf.len());
        let mut at = 0;
        for range in self.unsynced.drain(..) {
            rebuilt.extend_from_slice(self.buf.get(at..range.start).unwrap_or_default());
            error.encode(&mut rebuilt);
            at = range.end;
        }
        rebuilt.extend_from_slice(self.buf.get(at..).unwrap_or_default());
        self.buf = rebuilt;
    }

    /// The bytes to write. Call [`synced`](Self::synced) or [`sync_failed`](Self::sync_failed)
    /// first when [`needs_sync`](Self::needs_sync).
    pub fn bytes(&self) -> &[u8] {
        debug_assert!(!self.needs_sync(), "write replies sent before their sync");
        &self.buf
    }

    /// Forgets every reply (after they were written).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.unsynced.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> PendingReplies {
        let mut p = PendingReplies::with_capacity(64);
        p.push(&Reply::OK, true);
        p.push(&Reply::Bulk(b"v".to_vec()), false);
        p.push(&Reply::Integer(7), true);
        p.push(&Reply::Nil, false);
        p
    }

    #[test]
    fn replies_wait_for_the_sync_and_go_out_unchanged() {
        let mut p = pipeline();
        assert!(p.needs_sync());
        p.synced();
        assert!(!p.needs_sync());
        assert_eq!(p.bytes(), b"+OK\r\n$1\r\nv\r\n:7\r\n$-1\r\n");
        p.clear();
        assert!(p.is_empty());
    }

    #[test]
    fn a_failed_sync_turns_every_write_reply_into_the_error() {
        let mut p = pipeline();
        p.sync_failed(&Reply::err("sync failed"));
        assert!(!p.needs_sync());
        assert_eq!(
            p.bytes(),
            b"-ERR sync failed\r\n$1\r\nv\r\n-ERR sync failed\r\n$-1\r\n"
        );
    }

    #[test]
    fn reads_alone_need_no_sync() {
        let mut p = PendingReplies::with_capacity(8);
        p.push(&Reply::Nil, false);
        assert!(!p.needs_sync());
        p.sync_failed(&Reply::err("x"));
        assert_eq!(p.bytes(), b"$-1\r\n");
    }
}
