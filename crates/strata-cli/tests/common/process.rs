//! A real `strata server` process on loopback ports: started with port 0 unless told otherwise,
//! its `listening` line parsed, its stderr kept for failure messages, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running server process; killed on drop if a test did not stop it.
pub struct ServerProcess {
    pub child: Child,
    pub grpc: SocketAddr,
    pub redis: SocketAddr,
    pub http: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

/// What a server that failed to start said.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `strata server --data dir` with `extra` flags, and loopback port 0 for every listener that
/// `extra` does not place.
pub fn server_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["server", "--data"]).arg(dir);
    for (flag, default) in [
        ("--grpc", "127.0.0.1:0"),
        ("--redis", "127.0.0.1:0"),
        ("--http", "127.0.0.1:0"),
    ] {
        if !extra.iter().any(|a| a.starts_with(flag)) {
            cmd.args([flag, default]);
        }
    }
    cmd.args(extra)
        .env_remove("STRATA_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl ServerProcess {
    /// Starts a server and waits for its `listening` line; panics with its stderr if it fails.
    pub fn start(dir: &Path, extra: &[&str]) -> ServerProcess {
        Self::try_start(dir, extra).unwrap_or_else(|f| panic!("server did not start: {f:?}"))
    }

    /// Starts a server; a server that exits before listening is returned as a failure.
    pub fn try_start(dir: &Path, extra: &[&str]) -> Result<ServerProcess, StartFailure> {
        Self::try_start_command(server_command(dir, extra))
    }

    /// Starts `cmd` (a `strata server` command line) and waits for its `listening` line.
    pub fn start_command(cmd: Command) -> ServerProcess {
        Self::try_start_command(cmd).unwrap_or_else(|f| panic!("server did not start: {f:?}"))
    }

    /// As [`Self::start_command`], returning a server that exits before listening as a failure.
    pub fn try_start_command(mut cmd: Command) -> Result<ServerProcess, StartFailure> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().unwrap();
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(addrs) = line.trim_end().strip_prefix("listening ") else {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
            let status = wait_timeout(&mut child, Duration::from_secs(30));
            // Let the stderr thread catch the last bytes.
            std::thread::sleep(Duration::from_millis(100));
            let stderr = stderr.lock().unwrap().clone();
            return Err(StartFailure {
                status,
                stdout: line + &rest,
                stderr,
            });
        };
        // Keep draining stdout so the server can never block on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let mut found = std::collections::HashMap::new();
        for part in addrs.split(' ') {
            let (name, addr) = part.split_once('=').unwrap();
            found.insert(name.to_owned(), addr.parse::<SocketAddr>().unwrap());
        }
        Ok(ServerProcess {
            child,
            grpc: found["grpc"],
            redis: found["redis"],
            http: found["http"],
            stderr,
        })
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
    }

    /// SIGTERM, then waits (at most 30 s) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.sigterm();
        wait_timeout(&mut self.child, Duration::from_secs(30))
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for `child` to exit, killing it (and failing) after `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
