//! Where webhooks may go: never to the server's own network unless
//! allowed, never to a cloud metadata service. Checked when an endpoint is
//! registered, and again on the addresses each delivery connects to
//! (a name may resolve elsewhere by then).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What is allowed besides public addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Loopback, private and link-local addresses (development, tests).
    pub allow_private: bool,
    /// Plain `http://` URLs (everywhere but production).
    pub allow_http: bool,
}

/// Why an address is refused, or `None` when it may be called.
pub fn refusal(ip: IpAddr, policy: Policy) -> Option<&'static str> {
    let class = classify(ip)?;
    match class {
        Class::Metadata | Class::Multicast | Class::Reserved => Some(class.describe()),
        _ if policy.allow_private => None,
        _ => Some(class.describe()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Loopback,
    Private,
    LinkLocal,
    Multicast,
    Metadata,
    Reserved,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::Multicast => "a multicast or broadcast address",
            Self::Metadata => "a cloud metadata address",
            Self::Reserved => "a reserved address",
        }
    }
}

fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 (mapped, or NAT64's
            // well-known prefix) is that IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return classify_v4(Ipv4Addr::new(a, b, c, d));
            }
            classify_v6(v6)
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, c, d] = ip.octets();
    // AWS, GCP, Azure, OpenStack (169.254.169.254), AWS ECS tasks
    // (169.254.170.2), Alibaba Cloud (100.100.100.200).
    if [a, b] == [169, 254] && ((c, d) == (169, 254) || (c, d) == (170, 2))
        || [a, b, c, d] == [100, 100, 100, 200]
    {
        return Some(Class::Metadata);
    }
    if ip.is_loopback() || a == 0 {
        Some(Class::Loopback)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918, and the carrier-grade NAT range (RFC 6598).
        Some(Class::Private)
    } else if ip.is_link_local() {
        Some(Class::LinkLocal)
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some(Class::Multicast)
    } else if a >= 240 || [a, b, c] == [192, 0, 0] || [a, b] == [198, 18] || [a, b] == [198, 19] {
        // Reserved, IETF protocol assignments, benchmarking.
        Some(Class::Reserved)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some(Class::Metadata)
    } else if ip.is_loopback() || ip.is_unspecified() {
        Some(Class::Loopback)
    } else if first & 0xfe00 == 0xfc00 {
        Some(Class::Private)
    } else if first & 0xffc0 == 0xfe80 {
        Some(Class::LinkLocal)
    } else if ip.is_multicast() {
        Some(Class::Multicast)
    } else {
        None
    }
}

/// Why an endpoint URL is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL we can call (scheme, credentials, no host, no address).
    Invalid(String),
    /// Its host is, or resolves to, an address the policy refuses.
    Refused(String),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) | Self::Refused(why) => f.write_str(why),
        }
    }
}

/// The address a URL's host is written as, if it is one.
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Checks an endpoint URL now (its name resolved now).
pub async fn check_url(raw: &str, policy: Policy) -> Result<url::Url, UrlError> {
    let invalid = |why: &str| UrlError::Invalid(why.to_owned());
    let url = url::Url::parse(raw.trim()).map_err(|_| invalid("is not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(invalid("must use https")),
        _ => return Err(invalid("must be an http or https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    let addresses: Vec<IpAddr> = match (literal_ip(&url), url.host_str()) {
        (Some(ip), _) => vec![ip],
        (None, Some(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| {
                    UrlError::Invalid(format!("names a host that does not resolve ({name})"))
                })?
                .map(|a| a.ip())
                .collect()
        }
        (None, None) => return Err(invalid("has no host")),
    };
    if addresses.is_empty() {
        return Err(invalid("names a host with no address"));
    }
    for ip in addresses {
        if let Some(why) = refusal(ip, policy) {
            return Err(UrlError::Refused(format!("resolves to {why} ({ip})")));
        }
    }
    Ok(url)
}

/// The URL of a delivery, refused here if its host is a literal address
/// the policy refuses (names are checked by [`GuardedResolver`]).
pub fn check_literal(raw: &str, policy: Policy) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|_| "the endpoint URL does not parse".to_owned())?;
    match literal_ip(&url).and_then(|ip| Some((ip, refusal(ip, policy)?))) {
        Some((ip, why)) => Err(format!("refused: {ip} is {why}")),
        None => Ok(url),
    }
}

/// The resolver deliveries connect through: a name with any refused
/// address is not connected to at all.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver(pub Policy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for address in &found {
                if let Some(why) = refusal(address.ip(), policy) {
                    return Err(Box::new(Refused(format!(
                        "{host} resolves to {why} ({})",
                        address.ip()
                    )))
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

impl GuardedResolver {
    pub fn shared(policy: Policy) -> Arc<Self> {
        Arc::new(Self(policy))
    }
}

/// A connection the policy refuses.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Policy = Policy {
        allow_private: false,
        allow_http: false,
    };
    const LENIENT: Policy = Policy {
        allow_private: true,
        allow_http: true,
    };

    fn refused(ip: &str, policy: Policy) -> Option<&'static str> {
        refusal(ip.parse().unwrap(), policy)
    }

    #[test]
    fn each_address_class_is_refused() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("0.0.0.0", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("fd12::1", "private"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "multicast"),
            ("ff02::1", "multicast"),
            ("169.254.169.254", "metadata"),
            ("169.254.170.2", "metadata"),
            ("100.100.100.200", "metadata"),
            ("fd00:ec2::254", "metadata"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("64:ff9b::a00:1", "private"),
            ("240.0.0.1", "reserved"),
        ] {
            let got = refused(ip, STRICT);
            assert!(got.is_some_and(|g| g.contains(why)), "{ip}: {got:?}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert_eq!(refused(ip, STRICT), None, "{ip}");
        }
    }

    #[test]
    fn the_private_setting_never_opens_metadata_or_multicast() {
        assert_eq!(refused("127.0.0.1", LENIENT), None);
        assert_eq!(refused("10.0.0.1", LENIENT), None);
        assert!(refused("169.254.169.254", LENIENT).is_some());
        assert!(refused("224.0.0.1", LENIENT).is_some());
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_credentials_and_address() {
        assert!(
            check_url("https://93.184.216.34/hook", STRICT)
                .await
                .is_ok()
        );
        assert_eq!(
            check_url("http://93.184.216.34/hook", STRICT)
                .await
                .unwrap_err()
                .to_string(),
            "must use https"
        );
        assert!(check_url("ftp://93.184.216.34/", LENIENT).await.is_err());
        assert!(
            check_url("https://u:p@93.184.216.34/", STRICT)
                .await
                .is_err()
        );
        assert!(check_url("not a url", STRICT).await.is_err());
        let err = check_url("https://localhost:9/hook", STRICT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(check_url("http://localhost:9/hook", LENIENT).await.is_ok());
    }
}
