//! Test kit for `pam_portal`.
//!
//! * [`Sim`]: a `portal-sim` child process (HTTPS by default) with its control interface.
//! * [`Env`]: a per-test directory with a module configuration, a PAM stack directory
//!   (`pam_start_confdir`) and a lockout directory.
//! * [`Env::login`]: a [`LoginBuilder`] that runs one PAM transaction through the real libpam in a
//!   fresh `pam-drive` process and returns an [`Outcome`] (codes, conversation, timing, and under
//!   pam_wrapper the module's `pam_syslog` lines).
//!
//! Nothing here builds anything: run `cargo build --workspace` before `cargo test --workspace`.

pub mod codes;
pub use toml;
mod env;
pub mod fixtures;
pub mod http;
mod logs;
mod paths;
mod proc;
mod sim;
pub mod transcript;

pub use env::{Env, Exhausted, LoginBuilder, Msg, Outcome, RunningLogin, Style};
pub use logs::{kv_pairs, parse_kv, LogLine};
pub use paths::{
    admin_path, bin_dir, drive_path, hazard_path, module_path, pam_wrapper_lib, sim_path,
    system_module, target_dir, workspace_root,
};
pub use proc::{run_with_input, run_with_timeout, Finished};
pub use sim::{call_method_is, call_username, closed_port_url, Sim};

/// A portal-sim on [`fixtures::standard`] and an [`Env`] for it with `extra_toml` merged over
/// the base configuration.
pub fn standard(extra_toml: &str) -> (Sim, Env) {
    let sim = Sim::start(&fixtures::standard());
    let env = Env::new(&sim, extra_toml);
    (sim, env)
}

/// Decodes a hex string (`"616c"` → `b"al"`); whitespace is ignored. `None` if malformed.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Encodes bytes as lower-case hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
pub fn merge_toml(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_toml(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Parses TOML text into a table, panicking with the text on a syntax error (test input only).
pub fn parse_toml(text: &str) -> toml::Table {
    match text.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => panic!("test TOML does not parse: {e}\n---\n{text}\n---"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_decode("00ff41"), Some(vec![0, 255, 0x41]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_encode(b"a\n"), "610a");
    }

    #[test]
    fn merge_is_deep() {
        let mut base = parse_toml("[portal]\nurl = \"a\"\nx = 1\n[auth]\nfail_delay_ms = 0\n");
        merge_toml(
            &mut base,
            parse_toml("[portal]\nurl = \"b\"\n[lockout]\nuser = { max_failures = 3 }\n"),
        );
        assert_eq!(base["portal"]["url"].as_str(), Some("b"));
        assert_eq!(base["portal"]["x"].as_integer(), Some(1));
        assert_eq!(base["auth"]["fail_delay_ms"].as_integer(), Some(0));
        assert_eq!(
            base["lockout"]["user"]["max_failures"].as_integer(),
            Some(3)
        );
    }
}
