//! Reading the small files of a login (the configuration, the API key, lockout records) in as
//! few system calls as they allow: every login process reads them afresh.

use std::fs::File;
use std::io::{self, Read};

/// The text of `f`, read into room for `expected` bytes: one read(2) for a file that fits,
/// since a read that returns less than it was offered has met the end of a regular file (the
/// second read that would only confirm it is left out). A longer file is sized with one
/// fstat(2) and its rest taken by one more read (then read on to its end if it grew meanwhile),
/// but no further than `max` bytes. Invalid UTF-8 is an `InvalidData` error.
pub fn read(f: &mut File, expected: usize, max: u64) -> io::Result<String> {
    let mut buf = Vec::new();
    let room = expected.max(1);
    if read_more(f, &mut buf, room)? == room {
        let left = max.saturating_sub(buf.len() as u64);
        let rest = f.metadata()?.len().saturating_sub(buf.len() as u64);
        let want = rest.saturating_add(1).min(left);
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        if read_more(f, &mut buf, want)? == want {
            let left = max.saturating_sub(buf.len() as u64);
            f.take(left).read_to_end(&mut buf)?;
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One read(2) of up to `n` bytes onto the end of `buf`: how many it gave.
fn read_more(f: &mut File, buf: &mut Vec<u8>, n: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start.saturating_add(n), 0);
    let got = loop {
        match f.read(&mut buf[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
            Ok(got) => break got,
        }
    };
    buf.truncate(start + got);
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An open file holding `bytes` (its name is removed at once).
    fn file_with(bytes: &[u8]) -> File {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("pam_portal-smallfile-{}-{n}", std::process::id()));
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        let f = File::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }

    #[test]
    fn reads_files_shorter_longer_and_equal_to_the_room() {
        for len in [0usize, 1, 99, 100, 101, 199, 200, 201, 5000] {
            let text: String = "abcdefghij".chars().cycle().take(len).collect();
            let got = read(&mut file_with(text.as_bytes()), 100, u64::MAX).unwrap();
            assert_eq!(got, text, "length {len}");
        }
    }

    #[test]
    fn reads_on_past_what_fstat_said() {
        // A pipe's fstat size is 0, as a file's would be stale if it grew after the stat: the
        // read that fills what fstat promised is followed by reads to the end.
        let (r, mut w) = std::io::pipe().unwrap();
        let text = "0123456789".repeat(30);
        w.write_all(text.as_bytes()).unwrap();
        drop(w);
        let mut f = File::from(std::os::fd::OwnedFd::from(r));
        assert_eq!(read(&mut f, 100, u64::MAX).unwrap(), text);
        // A room of exactly the file's size takes the fstat path too.
        let got = read(&mut file_with(text.as_bytes()), 300, u64::MAX).unwrap();
        assert_eq!(got, text);
    }

    #[test]
    fn stops_at_max_and_refuses_invalid_utf8() {
        let text = "x".repeat(300);
        assert_eq!(
            read(&mut file_with(text.as_bytes()), 100, 200)
                .unwrap()
                .len(),
            200
        );
        let err = read(&mut file_with(b"ok\xff"), 100, 200).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
