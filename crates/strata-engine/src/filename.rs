//! Names of the files in a store directory: `NNNNNN.wal` logs, `NNNNNN.sst` tables,
//! `MANIFEST-NNNNNN`, `CURRENT` and `LOCK`.

use std::path::{Path, PathBuf};

/// The kinds of file a store directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A write-ahead log.
    Wal(u64),
    /// A sorted table.
    Table(u64),
    /// A MANIFEST.
    Manifest(u64),
    /// The CURRENT pointer.
    Current,
    /// The lock file.
    Lock,
    /// A temporary file left by an interrupted atomic write.
    Temp,
    /// The directory left to the application embedding the store ([`APP_DIR`]).
    AppDir,
}

/// The name of a directory inside the store that the engine never reads, writes or removes:
/// room for the embedding application's own files beside its data (the cluster keeps its Raft
/// snapshot files there), so that they live and go with the store.
pub const APP_DIR: &str = "app";

/// Path of WAL `n`.
pub fn wal(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:06}.wal"))
}

/// Path of table `n`.
pub fn table(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:06}.sst"))
}

/// File name of MANIFEST `n`.
pub fn manifest_name(n: u64) -> String {
    format!("MANIFEST-{n:06}")
}

/// Path of MANIFEST `n`.
pub fn manifest(dir: &Path, n: u64) -> PathBuf {
    dir.join(manifest_name(n))
}

/// Path of `CURRENT`.
pub fn current(dir: &Path) -> PathBuf {
    dir.join("CURRENT")
}

/// Path of `LOCK`.
pub fn lock(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}

/// Largest file number a store uses; a name with a larger number is not Strata's (and could
/// overflow the file counter).
pub const MAX_FILE_NUMBER: u64 = 1 << 56;

/// Classifies a file name found in a store directory; `None` for foreign files.
pub fn parse(name: &str) -> Option<FileKind> {
    parse_any(name).filter(|k| match k {
        FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n) => *n <= MAX_FILE_NUMBER,
        _ => true,
    })
}

fn parse_any(name: &str) -> Option<FileKind> {
    if name == "CURRENT" {
        return Some(FileKind::Current);
    }
    if name == "LOCK" {
        return Some(FileKind::Lock);
    }
    if name == APP_DIR {
        return Some(FileKind::AppDir);
    }
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return n.parse().ok().map(FileKind::Manifest);
    }
    let (stem, ext) = name.rsplit_once('.')?;
    let n: u64 = stem.parse().ok()?;
    match ext {
        "wal" => Some(FileKind::Wal(n)),
        "sst" => Some(FileKind::Table(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let d = Path::new("/d");
        for (p, k) in [
            (wal(d, 3), FileKind::Wal(3)),
            (table(d, 12), FileKind::Table(12)),
            (manifest(d, 5), FileKind::Manifest(5)),
            (current(d), FileKind::Current),
            (lock(d), FileKind::Lock),
        ] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(parse(name), Some(k));
        }
        assert_eq!(parse("notes.txt"), None);
        assert_eq!(parse("CURRENT.tmp"), Some(FileKind::Temp));
        assert_eq!(parse(APP_DIR), Some(FileKind::AppDir));
        assert_eq!(
            parse("18446744073709551615.wal"),
            None,
            "past the file-number limit"
        );
    }
}
