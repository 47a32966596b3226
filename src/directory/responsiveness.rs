//! How each directory service answers referrals made through the gateway: over the last 90
//! days, the median days from a referral to its first answer (the organisation accepting or
//! declining it) and the share accepted, shown only when at least five referrals stand behind
//! the figures. Computed from our own records (`DirectoryFeeds::service_referrals`) into a
//! table kept beside the search index, refreshed after status reports and periodically, so a
//! search reads it and never queries for it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::store::ServiceReferral;

/// The window the figures cover.
pub const WINDOW_DAYS: i64 = 90;
/// The fewest referrals that figures are shown for.
pub const MIN_REFERRALS: usize = 5;

/// The extension carrying a service's figures (complex: `referrals`, `medianDaysToFirstResponse`,
/// `shareAccepted`, `period`).
pub const RESPONSIVENESS_EXTENSION: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/service-responsiveness";

/// One service's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Referrals made to it in the window.
    pub referrals: usize,
    /// Median days to the first answer, over the referrals answered (none answered: `None`).
    pub median_days_to_first_response: Option<f64>,
    /// Accepted referrals over all referrals in the window.
    pub share_accepted: f64,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Figures {
    /// The `service-responsiveness` extension.
    pub fn extension(&self) -> Value {
        let mut parts = vec![
            json!({"url": "referrals", "valueUnsignedInt": self.referrals}),
            json!({"url": "shareAccepted", "valueDecimal": round2(self.share_accepted)}),
            json!({"url": "period", "valuePeriod": {
                "start": self.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "end": self.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}),
        ];
        if let Some(days) = self.median_days_to_first_response {
            parts.insert(
                1,
                json!({"url": "medianDaysToFirstResponse", "valueDecimal": round1(days)}),
            );
        }
        json!({"url": RESPONSIVENESS_EXTENSION, "extension": parts})
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The figures of every service with at least [`MIN_REFERRALS`] referrals since `since`.
pub fn compute(
    referrals: &[ServiceReferral],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> HashMap<String, Figures> {
    let mut by_service: HashMap<&str, Vec<&ServiceReferral>> = HashMap::new();
    for r in referrals.iter().filter(|r| r.created_at >= since) {
        by_service.entry(r.service_id.as_str()).or_default().push(r);
    }
    by_service
        .into_iter()
        .filter(|(_, rs)| rs.len() >= MIN_REFERRALS)
        .map(|(id, rs)| {
            let mut days: Vec<f64> = rs
                .iter()
                .filter_map(|r| {
                    let answered = r.first_response_at?;
                    let seconds = (answered - r.created_at).num_seconds().max(0);
                    Some(seconds as f64 / 86_400.0)
                })
                .collect();
            days.sort_by(f64::total_cmp);
            let accepted = rs.iter().filter(|r| r.accepted).count();
            let figures = Figures {
                referrals: rs.len(),
                median_days_to_first_response: median(&days),
                share_accepted: accepted as f64 / rs.len() as f64,
                since,
                until,
            };
            (id.to_string(), figures)
        })
        .collect()
}

/// The median of sorted values.
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Puts a service's figures on its HealthcareService (replacing any there), or leaves it as
/// it is when it has none.
pub fn annotate(service: &mut Value, figures: Option<&Figures>) {
    let Some(figures) = figures else { return };
    let Some(object) = service.as_object_mut() else {
        return;
    };
    let extensions = object.entry("extension").or_insert_with(|| json!([]));
    if let Some(list) = extensions.as_array_mut() {
        list.retain(|e| e["url"] != RESPONSIVENESS_EXTENSION);
        list.push(figures.extension());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn referral(
        service: &str,
        made: DateTime<Utc>,
        hours: Option<i64>,
        accepted: bool,
    ) -> ServiceReferral {
        ServiceReferral {
            service_id: service.into(),
            created_at: made,
            first_response_at: hours.map(|h| made + Duration::hours(h)),
            accepted,
        }
    }

    #[test]
    fn five_referrals_give_figures_and_four_do_not() {
        let now = Utc::now();
        let since = now - Duration::days(WINDOW_DAYS);
        let made = now - Duration::days(10);
        let mut rows = vec![
            referral("knit", made, Some(12), true),
            referral("knit", made, Some(24), true),
            referral("knit", made, Some(72), false),
            referral("knit", made, Some(48), true),
            referral("knit", made, None, false),
            // Older than the window: not counted.
            referral("knit", now - Duration::days(91), Some(1), true),
        ];
        rows.extend((0..4).map(|_| referral("lunch", made, Some(1), true)));
        let figures = compute(&rows, since, now);
        assert!(!figures.contains_key("lunch"));
        let knit = &figures["knit"];
        assert_eq!(knit.referrals, 5);
        // Answered after 0.5, 1, 2 and 3 days: the median is 1.5.
        assert_eq!(knit.median_days_to_first_response, Some(1.5));
        assert_eq!(knit.share_accepted, 0.6);
        let ext = knit.extension();
        assert_eq!(ext["url"], RESPONSIVENESS_EXTENSION);
        assert_eq!(ext["extension"][1]["valueDecimal"], 1.5);
        assert_eq!(ext["extension"][2]["valueDecimal"], 0.6);
    }

    #[test]
    fn none_answered_has_no_median() {
        let now = Utc::now();
        let rows: Vec<_> = (0..5)
            .map(|_| referral("quiet", now, None, false))
            .collect();
        let figures = compute(&rows, now - Duration::days(WINDOW_DAYS), now);
        assert_eq!(figures["quiet"].median_days_to_first_response, None);
        let ext = figures["quiet"].extension();
        let urls: Vec<&str> = ext["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["url"].as_str())
            .collect();
        assert_eq!(urls, ["referrals", "shareAccepted", "period"]);
    }

    #[test]
    fn annotating_replaces_earlier_figures() {
        let now = Utc::now();
        let rows: Vec<_> = (0..5).map(|_| referral("s", now, Some(1), true)).collect();
        let figures = compute(&rows, now - Duration::days(WINDOW_DAYS), now);
        let mut service = json!({"resourceType": "HealthcareService", "extension": [
            {"url": "https://fhir.sp-gateway.uk/StructureDefinition/referrals-through-gateway", "valueBoolean": true}]});
        annotate(&mut service, figures.get("s"));
        annotate(&mut service, figures.get("s"));
        assert_eq!(service["extension"].as_array().map(Vec::len), Some(2));
        let mut plain = json!({"resourceType": "HealthcareService"});
        annotate(&mut plain, None);
        assert!(plain.get("extension").is_none());
    }
}
