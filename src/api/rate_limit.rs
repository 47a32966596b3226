//! Rate limits by who is calling, not by what a request claims: a bucket per authenticated GP
//! client, VCS organisation, commissioner and the operator, and a bucket per peer address (per /64 for IPv6)
//! for everything that authenticates nobody (no token, a bogus one, the token endpoint). Made-up
//! tokens therefore share their sender's one bucket, and buckets left idle until full again are
//! evicted (`evict_idle`, run every minute), so memory stays bounded whatever callers send.
//! VCS organisations' writes have a bucket of their own per organisation. Past a limit the answer
//! is `429` with `Retry-After`, in the dialect of the API called (`errors::throttle`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::errors::throttle;
use super::AppState;
use crate::config::ServerConfig;
use crate::domain::{ClientId, CommissionerId, VcsId};

/// Whose bucket a request is counted in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    Client(ClientId),
    Vcs(VcsId),
    Operator,
    Commissioner(CommissionerId),
    /// Nobody authenticated: the peer address (IPv6 by its /64, what one host is usually given).
    Peer(IpAddr),
}

impl Caller {
    pub fn peer(address: Option<IpAddr>) -> Caller {
        let address = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Caller::Peer(match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(bits.into())
                }
            },
            v4 => v4,
        })
    }
}

/// A limit was reached: how long until the next request is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
}

/// Marks a request as counted by the extractor that authenticated (or refused) it.
#[derive(Debug, Clone, Copy)]
pub struct Counted;

/// The buckets, shared by every HTTP worker.
pub struct RateLimits {
    requests: Option<DefaultKeyedRateLimiter<Caller>>,
    vcs_writes: Option<DefaultKeyedRateLimiter<VcsId>>,
}

/// `burst` at once, then one per `period`.
pub(super) fn quota(period: Duration, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

fn check<K: Clone + Eq + std::hash::Hash>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Throttled> {
    match limiter {
        Some(limiter) => check_key(limiter, key),
        None => Ok(()),
    }
}

/// Counts one request of `key` in `limiter`.
pub(super) fn check_key<K: Clone + Eq + std::hash::Hash>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Throttled> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Throttled {
            retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
        }
    })
}

impl RateLimits {
    /// `rate_limit_per_second = 0` switches request limits off, `vcs_writes_per_minute = 0`
    /// the VCS write limit.
    pub fn new(server: &ServerConfig) -> Self {
        let requests = (server.rate_limit_per_second > 0).then(|| {
            let period = Duration::from_nanos(1_000_000_000 / server.rate_limit_per_second);
            RateLimiter::keyed(quota(period, server.rate_limit_burst))
        });
        let vcs_writes = (server.vcs_writes_per_minute > 0).then(|| {
            let period = Duration::from_secs(60) / server.vcs_writes_per_minute;
            RateLimiter::keyed(quota(period, server.vcs_write_burst))
        });
        RateLimits {
            requests,
            vcs_writes,
        }
    }

    /// Counts one request of `caller`.
    pub fn charge(&self, caller: &Caller) -> Result<(), Throttled> {
        check(&self.requests, caller)
    }

    /// Counts one write (status report or outcome) of a VCS organisation.
    pub fn charge_vcs_write(&self, vcs: &VcsId) -> Result<(), Throttled> {
        check(&self.vcs_writes, vcs)
    }

    /// Forgets buckets that have filled up again (their caller has been idle): such a bucket is
    /// the same as a new one, so nothing is lost, and the maps hold only recent callers.
    pub fn evict_idle(&self) {
        if let Some(limiter) = &self.requests {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.vcs_writes {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many buckets are held.
    pub fn buckets(&self) -> usize {
        self.requests.as_ref().map_or(0, |l| l.len())
            + self.vcs_writes.as_ref().map_or(0, |l| l.len())
    }
}

/// Counts `caller` for `request` (whose extractor authenticated or refused it).
pub fn count(request: &HttpRequest, limits: &RateLimits, caller: &Caller) -> Result<(), Throttled> {
    request.extensions_mut().insert(Counted);
    limits.charge(caller)
}

/// The peer bucket of a request.
pub fn peer_of(request: &HttpRequest) -> Caller {
    Caller::peer(request.peer_addr().map(|a| a.ip()))
}

/// Middleware: a request without a token is counted by its peer address before anything runs;
/// one with a token is counted by the extractor that reads it, or, on a route that authenticates
/// nobody (metadata, probes, unknown paths), by its peer address once answered.
pub async fn count_unauthenticated(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let has_token = request.headers().contains_key("authorization");
    if !has_token {
        if let Err(throttled) = state.limits.charge(&peer_of(request.request())) {
            let response = throttle(request.request(), throttled);
            return Ok(request.into_response(response));
        }
    }
    let response = next.call(request).await?;
    if has_token && response.request().extensions().get::<Counted>().is_none() {
        // Counted for the next request: this one is answered already.
        let _ = state.limits.charge(&peer_of(response.request()));
    }
    Ok(response.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: u64, burst: u32) -> RateLimits {
        RateLimits::new(&ServerConfig {
            rate_limit_per_second: per_second,
            rate_limit_burst: burst,
            vcs_writes_per_minute: 1,
            vcs_write_burst: 2,
            ..ServerConfig::default()
        })
    }

    /// Made-up tokens authenticate nobody, so every one of them is counted in its sender's peer
    /// bucket: 10,000 of them make one bucket, not 10,000, and the real client keeps its own.
    #[test]
    fn bogus_tokens_share_their_senders_bucket() {
        let limits = limits(1, 20);
        let attacker: IpAddr = "203.0.113.9".parse().expect("address");
        let refused = (0..10_000)
            .map(|i| {
                let request = actix_web::test::TestRequest::default()
                    .insert_header(("authorization", format!("Bearer bogus-{i}")))
                    .peer_addr(std::net::SocketAddr::new(attacker, 40_000))
                    .to_http_request();
                count(&request, &limits, &peer_of(&request))
            })
            .filter(Result::is_err)
            .count();
        // The burst, then refused (a few more let through as the bucket refills at 1/s).
        assert!(refused >= 10_000 - 30, "{refused} refused");
        assert_eq!(limits.buckets(), 1);
        let client = Caller::Client("emis-demo".parse().expect("client id"));
        assert_eq!(limits.charge(&client), Ok(()));
        assert_eq!(limits.buckets(), 2);
    }

    /// 10,000 senders (or one IPv6 host's addresses) leave nothing behind once idle.
    #[test]
    fn idle_buckets_are_evicted() {
        let limits = limits(1000, 1);
        for i in 0..10_000u32 {
            let _ = limits.charge(&Caller::peer(Some(IpAddr::from(i.to_be_bytes()))));
        }
        assert_eq!(limits.buckets(), 10_000);
        let host: std::net::Ipv6Addr = "2001:db8:1:2::".parse().expect("address");
        for i in 0..1000u128 {
            let _ = limits.charge(&Caller::peer(Some(IpAddr::V6(
                (u128::from(host) + i).into(),
            ))));
        }
        assert_eq!(limits.buckets(), 10_001, "one /64, one bucket");
        std::thread::sleep(Duration::from_millis(50));
        limits.evict_idle();
        assert_eq!(limits.buckets(), 0);
    }

    #[test]
    fn vcs_writes_have_a_bucket_per_organisation() {
        let limits = limits(0, 1);
        let carers: VcsId = "carers-count".parse().expect("vcs id");
        let knit: VcsId = "valley-knit-natter".parse().expect("vcs id");
        assert!(limits.charge_vcs_write(&carers).is_ok());
        assert!(limits.charge_vcs_write(&carers).is_ok());
        let throttled = limits
            .charge_vcs_write(&carers)
            .expect_err("over the burst");
        assert!(
            (1..=60).contains(&throttled.retry_after_secs),
            "{throttled:?}"
        );
        assert!(limits.charge_vcs_write(&knit).is_ok());
        assert!(
            limits.charge(&Caller::Operator).is_ok(),
            "requests unlimited"
        );
    }
}
