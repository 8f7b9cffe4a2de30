//! The workloads `--benchmarks` can name, with db_bench's and YCSB's semantics, and their
//! properties (does it start from an empty store, how many operations per thread).

use crate::error::{Error, Result};

/// One benchmark phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Keys `0..num` in order, into a fresh store.
    FillSeq,
    /// `num` keys drawn uniformly with replacement from `[0, num)`, into a fresh store.
    FillRandom,
    /// As `fillrandom`, over the existing store.
    Overwrite,
    /// `num` GETs of keys drawn uniformly from `[0, num)`.
    ReadRandom,
    /// `num` GETs of keys that are never written (a present key plus `.`).
    ReadMissing,
    /// One forward scan over `num` entries from the first key; each entry is an operation.
    ReadSeq,
    /// `num` seeks to a random key, reading the entry found there.
    SeekRandom,
    /// `num` deletes of random keys.
    DeleteRandom,
    /// `num / 1000` synced writes of random keys per thread, into a fresh store.
    FillSync,
    /// YCSB A: 50% reads, 50% updates.
    YcsbA,
    /// YCSB B: 95% reads, 5% updates.
    YcsbB,
    /// YCSB C: reads only.
    YcsbC,
    /// YCSB F: 50% reads, 50% read-modify-writes.
    YcsbF,
    /// The disk's raw sync rate: `num / 1000` appends of 100 bytes, each followed by
    /// `fdatasync`, on one thread, in a file in the data directory.
    RawSync,
    /// GETs whose data blocks are in no cache: the store is flushed and reopened (emptying the
    /// engine's block cache), and its files are evicted from the page cache
    /// (`posix_fadvise(DONTNEED)`) before every GET; one thread.
    ColdRead,
}

/// Every workload with its canonical name and accepted aliases.
pub const ALL: &[(Workload, &str, &[&str])] = &[
    (Workload::FillSeq, "fillseq", &[]),
    (Workload::FillRandom, "fillrandom", &[]),
    (Workload::Overwrite, "overwrite", &[]),
    (Workload::ReadRandom, "readrandom", &[]),
    (Workload::ReadMissing, "readmissing", &[]),
    (Workload::ReadSeq, "readseq", &[]),
    (Workload::SeekRandom, "seekrandom", &[]),
    (Workload::DeleteRandom, "deleterandom", &[]),
    (Workload::FillSync, "fillsync", &[]),
    (Workload::YcsbA, "ycsba", &["ycsb-a", "ycsb_a"]),
    (Workload::YcsbB, "ycsbb", &["ycsb-b", "ycsb_b"]),
    (Workload::YcsbC, "ycsbc", &["ycsb-c", "ycsb_c"]),
    (Workload::YcsbF, "ycsbf", &["ycsb-f", "ycsb_f"]),
    (Workload::RawSync, "rawsync", &["fsync-probe", "fsyncprobe"]),
    (Workload::ColdRead, "coldread", &["cold-get", "coldget"]),
];

/// Synced workloads do this many times fewer operations than `--num`, as db_bench's fillsync.
pub const SYNC_DIVISOR: u64 = 1000;

/// The most GETs `coldread` does unless `--reads` says otherwise (each one evicts first).
pub const COLD_READS_DEFAULT: u64 = 1000;

impl Workload {
    /// Parses a name or alias (case-insensitive).
    pub fn parse(name: &str) -> Result<Workload> {
        let lower = name.trim().to_ascii_lowercase();
        ALL.iter()
            .find(|(_, n, aliases)| *n == lower || aliases.contains(&lower.as_str()))
            .map(|(w, _, _)| *w)
            .ok_or_else(|| Error::UnknownWorkload(name.to_string()))
    }

    /// Parses a comma-separated list, skipping empty items.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Workload>> {
        names
            .iter()
            .flat_map(|s| s.as_ref().split(','))
            .filter(|s| !s.trim().is_empty())
            .map(Workload::parse)
            .collect()
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(w, _, _)| *w == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("unknown")
    }

    /// Whether db_bench starts this workload from an empty store.
    pub fn fresh_db(self) -> bool {
        matches!(
            self,
            Workload::FillSeq | Workload::FillRandom | Workload::FillSync
        )
    }

    /// Whether the workload runs on one thread whatever `--threads` says.
    pub fn single_threaded(self) -> bool {
        matches!(self, Workload::RawSync | Workload::ColdRead)
    }

    /// Whether the workload uses the store at all (`rawsync` does not).
    pub fn needs_store(self) -> bool {
        self != Workload::RawSync
    }

    /// Operations per thread for `--num num` and `--reads reads`.
    pub fn ops_per_thread(self, num: u64, reads: Option<u64>) -> u64 {
        match self {
            Workload::FillSync | Workload::RawSync => (num / SYNC_DIVISOR).max(1),
            Workload::ColdRead => reads.unwrap_or(num.min(COLD_READS_DEFAULT)),
            Workload::ReadRandom
            | Workload::ReadMissing
            | Workload::ReadSeq
            | Workload::SeekRandom
            | Workload::YcsbA
            | Workload::YcsbB
            | Workload::YcsbC
            | Workload::YcsbF => reads.unwrap_or(num),
            Workload::FillSeq
            | Workload::FillRandom
            | Workload::Overwrite
            | Workload::DeleteRandom => num,
        }
    }

    /// For YCSB workloads, the fraction of operations that are reads.
    pub fn ycsb_read_fraction(self) -> Option<f64> {
        match self {
            Workload::YcsbA | Workload::YcsbF => Some(0.5),
            Workload::YcsbB => Some(0.95),
            Workload::YcsbC => Some(1.0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for (w, name, aliases) in ALL {
            assert_eq!(Workload::parse(name).unwrap(), *w);
            assert_eq!(w.name(), *name);
            for a in *aliases {
                assert_eq!(Workload::parse(a).unwrap(), *w);
            }
        }
        assert_eq!(Workload::parse("FillRandom").unwrap(), Workload::FillRandom);
        assert!(matches!(
            Workload::parse("fillrandomx"),
            Err(Error::UnknownWorkload(_))
        ));
    }

    #[test]
    fn lists_split_on_commas() {
        let ws = Workload::parse_list(&["fillrandom,readrandom", "ycsb-a,"]).unwrap();
        assert_eq!(
            ws,
            [Workload::FillRandom, Workload::ReadRandom, Workload::YcsbA]
        );
    }

    #[test]
    fn fillsync_does_a_thousandth_of_num() {
        assert_eq!(Workload::FillSync.ops_per_thread(1_000_000, None), 1000);
        assert_eq!(Workload::FillSync.ops_per_thread(10, None), 1);
        assert_eq!(Workload::ReadRandom.ops_per_thread(100, Some(7)), 7);
        assert_eq!(Workload::FillRandom.ops_per_thread(100, Some(7)), 100);
    }
}
