//! The module's `pam_syslog` lines as pam_wrapper prints them on stderr.
//!
//! With `PAM_WRAPPER_DEBUGLEVEL=2`, pam_wrapper replaces `pam_syslog`/`pam_vsyslog` and prints
//! each call as one stderr line (found by experiment with pam_unix.so and pam_faillock.so):
//!
//! ```text
//! PWRAP_DEBUG[<unknown> (2920)] - SYSLOG(5): authentication failure; logname= uid=0 ...
//! ```
//!
//! The message is printed verbatim (no `pam_unix(svc:auth): ` prefix). A raw newline inside a
//! message shows up as extra stderr lines without the `PWRAP_` prefix: they are kept in
//! [`LogLine::continuation`], so a test can assert there are none.

use std::collections::BTreeMap;

/// One `pam_syslog` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The syslog priority pam_wrapper printed (`SYSLOG(N)`), e.g. 5 = LOG_NOTICE.
    pub priority: Option<u32>,
    /// The message text (the first physical line of it).
    pub text: String,
    /// Stderr lines that followed without a `PWRAP_` prefix (a raw newline in the message).
    pub continuation: Vec<String>,
}

impl LogLine {
    /// The message's `key=value` fields (see [`parse_kv`]).
    pub fn fields(&self) -> BTreeMap<String, String> {
        parse_kv(&self.text)
    }

    /// Every `key=value` pair in order, repeats included.
    pub fn pairs(&self) -> Vec<(String, String)> {
        kv_pairs(&self.text)
    }

    /// The value of one field.
    pub fn field(&self, key: &str) -> Option<String> {
        self.fields().remove(key)
    }

    /// True for a decision line (`result=... reason=...`).
    pub fn is_decision(&self) -> bool {
        let f = self.fields();
        f.contains_key("result") && f.contains_key("reason")
    }

    /// The whole message including any continuation lines, joined by `\n`.
    pub fn full_text(&self) -> String {
        let mut s = self.text.clone();
        for c in &self.continuation {
            s.push('\n');
            s.push_str(c);
        }
        s
    }
}

/// Extracts the `pam_syslog` lines from pam_wrapper's stderr.
pub fn parse_wrapper_stderr(stderr: &str) -> Vec<LogLine> {
    let mut out: Vec<LogLine> = Vec::new();
    let mut in_syslog = false;
    for line in stderr.lines() {
        if line.starts_with("PWRAP_") {
            in_syslog = false;
            if let Some(i) = line.find("SYSLOG(") {
                let rest = &line[i + "SYSLOG(".len()..];
                let (prio, msg) = match rest.find("): ") {
                    Some(j) => (rest[..j].parse::<u32>().ok(), &rest[j + 3..]),
                    None => (None, rest.trim_start_matches(|c: char| c != ':')),
                };
                out.push(LogLine {
                    priority: prio,
                    text: msg.to_string(),
                    continuation: Vec::new(),
                });
                in_syslog = true;
            }
        } else if in_syslog && !line.is_empty() {
            if let Some(last) = out.last_mut() {
                last.continuation.push(line.to_string());
            }
        }
    }
    out
}

/// Parses `key=value` fields separated by spaces. A value may be double-quoted (`user="a b"`,
/// with `\"` and `\\` escapes inside the quotes); the quotes are kept off the value. Words
/// without `=` are skipped. When a key repeats, the first occurrence wins (see [`kv_pairs`]).
pub fn parse_kv(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in kv_pairs(text) {
        out.entry(k).or_insert(v);
    }
    out
}

/// Every `key=value` pair in order, repeats included (quote-aware, as [`parse_kv`]).
pub fn kv_pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let mut key = String::new();
        let mut value = String::new();
        let mut seen_eq = false;
        while i < chars.len() && chars[i] != ' ' {
            let c = chars[i];
            if !seen_eq {
                if c == '=' {
                    seen_eq = true;
                } else {
                    key.push(c);
                }
                i += 1;
            } else if c == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                value.push(c);
                i += 1;
            }
        }
        if seen_eq && !key.is_empty() {
            out.push((key, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrapper_lines() {
        let err = "PWRAP_DEBUG[<unknown> (1)] - pwrap_init: Initialize pam_wrapper\n\
                   PWRAP_DEBUG[<unknown> (1)] - SYSLOG(5): result=fail reason=bad_password user=alice\n\
                   PWRAP_DEBUG[<unknown> (1)] - SYSLOG(3): first\nsecond half\n";
        let l = parse_wrapper_stderr(err);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].priority, Some(5));
        assert_eq!(l[0].field("reason").as_deref(), Some("bad_password"));
        assert!(l[0].is_decision());
        assert_eq!(l[1].continuation, vec!["second half".to_string()]);
    }

    #[test]
    fn kv_quotes() {
        let f = parse_kv(r#"result=fail user="a b\"c" rhost=1.2.3.4 noise"#);
        assert_eq!(f["user"], "a b\"c");
        assert_eq!(f["rhost"], "1.2.3.4");
        assert_eq!(f.len(), 3);
        let all = kv_pairs("result=fail user=x result=success");
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], ("result".to_string(), "success".to_string()));
    }
}
