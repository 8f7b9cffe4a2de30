//! Arranging a server's `Stats` and `Status` replies into the sections `STATS` shows, with the
//! same names and labels as the embedded store wherever the wire carries the figure.

use std::time::Duration;

use strata_proto::v1 as pb;

use crate::repl::backend::{Figure, FigureValue, StatsReport};

/// Tables in every level.
pub fn table_files(s: &pb::StatsResponse) -> usize {
    let files: u64 = s.levels.iter().map(|l| l.files).sum();
    usize::try_from(files).unwrap_or(usize::MAX)
}

/// The `STATS` report of a server.
pub fn report(s: &pb::StatsResponse, status: &pb::StatusResponse) -> StatsReport {
    use FigureValue::{Bytes, Count, Fraction, Ratio};
    let table_bytes: u64 = s.levels.iter().map(|l| l.bytes).sum();
    let mut storage = vec![
        Figure::new("memtable_bytes", "memtable", Bytes(s.memtable_bytes)),
        Figure::new(
            "sstables",
            "SSTables (all levels)",
            Count(table_files(s) as u64),
        ),
        Figure::new(
            "sstable_bytes",
            "SSTable bytes (all levels)",
            Bytes(table_bytes),
        ),
    ];
    // As in the embedded report: levels down to the deepest one holding a table (at least L0).
    let deepest = s.levels.iter().rposition(|l| l.files > 0).unwrap_or(0);
    for (i, level) in s.levels.iter().enumerate().take(deepest + 1) {
        storage.push(Figure::new(
            format!("l{i}_sstables"),
            format!("L{i} SSTables"),
            Count(level.files),
        ));
        storage.push(Figure::new(
            format!("l{i}_bytes"),
            format!("L{i} bytes"),
            Bytes(level.bytes),
        ));
    }
    let filtered = s.bloom_negatives + s.bloom_false_positives;
    let useful = if filtered == 0 {
        0.0
    } else {
        s.bloom_negatives as f64 / filtered as f64
    };
    let bloom = vec![
        Figure::new("bloom_negatives", "negatives", Count(s.bloom_negatives)),
        Figure::new(
            "bloom_false_positives",
            "false positives",
            Count(s.bloom_false_positives),
        ),
        Figure::new("bloom_useful_rate", "useful rate", Fraction(useful)),
    ];
    let compaction = vec![
        Figure::new("compactions", "count", Count(s.compactions)),
        Figure::new(
            "write_amplification",
            "write amplification",
            Ratio(s.write_amplification),
        ),
    ];
    let activity = vec![
        Figure::new("keys_written", "keys written", Count(s.keys_written)),
        Figure::new("keys_read", "keys read", Count(s.keys_read)),
        Figure::new("flushes", "flushes", Count(s.flushes)),
        Figure::new("write_stalls", "write stalls", Count(s.write_stalls)),
        Figure::new("wal_syncs", "WAL syncs", Count(s.wal_syncs)),
    ];
    let server = vec![
        Figure::new(
            "uptime_secs",
            "uptime",
            FigureValue::Duration(Some(Duration::from_secs(status.uptime_seconds))),
        ),
        Figure::new("connections", "connections", Count(status.connections)),
    ];
    StatsReport::from_sections([
        ("storage", storage),
        ("bloom filter", bloom),
        ("compaction", compaction),
        ("activity", activity),
        ("server", server),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_stop_at_the_deepest_table_and_names_match_the_embedded_report() {
        let s = pb::StatsResponse {
            bloom_negatives: 3,
            bloom_false_positives: 1,
            levels: vec![
                pb::LevelStats {
                    level: 0,
                    files: 0,
                    bytes: 0,
                },
                pb::LevelStats {
                    level: 1,
                    files: 2,
                    bytes: 100,
                },
                pb::LevelStats {
                    level: 2,
                    files: 0,
                    bytes: 0,
                },
            ],
            ..Default::default()
        };
        let r = report(&s, &pb::StatusResponse::default());
        let names: Vec<&str> = r.sections[0]
            .figures
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "memtable_bytes",
                "sstables",
                "sstable_bytes",
                "l0_sstables",
                "l0_bytes",
                "l1_sstables",
                "l1_bytes"
            ]
        );
        assert_eq!(r.sections[0].figures[1].value, FigureValue::Count(2));
        assert_eq!(r.sections[1].figures[2].value, FigureValue::Fraction(0.75));
    }
}
