//! Who sent a request (the trusted-proxy rule) and how fast they may send (token buckets).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// The client address: the socket peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
///
/// Right-most, because every proxy appends: entries left of the last untrusted hop were
/// written by the client and prove nothing.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return ip,
            // An unparseable hop ends the chain we can vouch for.
            Err(_) => return last,
        }
    }
    last
}

/// Parses `EXATOM_TRUSTED_PROXIES` (comma-separated CIDRs).
pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not a CIDR such as 10.0.0.0/8"))
        })
        .collect()
}

/// Per-address token buckets, bounded in memory.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    max_clients: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64, max_clients: usize) -> Self {
        RateLimiter {
            per_second,
            burst,
            max_clients,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `ip` at `now_ms`; `Err(seconds)` says when to retry.
    pub fn take(&mut self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        if self.buckets.len() >= self.max_clients && !self.buckets.contains_key(&ip) {
            self.evict_full(now_ms);
        }
        let (per_second, burst) = (self.per_second, self.burst);
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last_ms: now_ms,
        });
        let elapsed = (now_ms - bucket.last_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.last_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    pub fn clients(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets buckets that have refilled (they carry no state a fresh bucket lacks);
    /// if every client is active, forgets the oldest half.
    fn evict_full(&mut self, now_ms: i64) {
        let (per_second, burst) = (self.per_second, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + (now_ms - b.last_ms).max(0) as f64 / 1000.0 * per_second < burst
        });
        if self.buckets.len() >= self.max_clients {
            let mut ages: Vec<i64> = self.buckets.values().map(|b| b.last_ms).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.buckets.retain(|_, b| b.last_ms > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxy_rule() {
        let trusted = parse_cidrs("127.0.0.1/32,::1/128,10.0.0.0/8").unwrap();
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            client_address(ip("198.51.100.1"), Some("1.2.3.4"), &trusted),
            ip("198.51.100.1")
        );
        // Trusted peer: the right-most untrusted hop.
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                Some("6.6.6.6, 203.0.113.5, 10.1.2.3"),
                &trusted
            ),
            ip("203.0.113.5")
        );
        // Trusted peer without the header, or with only trusted hops.
        assert_eq!(client_address(ip("::1"), None, &trusted), ip("::1"));
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("10.0.0.9"), &trusted),
            ip("10.0.0.9")
        );
        // Garbage after a valid hop stops the walk at the last trusted hop.
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("203.0.113.5, junk"), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("2001:db8::1"), &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn cidrs_parse_or_name_the_bad_one() {
        assert_eq!(parse_cidrs("127.0.0.1/32, ::1").unwrap().len(), 2);
        assert!(parse_cidrs("10.0.0.0/8,banana")
            .unwrap_err()
            .contains("banana"));
    }

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let mut rl = RateLimiter::new(2.0, 3.0, 100);
        let a = ip("203.0.113.1");
        for _ in 0..3 {
            assert!(rl.take(a, 0).is_ok());
        }
        assert_eq!(rl.take(a, 0), Err(1));
        // Another client is unaffected.
        assert!(rl.take(ip("203.0.113.2"), 0).is_ok());
        // Half a second refills one token at 2/s.
        assert!(rl.take(a, 500).is_ok());
        assert!(rl.take(a, 500).is_err());
    }

    #[test]
    fn memory_is_bounded_by_max_clients() {
        let mut rl = RateLimiter::new(1.0, 1.0, 1000);
        for i in 0..10_000u32 {
            let _ = rl.take(IpAddr::from(i.to_be_bytes()), i64::from(i));
            assert!(rl.clients() <= 1000);
        }
    }
}
