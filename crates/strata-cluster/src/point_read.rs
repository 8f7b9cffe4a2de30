//! Point reads from async code: answered on the calling task when the engine needs no file
//! read (memtables, pinned filters and indexes, block cache), and on the blocking pool only
//! from the first key that would read a file, so a read that misses the cache never stalls a
//! runtime worker and a cached read pays no hand-off to another thread (which cost a 3-node
//! cluster 30% of its linearizable read throughput).

use std::sync::Arc;

use strata_engine::Db;

use crate::Result;

/// Reads `keys` (engine keys) from `db`, in order.
pub async fn get_many(db: &Arc<Db>, mut keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
    let mut values = Vec::with_capacity(keys.len());
    while let Some(key) = keys.get(values.len()) {
        match db.get_if_cached(key)? {
            Some(value) => values.push(value),
            None => break,
        }
    }
    if values.len() < keys.len() {
        let rest = keys.split_off(values.len());
        let db = Arc::clone(db);
        let tail = tokio::task::spawn_blocking(move || {
            rest.iter()
                .map(|k| db.get(k))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await??;
        values.extend(tail);
    }
    Ok(values)
}
