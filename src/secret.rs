//! Secrets (passwords, answers, codes, API keys): no `Debug`/`Display` that shows them, wiped on
//! drop.

use std::fmt;

/// Overwrites a buffer in a way the optimiser keeps.
pub fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY-free volatile write through a valid &mut u8.
        unsafe_free_volatile_zero(b);
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

#[inline(never)]
fn unsafe_free_volatile_zero(b: &mut u8) {
    *std::hint::black_box(b) = 0;
}

/// A secret string. Its bytes are wiped when it is dropped; it prints as `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The secret's text, for the one place that must send it (the portal call).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut v = std::mem::take(&mut self.0).into_bytes();
        wipe(&mut v);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn wipe_zeroes() {
        let mut v = b"abc".to_vec();
        wipe(&mut v);
        assert_eq!(v, vec![0, 0, 0]);
    }
}
