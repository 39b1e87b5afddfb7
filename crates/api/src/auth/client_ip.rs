//! The client's address: the socket peer, unless the peer is a trusted proxy. Then it is
//! the right-most `X-Forwarded-For` entry that is not itself a trusted proxy: entries to
//! its left were written by the client and prove nothing.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use marketd_domain::access::{IpNet, canonical_ip};

/// The resolved client address, placed in request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Parses a comma-separated CIDR list (`10.0.0.0/8, ::1/128`); a bare address is a
    /// single host.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not a CIDR or an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn resolve(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientIp {
        let peer = canonical_ip(peer.ip());
        if !self.trusts(peer) {
            return ClientIp(peer);
        }
        let mut client = peer;
        // Walk from the nearest hop outwards; all header lines form one list.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop.trim()) else {
                // Garbage where an address should be: stop at the last hop we can vouch
                // for rather than believe anything further out.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        ClientIp(client)
    }
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443`, `1.2.3.4:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical_ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in xff {
            map.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    fn ip(s: &str) -> ClientIp {
        ClientIp(s.parse().unwrap())
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.resolve(peer("203.0.113.9"), &headers(&["1.1.1.1"])),
            ip("203.0.113.9")
        );
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.resolve(peer("203.0.113.9"), &headers(&["10.0.0.1"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_wins() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        // The client prepends a forged address; the proxy appends the real one.
        let spoofed = headers(&["6.6.6.6, 198.51.100.7"]);
        assert_eq!(
            proxies.resolve(peer("10.0.0.2"), &spoofed),
            ip("198.51.100.7")
        );
        // Two proxy hops, split over two header lines.
        let chain = headers(&["6.6.6.6, 198.51.100.7", "192.168.1.1"]);
        assert_eq!(
            proxies.resolve(peer("10.0.0.2"), &chain),
            ip("198.51.100.7")
        );
        // No header: the proxy itself.
        assert_eq!(
            proxies.resolve(peer("10.0.0.2"), &headers(&[])),
            ip("10.0.0.2")
        );
        // Every hop trusted: the farthest one.
        assert_eq!(
            proxies.resolve(peer("10.0.0.2"), &headers(&["10.9.9.9"])),
            ip("10.9.9.9")
        );
        // Garbage stops the walk at the last address we can vouch for.
        assert_eq!(
            proxies.resolve(peer("10.0.0.2"), &headers(&["7.7.7.7, nonsense"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn mapped_and_bracketed_addresses_are_normalised() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.resolve(peer("::ffff:10.0.0.2"), &headers(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
        assert_eq!(
            proxies.resolve(peer("::ffff:10.0.0.2"), &headers(&["::ffff:198.51.100.7"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            TrustedProxies::default().resolve(peer("::ffff:203.0.113.1"), &headers(&[])),
            ip("203.0.113.1")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
