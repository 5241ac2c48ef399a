//! Reading the small files of a login (the configuration, the API key, lockout records) in as
//! few system calls as they allow: every login process reads them afresh.

use std::fs::File;
use std::io::{self, Read};

/// The text of `f`, read into room for `expected` bytes: one read(2) for a file that fits,
/// since a read that returns less than it was offered has met the end of a regular file (the
/// second read that would only confirm it is left out). A longer file is read to its end, but
/// no further than `max` bytes. Invalid UTF-8 is an `InvalidData` error.
pub fn read(f: &mut File, expected: usize, max: u64) -> io::Result<String> {
    let room = expected.max(1);
    let mut buf = vec![0u8; room];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    buf.truncate(n);
    if n == room {
        let left = max.saturating_sub(n as u64);
        f.take(left).read_to_end(&mut buf)?;
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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
        for len in [0usize, 1, 99, 100, 101, 5000] {
            let text: String = "abcdefghij".chars().cycle().take(len).collect();
            let got = read(&mut file_with(text.as_bytes()), 100, u64::MAX).unwrap();
            assert_eq!(got, text, "length {len}");
        }
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
