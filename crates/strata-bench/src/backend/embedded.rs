//! The `strata` backend: Strata's engine ([`strata_engine::Db`]) in this process.

use std::path::Path;
use std::sync::Arc;

use strata_engine::{CompressionType, Db, Options, WriteBatch, WriteOptions};

use super::{Backend, BackendConfig, Compression, Opened};
use crate::error::{Error, Result};

const NAME: &str = "strata";

/// Strata's engine opened on a local directory.
pub struct Embedded {
    db: Db,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.db.path())
            .finish()
    }
}

/// Opens the engine with the benchmark's settings (every one of them has an engine option).
pub fn open(config: &BackendConfig) -> Result<Opened> {
    let defaults = Options::default();
    let block_cache_size = match config.cache_size {
        Some(bytes) => usize::try_from(bytes).map_err(|_| Error::InvalidArgument {
            flag: "--cache-size",
            reason: format!("{bytes} bytes does not fit in memory"),
        })?,
        None => defaults.block_cache_size,
    };
    let opts = Options {
        write_buffer_size: config.write_buffer_size,
        bloom_bits_per_key: config.bloom_bits,
        block_cache_size,
        compression: match config.compression {
            Compression::None => CompressionType::None,
            Compression::Lz4 => CompressionType::Lz4,
            Compression::Zstd => CompressionType::Zstd,
        },
        ..defaults
    };
    let db = Db::open(&config.data_dir, opts).map_err(|e| Error::backend(NAME, "open", e))?;
    Ok(Opened {
        backend: Arc::new(Embedded { db }),
        notes: Vec::new(),
    })
}

impl Embedded {
    /// The engine, for callers that want its stats.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

fn write_opts(sync: bool) -> WriteOptions {
    WriteOptions { sync }
}

impl Backend for Embedded {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(|e| Error::backend(NAME, "get", e))
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value)
            .map_err(|e| Error::backend(NAME, "put", e))?;
        self.db
            .write(b, write_opts(sync))
            .map_err(|e| Error::backend(NAME, "put", e))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key)
            .map_err(|e| Error::backend(NAME, "delete", e))?;
        self.db
            .write(b, write_opts(sync))
            .map_err(|e| Error::backend(NAME, "delete", e))
    }

    fn put_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()> {
        let mut b = WriteBatch::new();
        for (k, v) in entries {
            b.put(k, v)
                .map_err(|e| Error::backend(NAME, "put_batch", e))?;
        }
        self.db
            .write(b, write_opts(sync))
            .map_err(|e| Error::backend(NAME, "put_batch", e))
    }

    fn scan(
        &self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        let iter = self
            .db
            .range(Some(start), None)
            .map_err(|e| Error::backend(NAME, "scan", e))?;
        let mut n = 0;
        for item in iter.take(limit) {
            let (k, v) = item.map_err(|e| Error::backend(NAME, "scan", e))?;
            visit(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map_err(|e| Error::backend(NAME, "flush", e))
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(self.db.path())
    }
}
