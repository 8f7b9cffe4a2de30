//! [`Session`]: runs parsed commands against a [`Backend`] and reports to an [`Output`].
//!
//! A failed command (a bad line, a refused or failed write) is reported and the session goes on,
//! so reads keep working after a write fails. Only a failure to write the output ends it.

use std::io;

use super::backend::{Backend, CompactEvent};
use super::command::{Command, parse};
use super::render::Output;

/// Whether the loop should read another line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// The user asked to leave.
    Exit,
}

/// One user's conversation with a store.
#[derive(Debug)]
pub struct Session<B> {
    backend: B,
}

impl<B: Backend> Session<B> {
    /// A session over `backend`.
    pub fn new(backend: B) -> Self {
        Session { backend }
    }

    /// Parses and runs one input line.
    pub fn handle_line(&mut self, line: &[u8], out: &mut dyn Output) -> io::Result<Flow> {
        match parse(line) {
            Ok(Some(cmd)) => self.execute(cmd, out),
            Ok(None) => Ok(Flow::Continue),
            Err(e) => {
                out.error(&e)?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Runs one command. Errors of the store are reported to `out`; the returned error is only
    /// a failure to write to `out`.
    pub fn execute(&mut self, cmd: Command, out: &mut dyn Output) -> io::Result<Flow> {
        let result = match cmd {
            Command::Exit => return Ok(Flow::Exit),
            Command::Help => return out.help().map(|()| Flow::Continue),
            Command::Put { key, value } => self.backend.put(&key, &value).map(|()| out.stored()),
            Command::Get { key } => self.backend.get(&key).map(|v| out.value(v.as_deref())),
            Command::Delete { key } => self.delete(&key).map(|existed| out.deleted(existed)),
            Command::Scan { start, end, limit } => {
                return self.scan(start.as_deref(), end.as_deref(), limit, out);
            }
            Command::Count => self.backend.count().map(|n| out.count(n)),
            Command::Stats => self.backend.stats().map(|r| out.stats(&r)),
            Command::Flush => self.backend.flush().map(|()| out.flushed()),
            Command::Compact => return self.compact(out),
        };
        match result {
            Ok(written) => written?,
            Err(e) => out.error(&e)?,
        }
        Ok(Flow::Continue)
    }

    fn delete(&self, key: &[u8]) -> Result<bool, super::backend::BackendError> {
        let existed = self.backend.get(key)?.is_some();
        self.backend.delete(key)?;
        Ok(existed)
    }

    fn scan(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        limit: Option<usize>,
        out: &mut dyn Output,
    ) -> io::Result<Flow> {
        let iter = match self.backend.scan(start, end) {
            Ok(iter) => iter,
            Err(e) => {
                out.error(&e)?;
                return Ok(Flow::Continue);
            }
        };
        let mut count = 0;
        for entry in iter.take(limit.unwrap_or(usize::MAX)) {
            match entry {
                Ok((k, v)) => out.entry(&k, &v)?,
                Err(e) => {
                    // The error line takes the place of the closing empty line.
                    out.error(&e)?;
                    return Ok(Flow::Continue);
                }
            }
            count += 1;
        }
        out.scan_end(count)?;
        Ok(Flow::Continue)
    }

    fn compact(&self, out: &mut dyn Output) -> io::Result<Flow> {
        let mut write_error = None;
        let result = self.backend.compact(&mut |event| match event {
            CompactEvent::Started { tables } => {
                if let Err(e) = out.compaction_started(tables) {
                    write_error.get_or_insert(e);
                }
            }
            CompactEvent::Progress { done, total } => out.compaction_progress(done, total),
        });
        if let Some(e) = write_error {
            return Err(e);
        }
        match result {
            Ok(summary) => out.compacted(&summary)?,
            Err(e) => out.error(&e)?,
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::repl::backend::{BackendError, CompactSummary, EntryIter, StatsReport};
    use crate::repl::render::PlainOutput;

    /// An in-memory backend whose writes can be made to fail, as a full disk or a poisoned
    /// store would.
    #[derive(Default)]
    struct Model {
        map: RefCell<BTreeMap<Vec<u8>, Vec<u8>>>,
        fail_writes: bool,
    }

    fn write_failure() -> BackendError {
        BackendError::Engine(strata_engine::Error::Poisoned("disk full".into()))
    }

    impl Backend for Model {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
            Ok(self.map.borrow().get(key).cloned())
        }
        fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
            if self.fail_writes {
                return Err(write_failure());
            }
            self.map.borrow_mut().insert(key.to_vec(), value.to_vec());
            Ok(())
        }
        fn delete(&self, key: &[u8]) -> Result<(), BackendError> {
            if self.fail_writes {
                return Err(write_failure());
            }
            self.map.borrow_mut().remove(key);
            Ok(())
        }
        fn scan(
            &self,
            start: Option<&[u8]>,
            end: Option<&[u8]>,
        ) -> Result<EntryIter<'_>, BackendError> {
            let entries: Vec<_> = self
                .map
                .borrow()
                .iter()
                .filter(|(k, _)| start.is_none_or(|s| k.as_slice() >= s))
                .filter(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
                .map(|(k, v)| Ok((k.clone(), v.clone())))
                .collect();
            Ok(Box::new(entries.into_iter()))
        }
        fn count(&self) -> Result<u64, BackendError> {
            Ok(self.map.borrow().len() as u64)
        }
        fn flush(&self) -> Result<(), BackendError> {
            Ok(())
        }
        fn compact(
            &self,
            events: &mut dyn FnMut(CompactEvent),
        ) -> Result<CompactSummary, BackendError> {
            events(CompactEvent::Started { tables: 2 });
            events(CompactEvent::Progress { done: 1, total: 2 });
            Ok(CompactSummary::default())
        }
        fn stats(&self) -> Result<StatsReport, BackendError> {
            Ok(StatsReport::default())
        }
    }

    fn run(session: &mut Session<Model>, script: &str) -> String {
        let mut buf = Vec::new();
        let mut out = PlainOutput::new(&mut buf);
        for line in script.lines() {
            if session.handle_line(line.as_bytes(), &mut out).unwrap() == Flow::Exit {
                break;
            }
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn commands_reply_in_plain_form() {
        let mut s = Session::new(Model::default());
        let script = "PUT b 2\nPUT a 1\nPUT c 3\nGET a\nGET zz\nDELETE a\nGET a\nSCAN\n\
                      SCAN b LIMIT 1\nCOUNT\nFLUSH\nCOMPACT\nnope\nEXIT\nGET b";
        assert_eq!(
            run(&mut s, script),
            "OK\nOK\nOK\n1\n(nil)\nOK\n(nil)\nb\t2\nc\t3\n\nb\t2\n\n2\nOK\nOK\n\
             ERR unknown command 'NOPE' (type HELP for the list)\n"
        );
    }

    /// The same with the real engine on its fault-injecting file system: the sync of a PUT
    /// fails (a dying disk), the store is poisoned, reads go on from memory, and after a
    /// simulated power loss the store holds exactly the acknowledged write.
    #[test]
    fn a_failing_disk_under_the_real_engine_loses_nothing_acknowledged() {
        use std::sync::Arc;

        use strata_engine::fs::FaultFs;
        use strata_engine::{Db, Options};

        use crate::repl::embedded::Embedded;

        let fs = FaultFs::new();
        let open = || {
            let opts = Options {
                fs: Arc::new(fs.clone()),
                ..Options::default()
            };
            Embedded::new(Db::open("/store", opts).unwrap())
        };
        let run_on = |session: &mut Session<Embedded>, script: &str| {
            let mut buf = Vec::new();
            let mut out = PlainOutput::new(&mut buf);
            for line in script.lines() {
                session.handle_line(line.as_bytes(), &mut out).unwrap();
            }
            String::from_utf8(buf).unwrap()
        };
        let mut s = Session::new(open());
        assert_eq!(run_on(&mut s, "PUT k v\nPUT other 1"), "OK\nOK\n");
        fs.set_fail_syncs(true);
        let out = run_on(&mut s, "PUT k w\nDELETE other\nGET k\nGET other\nCOUNT");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(lines[0].starts_with("ERR "), "{out}");
        assert!(lines[1].starts_with("ERR store is poisoned"), "{out}");
        assert_eq!(&lines[2..], ["v", "1", "2"], "{out}");
        drop(s);
        fs.set_fail_syncs(false);
        fs.power_loss();

        let mut s = Session::new(open());
        assert_eq!(run_on(&mut s, "GET k\nGET other\nCOUNT"), "v\n1\n2\n");
    }

    #[test]
    fn failed_writes_are_reported_and_reads_go_on() {
        let mut s = Session::new(Model::default());
        assert_eq!(run(&mut s, "PUT k v"), "OK\n");
        s.backend.fail_writes = true;
        let out = run(&mut s, "PUT k w\nDELETE k\nGET k\nCOUNT");
        assert_eq!(
            out,
            "ERR store is poisoned by an earlier failure (disk full); reopen it to recover\n\
             ERR store is poisoned by an earlier failure (disk full); reopen it to recover\n\
             v\n1\n"
        );
    }
}
