//! Why a VCS organisation declined a referral, as a code (`profiles/sp/CodeSystem-decline-reason.json`).
//!
//! The organisation's own words stay the reason the GP practice reads (`Task.statusReason.text`);
//! the code beside them (`Task.statusReason.coding`) is what commissioners' reports count, since
//! free text cannot be grouped without publishing what someone wrote.

/// Our CodeSystem of decline reasons.
pub const DECLINE_REASON_SYSTEM: &str = "https://fhir.sp-gateway.uk/CodeSystem/decline-reason";

/// One code of CodeSystem `decline-reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeclineReason {
    NoCapacity,
    NotEligible,
    OutsideArea,
    NeedsBeyondService,
    Risk,
    AlreadySupported,
    InsufficientInformation,
    Other,
}

impl DeclineReason {
    /// Every code, in the CodeSystem's order (the reports' column order).
    pub const ALL: [DeclineReason; 8] = [
        DeclineReason::NoCapacity,
        DeclineReason::NotEligible,
        DeclineReason::OutsideArea,
        DeclineReason::NeedsBeyondService,
        DeclineReason::Risk,
        DeclineReason::AlreadySupported,
        DeclineReason::InsufficientInformation,
        DeclineReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeclineReason::NoCapacity => "no-capacity",
            DeclineReason::NotEligible => "not-eligible",
            DeclineReason::OutsideArea => "outside-area",
            DeclineReason::NeedsBeyondService => "needs-beyond-service",
            DeclineReason::Risk => "risk",
            DeclineReason::AlreadySupported => "already-supported",
            DeclineReason::InsufficientInformation => "insufficient-information",
            DeclineReason::Other => "other",
        }
    }

    /// The CodeSystem's display: short enough for a report column or a radio button.
    pub fn display(self) -> &'static str {
        match self {
            DeclineReason::NoCapacity => "No places",
            DeclineReason::NotEligible => "Does not meet the criteria",
            DeclineReason::OutsideArea => "Outside the area",
            DeclineReason::NeedsBeyondService => "Needs beyond the service",
            DeclineReason::Risk => "Cannot support safely",
            DeclineReason::AlreadySupported => "Already supported",
            DeclineReason::InsufficientInformation => "Not enough information",
            DeclineReason::Other => "Other reason",
        }
    }

    /// The code named `s` exactly (lower case, as in the API).
    pub fn parse(s: &str) -> Option<Self> {
        DeclineReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The enum and the published CodeSystem must say the same: same codes, same order, same
    /// displays, so a report column, a radio button and a Task coding never disagree.
    #[test]
    fn matches_the_code_system() {
        let cs: Value = serde_json::from_str(include_str!(
            "../../profiles/sp/CodeSystem-decline-reason.json"
        ))
        .expect("CodeSystem JSON");
        assert_eq!(cs["url"], DECLINE_REASON_SYSTEM);
        let concepts: Vec<(&str, &str)> = cs["concept"]
            .as_array()
            .expect("concepts")
            .iter()
            .map(|c| {
                (
                    c["code"].as_str().expect("code"),
                    c["display"].as_str().expect("display"),
                )
            })
            .collect();
        let ours: Vec<(&str, &str)> = DeclineReason::ALL
            .iter()
            .map(|r| (r.as_str(), r.display()))
            .collect();
        assert_eq!(concepts, ours);
        assert_eq!(cs["count"], ours.len());
    }

    #[test]
    fn parse_and_serde_agree() {
        for reason in DeclineReason::ALL {
            assert_eq!(DeclineReason::parse(reason.as_str()), Some(reason));
            let json = serde_json::to_value(reason).expect("serialises");
            assert_eq!(json, reason.as_str());
        }
        assert_eq!(DeclineReason::parse("No-Capacity"), None);
        assert_eq!(DeclineReason::parse(""), None);
    }
}
