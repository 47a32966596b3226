//! The SSRF guard: a webhook URL is configuration, but the address it resolves to is checked at
//! send time, after DNS, so a name that points inside our network is refused as surely as an
//! IP literal. Open it (`allow_private_targets`) only for tests and labs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// Addresses a webhook may never reach on a production gateway.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes the cloud metadata address 169.254.169.254
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || (a == 100 && (64..=127).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a == 0
        || a >= 240
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS IMDS over IPv6
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
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
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
    async fn names_resolving_inside_are_refused() {
        let result = GuardedResolver.resolve("localhost".parse().unwrap()).await;
        assert!(result.is_err());
    }
}
