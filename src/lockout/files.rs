//! The file store: one record per key under the lockout directory, like pam_faillock.
//!
//! - Each update runs under an exclusive `flock` on the record, reads it, and replaces it
//!   atomically (write a temporary file, `rename` over the record). A process killed at any
//!   point leaves either the old or the new record, never a torn one.
//! - A process that waited for the lock checks that the path still names the file it locked
//!   (a rename or unlink may have replaced it) and starts over if not.
//! - Readers take no lock: a rename never shows them a half-written record.
//! - A damaged record is reported (`take_warnings`) and treated as empty, then replaced by the
//!   next update. Stale records are pruned at most every ten minutes.

use super::{hex, unhex, Key, Record, Store, StoreError, Tally, MAX_FAILURES_KEPT};
use crate::config::Policy;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: &str = "pam_portal-lockout 1";
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const MAX_RECORD_BYTES: u64 = 256 * 1024;

pub struct FileStore {
    dir: PathBuf,
    /// The longest window of any policy: records older than this are stale.
    longest_window: u64,
    warnings: RefCell<Vec<String>>,
    /// Whether this store (one login) already looked at the prune stamp.
    prune_checked: Cell<bool>,
}

impl FileStore {
    /// Opens (creating it 0700 if missing) the lockout directory, and checks that only its
    /// owner (root, or the effective user) can write there.
    pub fn open(dir: &Path, longest_window: u64) -> Result<FileStore, StoreError> {
        let shown = dir.display();
        let meta = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(_) => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| {
                        StoreError(format!("cannot create lockout directory {shown}: {e}"))
                    })?;
                fs::symlink_metadata(dir)
                    .map_err(|e| StoreError(format!("lockout directory {shown}: {e}")))?
            }
        };
        if !meta.is_dir() {
            return Err(StoreError(format!(
                "lockout directory {shown} is not a directory"
            )));
        }
        if !crate::pam::owned_by_root_or_us(meta.uid()) {
            return Err(StoreError(format!(
                "lockout directory {shown} is owned by uid {}",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(StoreError(format!(
                "lockout directory {shown} is writable by group or others (mode {:o})",
                meta.mode() & 0o777
            )));
        }
        Ok(FileStore {
            dir: dir.to_path_buf(),
            longest_window,
            warnings: RefCell::new(Vec::new()),
            prune_checked: Cell::new(false),
        })
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(file_name(key))
    }

    fn warn(&self, msg: String) {
        self.warnings.borrow_mut().push(msg);
    }

    /// Reads a record without locking (see the module comment).
    fn read(&self, key: &Key) -> Result<Record, StoreError> {
        let path = self.path(key);
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            // Room for a usual record, so that one read(2) takes it.
            Ok(mut f) => Ok(self.load(&mut f, key, &path, 4096, false).0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(StoreError(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Reads a record: `(record, state)`. An empty file is one `update` just created (records
    /// are never written empty); a damaged one is reported and read as empty. An unfinished
    /// last line is an append in progress to a reader without the lock, but under the lock
    /// (`locked`) a writer that died mid-write: the complete lines are kept and the record is
    /// marked for rewriting rather than appending.
    /// `room`: the bytes one read(2) is offered first (see `smallfile::read`).
    fn load(
        &self,
        f: &mut File,
        key: &Key,
        path: &Path,
        room: usize,
        locked: bool,
    ) -> (Record, Found) {
        let parsed = match crate::smallfile::read(f, room, MAX_RECORD_BYTES) {
            Ok(text) if text.is_empty() => return (Record::default(), Found::New),
            Ok(text) => parse(&text, key).map(|r| (r, text.ends_with('\n'))),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok((r, whole)) if !locked || whole => (r, Found::Valid),
            Ok((r, _)) => {
                self.warn(format!(
                    "lockout record {} had an unfinished last line: rewritten",
                    path.display()
                ));
                (r, Found::Damaged)
            }
            Err(why) => {
                self.warn(format!(
                    "damaged lockout record {} replaced: {why}",
                    path.display()
                ));
                (Record::default(), Found::Damaged)
            }
        }
    }

    /// Runs `change` on the key's record under its lock and stores the result.
    ///
    /// The common case, one more failure, is one `O_APPEND`-style write of one line at the end
    /// of the record (a single small `write` is never torn by a killed process); a record just
    /// created gets its whole text in one write. Anything else (a lock starting, failures
    /// leaving the window, a damaged record) replaces the record atomically.
    fn update<T>(
        &self,
        key: &Key,
        now: u64,
        change: impl FnOnce(&mut Record) -> T,
    ) -> Result<T, StoreError> {
        let path = self.path(key);
        let io =
            |what: &str, e: std::io::Error| StoreError(format!("{what} {}: {e}", path.display()));
        for _ in 0..100 {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| io("cannot open", e))?;
            f.lock().map_err(|e| io("cannot lock", e))?;
            // Still the file the path names? A concurrent update may have replaced or removed it.
            let held = f.metadata().map_err(|e| io("cannot stat", e))?;
            match fs::symlink_metadata(&path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {}
                _ => continue,
            }
            // The size just read from the held file, and a byte more: one read(2) takes it.
            let room = usize::try_from(held.len()).map_or(4096, |n| n.saturating_add(1));
            let (old, found) = self.load(&mut f, key, &path, room, true);
            let mut record = old.clone();
            let out = change(&mut record);
            if record.is_stale(now, self.longest_window) {
                fs::remove_file(&path).map_err(|e| io("cannot remove", e))?;
            } else if found == Found::New {
                // The file is empty and ours: the whole record in one write.
                append_or_restore(&mut f, 0, serialize(&record, key).as_bytes())
                    .map_err(|e| io("cannot write", e))?;
            } else if let (Found::Valid, Some(t)) = (found, one_more_failure(&old, &record)) {
                // The read left the offset at the end of the record.
                append_or_restore(&mut f, held.len(), format!("f {t}\n").as_bytes())
                    .map_err(|e| io("cannot write", e))?;
            } else {
                self.replace(&path, &serialize(&record, key))?;
            }
            drop(f);
            return Ok(out);
        }
        Err(StoreError(format!(
            "could not lock {} (replaced too often)",
            path.display()
        )))
    }

    fn replace(&self, path: &Path, text: &str) -> Result<(), StoreError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record");
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut t = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            t.write_all(text.as_bytes())?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError(format!("cannot write {}: {e}", path.display()))
        })
    }

    /// Deletes stale records and leftover temporary files, at most once per `PRUNE_EVERY`.
    fn maybe_prune(&self, now: u64) {
        if self.prune_checked.replace(true) {
            return;
        }
        let stamp = self.dir.join(".pruned");
        let due = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= PRUNE_EVERY)
            .unwrap_or(true);
        if !due || File::create(&stamp).is_err() {
            return;
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                    SystemTime::now().duration_since(t).unwrap_or_default()
                        > Duration::from_secs(60)
                });
                if old {
                    let _ = fs::remove_file(e.path());
                }
            } else if let Some(key) = key_of_file_name(&name) {
                // update() deletes the record if it is stale, under its lock.
                let _ = self.update(&key, now, |_| ());
            }
        }
    }
}

impl Store for FileStore {
    fn tally(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError> {
        Ok(self.read(key)?.tally(now, policy))
    }

    fn record_failure(&self, key: &Key, now: u64, policy: &Policy) -> Result<Tally, StoreError> {
        let t = self.update(key, now, |r| r.add_failure(now, policy))?;
        self.maybe_prune(now);
        Ok(t)
    }

    fn clear(&self, key: &Key) -> Result<(), StoreError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError(format!(
                "cannot remove {}: {e}",
                self.path(key).display()
            ))),
        }
    }

    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| StoreError(format!("{}: {e}", self.dir.display())))?;
        let mut keys: Vec<Key> = entries
            .flatten()
            .filter_map(|e| key_of_file_name(&e.file_name().to_string_lossy()))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.warnings.borrow_mut())
    }

    /// Writes one byte to a new file in the directory (so it needs a new block), then removes
    /// it: fails on a full disk or a read-only directory.
    fn check_writable(&self) -> Result<(), StoreError> {
        let probe = self
            .dir
            .join(format!(".writable.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&probe);
        let res = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&probe)
            .and_then(|mut f| f.write_all(b"\n"));
        let _ = fs::remove_file(&probe);
        res.map_err(|e| {
            StoreError(format!(
                "cannot write to the lockout directory {}: {e}",
                self.dir.display()
            ))
        })
    }
}

/// Writes at the end of a record held under its lock; if the write fails part-way (a full
/// disk), cuts the record back to `len` so no torn line is left behind.
fn append_or_restore(f: &mut File, len: u64, bytes: &[u8]) -> std::io::Result<()> {
    f.write_all(bytes).inspect_err(|_| {
        let _ = f.set_len(len);
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    New,
    Valid,
    Damaged,
}

/// The one failure time `new` has beyond `old`, if that is the whole difference.
fn one_more_failure(old: &Record, new: &Record) -> Option<u64> {
    if new.locked_until != old.locked_until || new.failures.len() != old.failures.len() + 1 {
        return None;
    }
    let mut extra = None;
    let (mut i, mut j) = (0, 0);
    while j < new.failures.len() {
        if i < old.failures.len() && old.failures[i] == new.failures[j] {
            i += 1;
        } else if extra.is_none() {
            extra = Some(new.failures[j]);
        } else {
            return None;
        }
        j += 1;
    }
    extra.filter(|_| i == old.failures.len())
}

/// `u_<hex>`, `i_<hex>`, `p_<hex>`: any username is a safe file name. Names too long for one
/// are cut and suffixed with a hash of the whole (FNV-1a 64; only such long names can collide).
pub fn file_name(key: &Key) -> String {
    let prefix = key.letter();
    let bytes = key.value_bytes();
    if bytes.len() <= 100 {
        format!("{prefix}_{}", hex(bytes))
    } else {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{prefix}_{}~{h:016x}", hex(&bytes[..100]))
    }
}

pub fn key_of_file_name(name: &str) -> Option<Key> {
    let (prefix, rest) = name.split_once('_')?;
    if rest.contains('~') {
        return None; // long names cannot be turned back into keys; status shows them by user
    }
    Key::from_letter(prefix, unhex(rest)?)
}

/// The record's second line, naming its key.
fn key_line(key: &Key) -> String {
    format!("key {} {}", key.kind(), hex(key.value_bytes()))
}

pub fn serialize(r: &Record, key: &Key) -> String {
    let mut s = format!("{MAGIC}\n{}\nuntil {}\n", key_line(key), r.locked_until);
    for t in &r.failures {
        let _ = writeln!(s, "f {t}");
    }
    s
}

pub fn parse(text: &str, key: &Key) -> Result<Record, String> {
    // Readers take no lock, so they may see an append or a new record half-written: an
    // unfinished last line is not there yet, and a header still being written is a new record.
    let cut = text.rfind('\n').map_or(0, |i| i + 1);
    let done = &text[..cut];
    let expected_key = key_line(key);
    if !done.contains("\nuntil ") {
        let header = format!("{MAGIC}\n{expected_key}\nuntil ");
        if header.starts_with(text) || text.starts_with(&header) {
            return Ok(Record::default());
        }
    }
    let mut rest = done;
    let mut line = || -> Option<&str> {
        let (l, r) = rest.split_once('\n')?;
        rest = r;
        Some(l)
    };
    if line() != Some(MAGIC) {
        return Err("bad header".into());
    }
    if line() != Some(expected_key.as_str()) {
        return Err("wrong or missing key line".into());
    }
    let until = line()
        .and_then(|l| l.strip_prefix("until "))
        .and_then(|v| digits(v.as_bytes()))
        .ok_or("bad until line")?;
    let failures = failure_lines(rest.as_bytes()).ok_or("bad failure line")?;
    if failures.len() > MAX_FAILURES_KEPT {
        return Err("too many failure lines".into());
    }
    Ok(Record {
        failures,
        locked_until: until,
    })
}

/// The times of `f <decimal>\n` lines, every byte accounted for, in time order: `None` for
/// anything else. A record holds up to thousands of these and is parsed by every login (and
/// again under the lock), so this is a byte loop rather than `lines()` and `parse()`.
fn failure_lines(body: &[u8]) -> Option<Vec<u64>> {
    let mut failures = Vec::with_capacity(body.len() / "f 1700000000\n".len() + 1);
    let mut in_order = true;
    let mut i = 0;
    while i < body.len() {
        if body.get(i..i + 2) != Some(b"f ") {
            return None;
        }
        let start = i + 2;
        // Ten digits (every time from 2001 to 2286) and the newline after them, without a
        // byte-by-byte search for the end; any other line is searched.
        let ten = body
            .get(start..start + 10)
            .filter(|_| body.get(start + 10) == Some(&b'\n'));
        let (t, len) = match ten.and_then(digits) {
            Some(t) => (t, 10),
            None => {
                let len = body.get(start..)?.iter().position(|&b| b == b'\n')?;
                (digits(&body[start..start + len])?, len)
            }
        };
        in_order &= failures.last().is_none_or(|&last| last <= t);
        failures.push(t);
        if failures.len() > MAX_FAILURES_KEPT {
            break; // the caller refuses the record
        }
        i = start + len + 1;
    }
    // Appended lines are in arrival order, not always in time order.
    if !in_order {
        failures.sort_unstable();
    }
    Some(failures)
}

/// A decimal number of one or more ASCII digits that fits in a u64.
///
/// A failure line's time is ten digits, and a digit at a time is a chain of ten dependent
/// multiplications: the last eight digits are taken in one u64 instead (SWAR: validated as
/// eight ASCII digits at once, then combined pairwise in three multiplications).
fn digits(s: &[u8]) -> Option<u64> {
    let one_by_one = |s: &[u8]| {
        s.iter().try_fold(0u64, |n, &b| {
            let d = b.wrapping_sub(b'0');
            (d <= 9).then_some(())?;
            n.checked_mul(10)?.checked_add(u64::from(d))
        })
    };
    if s.is_empty() {
        return None;
    }
    if !(8..=19).contains(&s.len()) {
        return one_by_one(s); // checked: twenty digits may overflow
    }
    let (head, tail) = s.split_at(s.len() - 8);
    // At most eleven digits: below 10^11, so head * 10^8 + tail fits in a u64.
    let head = one_by_one(head)?;
    let chunk = u64::from_le_bytes(tail.try_into().ok()?);
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    // Every byte 0x30..=0x39: high nibble 3, and low nibble + 6 carries into no high nibble.
    if chunk & HIGH != ZEROS || ((chunk & !HIGH) + SIXES) & HIGH != 0 {
        return None;
    }
    let d = chunk - ZEROS; // eight digit values, the first in the lowest byte
    let pairs = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(1 + (100 << 16)) >> 16) & 0x0000_FFFF_0000_FFFF;
    let eight = quads.wrapping_mul(1 + (10_000 << 32)) >> 32;
    Some(head * 100_000_000 + eight)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        max_failures: 3,
        window_s: 100,
        lock_s: 50,
    };

    fn store() -> (tempdir::Dir, FileStore) {
        let d = tempdir::Dir::new();
        let s = FileStore::open(&d.0.join("lock"), 3600).unwrap();
        (d, s)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "pam_portal-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn counts_locks_and_clears() {
        let (_d, s) = store();
        let k = Key::User(b"alice".to_vec());
        assert_eq!(s.record_failure(&k, 1000, &P).unwrap().failures, 1);
        assert_eq!(s.record_failure(&k, 1001, &P).unwrap().failures, 2);
        assert!(s.record_failure(&k, 1002, &P).unwrap().triggered);
        assert_eq!(s.tally(&k, 1010, &P).unwrap().locked_for, Some(42));
        assert_eq!(s.keys().unwrap(), vec![k.clone()]);
        s.clear(&k).unwrap();
        assert_eq!(s.tally(&k, 1010, &P).unwrap(), Tally::default());
    }

    #[test]
    fn hostile_names_stay_inside_the_directory() {
        let (d, s) = store();
        for name in [
            &b"../../etc/passwd"[..],
            b"/",
            b"a\nb",
            b"%n%s",
            &[0xff, 0xfe][..],
            &[b'x'; 5000][..],
        ] {
            let k = Key::User(name.to_vec());
            s.record_failure(&k, 1000, &P).unwrap();
            assert_eq!(s.tally(&k, 1000, &P).unwrap().failures, 1);
        }
        let names: Vec<String> = fs::read_dir(d.0.join("lock"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains('/') && n.len() < 255),
            "{names:?}"
        );
        assert!(!d.0.join("etc").exists());
    }

    #[test]
    fn damaged_record_is_replaced_and_reported() {
        let (d, s) = store();
        let k = Key::Ip("203.0.113.9".into());
        s.record_failure(&k, 1000, &P).unwrap();
        let path = d.0.join("lock").join(file_name(&k));
        fs::write(&path, "garbage\x00\x01").unwrap();
        assert_eq!(s.tally(&k, 1000, &P).unwrap().failures, 0);
        assert_eq!(s.take_warnings().len(), 1);
        assert_eq!(s.record_failure(&k, 1001, &P).unwrap().failures, 1);
        assert!(fs::read_to_string(&path).unwrap().starts_with(MAGIC));
    }

    #[test]
    fn failures_are_appended_and_a_lock_rewrites() {
        let (d, s) = store();
        let k = Key::User(b"app".to_vec());
        let path = d.0.join("lock").join(file_name(&k));
        s.record_failure(&k, 1000, &P).unwrap();
        let ino = fs::metadata(&path).unwrap().ino();
        s.record_failure(&k, 999, &P).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino, "appended in place");
        assert!(fs::read_to_string(&path)
            .unwrap()
            .ends_with("f 1000\nf 999\n"));
        assert_eq!(s.tally(&k, 1001, &P).unwrap().failures, 2);
        assert!(s.record_failure(&k, 1002, &P).unwrap().triggered);
        assert_ne!(
            fs::metadata(&path).unwrap().ino(),
            ino,
            "a lock replaces the record"
        );
        assert!(s.take_warnings().is_empty());
    }

    #[test]
    fn one_more_failure_only_for_a_plain_append() {
        let r = |f: &[u64], u| Record {
            failures: f.to_vec(),
            locked_until: u,
        };
        assert_eq!(one_more_failure(&r(&[1, 3], 0), &r(&[1, 2, 3], 0)), Some(2));
        assert_eq!(one_more_failure(&r(&[], 0), &r(&[5], 0)), Some(5));
        assert_eq!(
            one_more_failure(&r(&[1, 3], 0), &r(&[3, 4], 0)),
            None,
            "pruned"
        );
        assert_eq!(
            one_more_failure(&r(&[1], 0), &r(&[1, 2], 9)),
            None,
            "locked"
        );
        assert_eq!(one_more_failure(&r(&[1, 2], 0), &r(&[1, 2], 0)), None);
    }

    #[test]
    fn round_trip_and_truncation_detected() {
        let k = Key::Phone(b"bob".to_vec());
        let r = Record {
            failures: vec![5, 6],
            locked_until: 9,
        };
        let text = serialize(&r, &k);
        assert_eq!(parse(&text, &k).unwrap(), r);
        // An unfinished last line (an append in progress, seen by a reader) is not there yet.
        assert_eq!(
            parse(&text[..text.len() - 1], &k).unwrap().failures,
            vec![5]
        );
        // A header being written is a record being created.
        assert_eq!(parse(&text[..30], &k).unwrap(), Record::default());
        assert!(parse("garbage", &k).is_err());
        assert!(parse(&text, &Key::Phone(b"eve".to_vec())).is_err());
        assert_eq!(key_of_file_name(&file_name(&k)), Some(k));
    }

    #[test]
    fn failure_lines_accept_only_whole_decimal_lines() {
        assert_eq!(failure_lines(b""), Some(vec![]));
        assert_eq!(
            failure_lines(b"f 7\nf 3\nf 5\n"),
            Some(vec![3, 5, 7]),
            "sorted"
        );
        assert_eq!(failure_lines(b"f 007\n"), Some(vec![7]));
        // A short line whose eleventh byte on is the next line's newline.
        assert_eq!(failure_lines(b"f 1000\nf 999\n"), Some(vec![999, 1000]));
        assert_eq!(
            failure_lines(b"f 1796634803\nf 17966348030\nf 1\n"),
            Some(vec![1, 1_796_634_803, 17_966_348_030])
        );
        let max = format!("f {}\n", u64::MAX);
        assert_eq!(failure_lines(max.as_bytes()), Some(vec![u64::MAX]));
        for bad in [
            &b"f \n"[..],
            b"f 12x\n",
            b"f -1\n",
            b"f +1\n",
            b"g 1\n",
            b"f 1\r\n",
            b"f 18446744073709551616\n",
            b"f 1\n\n",
            b"f 1\nf 2",
            b"f 1 2\n",
        ] {
            assert_eq!(
                failure_lines(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The whole record: too many lines are refused, not cut.
        let k = Key::User(b"zed".to_vec());
        let mut text = serialize(&Record::default(), &k);
        for t in 0..=MAX_FAILURES_KEPT {
            text.push_str(&format!("f {t}\n"));
        }
        assert_eq!(parse(&text, &k), Err("too many failure lines".into()));
    }

    #[test]
    fn digits_agree_with_the_standard_parser() {
        // Every length from 1 to 21, every digit in every place, and bytes next to the digits.
        let mut n: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 1..=21usize {
            for round in 0..400 {
                n ^= n << 13;
                n ^= n >> 7;
                n ^= n << 17;
                let mut s: Vec<u8> = (0..len)
                    .map(|i| b'0' + ((n >> (i % 60)) % 10) as u8)
                    .collect();
                if round % 4 == 0 {
                    let at = (n as usize) % len;
                    s[at] = [b'/', b':', b' ', b'a', 0xb0, 0x39 + 0x40][(n >> 40) as usize % 6];
                }
                let want = std::str::from_utf8(&s)
                    .ok()
                    .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u64>().ok());
                assert_eq!(digits(&s), want, "{:?}", String::from_utf8_lossy(&s));
            }
        }
        assert_eq!(digits(b"99999999"), Some(99_999_999));
        assert_eq!(digits(b"1796634803"), Some(1_796_634_803));
        assert_eq!(
            digits(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits(b""), None);
    }

    #[test]
    fn concurrent_threads_lose_nothing() {
        let (_d, s) = store();
        let dir = s.dir.clone();
        let big = Policy {
            max_failures: 10_000,
            window_s: 3600,
            lock_s: 1,
        };
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let s = FileStore::open(&dir, 3600).unwrap();
                    for _ in 0..25 {
                        s.record_failure(&Key::Ip("10.0.0.1".into()), 1000, &big)
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            s.tally(&Key::Ip("10.0.0.1".into()), 1000, &big)
                .unwrap()
                .failures,
            200
        );
    }

    #[test]
    fn refuses_world_writable_directory() {
        let d = tempdir::Dir::new();
        let dir = d.0.join("open");
        fs::create_dir(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(FileStore::open(&dir, 10).is_err());
    }
}
