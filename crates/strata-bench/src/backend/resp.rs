//! The `redis` backend: any Redis-protocol server (Strata's RESP port, or redis-server for
//! comparison) through the `redis` crate's synchronous API.
//!
//! Each benchmark thread gets its own [`Resp`] connection (see [`Backend::thread_client`]);
//! the mutex inside is never contended. Batches are `MSET`. The protocol's `SCAN` cursor cannot
//! start at a key, so `seekrandom` and `readseq` are not run.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redis::Commands as _;

use super::{Backend, Opened};
use crate::error::{Error, Result};
use crate::workload::Workload;

const NAME: &str = "redis";

/// One Redis-protocol connection.
pub struct Resp {
    conn: Mutex<redis::Connection>,
    addr: String,
    token: Option<String>,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resp").field("addr", &self.addr).finish()
    }
}

/// Connects to the server at `addr` (checking it answers `PING`), sending `AUTH token` first
/// when a token is given.
pub fn open(addr: &str, token: Option<&str>) -> Result<Opened> {
    let first = Resp::connect(addr, token)?;
    first.with_conn("ping", |c| redis::cmd("PING").query::<String>(c))?;
    Ok(Opened {
        backend: Arc::new(first),
        notes: Vec::new(),
    })
}

impl Resp {
    fn connect(addr: &str, token: Option<&str>) -> Result<Resp> {
        let client = redis::Client::open(format!("redis://{addr}/"))
            .map_err(|e| Error::backend(NAME, "connect", e))?;
        let mut conn = client
            .get_connection()
            .map_err(|e| Error::backend(NAME, "connect", e))?;
        if let Some(t) = token {
            redis::cmd("AUTH")
                .arg(t)
                .query::<()>(&mut conn)
                .map_err(|e| Error::backend(NAME, "auth", e))?;
        }
        Ok(Resp {
            conn: Mutex::new(conn),
            addr: addr.to_owned(),
            token: token.map(str::to_owned),
        })
    }

    fn with_conn<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        // A panic while holding the lock leaves the connection usable: recover it.
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut conn).map_err(|e| Error::backend(NAME, op, e))
    }
}

impl Backend for Resp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_conn("get", |c| c.get(key))
    }

    fn put(&self, key: &[u8], value: &[u8], _sync: bool) -> Result<()> {
        self.with_conn("set", |c| c.set(key, value))
    }

    fn delete(&self, key: &[u8], _sync: bool) -> Result<()> {
        self.with_conn("del", |c| c.del::<_, i64>(key).map(|_| ()))
    }

    fn put_batch(&self, entries: &[(&[u8], &[u8])], _sync: bool) -> Result<()> {
        self.with_conn("mset", |c| c.mset(entries))
    }

    fn scan(
        &self,
        _start: &[u8],
        _limit: usize,
        _visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        Err(Error::Unsupported {
            workload: "scan",
            backend: NAME,
            reason: "a Redis SCAN cursor cannot start at a key",
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn local_dir(&self) -> Option<&Path> {
        None
    }

    fn thread_client(&self) -> Result<Option<Box<dyn Backend>>> {
        Ok(Some(Box::new(Resp::connect(
            &self.addr,
            self.token.as_deref(),
        )?)))
    }

    fn unsupported(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::SeekRandom | Workload::ReadSeq => {
                Some("a Redis SCAN cursor cannot start at a key")
            }
            Workload::ColdRead => Some("its files are not on this machine"),
            _ => None,
        }
    }
}
