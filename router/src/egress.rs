//! Egress: the SSRF rules every outbound connection obeys.
//!
//! A host name is resolved by [`GuardedResolver`], every address it resolves to is checked,
//! and the HTTP client connects only to the addresses that passed, so there is no window
//! between the check and the connection for DNS rebinding. URLs with an IP literal are
//! checked by [`EgressPolicy::check_url`] before the request. Blocked by default: loopback,
//! private (RFC 1918), CGNAT, link-local, multicast, documentation, benchmarking and other
//! reserved ranges, unique-local and link-local IPv6, and the IPv4-mapped, IPv4-compatible
//! and NAT64 forms of all of them. `[egress] allow_private` opens ranges on purpose.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::EgressConfig;

/// Why an outbound call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The URL's scheme is not http or https.
    #[error("scheme {0:?} is not allowed (only http and https)")]
    Scheme(String),
    /// The URL has no host.
    #[error("URL has no host")]
    NoHost,
    /// The address is in a blocked range.
    #[error("{addr} is a {kind} address; allow it with [egress] allow_private")]
    Blocked {
        /// The refused address.
        addr: IpAddr,
        /// Which kind of range it is in.
        kind: &'static str,
    },
    /// Every address the name resolved to was blocked.
    #[error("{host} resolves only to blocked addresses ({first})")]
    AllBlocked {
        /// The host name.
        host: String,
        /// The first refusal.
        first: Box<EgressError>,
    },
}

/// Which addresses outbound calls may reach.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

impl EgressPolicy {
    /// The policy of an `[egress]` table.
    pub fn new(config: &EgressConfig) -> EgressPolicy {
        EgressPolicy {
            allow: config.allow_private.iter().map(|c| c.0).collect(),
        }
    }

    /// Whether `addr` may be connected to.
    pub fn check(&self, addr: IpAddr) -> Result<(), EgressError> {
        let Some(kind) = blocked_kind(addr) else {
            return Ok(());
        };
        // An allowed range matches the address as written or its embedded IPv4 form.
        let embedded = embedded_v4(addr).map(IpAddr::V4);
        if self
            .allow
            .iter()
            .any(|net| net.contains(&addr) || embedded.is_some_and(|v4| net.contains(&v4)))
        {
            return Ok(());
        }
        Err(EgressError::Blocked { addr, kind })
    }

    /// Checks a URL's scheme, and its host when that is an IP literal.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), EgressError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(EgressError::Scheme(other.to_string())),
        }
        match url.host() {
            None => Err(EgressError::NoHost),
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = addr else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    None
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [0, ..] => "\"this network\"",
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => "private",
        [100, 64..=127, ..] => "carrier-grade NAT",
        [127, ..] => "loopback",
        [169, 254, ..] => "link-local",
        [192, 0, 0, _] => "IETF protocol assignment",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [192, 88, 99, _] => "6to4 relay",
        [198, 18..=19, ..] => "benchmarking",
        [224..=239, ..] => "multicast",
        [240..=255, ..] => "reserved",
        _ => return None,
    })
}

fn blocked_kind(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in mapped, compatible or NAT64 form is judged as IPv4.
            match embedded_v4(addr) {
                Some(v4) => v4_kind(v4),
                None => v6_kind(v6),
            }
        }
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "discard"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        "IETF protocol assignment"
    } else if s[0] == 0x2002 {
        "6to4"
    } else {
        return None;
    })
}

/// A DNS resolver for the HTTP client that returns only addresses the policy allows.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        first_refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_refusal {
                    Some(first) => Box::new(EgressError::AllBlocked {
                        host,
                        first: Box::new(first),
                    }),
                    None => format!("{host} did not resolve").into(),
                };
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;

    fn blocked(s: &str) -> bool {
        EgressPolicy::default().check(s.parse().unwrap()).is_err()
    }

    #[test]
    fn non_public_ranges_are_blocked() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(blocked(a), "{a} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!blocked(a), "{a} should pass");
        }
    }

    #[test]
    fn allow_private_opens_a_range_and_its_mapped_form() {
        let policy = EgressPolicy::new(&EgressConfig {
            allow_private: vec![Cidr("127.0.0.0/8".parse().unwrap())],
        });
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(policy.check("::1".parse().unwrap()).is_err());
    }

    #[test]
    fn urls_need_http_and_a_public_literal() {
        let p = EgressPolicy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            p.check_url(&url("ftp://example.com/")),
            Err(EgressError::Scheme("ftp".into()))
        );
        assert!(
            p.check_url(&url("http://169.254.169.254/latest/meta-data"))
                .is_err()
        );
        assert!(p.check_url(&url("http://[::ffff:7f00:1]/")).is_err());
        assert!(p.check_url(&url("https://example.com/hook")).is_ok());
        let err = p
            .check_url(&url("http://127.0.0.1:9000/"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "127.0.0.1 is a loopback address; allow it with [egress] allow_private"
        );
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_only_to_blocked_addresses() {
        use reqwest::dns::Resolve;
        let r = GuardedResolver::new(Arc::new(EgressPolicy::default()));
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with("localhost resolves only to blocked addresses"),
            "{err}"
        );
        let open = GuardedResolver::new(Arc::new(EgressPolicy::new(&EgressConfig {
            allow_private: vec![Cidr("127.0.0.0/8".parse().unwrap())],
        })));
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "{addrs:?}"
        );
    }
}
