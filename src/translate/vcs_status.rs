//! The VCS-side status of a referral: the vocabulary a VCS organisation reports in, which status
//! may follow which, and what each means for the FHIR Task and ServiceRequest the GP reads.

use crate::store::ReferralStatus;

/// The VCS-side status vocabulary, valid by construction.
///
/// Transition table (`can_become`): row = current status, ✓ = may be reported next.
///
/// | from \ to          | acc | dec | con | utc | att | dna | com | can |
/// |--------------------|-----|-----|-----|-----|-----|-----|-----|-----|
/// | received           |  ✓  |  ✓  |     |     |     |     |     |  ✓  |
/// | accepted           |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | contacted          |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | unable-to-contact  |     |     |  ✓  |  ✓  |  ✓  |  ✓  |     |  ✓  |
/// | attended           |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | did-not-attend     |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | completed          |     |     |     |     |     |     |     |     |
/// | declined           |     |     |     |     |     |     |     |     |
/// | cancelled          |     |     |     |     |     |     |     |     |
///
/// Why: `accepted`/`declined` are the organisation's one answer to the referral, so they come
/// from `received` only (declined maps to Task `rejected`, which FHIR allows only before work
/// starts). After acceptance a link worker's steps come in any order and repeat (several
/// sessions attended or missed, another failed phone call, contact made after failed attempts),
/// so we do not police them. `completed` means the agreed support ended as planned, which cannot
/// follow straight on from not reaching the person (report `contacted`/`attended` first, or
/// `cancelled`). `cancelled` is possible from every open state, including `received` (the GP
/// practice revokes the referral before the organisation answers). Nothing follows the three
/// terminal states, and nothing ever goes back to `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VcsStatus {
    /// Initial: delivered, not yet answered. Never reported by a VCS organisation.
    Received,
    Accepted,
    Declined,
    Contacted,
    UnableToContact,
    Attended,
    DidNotAttend,
    Completed,
    Cancelled,
}

impl VcsStatus {
    /// Every status, in journey order.
    pub const ALL: [VcsStatus; 9] = [
        VcsStatus::Received,
        VcsStatus::Accepted,
        VcsStatus::Declined,
        VcsStatus::Contacted,
        VcsStatus::UnableToContact,
        VcsStatus::Attended,
        VcsStatus::DidNotAttend,
        VcsStatus::Completed,
        VcsStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VcsStatus::Received => "received",
            VcsStatus::Accepted => "accepted",
            VcsStatus::Declined => "declined",
            VcsStatus::Contacted => "contacted",
            VcsStatus::UnableToContact => "unable-to-contact",
            VcsStatus::Attended => "attended",
            VcsStatus::DidNotAttend => "did-not-attend",
            VcsStatus::Completed => "completed",
            VcsStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `s` (exact, lower case, as in the API), `received` included.
    pub fn parse(s: &str) -> Option<Self> {
        VcsStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Statuses the GP practice cannot act on without an explanation; they map to the Task
    /// statuses for which SP-ReferralTask requires `statusReason.text` (sp-task-1).
    pub fn needs_reason(self) -> bool {
        matches!(
            self,
            VcsStatus::Declined | VcsStatus::UnableToContact | VcsStatus::Cancelled
        )
    }

    /// No status may follow these.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            VcsStatus::Completed | VcsStatus::Declined | VcsStatus::Cancelled
        )
    }

    /// Whether `next` may follow `self`; see the table on the type.
    pub fn can_become(self, next: VcsStatus) -> bool {
        use VcsStatus::*;
        match self {
            Completed | Declined | Cancelled => false,
            Received => matches!(next, Accepted | Declined | Cancelled),
            UnableToContact => matches!(
                next,
                Contacted | UnableToContact | Attended | DidNotAttend | Cancelled
            ),
            Accepted | Contacted | Attended | DidNotAttend => matches!(
                next,
                Contacted | UnableToContact | Attended | DidNotAttend | Completed | Cancelled
            ),
        }
    }

    /// The FHIR Task status for this VCS status (ValueSet referral-task-status).
    pub fn task_status(self) -> &'static str {
        match self {
            VcsStatus::Received => "requested",
            VcsStatus::Accepted => "accepted",
            VcsStatus::Declined => "rejected",
            VcsStatus::Contacted | VcsStatus::Attended | VcsStatus::DidNotAttend => "in-progress",
            VcsStatus::UnableToContact => "failed",
            VcsStatus::Completed => "completed",
            VcsStatus::Cancelled => "cancelled",
        }
    }

    /// ServiceRequest.status that follows, if it changes: the referral is done when the support
    /// completes and revoked when it is cancelled. A declined referral stays `active` so that the
    /// GP practice can send the person elsewhere.
    pub fn service_request_status(self) -> Option<ReferralStatus> {
        match self {
            VcsStatus::Completed => Some(ReferralStatus::Completed),
            VcsStatus::Cancelled => Some(ReferralStatus::Revoked),
            _ => None,
        }
    }

    /// Task.businessStatus code and display from our CodeSystem referral-business-status, for
    /// the steps Task.status alone cannot tell apart. The code system's `declined` means the
    /// *person* declined, not the organisation, so our `Declined` (Task rejected) carries none.
    pub fn business_status(self) -> Option<(&'static str, &'static str)> {
        match self {
            VcsStatus::Contacted => Some(("contacted", "Contacted")),
            VcsStatus::UnableToContact => Some(("unable-to-contact", "Unable to contact")),
            VcsStatus::Attended => Some(("attended", "Attended")),
            VcsStatus::DidNotAttend => Some(("did-not-attend", "Did not attend")),
            VcsStatus::Completed => Some(("completed", "Support completed")),
            _ => None,
        }
    }

    /// Statuses in which the organisation is working with the person (execution has started).
    pub fn is_under_way(self) -> bool {
        !matches!(self, VcsStatus::Received | VcsStatus::Declined) && !self.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::VcsStatus::{self, *};

    #[test]
    fn status_names_round_trip_and_match_serde() {
        for s in VcsStatus::ALL {
            assert_eq!(VcsStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(json!(s.as_str())));
        }
        assert_eq!(VcsStatus::parse("Accepted"), None);
        assert_eq!(VcsStatus::parse("rejected"), None);
    }

    #[test]
    fn terminal_states_refuse_everything() {
        for from in [Completed, Declined, Cancelled] {
            assert!(from.is_terminal());
            for to in VcsStatus::ALL {
                assert!(!from.can_become(to), "{} -> {}", from.as_str(), to.as_str());
            }
        }
    }

    /// The table on the type, row by row: what may follow each status.
    #[test]
    fn transition_table() {
        const WORKING: &[VcsStatus] = &[
            Contacted,
            UnableToContact,
            Attended,
            DidNotAttend,
            Completed,
            Cancelled,
        ];
        let table: [(VcsStatus, &[VcsStatus]); 9] = [
            (Received, &[Accepted, Declined, Cancelled]),
            (Accepted, WORKING),
            (Contacted, WORKING),
            (
                UnableToContact,
                &[
                    Contacted,
                    UnableToContact,
                    Attended,
                    DidNotAttend,
                    Cancelled,
                ],
            ),
            (Attended, WORKING),
            (DidNotAttend, WORKING),
            (Completed, &[]),
            (Declined, &[]),
            (Cancelled, &[]),
        ];
        for (from, allowed) in table {
            let found: Vec<VcsStatus> = VcsStatus::ALL
                .into_iter()
                .filter(|&to| from.can_become(to))
                .collect();
            assert_eq!(found, allowed, "from {}", from.as_str());
        }
        // Nothing goes back to received, and the organisation answers the referral once.
        for from in VcsStatus::ALL {
            assert!(!from.can_become(Received));
            assert_eq!(from.can_become(Accepted), from == Received);
            assert_eq!(from.can_become(Declined), from == Received);
        }
        // The examples from the issue.
        assert!(!Completed.can_become(Accepted));
        assert!(Attended.can_become(Attended));
        assert!(DidNotAttend.can_become(DidNotAttend));
        assert!(UnableToContact.can_become(Contacted));
    }

    #[test]
    fn reasons_are_required_exactly_where_the_task_needs_one() {
        for s in VcsStatus::ALL {
            let expected = matches!(s, Declined | UnableToContact | Cancelled);
            assert_eq!(s.needs_reason(), expected, "{}", s.as_str());
            // sp-task-1 wants statusReason.text on exactly these Task statuses.
            let task_needs = matches!(s.task_status(), "rejected" | "cancelled" | "failed");
            assert_eq!(s.needs_reason(), task_needs, "{}", s.as_str());
        }
    }

    #[test]
    fn mapping_per_status() {
        // (status, Task.status, businessStatus, ServiceRequest.status, under way)
        let table = [
            (Received, "requested", None, None, false),
            (Accepted, "accepted", None, None, true),
            (Declined, "rejected", None, None, false),
            (Contacted, "in-progress", Some("contacted"), None, true),
            (
                UnableToContact,
                "failed",
                Some("unable-to-contact"),
                None,
                true,
            ),
            (Attended, "in-progress", Some("attended"), None, true),
            (
                DidNotAttend,
                "in-progress",
                Some("did-not-attend"),
                None,
                true,
            ),
            (
                Completed,
                "completed",
                Some("completed"),
                Some("completed"),
                false,
            ),
            (Cancelled, "cancelled", None, Some("revoked"), false),
        ];
        for (status, task_status, business, service_request, under_way) in table {
            let name = status.as_str();
            assert_eq!(status.task_status(), task_status, "{name}");
            assert_eq!(status.business_status().map(|b| b.0), business, "{name}");
            assert_eq!(
                status
                    .service_request_status()
                    .map(crate::store::ReferralStatus::as_str),
                service_request,
                "{name}"
            );
            assert_eq!(status.is_under_way(), under_way, "{name}");
        }
    }
}
