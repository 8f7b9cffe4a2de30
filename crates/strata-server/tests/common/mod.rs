//! Shared helpers for the integration tests: an in-process server on loopback port 0 over a
//! real store in a temporary directory, and a raw RESP client.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use strata_server::{BoundAddrs, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running in-process server.
pub struct TestServer {
    pub addrs: BoundAddrs,
    pub dir: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<strata_server::Result<()>>>,
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts its config.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(dir.path().to_path_buf(), tweak).await;
        s.dir = Some(dir);
        s
    }

    /// Starts a server on an existing data directory.
    pub async fn start_in(data_dir: PathBuf, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = ServerConfig::ephemeral(&data_dir);
        tweak(&mut config);
        let server = Server::bind(config).await.unwrap();
        let addrs = server.addrs();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        TestServer {
            addrs,
            dir: None,
            data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers shutdown and waits for the server to drain and flush.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("server did not stop in time")
                .unwrap()
                .unwrap();
        }
    }

    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addrs.redis)
    }
}

/// A minimal raw RESP client that reads exactly one reply at a time.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Encodes and sends a command as a RESP array.
    pub async fn cmd(&mut self, args: &[&[u8]]) {
        let bytes = encode(args);
        self.send(&bytes).await;
    }

    /// Reads one complete reply and returns its raw bytes, or `None` at EOF.
    pub async fn reply(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = reply_len(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut chunk))
                .await
                .expect("reply timed out")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn reply_str(&mut self) -> String {
        String::from_utf8_lossy(&self.reply().await.expect("connection closed")).into_owned()
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the first complete reply in `buf`, if there is one.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..line_end]).ok()?;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(line_end + 2),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(line_end + 2);
            }
            let total = line_end + 2 + n as usize + 2;
            (buf.len() >= total).then_some(total)
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            let mut at = line_end + 2;
            for _ in 0..n.max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}
