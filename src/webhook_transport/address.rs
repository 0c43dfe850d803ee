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
        IpAddr::V6(v6) => classify_v6(v6),
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
    } else if a >= 240
        || [a, b, c] == [192, 0, 0]
        || [a, b] == [198, 18]
        || [a, b] == [198, 19]
        || ip.is_documentation()
    {
        // Reserved, IETF protocol assignments, benchmarking, documentation.
        Some(Class::Reserved)
    } else {
        None
    }
}

/// The IPv4 address in the 32 bits from segment `at` of `s`.
fn v4_at(s: &[u16; 8], at: usize) -> Ipv4Addr {
    let [a, b] = s[at].to_be_bytes();
    let [c, d] = s[at + 1].to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some(Class::Metadata);
    }
    if ip.is_loopback() || ip.is_unspecified() {
        return Some(Class::Loopback);
    }
    // IPv6 that carries an IPv4 address may reach it (through the kernel,
    // a translator or a tunnel), so it is judged as that address.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d,
        // deprecated: a public one is no place for a webhook either).
        let class = classify_v4(v4_at(&s, 6));
        return if s[5] == 0xffff {
            class
        } else {
            class.or(Some(Class::Reserved))
        };
    }
    if s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        // IPv4-translated (::ffff:0:a.b.c.d, SIIT).
        return classify_v4(v4_at(&s, 6));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64's well-known prefix (64:ff9b::/96) ends in the IPv4
        // address. The rest of 64:ff9b::/32 is for local use
        // (64:ff9b:1::/48), where the address sits where the network's own
        // prefix length puts it: it cannot be judged, so it is never called.
        return if s[2..6] == [0; 4] {
            classify_v4(v4_at(&s, 6))
        } else {
            Some(Class::Reserved)
        };
    }
    if s[0] == 0x2002 {
        // 6to4: the IPv4 address follows the prefix.
        return classify_v4(v4_at(&s, 1));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        // Teredo: the client's IPv4 address, inverted, ends the address,
        // after the server's. A tunnel to home machines is no receiver.
        let client = Ipv4Addr::from(!u32::from(v4_at(&s, 6)));
        return classify_v4(client)
            .or_else(|| classify_v4(v4_at(&s, 2)))
            .or(Some(Class::Reserved));
    }
    let documentation = (s[0] == 0x2001 && s[1] == 0xdb8) || (s[0] == 0x3fff && s[1] & 0xf000 == 0);
    let benchmarking = s[0] == 0x2001 && s[1] == 2 && s[2] == 0;
    let discard = s[0] == 0x100 && s[1..4] == [0, 0, 0];
    if documentation || benchmarking || discard {
        Some(Class::Reserved)
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        // Unique local, and the site-local range it replaced.
        Some(Class::Private)
    } else if s[0] & 0xffc0 == 0xfe80 {
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
    /// Not a URL we can call (scheme, credentials, no host).
    Invalid(String),
    /// Its host is, or resolves to, an address the policy refuses, or does
    /// not resolve. The caller is told only that it is refused: what the
    /// server's resolver made of a name (an internal address, or nothing)
    /// would map the server's network. `detail` is for the server's log.
    Refused { detail: String },
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
            Self::Refused { .. } => {
                f.write_str("is refused: webhooks are sent only to public internet hosts")
            }
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
    let refused = |detail: String| UrlError::Refused { detail };
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
                .map_err(|e| refused(format!("{name} does not resolve: {e}")))?
                .map(|a| a.ip())
                .collect()
        }
        (None, None) => return Err(invalid("has no host")),
    };
    if addresses.is_empty() {
        return Err(refused("the host has no address".into()));
    }
    for ip in addresses {
        if let Some(why) = refusal(ip, policy) {
            let host = url.host_str().unwrap_or_default();
            return Err(refused(format!("{host} is or resolves to {why} ({ip})")));
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
                    // The owner reads the delivery's error: it names no
                    // address, only that the guard stopped it.
                    tracing::info!(host, address = %address.ip(), why, "webhook delivery refused by the address guard");
                    return Err(Box::new(Refused(format!(
                        "{host} does not lead to a public internet host"
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

    /// Each way IPv6 can carry an IPv4 address is judged by that address.
    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address() {
        for (ip, why) in [
            // IPv4-compatible (deprecated).
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("::169.254.169.254", "metadata"),
            // IPv4-mapped, and IPv4-translated (SIIT).
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:0:127.0.0.1", "loopback"),
            // NAT64's well-known prefix.
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            // 6to4: the IPv4 address follows 2002.
            ("2002:7f00:1::1", "loopback"),
            ("2002:a00:1::1", "private"),
            ("2002:c0a8:101::", "private"),
            ("2002:a9fe:a9fe::1", "metadata"),
            // Teredo: the client's IPv4 address, inverted, ends the address.
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
        ] {
            let got = refused(ip, STRICT);
            assert!(got.is_some_and(|g| g.contains(why)), "{ip}: {got:?}");
        }
        // A public IPv4 address behind NAT64 or 6to4 is public.
        for ip in [
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
            // Past the end of 3fff::/20 (documentation).
            "3fff:1000::1",
        ] {
            assert_eq!(refused(ip, STRICT), None, "{ip}");
        }
    }

    #[test]
    fn local_deprecated_and_special_ipv6_ranges_are_refused() {
        for (ip, why) in [
            ("::", "loopback"),
            ("fc00::1", "private"),
            ("fdff:ffff::1", "private"),
            // Site-local (deprecated, the old private range).
            ("fec0::1", "private"),
            ("feff::1", "private"),
            ("fe80::1:2", "link-local"),
            ("febf::1", "link-local"),
            ("ff05::2", "multicast"),
            ("ff0e::1", "multicast"),
            // NAT64 for local use: where its IPv4 address sits depends on
            // the network's prefix length, so it cannot be judged.
            ("64:ff9b:1::a00:1", "reserved"),
            ("64:ff9b:1:7f00:1::", "reserved"),
            ("64:ff9b:1:808:8:800::", "reserved"),
            // Documentation, benchmarking and discard-only.
            ("2001:db8::1", "reserved"),
            ("3fff::1", "reserved"),
            ("3fff:fff::1", "reserved"),
            ("2001:2::1", "reserved"),
            ("100::1", "reserved"),
            // Teredo whose client is public: still not a place for a webhook.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),
            // IPv4-compatible with a public address (deprecated form).
            ("::8.8.8.8", "reserved"),
            // IPv4 documentation ranges.
            ("192.0.2.1", "reserved"),
            ("198.51.100.7", "reserved"),
            ("203.0.113.9", "reserved"),
        ] {
            let got = refused(ip, STRICT);
            assert!(got.is_some_and(|g| g.contains(why)), "{ip}: {got:?}");
        }
    }

    #[test]
    fn the_private_setting_never_opens_ranges_it_cannot_judge() {
        for ip in [
            "64:ff9b:1::a9fe:a9fe",
            "::169.254.169.254",
            "2002:a9fe:a9fe::",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(refused(ip, LENIENT).is_some(), "{ip}");
        }
        for ip in ["::127.0.0.1", "fec0::1", "2002:a00:1::1"] {
            assert_eq!(refused(ip, LENIENT), None, "{ip}");
        }
    }

    /// Registration must not tell a caller where the server's own names
    /// lead: a name of the inside and a name that leads nowhere get the same
    /// answer, which names neither address nor resolution.
    #[tokio::test]
    async fn a_refusal_does_not_tell_what_a_name_resolves_to() {
        let inside = check_url("https://localhost:9/hook", STRICT)
            .await
            .unwrap_err();
        let nowhere = check_url("https://nothing-here.invalid/hook", STRICT)
            .await
            .unwrap_err();
        assert!(matches!(nowhere, UrlError::Refused { .. }), "{nowhere:?}");
        assert_eq!(inside.to_string(), nowhere.to_string());
        let text = inside.to_string();
        for detail in ["127.0.0.1", "::1", "loopback", "resolve", "nothing-here"] {
            assert!(!text.contains(detail), "{text}");
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
            .unwrap_err();
        let UrlError::Refused { detail } = &err else {
            panic!("{err:?}");
        };
        assert!(detail.contains("loopback"), "the log says why: {detail}");
        assert!(check_url("http://localhost:9/hook", LENIENT).await.is_ok());
    }
}
