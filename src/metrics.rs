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
    /// Submissions refused by intake, by GP client and the rule (message id) broken: how an
    /// operator tells a vendor which rule its system breaks most.
    pub intake_refused: IntCounterVec,
    /// Submissions refused by intake, by GP client, each counted once (the refusal rate's
    /// numerator beside `sp_referrals_accepted_total`).
    pub intake_refusals: IntCounterVec,
}

/// What the store says when scraped; `None` in [`Metrics::render`] when it could not be asked.
pub struct StoreFigures {
    pub outbox: OutboxStats,
    /// Endpoints the delivery worker has switched off after failing (operator's **Enable**).
    pub disabled_endpoints: usize,
    /// The store refuses every write for good (a failed commit or fsync: restart needed).
    pub writes_refused: bool,
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
        let intake_refused = IntCounterVec::new(
            Opts::new(
                "sp_intake_refused_total",
                "Submissions refused by intake, by GP client and the message id of each rule broken",
            ),
            &["client", "message_id"],
        )?;
        let intake_refusals = IntCounterVec::new(
            Opts::new(
                "sp_intake_refusals_total",
                "Submissions refused by intake (4xx), by GP client",
            ),
            &["client"],
        )?;
        registry.register(Box::new(intake_refused.clone()))?;
        registry.register(Box::new(intake_refusals.clone()))?;
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
            intake_refused,
            intake_refusals,
        })
    }

    /// The Prometheus text exposition, with the store's figures appended. When the store could
    /// not be asked (`None`), the scrape still answers: `sp_store_up 0` and the process's own
    /// counters, so "database unreachable" is an alert rather than a failed scrape.
    pub fn render(&self, store: Option<&StoreFigures>) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        let mut text = String::from_utf8(buffer).unwrap_or_default();
        let mut gauge = |name: &str, help: &str, value: f64| {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        };
        gauge(
            "sp_store_up",
            "1 when the store answered this scrape, 0 when it could not be reached",
            if store.is_some() { 1.0 } else { 0.0 },
        );
        if let Some(figures) = store {
            gauge(
                "sp_outbox_pending",
                "Messages waiting for delivery",
                figures.outbox.pending as f64,
            );
            gauge(
                "sp_outbox_oldest_pending_age_seconds",
                "Age of the oldest message waiting for delivery",
                figures.outbox.oldest_pending_age_seconds,
            );
            gauge(
                "sp_outbox_dead",
                "Dead-lettered messages",
                figures.outbox.dead as f64,
            );
            gauge(
                "sp_endpoints_disabled",
                "Delivery endpoints switched off after failing, waiting for an operator to enable them",
                figures.disabled_endpoints as f64,
            );
            gauge(
                "sp_store_writes_refused",
                "1 once the store refuses every write after a failed commit or fsync (restart needed)",
                if figures.writes_refused { 1.0 } else { 0.0 },
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_is_a_series_not_a_failed_scrape() {
        let metrics = Metrics::new().unwrap();
        metrics.referrals_accepted.inc();
        let down = metrics.render(None);
        assert!(down.contains("sp_store_up 0"), "{down}");
        assert!(down.contains("sp_referrals_accepted_total 1"), "{down}");
        assert!(
            !down.contains("sp_outbox_pending"),
            "no stale queue figures: {down}"
        );

        let figures = StoreFigures {
            outbox: OutboxStats {
                pending: 3,
                dead: 1,
                oldest_pending_age_seconds: 12.5,
            },
            disabled_endpoints: 2,
            writes_refused: false,
        };
        let up = metrics.render(Some(&figures));
        for line in [
            "sp_store_up 1",
            "sp_outbox_pending 3",
            "sp_outbox_dead 1",
            "sp_outbox_oldest_pending_age_seconds 12.5",
            "sp_endpoints_disabled 2",
            "sp_store_writes_refused 0",
        ] {
            assert!(up.lines().any(|l| l == line), "{line} in {up}");
        }
    }
}
