//! Running a child process with a deadline.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished child left: exit status, stdout, stderr, wall time.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub wall: Duration,
}

/// A spawned child whose output is collected by reader threads.
pub(crate) struct Watched {
    child: std::process::Child,
    out: Option<thread::JoinHandle<Vec<u8>>>,
    err: Option<thread::JoinHandle<Vec<u8>>>,
    started: Instant,
    what: String,
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> Option<thread::JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    })
}

impl Watched {
    pub(crate) fn spawn(cmd: Command, what: String) -> Watched {
        Watched::spawn_with_input(cmd, what, None)
    }

    /// Like `spawn`; with `input`, stdin is a pipe fed with it (then closed) by a thread.
    pub(crate) fn spawn_with_input(
        mut cmd: Command,
        what: String,
        input: Option<Vec<u8>>,
    ) -> Watched {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start {}: {e}",
                what.chars().take(300).collect::<String>()
            ),
        };
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&data);
            });
        }
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        Watched {
            child,
            out,
            err,
            started,
            what,
        }
    }

    /// Waits up to `timeout`; on expiry kills the child (by its pid) and panics.
    pub(crate) fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = self.started + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let err = self
                        .err
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    panic!(
                        "{} did not finish within {timeout:?}; killed. stderr:\n{}",
                        self.what.chars().take(2000).collect::<String>(),
                        String::from_utf8_lossy(&err)
                    );
                }
                Err(e) => panic!("waiting for {}: {e}", self.what),
            }
        };
        let wall = self.started.elapsed();
        let stdout = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Finished {
            status,
            stdout,
            stderr,
            wall,
        }
    }
}

/// Runs `cmd` (stdin closed) and waits up to `timeout`, killing it and panicking on expiry.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> Finished {
    let what = format!("{cmd:?}");
    Watched::spawn(cmd, what).wait(timeout)
}

/// Runs `cmd` with `input` on its stdin (then closed) and waits up to `timeout`, killing it and
/// panicking on expiry.
pub fn run_with_input(cmd: Command, input: &[u8], timeout: Duration) -> Finished {
    let what = format!("{cmd:?}");
    Watched::spawn_with_input(cmd, what, Some(input.to_vec())).wait(timeout)
}
