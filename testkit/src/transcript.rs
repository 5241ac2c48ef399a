//! Login transcripts, for the secret-hygiene test (tests/hygiene.rs).
//!
//! Off unless the environment asks for it, so ordinary test runs behave exactly as before:
//!
//! - [`TRANSCRIPTS_VAR`]`=DIR`: every login run through [`crate::LoginBuilder`] (`run` or
//!   `spawn`/`wait`) leaves one JSON file in DIR with what went in (username, address, service,
//!   every scripted answer, the pre-set `PAM_AUTHTOK`, the API keys of the configuration at that
//!   moment) and what came out (pam-drive's report with the conversation's messages, and its
//!   whole stderr: pam_wrapper's copy of every `pam_syslog` line, and any panic text).
//! - [`WRAP_ALL_VAR`]`=1`: [`crate::LoginBuilder::run`] runs every login under pam_wrapper (as
//!   [`crate::LoginBuilder::under_pam_wrapper`] does), so the module's log lines are in stderr.
//!   Concurrent logins started with `spawn` keep running without it (pam_wrapper's stack copies
//!   can collide between parallel processes), so for them only messages and panics are seen.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::proc::Finished;
use crate::{hex_decode, hex_encode};

/// The directory transcripts are written to (unset: none are written).
pub const TRANSCRIPTS_VAR: &str = "PAM_PORTAL_TEST_TRANSCRIPTS";
/// `1`: `LoginBuilder::run` runs every login under pam_wrapper.
pub const WRAP_ALL_VAR: &str = "PAM_PORTAL_TEST_WRAP_ALL";

/// Whether [`WRAP_ALL_VAR`] asks for pam_wrapper on every `run`.
pub(crate) fn wrap_all() -> bool {
    std::env::var_os(WRAP_ALL_VAR).is_some_and(|v| v == "1")
}

/// A login's inputs, kept until its process has finished.
pub(crate) struct Pending {
    dir: PathBuf,
    inputs: Value,
}

/// The inputs of a login about to start, if transcripts are on (`inputs` is not called
/// otherwise).
pub(crate) fn pending(inputs: impl FnOnce() -> Value) -> Option<Pending> {
    let dir = std::env::var_os(TRANSCRIPTS_VAR).filter(|d| !d.is_empty())?;
    Some(Pending {
        dir: PathBuf::from(dir),
        inputs: inputs(),
    })
}

/// The inline `api_key = "…"` values of a configuration text (any table; also broken files).
pub(crate) fn inline_api_keys(config_text: &str) -> Vec<String> {
    config_text
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("api_key")?.trim_start();
            let rest = rest.strip_prefix('=')?.trim_start();
            let rest = rest.strip_prefix('[').unwrap_or(rest).trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let body = &rest[1..];
            let end = body.find(quote).unwrap_or(body.len());
            Some(body[..end].trim().to_string())
        })
        .filter(|k| !k.is_empty())
        .collect()
}

/// Writes the transcript of a finished login.
pub(crate) fn write(p: Pending, f: &Finished, wrapped: bool) {
    static N: AtomicU64 = AtomicU64::new(0);
    let _ = fs::create_dir_all(&p.dir);
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut t = p.inputs;
    t["test"] = json!(std::thread::current().name().unwrap_or("").to_string());
    t["binary"] = json!(exe);
    t["wrapped"] = json!(wrapped);
    t["status"] = json!(f.status.code());
    t["stdout"] = json!(String::from_utf8_lossy(&f.stdout));
    t["stderr"] = json!(String::from_utf8_lossy(&f.stderr));
    let name = format!(
        "{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let _ = fs::write(p.dir.join(name), t.to_string());
}

/// Encodes the inputs of a login (called by `LoginBuilder`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn inputs(
    service: &str,
    user: Option<&[u8]>,
    rhost: Option<&[u8]>,
    answers: &[Vec<u8>],
    authtok: Option<&[u8]>,
    api_keys: Vec<String>,
    config: &Path,
) -> Value {
    json!({
        "service": service,
        "user_hex": user.map(hex_encode),
        "rhost_hex": rhost.map(hex_encode),
        "answers_hex": answers.iter().map(|a| hex_encode(a)).collect::<Vec<_>>(),
        "authtok_hex": authtok.map(hex_encode),
        "api_keys": api_keys,
        "config": config.to_string_lossy(),
    })
}

/// One login's transcript, as read back.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// The file it was read from.
    pub file: PathBuf,
    /// The test (thread name) and test binary that ran the login.
    pub test: String,
    pub binary: String,
    /// Whether it ran under pam_wrapper (its stderr then holds the module's log lines).
    pub wrapped: bool,
    pub service: String,
    pub user: Option<Vec<u8>>,
    pub rhost: Option<Vec<u8>>,
    /// Every scripted answer, in order (passwords, security answers, codes, usernames asked
    /// for through the conversation, …).
    pub answers: Vec<Vec<u8>>,
    pub authtok: Option<Vec<u8>>,
    /// The API keys in the configuration at the time (key file and inline `api_key`).
    pub api_keys: Vec<String>,
    /// pam-drive's JSON report (with the conversation's messages), if it printed one.
    pub report: Option<Value>,
    pub stdout: String,
    pub stderr: String,
    /// pam-drive's exit status (`None`: killed by a signal).
    pub status: Option<i32>,
}

impl Transcript {
    /// The conversation's messages: `(style, text, answered)`.
    pub fn messages(&self) -> Vec<(String, String, bool)> {
        self.report
            .as_ref()
            .and_then(|r| r.get("messages"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m.get("style")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            m.get("text")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            m.get("answered").and_then(Value::as_bool).unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The answers that went to echo-off prompts (secrets), paired in prompt order; an
    /// echo-on prompt's answer (a username asked for) is not a secret.
    pub fn secret_answers(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut next = self.answers.iter();
        for (style, _, answered) in self.messages() {
            if !(style == "echo_off" || style == "echo_on") || !answered {
                continue;
            }
            match next.next() {
                Some(a) if style == "echo_off" => out.push(a.clone()),
                Some(_) => {}
                None => break,
            }
        }
        // Answers never asked for were never given to the module.
        out
    }
}

fn hex_field(v: &Value, k: &str) -> Option<Vec<u8>> {
    v.get(k).and_then(Value::as_str).and_then(hex_decode)
}

/// Every transcript in `dir` (unreadable files are skipped).
pub fn read_all(dir: &Path) -> Vec<Transcript> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let stdout = s("stdout");
        let report = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        out.push(Transcript {
            file: path.clone(),
            test: s("test"),
            binary: s("binary"),
            wrapped: v.get("wrapped").and_then(Value::as_bool).unwrap_or(false),
            service: s("service"),
            user: hex_field(&v, "user_hex"),
            rhost: hex_field(&v, "rhost_hex"),
            answers: v
                .get("answers_hex")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().and_then(hex_decode))
                        .collect()
                })
                .unwrap_or_default(),
            authtok: hex_field(&v, "authtok_hex"),
            api_keys: v
                .get("api_keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            report,
            stdout,
            stderr: s("stderr"),
            status: v.get("status").and_then(Value::as_i64).map(|c| c as i32),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_keys_are_found_in_broken_files_too() {
        let text =
            "[portal]\napi_key = \"abc\"\napi_kee = \"x\"\n  api_key=['k2']\napi_key = \"open\n";
        assert_eq!(inline_api_keys(text), vec!["abc", "k2", "open"]);
        assert!(inline_api_keys("api_key_file = \"/x\"\n").is_empty());
    }
}
