//! The [`Backend`] trait a session runs commands against, and the backend-neutral values it
//! returns. The embedded store implements it ([`super::embedded`]), and so does the gRPC client
//! ([`super::remote`]), so that `strata connect` gets the same REPL.

use std::time::Duration;

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The embedded engine refused or failed the operation.
    #[error(transparent)]
    Engine(#[from] strata_engine::Error),
    /// A server refused or failed the operation, or could not be reached.
    #[error("{message}")]
    Remote {
        /// What went wrong, in words for the user.
        message: String,
        /// The client's error.
        #[source]
        source: strata_client::Error,
    },
}

/// One `(key, value)` pair from a scan.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A stream of entries in key order.
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<Entry, BackendError>> + 'a>;

/// Something that happens while a compaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactEvent {
    /// The compaction is about to start over this many tables.
    Started {
        /// Tables in the store when it starts.
        tables: usize,
    },
    /// The merge has read `done` of `total` input bytes.
    Progress {
        /// Input bytes merged so far.
        done: u64,
        /// Total input bytes.
        total: u64,
    },
}

/// What a finished compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactSummary {
    /// Tables read.
    pub tables_before: usize,
    /// Tables written.
    pub tables_after: usize,
    /// Bytes of the tables read.
    pub bytes_before: u64,
    /// Bytes of the tables written.
    pub bytes_after: u64,
    /// Entries dropped: shadowed versions, tombstones and what they covered.
    pub keys_removed: u64,
    /// Bytes by which the tables shrank.
    pub bytes_reclaimed: u64,
    /// Wall-clock time taken.
    pub duration: Duration,
}

/// The value of one statistic, typed so each renderer can format it its own way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FigureValue {
    /// A plain count.
    Count(u64),
    /// A size in bytes.
    Bytes(u64),
    /// A ratio such as write amplification.
    Ratio(f64),
    /// A fraction between 0 and 1 shown as a percentage.
    Fraction(f64),
    /// A duration, if there is one yet.
    Duration(Option<Duration>),
}

/// One statistic.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Stable machine name (`snake_case`), printed in plain mode.
    pub name: String,
    /// Human label, printed in the table.
    pub label: String,
    /// The value.
    pub value: FigureValue,
}

impl Figure {
    /// Builds a figure.
    pub fn new(name: impl Into<String>, label: impl Into<String>, value: FigureValue) -> Self {
        Figure {
            name: name.into(),
            label: label.into(),
            value,
        }
    }
}

/// A titled group of statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSection {
    /// Section title, e.g. "storage".
    pub title: String,
    /// Its figures, in display order.
    pub figures: Vec<Figure>,
}

/// Everything `STATS` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsReport {
    /// Sections in display order.
    pub sections: Vec<StatsSection>,
}

impl StatsReport {
    /// A report of (title, figures) sections, in display order.
    pub fn from_sections<const N: usize>(sections: [(&str, Vec<Figure>); N]) -> Self {
        StatsReport {
            sections: sections
                .into_iter()
                .map(|(title, figures)| StatsSection {
                    title: title.to_owned(),
                    figures,
                })
                .collect(),
        }
    }
}

/// A key-value store the REPL can drive. Writes return only once they are durable.
pub trait Backend {
    /// Reads the value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Sets `key` to `value`; durable when it returns.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError>;
    /// Deletes `key`; durable when it returns.
    fn delete(&self, key: &[u8]) -> Result<(), BackendError>;
    /// Iterates `[start, end)` in key order (`None` for unbounded).
    fn scan(&self, start: Option<&[u8]>, end: Option<&[u8]>)
    -> Result<EntryIter<'_>, BackendError>;
    /// Counts the live keys.
    fn count(&self) -> Result<u64, BackendError>;
    /// Writes buffered data to tables.
    fn flush(&self) -> Result<(), BackendError>;
    /// Compacts the whole store, reporting progress through `events`.
    fn compact(&self, events: &mut dyn FnMut(CompactEvent))
    -> Result<CompactSummary, BackendError>;
    /// Collects the statistics `STATS` shows.
    fn stats(&self) -> Result<StatsReport, BackendError>;
}
