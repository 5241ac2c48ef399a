//! Small helpers: percent-decoding, query strings, Base64 (for HTTP Basic), random hex.

/// Percent-decode `s`. With `plus_space`, `+` stands for a blank (query strings, as the PHP
/// server behind the real API reads them). Invalid escapes are kept as they are.
pub fn pct_decode(s: &str, plus_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decode a query string into (name, value) pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k, true), pct_decode(v, true)),
            None => (pct_decode(p, true), String::new()),
        })
        .collect()
}

pub fn query_get<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Standard Base64 decoding (padding optional, blanks rejected).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes as lower-case hex (ring's system RNG).
pub fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    if ring::rand::SystemRandom::new().fill(&mut buf).is_err() {
        // Not a secret in an emulator; fall back to the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8);
        }
    }
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct() {
        assert_eq!(pct_decode("a%20b+c", true), "a b c");
        assert_eq!(pct_decode("a%20b+c", false), "a b+c");
        assert_eq!(pct_decode("%7B%22x%22%7d", false), "{\"x\"}");
        assert_eq!(pct_decode("100%", false), "100%");
        assert_eq!(pct_decode("%zz%4", false), "%zz%4");
        assert_eq!(pct_decode("%41", false), "A");
    }

    #[test]
    fn query() {
        let q = parse_query("objectFilter=%7B%7D&objectMask=mask%5Bid%5D&x&a=b%2Bc");
        assert_eq!(query_get(&q, "objectFilter"), Some("{}"));
        assert_eq!(query_get(&q, "objectMask"), Some("mask[id]"));
        assert_eq!(query_get(&q, "x"), Some(""));
        assert_eq!(query_get(&q, "a"), Some("b+c"));
        assert_eq!(query_get(&q, "nope"), None);
    }

    #[test]
    fn b64() {
        assert_eq!(
            base64_decode("U0wxMDAwMDE6MDEyMw==").unwrap(),
            b"SL100001:0123"
        );
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a b").is_none());
        assert!(base64_decode("Y").is_none());
    }

    #[test]
    fn rnd() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
    }
}
