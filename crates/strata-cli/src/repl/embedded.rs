//! [`Embedded`]: the [`Backend`] over a local [`strata_engine::Db`].

use strata_engine::{Db, Stats};

use super::backend::{
    Backend, BackendError, CompactEvent, CompactSummary, EntryIter, Figure, FigureValue,
    StatsReport,
};

/// A store opened in this process.
#[derive(Debug)]
pub struct Embedded {
    db: Db,
}

impl Embedded {
    /// Wraps an open store.
    pub fn new(db: Db) -> Self {
        Embedded { db }
    }
}

impl Backend for Embedded {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.db.get(key)?)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        // `Db::put` uses the default synced write options: it returns once the write is durable.
        Ok(self.db.put(key, value)?)
    }

    fn delete(&self, key: &[u8]) -> Result<(), BackendError> {
        Ok(self.db.delete(key)?)
    }

    fn scan(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<EntryIter<'_>, BackendError> {
        let iter = self.db.range(start, end)?;
        Ok(Box::new(iter.map(|r| r.map_err(BackendError::from))))
    }

    fn count(&self) -> Result<u64, BackendError> {
        let mut n = 0;
        for entry in self.db.range(None, None)? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(self.db.flush()?)
    }

    fn compact(
        &self,
        events: &mut dyn FnMut(CompactEvent),
    ) -> Result<CompactSummary, BackendError> {
        // Flush first so the table count announced includes what is still in the memtable;
        // `compact_range` would flush anyway.
        self.db.flush()?;
        events(CompactEvent::Started {
            tables: self.db.stats().table_files(),
        });
        let report = self.db.compact_range(None, None, &mut |p| {
            events(CompactEvent::Progress {
                done: p.bytes_done,
                total: p.bytes_total,
            });
        })?;
        Ok(CompactSummary {
            tables_before: report.files_before,
            tables_after: report.files_after,
            bytes_before: report.bytes_before,
            bytes_after: report.bytes_after,
            keys_removed: report.keys_dropped,
            bytes_reclaimed: report.bytes_reclaimed(),
            duration: report.duration,
        })
    }

    fn stats(&self) -> Result<StatsReport, BackendError> {
        Ok(report(&self.db.stats()))
    }
}

/// Arranges the engine's counters into the sections `STATS` shows.
fn report(s: &Stats) -> StatsReport {
    use FigureValue::{Bytes, Count, Duration, Fraction, Ratio};
    let mut storage = vec![
        Figure::new("memtable_bytes", "memtable", Bytes(s.memtable_bytes)),
        Figure::new(
            "sstables",
            "SSTables (all levels)",
            Count(s.table_files() as u64),
        ),
        Figure::new(
            "sstable_bytes",
            "SSTable bytes (all levels)",
            Bytes(s.table_bytes()),
        ),
    ];
    // Show the levels down to the deepest one holding a table (at least L0), so an empty or
    // young store does not print a wall of zeros.
    let deepest = s.levels.iter().rposition(|l| l.files > 0).unwrap_or(0);
    for (i, level) in s.levels.iter().enumerate().take(deepest + 1) {
        storage.push(Figure::new(
            format!("l{i}_sstables"),
            format!("L{i} SSTables"),
            Count(level.files as u64),
        ));
        storage.push(Figure::new(
            format!("l{i}_bytes"),
            format!("L{i} bytes"),
            Bytes(level.bytes),
        ));
    }
    let bloom = vec![
        Figure::new("bloom_negatives", "negatives", Count(s.bloom_negatives)),
        Figure::new(
            "bloom_false_positives",
            "false positives",
            Count(s.bloom_false_positives),
        ),
        Figure::new(
            "bloom_useful_rate",
            "useful rate",
            Fraction(s.bloom_useful_rate()),
        ),
    ];
    let compaction = vec![
        Figure::new("compactions", "count", Count(s.compactions)),
        Figure::new("keys_removed", "keys removed", Count(s.keys_removed)),
        Figure::new(
            "bytes_reclaimed",
            "bytes reclaimed",
            Bytes(s.bytes_reclaimed),
        ),
        Figure::new(
            "write_amplification",
            "write amplification",
            Ratio(s.write_amplification()),
        ),
        Figure::new(
            "last_compaction_secs",
            "last compaction took",
            Duration(s.last_compaction),
        ),
    ];
    let activity = vec![
        Figure::new("keys_written", "keys written", Count(s.keys_written)),
        Figure::new("keys_read", "keys read", Count(s.keys_read)),
        Figure::new("flushes", "flushes", Count(s.flushes)),
        Figure::new("write_stalls", "write stalls", Count(s.write_stalls)),
    ];
    StatsReport::from_sections([
        ("storage", storage),
        ("bloom filter", bloom),
        ("compaction", compaction),
        ("activity", activity),
    ])
}
