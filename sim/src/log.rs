//! Logging to stderr without ever blocking or failing a connection thread: lines go through
//! a bounded queue to one writer thread; when stderr is slow (a parent that pipes it and
//! never reads) lines are dropped, and write errors (a closed pipe) are ignored.

use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;

static TX: OnceLock<Option<SyncSender<String>>> = OnceLock::new();

fn sender() -> Option<&'static SyncSender<String>> {
    TX.get_or_init(|| {
        let (tx, rx) = sync_channel::<String>(4096);
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || {
                for line in rx {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "portal-sim: {line}");
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Queue one line for stderr (prefixed with `portal-sim: `).
pub fn line(s: String) {
    match sender() {
        Some(tx) => {
            let _ = tx.try_send(s);
        }
        None => {
            let _ = writeln!(std::io::stderr(), "portal-sim: {s}");
        }
    }
}

#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::line(format!($($arg)*)) };
}
