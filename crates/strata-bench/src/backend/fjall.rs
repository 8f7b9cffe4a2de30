//! The `fjall` backend (cargo feature `fjall`): the fjall crate, one keyspace, set up with the
//! benchmark's memtable size, bloom bits, block size, cache and compression. Durability matches
//! Strata's: an unsynced write reaches the operating system (fjall's default journal mode), a
//! synced one is committed with `PersistMode::SyncData` (fdatasync) before it returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::config::{BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Backend, BackendConfig, Compression, Opened};
use crate::error::{Error, Result};

const NAME: &str = "fjall";

/// The keyspace the benchmark writes to.
pub const KEYSPACE: &str = "bench";

/// fjall opened on a local directory.
pub struct Fjall {
    db: Database,
    ks: Keyspace,
    dir: PathBuf,
}

impl std::fmt::Debug for Fjall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fjall").field("dir", &self.dir).finish()
    }
}

/// Opens fjall with the benchmark's settings.
pub fn open(config: &BackendConfig) -> Result<Opened> {
    let mut notes = Vec::new();
    let mut builder = Database::builder(&config.data_dir);
    if let Some(bytes) = config.cache_size {
        builder = builder.cache_size(bytes);
    }
    let db = builder
        .open()
        .map_err(|e| Error::backend(NAME, "open", e))?;
    let compression = match config.compression {
        Compression::None => CompressionType::None,
        Compression::Lz4 => CompressionType::Lz4,
        Compression::Zstd => {
            notes
                .push("--compression zstd: fjall has no zstd; its blocks stay uncompressed".into());
            CompressionType::None
        }
    };
    let filter = if config.bloom_bits == 0 {
        FilterPolicy::disabled()
    } else {
        FilterPolicy::all(FilterPolicyEntry::Bloom(
            BloomConstructionPolicy::BitsPerKey(config.bloom_bits as f32),
        ))
    };
    let memtable = config.write_buffer_size as u64;
    let ks = db
        .keyspace(KEYSPACE, || {
            KeyspaceCreateOptions::default()
                .max_memtable_size(memtable)
                .filter_policy(filter)
                .data_block_compression_policy(CompressionPolicy::all(compression))
        })
        .map_err(|e| Error::backend(NAME, "open keyspace", e))?;
    Ok(Opened {
        backend: Arc::new(Fjall {
            db,
            ks,
            dir: config.data_dir.clone(),
        }),
        notes,
    })
}

impl Fjall {
    fn synced_batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::SyncData))
    }
}

impl Backend for Fjall {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.ks
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| Error::backend(NAME, "get", e))
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        if sync {
            let mut b = self.synced_batch();
            b.insert(&self.ks, key, value);
            b.commit()
        } else {
            self.ks.insert(key, value)
        }
        .map_err(|e| Error::backend(NAME, "put", e))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        if sync {
            let mut b = self.synced_batch();
            b.remove(&self.ks, key);
            b.commit()
        } else {
            self.ks.remove(key)
        }
        .map_err(|e| Error::backend(NAME, "delete", e))
    }

    fn put_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        let mut b = if sync {
            self.synced_batch()
        } else {
            self.db.batch()
        };
        for (k, v) in entries {
            b.insert(&self.ks, *k, *v);
        }
        b.commit().map_err(|e| Error::backend(NAME, "put_batch", e))
    }

    fn scan(
        &self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        let mut n = 0;
        for guard in self.ks.range(start..).take(limit) {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| Error::backend(NAME, "scan", e))?;
            visit(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn flush(&self) -> Result<()> {
        self.ks
            .rotate_memtable_and_wait()
            .map_err(|e| Error::backend(NAME, "flush", e))
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }
}
