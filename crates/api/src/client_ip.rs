//! The client's address: the TCP peer, or, when the peer is a proxy the operator trusts
//! (`TRUSTED_PROXIES`), the address that proxy reports in `X-Forwarded-For`.
//!
//! Behind an ingress every connection comes from the ingress, so per-address login limits and
//! audit records would see one address for everybody. `X-Forwarded-For` cannot simply be
//! believed either: a client writes what it likes there. Each proxy appends the address it
//! received the request from, so the list is read from the right: trusted proxies are skipped,
//! and the first address that is not one of them is the client. Without trusted proxies (the
//! default) the header is ignored.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Networks whose connections may speak for a client in `X-Forwarded-For`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks (`10.0.0.0/8, ::1`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match IpNet::from_str(item) {
                Ok(n) => n,
                Err(_) => IpAddr::from_str(item)
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is neither an IP address nor a CIDR network"))?,
            };
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    /// True when none are configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For` values in the order they
    /// arrived.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        // The nearest address known to be genuine so far: the peer, then each trusted proxy.
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // A trusted proxy wrote something unreadable: stop at the last address it vouched
                // for rather than guess.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(canonical(ip));
    }
    if let Ok(sock) = std::net::SocketAddr::from_str(hop) {
        return Some(canonical(sock.ip()));
    }
    None
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ingress() -> TrustedProxies {
        TrustedProxies::parse("10.0.0.0/8, fd00::1").unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.1.2.3"), ["203.0.113.9"]), ip("10.1.2.3"));
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        assert_eq!(
            ingress().client(ip("198.51.100.7"), ["203.0.113.9"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_first_untrusted_address_from_the_right_is_the_client() {
        // The client forged the first entry; the ingress appended the address it saw.
        assert_eq!(
            ingress().client(ip("10.0.0.5"), ["1.1.1.1, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        // Two trusted hops, over two header lines.
        assert_eq!(
            ingress().client(ip("10.0.0.5"), ["203.0.113.9, 10.9.9.9", "fd00::1"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        assert_eq!(
            ingress().client(ip("::ffff:10.0.0.5"), ["203.0.113.9:4711"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            ingress().client(ip("10.0.0.5"), ["[2001:db8::7]:443"]),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn unreadable_or_missing_entries_stop_at_the_last_vouched_address() {
        assert_eq!(
            ingress().client(ip("10.0.0.5"), ["203.0.113.9, garbage, 10.2.2.2"]),
            ip("10.2.2.2")
        );
        assert_eq!(ingress().client(ip("10.0.0.5"), []), ip("10.0.0.5"));
        assert_eq!(
            ingress().client(ip("10.0.0.5"), ["10.3.3.3"]),
            ip("10.3.3.3"),
            "all trusted: the farthest known hop"
        );
    }

    #[test]
    fn bad_configuration_is_named() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        let err = TrustedProxies::parse("10.0.0.0/8, proxy.local").unwrap_err();
        assert!(err.contains("proxy.local"), "{err}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(ingress().trusts(ip("10.255.0.1")));
    }
}
