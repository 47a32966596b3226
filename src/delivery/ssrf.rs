//! The SSRF guard: a webhook URL is configuration, but the address it resolves to is checked at
//! send time, after DNS, so a name that points inside our network is refused as surely as an
//! IP literal. Open it (`allow_private_targets`) only for tests and labs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("only https webhook URLs are allowed (allow_private_targets is off)")]
    NotHttps,
    #[error("webhook target {0} is a loopback, private, link-local, shared or metadata address")]
    Forbidden(IpAddr),
    #[error("the webhook URL has no host")]
    NoHost,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// Every range of the IANA IPv4 Special-Purpose Address Registry (as of 2024, including the
/// few it marks globally reachable: no webhook lives on an anycast relay), with multicast and
/// the limited broadcast address. Kept as data, from the registry, so a reviewer can hold it against it.
const FORBIDDEN_V4: [Ipv4Net; 20] = [
    v4(0, 0, 0, 0, 8),          // "this network"
    v4(10, 0, 0, 0, 8),         // private
    v4(100, 64, 0, 0, 10),      // shared address space (carrier-grade NAT)
    v4(127, 0, 0, 0, 8),        // loopback
    v4(169, 254, 0, 0, 16),     // link-local, cloud metadata 169.254.169.254
    v4(172, 16, 0, 0, 12),      // private
    v4(192, 0, 0, 0, 24),       // IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
    v4(192, 0, 2, 0, 24),       // documentation TEST-NET-1
    v4(192, 31, 196, 0, 24),    // AS112-v4
    v4(192, 52, 193, 0, 24),    // AMT
    v4(192, 88, 99, 0, 24),     // deprecated 6to4 relay anycast
    v4(192, 168, 0, 0, 16),     // private
    v4(192, 175, 48, 0, 24),    // direct delegation AS112
    v4(198, 18, 0, 0, 15),      // benchmarking
    v4(198, 51, 100, 0, 24),    // documentation TEST-NET-2
    v4(203, 0, 113, 0, 24),     // documentation TEST-NET-3
    v4(224, 0, 0, 0, 4),        // multicast
    v4(240, 0, 0, 0, 4),        // reserved
    v4(255, 255, 255, 255, 32), // limited broadcast (inside 240/4; named for the reader)
    v4(233, 252, 0, 0, 24),     // MCAST-TEST-NET (inside 224/4; named for the reader)
];

/// Every range of the IANA IPv6 Special-Purpose Address Registry, with multicast, the
/// deprecated site-local and IPv4-compatible ranges. IPv4-mapped addresses (::ffff:0:0/96)
/// are judged by the IPv4 address they carry.
const FORBIDDEN_V6: [Ipv6Net; 18] = [
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96), // ::/96: unspecified, loopback, IPv4-compatible ::a.b.c.d
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), // IPv4/IPv6 translation (NAT64)
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use IPv4/IPv6 translation
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64), // dummy IPv6 prefix
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, ORCHID, AMT, ...)
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4 (carries an IPv4 address)
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48), // direct delegation AS112
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), // segment routing SIDs
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local (incl. fd00:ec2::254, AWS metadata)
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96), // IPv4-translated (SIIT, RFC 2765)
    v6([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48), // benchmarking (inside 2001::/23; named)
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), // Teredo (inside 2001::/23; named)
];

/// Addresses a webhook may never reach on a production gateway.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => FORBIDDEN_V6.iter().any(|net| net.contains(&v6)),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    FORBIDDEN_V4.iter().any(|net| net.contains(&ip))
}

/// Checks what can be checked before DNS: the scheme, and the host when it is an IP literal.
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    if url.scheme() != "https" {
        return Err(TargetError::NotHttps);
    }
    match url.host() {
        None => Err(TargetError::NoHost),
        Some(url::Host::Ipv4(ip)) if is_forbidden(IpAddr::V4(ip)) => {
            Err(TargetError::Forbidden(IpAddr::V4(ip)))
        }
        Some(url::Host::Ipv6(ip)) if is_forbidden(IpAddr::V6(ip)) => {
            Err(TargetError::Forbidden(IpAddr::V6(ip)))
        }
        Some(_) => Ok(()),
    }
}

/// How long `check_target` waits for DNS before leaving the name to the send-time guard.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks a target before anything is queued for it (a Subscription's endpoint when it is
/// created): `check_url`, then, for a name, what it resolves to now. A name whose every address
/// is forbidden is refused; one that does not resolve yet is let through (the send-time guard
/// still checks each address, so a name that changes later is caught there).
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    check_url(url, allow_private)?;
    if allow_private {
        return Ok(());
    }
    let Some(url::Host::Domain(host)) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::net::lookup_host((host, port));
    let Ok(Ok(found)) = tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await else {
        return Ok(());
    };
    let found: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    match found.iter().find(|ip| !is_forbidden(**ip)) {
        Some(_) => Ok(()),
        None => found
            .first()
            .map_or(Ok(()), |ip| Err(TargetError::Forbidden(*ip))),
    }
}

/// A DNS resolver for reqwest that drops forbidden addresses, and fails when none is left.
#[derive(Debug, Default, Clone)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_forbidden(a.ip()))
                .collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some(first)) => Err(Box::new(TargetError::Forbidden(first.ip()))
                    as Box<dyn std::error::Error + Send + Sync>),
                (true, None) => Err(format!("{host} did not resolve").into()),
            }
        })
    }
}

/// An HTTP client for targets the configuration names (webhooks, directory feeds): `timeout`
/// per request, no redirects (following one would let the target point us anywhere), and
/// (`guard`) every name resolved through [`GuardedResolver`]. The `*_PROXY` variables are
/// ignored: a proxy resolves names past the guard, so only an explicitly configured one is used.
pub fn http_client(
    timeout: std::time::Duration,
    guard: bool,
    proxy: Option<&Url>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sp-gateway/", env!("CARGO_PKG_VERSION")));
    if guard {
        builder = builder.dns_resolver(std::sync::Arc::new(GuardedResolver));
    }
    builder = match proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.as_str())?),
        None => builder.no_proxy(),
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            // The IANA registries beyond the common ranges.
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.170",
            "192.88.99.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "::10.0.0.1",
            "::8.8.8.8",
            "2002:a00:1::1",
            "2001::1",
            "2001:db8::1",
            "fec0::1",
            "ff0e::1",
            "fd00:ec2::254",
            "100::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2a00:1450:4009::1",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            check_url(&url("http://crm.example.org/hook"), false),
            Err(TargetError::NotHttps)
        );
        assert!(matches!(
            check_url(&url("https://127.0.0.1/hook"), false),
            Err(TargetError::Forbidden(_))
        ));
        assert!(matches!(
            check_url(&url("https://[::1]/hook"), false),
            Err(TargetError::Forbidden(_))
        ));
        assert_eq!(
            check_url(&url("https://crm.example.org/hook"), false),
            Ok(())
        );
        assert_eq!(check_url(&url("http://127.0.0.1/hook"), true), Ok(()));
    }

    #[tokio::test]
    async fn targets_are_checked_before_anything_is_queued() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            check_target(&url("https://localhost:8443/notify"), false).await,
            Err(TargetError::Forbidden(ip)) if ip.is_loopback()
        ));
        assert_eq!(
            check_target(&url("http://gp.example.org/notify"), false).await,
            Err(TargetError::NotHttps)
        );
        // A name that does not resolve (yet) is left to the send-time guard.
        assert_eq!(
            check_target(&url("https://no-such-host.invalid/notify"), false).await,
            Ok(())
        );
        assert_eq!(
            check_target(&url("http://localhost:8443/notify"), true).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused() {
        let result = GuardedResolver.resolve("localhost".parse().unwrap()).await;
        assert!(result.is_err());
    }
}
