//! Turning results into text: [`Output`] is what a session reports to, [`PlainOutput`] prints the
//! parseable form used when stdin is not a terminal, [`PrettyOutput`] the friendly form with the
//! boxed `STATS` table and the compaction progress bar.

use std::fmt::Display;
use std::io::{self, Write};
use std::time::Duration;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::backend::{CompactSummary, FigureValue, StatsReport};
use super::escape::{escape, is_plain, quote};

/// The list of commands `HELP` prints.
pub const HELP: &str = "\
Commands (case-insensitive):
  PUT key value                 store value (the rest of the line) under key
  GET key                       print the value of key
  DELETE key                    remove key (also DEL)
  SCAN [start [end]] [LIMIT n]  list entries with start <= key < end
  COUNT                         count the keys
  STATS                         show engine statistics
  COMPACT                       compact the whole store
  FLUSH                         write the memtable to an SSTable
  HELP                          show this list
  EXIT | QUIT                   leave (Ctrl-D works too)
Keys and values may be double-quoted to hold spaces or any byte, with the escapes
  \\t \\n \\r \\0 \\\\ \\\" \\xHH     e.g.  PUT \"my key\" \"line one\\nline two\"";

/// Where a session sends its results. Every method may fail only because writing failed.
pub trait Output {
    /// A `PUT` is durable.
    fn stored(&mut self) -> io::Result<()>;
    /// The result of `GET`.
    fn value(&mut self, value: Option<&[u8]>) -> io::Result<()>;
    /// A `DELETE` is durable; `existed` says whether the key was there.
    fn deleted(&mut self, existed: bool) -> io::Result<()>;
    /// One entry of a `SCAN`.
    fn entry(&mut self, key: &[u8], value: &[u8]) -> io::Result<()>;
    /// The end of a `SCAN` that listed `count` entries.
    fn scan_end(&mut self, count: u64) -> io::Result<()>;
    /// The result of `COUNT`.
    fn count(&mut self, count: u64) -> io::Result<()>;
    /// The result of `STATS`.
    fn stats(&mut self, report: &StatsReport) -> io::Result<()>;
    /// A `FLUSH` finished.
    fn flushed(&mut self) -> io::Result<()>;
    /// A compaction over `tables` tables starts.
    fn compaction_started(&mut self, tables: usize) -> io::Result<()>;
    /// A compaction has merged `done` of `total` bytes.
    fn compaction_progress(&mut self, done: u64, total: u64);
    /// A compaction finished.
    fn compacted(&mut self, summary: &CompactSummary) -> io::Result<()>;
    /// The result of `HELP`.
    fn help(&mut self) -> io::Result<()>;
    /// A command failed.
    fn error(&mut self, message: &dyn Display) -> io::Result<()>;
}

/// Puts `message` on one line, so a reader of `ERR` lines never sees it split.
fn one_line(message: &dyn Display) -> String {
    message.to_string().replace(['\n', '\r'], " ")
}

/// The parseable output: `OK`, values or `(nil)`, `key<TAB>value` lines, `ERR message`.
#[derive(Debug)]
pub struct PlainOutput<W> {
    out: W,
}

impl<W: Write> PlainOutput<W> {
    /// Prints to `out`.
    pub fn new(out: W) -> Self {
        PlainOutput { out }
    }

    /// Flushes the writer, so each reply reaches a reader before the next command is read.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Output for PlainOutput<W> {
    fn stored(&mut self) -> io::Result<()> {
        writeln!(self.out, "OK")
    }

    fn value(&mut self, value: Option<&[u8]>) -> io::Result<()> {
        match value {
            Some(v) => writeln!(self.out, "{}", escape(v)),
            None => writeln!(self.out, "(nil)"),
        }
    }

    fn deleted(&mut self, _existed: bool) -> io::Result<()> {
        writeln!(self.out, "OK")
    }

    fn entry(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        writeln!(self.out, "{}\t{}", escape(key), escape(value))
    }

    fn scan_end(&mut self, _count: u64) -> io::Result<()> {
        writeln!(self.out)
    }

    fn count(&mut self, count: u64) -> io::Result<()> {
        writeln!(self.out, "{count}")
    }

    fn stats(&mut self, report: &StatsReport) -> io::Result<()> {
        for figure in report.sections.iter().flat_map(|s| &s.figures) {
            let value = match figure.value {
                FigureValue::Count(n) | FigureValue::Bytes(n) => n.to_string(),
                FigureValue::Ratio(r) | FigureValue::Fraction(r) => format!("{r:.4}"),
                FigureValue::Duration(Some(d)) => format!("{:.6}", d.as_secs_f64()),
                FigureValue::Duration(None) => "(nil)".to_owned(),
            };
            writeln!(self.out, "{}\t{value}", figure.name)?;
        }
        writeln!(self.out)
    }

    fn flushed(&mut self) -> io::Result<()> {
        writeln!(self.out, "OK")
    }

    fn compaction_started(&mut self, _tables: usize) -> io::Result<()> {
        Ok(())
    }

    fn compaction_progress(&mut self, _done: u64, _total: u64) {}

    fn compacted(&mut self, _summary: &CompactSummary) -> io::Result<()> {
        writeln!(self.out, "OK")
    }

    fn help(&mut self) -> io::Result<()> {
        writeln!(self.out, "{HELP}\n")
    }

    fn error(&mut self, message: &dyn Display) -> io::Result<()> {
        writeln!(self.out, "ERR {}", one_line(message))
    }
}

/// Whether to use colour and symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours, Unicode symbols and box drawing are allowed.
    pub decorated: bool,
}

impl Style {
    /// Decorates only when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect(stdout_is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            decorated: stdout_is_terminal && !no_color,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.decorated {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Success: green.
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Failure: bold red.
    pub fn bad(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// Keys: cyan.
    pub fn key(self, text: &str) -> String {
        self.paint("36", text)
    }

    /// Side remarks: dim.
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    fn check(self) -> &'static str {
        if self.decorated { "✔ " } else { "" }
    }

    fn arrow(self) -> &'static str {
        if self.decorated { "→" } else { "->" }
    }
}

/// Shows bytes as text if they are printable, else in their quoted, escaped form.
fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if is_plain(bytes) => s.to_owned(),
        _ => quote(bytes),
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in UNITS.iter().skip(1) {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A duration for people: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn human_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The friendly output for a person at a terminal.
#[derive(Debug)]
pub struct PrettyOutput<W> {
    out: W,
    style: Style,
    bar: Option<ProgressBar>,
}

impl<W: Write> PrettyOutput<W> {
    /// Prints to `out` in `style`; the progress bar goes to stderr when decorated.
    pub fn new(out: W, style: Style) -> Self {
        PrettyOutput {
            out,
            style,
            bar: None,
        }
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Prints a line of text as it is (the banner).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")
    }

    fn ok(&mut self, text: &str) -> io::Result<()> {
        let line = format!("{}{text}", self.style.check());
        writeln!(self.out, "{}", self.style.good(&line))
    }

    fn stats_table(&self, report: &StatsReport) -> Table {
        let mut table = Table::new();
        table.load_style(if self.style.decorated {
            presets::UTF8_FULL_CONDENSED
        } else {
            presets::ASCII_FULL_CONDENSED
        });
        // The table is narrow; letting comfy-table fit it to the terminal squeezes it into one
        // character per column when the terminal reports no width (some pseudo-terminals).
        table.set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(vec!["Section", "Metric", "Value"]);
        for section in &report.sections {
            for (i, figure) in section.figures.iter().enumerate() {
                let title = if i == 0 { section.title.as_str() } else { "" };
                let value = match figure.value {
                    FigureValue::Count(n) => n.to_string(),
                    FigureValue::Bytes(n) => human_bytes(n),
                    FigureValue::Ratio(r) => format!("{r:.2}x"),
                    FigureValue::Fraction(f) => format!("{:.1}%", f * 100.0),
                    FigureValue::Duration(Some(d)) => human_duration(d),
                    FigureValue::Duration(None) => "never".to_owned(),
                };
                table.add_row(vec![
                    Cell::new(title),
                    Cell::new(&figure.label),
                    Cell::new(value).set_alignment(CellAlignment::Right),
                ]);
            }
        }
        table
    }
}

impl<W: Write> Output for PrettyOutput<W> {
    fn stored(&mut self) -> io::Result<()> {
        self.ok("OK")
    }

    fn value(&mut self, value: Option<&[u8]>) -> io::Result<()> {
        match value {
            Some(v) => writeln!(self.out, "{}", show(v)),
            None => writeln!(self.out, "{}", self.style.bad("Error: key not found")),
        }
    }

    fn deleted(&mut self, existed: bool) -> io::Result<()> {
        if existed {
            self.ok("Deleted")
        } else {
            let note = "Deleted (the key was not there)";
            writeln!(self.out, "{}", self.style.dim(note))
        }
    }

    fn entry(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let key = self.style.key(&show(key));
        writeln!(self.out, "{key} {} {}", self.style.arrow(), show(value))
    }

    fn scan_end(&mut self, count: u64) -> io::Result<()> {
        let noun = if count == 1 { "entry" } else { "entries" };
        writeln!(self.out, "{}", self.style.dim(&format!("({count} {noun})")))
    }

    fn count(&mut self, count: u64) -> io::Result<()> {
        let noun = if count == 1 { "key" } else { "keys" };
        writeln!(self.out, "{count} {noun}")
    }

    fn stats(&mut self, report: &StatsReport) -> io::Result<()> {
        writeln!(self.out, "{}", self.stats_table(report))
    }

    fn flushed(&mut self) -> io::Result<()> {
        self.ok("Flushed")
    }

    fn compaction_started(&mut self, tables: usize) -> io::Result<()> {
        let noun = if tables == 1 { "SSTable" } else { "SSTables" };
        writeln!(self.out, "Starting compaction ({tables} {noun})")?;
        self.out.flush()?;
        let target = if self.style.decorated {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40.cyan/blue} {bytes}/{total_bytes} ({eta})")
        {
            bar.set_style(style);
        }
        self.bar = Some(bar);
        Ok(())
    }

    fn compaction_progress(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn compacted(&mut self, s: &CompactSummary) -> io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.ok(&format!(
            "Compaction finished in {}",
            human_duration(s.duration)
        ))?;
        let arrow = self.style.arrow();
        writeln!(
            self.out,
            "  SSTables:        {} {arrow} {}",
            s.tables_before, s.tables_after
        )?;
        writeln!(self.out, "  Keys removed:    {}", s.keys_removed)?;
        writeln!(
            self.out,
            "  Bytes reclaimed: {} ({} {arrow} {})",
            human_bytes(s.bytes_reclaimed),
            human_bytes(s.bytes_before),
            human_bytes(s.bytes_after)
        )?;
        writeln!(
            self.out,
            "  Time taken:      {}",
            human_duration(s.duration)
        )
    }

    fn help(&mut self) -> io::Result<()> {
        writeln!(self.out, "{HELP}")
    }

    fn error(&mut self, message: &dyn Display) -> io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let line = format!("Error: {}", one_line(message));
        writeln!(self.out, "{}", self.style.bad(&line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::backend::{Figure, StatsSection};

    fn plain(f: impl FnOnce(&mut PlainOutput<&mut Vec<u8>>) -> io::Result<()>) -> String {
        let mut buf = Vec::new();
        f(&mut PlainOutput::new(&mut buf)).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn report() -> StatsReport {
        StatsReport {
            sections: vec![StatsSection {
                title: "storage".into(),
                figures: vec![
                    Figure::new("memtable_bytes", "memtable", FigureValue::Bytes(2048)),
                    Figure::new("ratio", "ratio", FigureValue::Ratio(1.5)),
                    Figure::new("last", "last", FigureValue::Duration(None)),
                ],
            }],
        }
    }

    #[test]
    fn plain_replies() {
        assert_eq!(plain(|o| o.stored()), "OK\n");
        assert_eq!(plain(|o| o.value(None)), "(nil)\n");
        assert_eq!(plain(|o| o.value(Some(b"a\tb\n"))), "a\\tb\\n\n");
        assert_eq!(plain(|o| o.entry(b"k\\", b"v")), "k\\\\\tv\n");
        assert_eq!(plain(|o| o.scan_end(3)), "\n");
        assert_eq!(plain(|o| o.error(&"bad\nthing")), "ERR bad thing\n");
        assert_eq!(
            plain(|o| o.stats(&report())),
            "memtable_bytes\t2048\nratio\t1.5000\nlast\t(nil)\n\n"
        );
    }

    #[test]
    fn undecorated_pretty_output_has_no_escape_codes() {
        let mut buf = Vec::new();
        let mut out = PrettyOutput::new(&mut buf, Style { decorated: false });
        out.stored().unwrap();
        out.value(None).unwrap();
        out.stats(&report()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('\x1b'));
        assert!(text.starts_with("OK\nError: key not found\n+"), "{text}");
        assert!(text.contains("2.0 KiB"), "{text}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(human_duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(human_duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(human_duration(Duration::from_millis(4560)), "4.56 s");
    }
}
