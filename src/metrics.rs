//! Prometheus metrics. Counters and histograms live here; queue figures are read from the store
//! when scraped, so every replica reports the shared truth.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::store::OutboxStats;

pub struct Metrics {
    registry: Registry,
    pub referrals_accepted: IntCounter,
    pub delivery_attempts: IntCounterVec,
    pub dead_lettered: IntCounter,
    pub delivery_latency: Histogram,
    pub leases_reclaimed: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let referrals_accepted = IntCounter::new(
            "sp_referrals_accepted_total",
            "Referrals accepted (201) by this process",
        )?;
        let delivery_attempts = IntCounterVec::new(
            Opts::new(
                "sp_delivery_attempts_total",
                "Webhook delivery attempts by outcome",
            ),
            &["outcome"],
        )?;
        let dead_lettered = IntCounter::new(
            "sp_delivery_dead_lettered_total",
            "Messages dead-lettered by this process",
        )?;
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new("sp_delivery_latency_seconds", "Time of one webhook request")
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
        )?;
        let leases_reclaimed = IntCounter::new(
            "sp_delivery_leases_reclaimed_total",
            "Expired delivery leases (of a replica that died or hung) released by this process",
        )?;
        registry.register(Box::new(leases_reclaimed.clone()))?;
        registry.register(Box::new(referrals_accepted.clone()))?;
        registry.register(Box::new(delivery_attempts.clone()))?;
        registry.register(Box::new(dead_lettered.clone()))?;
        registry.register(Box::new(delivery_latency.clone()))?;
        Ok(Metrics {
            registry,
            referrals_accepted,
            delivery_attempts,
            dead_lettered,
            delivery_latency,
            leases_reclaimed,
        })
    }

    /// The Prometheus text exposition, with the store's queue figures appended; `writes_refused`
    /// says whether the store refuses writes for good (a failed fsync: restart needed).
    pub fn render(&self, stats: &OutboxStats, writes_refused: bool) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        let mut text = String::from_utf8(buffer).unwrap_or_default();
        let gauge = |name: &str, help: &str, value: f64| {
            format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
        };
        text.push_str(&gauge(
            "sp_outbox_pending",
            "Messages waiting for delivery",
            stats.pending as f64,
        ));
        text.push_str(&gauge(
            "sp_outbox_oldest_pending_age_seconds",
            "Age of the oldest message waiting for delivery",
            stats.oldest_pending_age_seconds,
        ));
        text.push_str(&gauge(
            "sp_outbox_dead",
            "Dead-lettered messages",
            stats.dead as f64,
        ));
        text.push_str(&gauge(
            "sp_store_writes_refused",
            "1 once the store refuses every write after a failed commit or fsync (restart needed)",
            if writes_refused { 1.0 } else { 0.0 },
        ));
        text
    }
}
