//! [`Session`]: per-connection state: whether the client has authenticated, whether it asked to
//! quit, and its open `SCAN` cursors.

use std::collections::BTreeMap;

/// Open cursors kept per connection; the oldest is forgotten past this.
const MAX_CURSORS: usize = 16;

/// One connection's state.
#[derive(Debug, Default)]
pub struct Session {
    /// True once `AUTH` succeeded, or from the start when no token is configured.
    pub authenticated: bool,
    /// Set by `QUIT`: close after replying.
    pub quit: bool,
    cursors: BTreeMap<u64, Vec<u8>>,
    next_cursor: u64,
}

impl Session {
    /// A new session; `authenticated` when no token is required.
    pub fn new(authenticated: bool) -> Self {
        Session {
            authenticated,
            quit: false,
            cursors: BTreeMap::new(),
            next_cursor: 1,
        }
    }

    /// Remembers where a scan stopped and returns the cursor that resumes it. Cursors are
    /// plain positive integers, as `redis-cli --scan` expects; 0 means "start" or "done".
    pub fn save_cursor(&mut self, last_key: Vec<u8>) -> u64 {
        let id = self.next_cursor;
        self.next_cursor = self.next_cursor.wrapping_add(1).max(1);
        self.cursors.insert(id, last_key);
        while self.cursors.len() > MAX_CURSORS {
            self.cursors.pop_first();
        }
        id
    }

    /// The last key returned by the scan that `cursor` resumes, if it is known.
    pub fn take_cursor(&mut self, cursor: u64) -> Option<Vec<u8>> {
        self.cursors.remove(&cursor)
    }
}
