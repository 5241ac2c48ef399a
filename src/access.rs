//! Client addresses (`PAM_RHOST`), CIDR lists, and the allow/deny decisions (SPEC §4 steps 2, 6).

use crate::config::{AccessSettings, UserAccess};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block. A bare address is a /32 or /128. IPv4-mapped IPv6 blocks are stored as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => {
                let p: u8 = p.parse().map_err(|_| format!("{t:?}: bad prefix length"))?;
                (a, Some(p))
            }
            None => (t, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{t:?} is not an IP address or CIDR block"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!("{t:?}: prefix length {prefix} is over {max}"));
        }
        // ::ffff:a.b.c.d/104 → a.b.c.d/8
        if let IpAddr::V6(v6) = ip {
            if let Some(v4) = v6.to_ipv4_mapped() {
                if prefix >= 96 {
                    return Ok(Cidr {
                        net: mask(IpAddr::V4(v4), prefix - 96),
                        prefix: prefix - 96,
                    });
                }
            }
        }
        Ok(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.net
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `ip` with all but its first `prefix` bits cleared.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// `PAM_RHOST` → an address: IPv4/IPv6 literals, `[v6]` brackets and `%zone` tolerated,
/// `::ffff:a.b.c.d` taken as IPv4. A hostname, garbage or nothing → `None` ("no address").
pub fn parse_rhost(rhost: Option<&str>) -> Option<IpAddr> {
    let t = rhost?.trim();
    if t.is_empty() || t.len() > 100 {
        return None;
    }
    let t = match t.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None => t,
    };
    let t = t.split('%').next().unwrap_or(t);
    let ip: IpAddr = t.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// SPEC §4 step 2: the global lists. No address while `allow` is non-empty is not allowed.
pub fn global_allows(access: &AccessSettings, ip: Option<IpAddr>) -> bool {
    match ip {
        Some(ip) => {
            !any_contains(&access.deny, ip)
                && (access.allow.is_empty() || any_contains(&access.allow, ip))
        }
        None => access.allow.is_empty(),
    }
}

/// Why a user's own IP policy refused the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserIpRefusal {
    /// `[access.users.NAME]` refused it.
    Config,
    /// The portal's `ipAddressRestriction` does not cover it.
    Portal,
    /// A policy applies but the host gave no usable address.
    NoAddress,
}

/// SPEC §4 step 6: `[access.users.NAME]`, then the portal restriction when honoured.
/// Entries of the portal restriction that do not parse match nothing (fail closed).
pub fn user_allows(
    user: Option<&UserAccess>,
    portal_restriction: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<(), UserIpRefusal> {
    if let Some(u) = user {
        match ip {
            Some(ip)
                if any_contains(&u.deny, ip)
                    || (!u.allow.is_empty() && !any_contains(&u.allow, ip)) =>
            {
                return Err(UserIpRefusal::Config);
            }
            Some(_) => {}
            None if !u.allow.is_empty() => return Err(UserIpRefusal::NoAddress),
            None => {}
        }
    }
    match (portal_restriction.filter(|r| !r.trim().is_empty()), ip) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(UserIpRefusal::NoAddress),
        // An empty entry (between two separators) does not parse either.
        (Some(r), Some(ip)) => {
            let covered = r
                .split([',', ' ', ';'])
                .filter_map(|s| Cidr::parse(s).ok())
                .any(|c| c.contains(ip));
            if covered {
                Ok(())
            } else {
                Err(UserIpRefusal::Portal)
            }
        }
    }
}

/// The lockout key of an address: IPv4 as is, IPv6 grouped by its prefix.
pub fn address_key(ip: IpAddr, ipv6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(_) => format!("{}/{}", mask(ip, ipv6_prefix), ipv6_prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn cidr_v4_v6_and_mapped() {
        assert!(c("198.51.100.0/24").contains(ip("198.51.100.7")));
        assert!(!c("198.51.100.0/24").contains(ip("198.51.101.7")));
        assert!(c("192.168.1.5/16").contains(ip("192.168.200.1")));
        assert!(c("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!c("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(c("fe80:021b::0/64").contains(ip("fe80:21b::42")));
        assert!(c("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
        assert!(c("10.0.0.1").contains(ip("10.0.0.1")) && !c("10.0.0.1").contains(ip("10.0.0.2")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!c("0.0.0.0/0").contains(ip("::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("2001:db8::/129").is_err());
        assert!(Cidr::parse("alice").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
    }

    #[test]
    fn rhost_forms() {
        assert_eq!(parse_rhost(Some("203.0.113.9")), Some(ip("203.0.113.9")));
        assert_eq!(parse_rhost(Some("[2001:db8::1]")), Some(ip("2001:db8::1")));
        assert_eq!(parse_rhost(Some("fe80::1%eth0")), Some(ip("fe80::1")));
        assert_eq!(parse_rhost(Some("[fe80::1%25eth0]")), Some(ip("fe80::1")));
        assert_eq!(parse_rhost(Some("::ffff:192.0.2.1")), Some(ip("192.0.2.1")));
        assert_eq!(parse_rhost(Some(" 192.0.2.1 ")), Some(ip("192.0.2.1")));
        assert_eq!(parse_rhost(Some("host.example.net")), None);
        assert_eq!(parse_rhost(Some("")), None);
        assert_eq!(parse_rhost(Some("[2001:db8::1")), None);
        assert_eq!(parse_rhost(Some("1.2.3.4\n")), Some(ip("1.2.3.4")));
        assert_eq!(parse_rhost(Some("1.2.3.4; rm -rf")), None);
        assert_eq!(parse_rhost(None), None);
    }

    #[test]
    fn global_lists() {
        let mut a = AccessSettings::default();
        assert!(global_allows(&a, None));
        assert!(global_allows(&a, Some(ip("1.2.3.4"))));
        a.deny = vec![c("203.0.113.0/24")];
        assert!(!global_allows(&a, Some(ip("203.0.113.9"))));
        assert!(global_allows(&a, None));
        a.allow = vec![c("10.0.0.0/8")];
        assert!(global_allows(&a, Some(ip("10.1.1.1"))));
        assert!(!global_allows(&a, Some(ip("11.1.1.1"))));
        assert!(
            !global_allows(&a, None),
            "no address while allow is non-empty"
        );
    }

    #[test]
    fn user_policy_and_portal_restriction() {
        let u = UserAccess {
            allow: vec![c("198.51.100.0/24")],
            deny: vec![c("198.51.100.66")],
        };
        assert_eq!(
            user_allows(Some(&u), None, Some(ip("198.51.100.1"))),
            Ok(())
        );
        assert_eq!(
            user_allows(Some(&u), None, Some(ip("198.51.100.66"))),
            Err(UserIpRefusal::Config)
        );
        assert_eq!(
            user_allows(Some(&u), None, Some(ip("10.0.0.1"))),
            Err(UserIpRefusal::Config)
        );
        assert_eq!(
            user_allows(Some(&u), None, None),
            Err(UserIpRefusal::NoAddress)
        );
        assert_eq!(user_allows(None, None, None), Ok(()));
        assert_eq!(user_allows(None, Some(""), Some(ip("10.0.0.1"))), Ok(()));
        let r = Some("192.168.0.0/16,fe80:021b::0/64");
        assert_eq!(user_allows(None, r, Some(ip("192.168.3.4"))), Ok(()));
        assert_eq!(user_allows(None, r, Some(ip("fe80:21b::9"))), Ok(()));
        assert_eq!(
            user_allows(None, r, Some(ip("10.0.0.1"))),
            Err(UserIpRefusal::Portal)
        );
        assert_eq!(user_allows(None, r, None), Err(UserIpRefusal::NoAddress));
        // A restriction that does not parse matches nothing.
        assert_eq!(
            user_allows(None, Some("garbage"), Some(ip("10.0.0.1"))),
            Err(UserIpRefusal::Portal)
        );
    }

    #[test]
    fn v6_grouping() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1"), 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:bbbb::9"), 64),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            address_key(ip("2001:db8:1:3::1"), 64),
            address_key(ip("2001:db8:1:2::1"), 64)
        );
        assert_eq!(address_key(ip("203.0.113.9"), 64), "203.0.113.9");
    }
}
