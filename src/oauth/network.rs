//! Client addresses and network allowlists.
//!
//! A client may be restricted to CIDR blocks (IPv4 and IPv6). The address
//! checked is the TCP peer's, unless the peer is a configured trusted proxy:
//! then `X-Forwarded-For` is read from the right, skipping trusted proxies,
//! and the first address that is not one is the client's. A header from an
//! untrusted peer is ignored, so it cannot be spoofed.

use std::net::IpAddr;

/// An address block, e.g. `10.0.0.0/8` or `2001:db8::/32`; a bare address
/// is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reaching an IPv6 socket appears as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a space- or comma-separated list; `None` if any entry is bad.
pub fn parse_list(text: &str) -> Option<Vec<Cidr>> {
    text.split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(Cidr::parse)
        .collect()
}

pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// The client's address, given the peer, the `X-Forwarded-For` values and
/// the trusted proxies.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !any_contains(trusted, peer) || forwarded_for.is_empty() {
        return Some(peer);
    }
    // Several headers count as one list, in order.
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // A garbled entry: trust nothing further left of it.
            return Some(peer);
        };
        if !any_contains(trusted, ip) {
            return Some(ip);
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn blocks_contain_what_they_should() {
        let v4 = Cidr::parse("10.1.0.0/16");
        assert!(v4.is_some_and(|c| c.contains(ip("10.1.2.3")) && !c.contains(ip("10.2.0.1"))));
        assert!(v4.is_some_and(|c| c.contains(ip("::ffff:10.1.9.9"))));
        let v6 = Cidr::parse("2001:db8::/32");
        assert!(
            v6.is_some_and(|c| c.contains(ip("2001:db8::1")) && !c.contains(ip("2001:db9::1")))
        );
        assert!(Cidr::parse("0.0.0.0/0").is_some_and(|c| c.contains(ip("8.8.8.8"))));
        assert!(
            Cidr::parse("127.0.0.1")
                .is_some_and(|c| c.contains(ip("127.0.0.1")) && !c.contains(ip("127.0.0.2")))
        );
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0/8", ""] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let trusted = parse_list("127.0.0.1/32, 10.0.0.0/8").unwrap_or_default();
        let peer = Some(ip("127.0.0.1"));
        assert_eq!(
            client_address(peer, &["203.0.113.7"], &trusted),
            Some(ip("203.0.113.7"))
        );
        // Rightmost untrusted hop wins; what the client claimed to the left is ignored.
        assert_eq!(
            client_address(peer, &["198.51.100.1, 203.0.113.7, 10.0.0.5"], &trusted),
            Some(ip("203.0.113.7"))
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_address(Some(ip("192.0.2.1")), &["203.0.113.7"], &trusted),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(client_address(peer, &["garbage"], &trusted), peer);
        assert_eq!(client_address(peer, &[], &trusted), peer);
    }
}
