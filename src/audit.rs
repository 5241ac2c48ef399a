//! Log lines (SPEC §8): one `key=value` line per decision. Values from users or the portal are
//! escaped so that a line can be neither split nor forged; secrets are never passed here.

use std::fmt::Write;

/// Escapes bytes for a log value: printable ASCII other than space, `"`, `\`, `=` and `%` pass;
/// anything else becomes `\xHH`. Long values are cut (with `...`).
pub fn escape_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 128;
    let mut out = String::new();
    for &b in bytes.iter().take(MAX) {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'=' | b'%') {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if bytes.len() > MAX {
        out.push_str("...");
    }
    if out.is_empty() {
        out.push_str("\"\"");
    }
    out
}

pub fn escape(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

/// A decision line under construction.
#[derive(Default)]
pub struct Line(String);

impl Line {
    pub fn new() -> Self {
        Line(String::new())
    }
    /// A field whose value is this module's own vocabulary (not escaped).
    pub fn word(mut self, key: &str, value: &str) -> Self {
        self.sep();
        let _ = write!(self.0, "{key}={value}");
        self
    }
    /// A field whose value comes from outside (escaped).
    pub fn text(mut self, key: &str, value: &[u8]) -> Self {
        self.sep();
        let _ = write!(self.0, "{key}={}", escape_bytes(value));
        self
    }
    pub fn num(self, key: &str, value: u64) -> Self {
        let v = value.to_string();
        self.word(key, &v)
    }
    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
    }
    pub fn finish(self) -> String {
        self.0
    }
}

/// Who a decision is about, for its log line.
pub struct Who<'a> {
    pub hook: &'a str,
    pub user: Option<&'a [u8]>,
    pub rhost: Option<&'a str>,
    pub service: &'a str,
}

/// The decision's log line (SPEC §8).
pub fn decision_line(d: &crate::decision::Decision, who: &Who<'_>) -> String {
    let mut l = Line::new()
        .word("result", d.result())
        .word("reason", d.reason.as_str())
        .text("user", who.user.unwrap_or(b""))
        .text("rhost", who.rhost.unwrap_or("").as_bytes())
        .text("service", who.service.as_bytes())
        .word("factor", d.factor.as_str());
    if who.hook != "auth" {
        l = l.word("hook", who.hook);
    }
    if d.counted {
        l = l.word("counted", "yes");
    }
    if let Some(which) = d.locked {
        l = l.word("locked", which);
    }
    if let Some(left) = d.lock_left {
        l = l.num("lock_left_s", left);
    }
    if let Some(detail) = &d.detail {
        l = l.word("detail", &format!("\"{}\"", escape_detail(detail)));
    }
    l.finish()
}

/// Details are this module's own sentences with outside values inside: keep spaces readable,
/// escape everything that could end the quoted value or the line.
fn escape_detail(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(300) {
        match c {
            ' ' => out.push(' '),
            c if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%') => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
    out
}

/// Sends the client message (if any) and writes the log line.
pub fn report<P: crate::pam::Pam>(pam: &mut P, d: &crate::decision::Decision, who: &Who<'_>) {
    use crate::pam::Priority;
    if let Some(m) = &d.message {
        pam.error(m);
    }
    let priority = match d.result() {
        "success" => Priority::Info,
        "fail" => Priority::Notice,
        _ => Priority::Err,
    };
    pam.log(priority, &decision_line(d, who));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_cannot_split_or_forge() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("a b"), "a\\x20b");
        assert_eq!(escape("x\nresult=success"), "x\\x0aresult\\x3dsuccess");
        assert_eq!(escape("%n%s"), "\\x25n\\x25s");
        assert_eq!(escape(""), "\"\"");
        assert_eq!(escape_bytes(&[0xff, b'a']), "\\xffa");
        assert!(escape(&"x".repeat(1000)).len() < 140);
        let l = Line::new()
            .word("result", "fail")
            .text("user", b"a b")
            .finish();
        assert_eq!(l, "result=fail user=a\\x20b");
    }
}
