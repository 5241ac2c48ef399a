//! `ipAddressRestriction`: a comma-separated list of IPv4/IPv6 addresses and CIDR subnets.
//! An empty list means no restriction.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRule {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parse one entry: `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or `v6/n`.
pub fn parse_rule(s: &str) -> Result<IpRule, String> {
    let s = s.trim();
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
    let addr = normalize(addr);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{s:?}: bad prefix length")),
        },
    };
    Ok(IpRule { addr, prefix })
}

/// Parse a whole restriction string. Entries are separated by commas (blanks around them are
/// ignored); empty entries are skipped, so `""` is the empty list.
pub fn parse_list(s: &str) -> Result<Vec<IpRule>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(parse_rule)
        .collect()
}

impl IpRule {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, normalize(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                (u32::from(net) & mask) == (u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

/// True when `ip` may log in under `rules` (an empty list allows everyone).
pub fn allowed(rules: &[IpRule], ip: IpAddr) -> bool {
    rules.is_empty() || rules.iter().any(|r| r.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_means_everyone() {
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list(" , ").unwrap().is_empty());
        assert!(allowed(&[], ip("203.0.113.9")));
    }

    #[test]
    fn v4_addresses_and_cidrs() {
        let r = parse_list("198.51.100.0/24, 10.1.2.3").unwrap();
        assert!(allowed(&r, ip("198.51.100.7")));
        assert!(allowed(&r, ip("198.51.100.255")));
        assert!(!allowed(&r, ip("198.51.101.1")));
        assert!(allowed(&r, ip("10.1.2.3")));
        assert!(!allowed(&r, ip("10.1.2.4")));
        assert!(!allowed(&r, ip("127.0.0.1")));
        // host bits in the network part are masked away
        let r = parse_list("192.168.1.77/16").unwrap();
        assert!(allowed(&r, ip("192.168.200.1")));
        let r = parse_list("0.0.0.0/0").unwrap();
        assert!(allowed(&r, ip("8.8.8.8")));
        assert!(!allowed(&r, ip("::1")));
    }

    #[test]
    fn v6_and_mapped() {
        let r = parse_list("192.168.0.0/16,fe80:021b::0/64").unwrap();
        assert!(allowed(&r, ip("fe80:21b::1234")));
        assert!(!allowed(&r, ip("fe80:21c::1")));
        assert!(allowed(&r, ip("::ffff:192.168.3.4")));
        let r = parse_list("::1").unwrap();
        assert!(allowed(&r, ip("::1")));
        assert!(!allowed(&r, ip("127.0.0.1")));
        let r = parse_list("127.0.0.1").unwrap();
        assert!(allowed(&r, ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_entries() {
        for bad in [
            "1.2.3",
            "1.2.3.4/33",
            "::1/129",
            "foo",
            "1.2.3.4/x",
            "10.0.0.0/8;1.1.1.1",
        ] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }
}
