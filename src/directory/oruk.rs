//! The Open Referral UK fields the gateway maps, as serde types.
//!
//! A service reaches these types only after it passed the UK profile's JSON Schema
//! (`import.rs`), so they parse rather than validate: every field the schema makes optional is
//! optional here, unknown fields are ignored, and the few fields with a closed list in the
//! schema (`status`, `location_type`, `freq`) are enums. Two HSDS 3.0 fields the UK profile
//! leaves out are read when a feed carries them anyway: `phones` (on the service and on its
//! contacts) and `eligibility_description`.

use serde::Deserialize;

/// One service, in the `service_full` shape (a list page's items are the same object with fewer
/// fields filled in).
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub status: ServiceStatus,
    #[serde(default)]
    pub fees: Option<String>,
    #[serde(default)]
    pub minimum_age: Option<f64>,
    #[serde(default)]
    pub maximum_age: Option<f64>,
    /// HSDS 3.0 (not in the UK profile).
    #[serde(default)]
    pub eligibility_description: Option<String>,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub service_areas: Vec<ServiceArea>,
    #[serde(default)]
    pub service_at_locations: Vec<ServiceAtLocation>,
    #[serde(default)]
    pub organization: Option<Organization>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// HSDS 3.0 (not in the UK profile).
    #[serde(default)]
    pub phones: Vec<Phone>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// `service.status`, as the schema lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ServiceStatus {
    #[serde(rename = "active")]
    Active,
    #[serde(rename = "inactive")]
    Inactive,
    #[serde(rename = "defunct")]
    Defunct,
    #[serde(rename = "temporarily closed")]
    TemporarilyClosed,
}

/// When a service (or one of its locations) is open: iCal-like recurrence plus times.
#[derive(Debug, Clone, Deserialize)]
pub struct Schedule {
    pub id: String,
    #[serde(default)]
    pub freq: Option<Frequency>,
    #[serde(default)]
    pub interval: Option<f64>,
    /// Comma separated `MO`..`SU`; for `MONTHLY` each may carry an ordinal (`2MO`, `-1FR`).
    #[serde(default)]
    pub byday: Option<String>,
    #[serde(default)]
    pub opens_at: Option<String>,
    #[serde(default)]
    pub closes_at: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Frequency {
    #[serde(rename = "WEEKLY")]
    Weekly,
    #[serde(rename = "MONTHLY")]
    Monthly,
}

/// Where a service is available. The gateway reads `extent` when `extent_type` is `text`
/// (`coverage.rs`).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceArea {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub extent: Option<String>,
    #[serde(default)]
    pub extent_type: Option<String>,
    #[serde(default)]
    pub service_area: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAtLocation {
    pub id: String,
    #[serde(default)]
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Location {
    pub id: String,
    pub location_type: LocationType,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationType {
    Physical,
    Postal,
    Virtual,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    pub id: String,
    #[serde(default)]
    pub address_1: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub state_province: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub address_type: Option<LocationType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub organization_identifiers: Vec<OrganizationIdentifier>,
}

/// A third-party identifier of an organisation; `identifier_scheme` is an org-id.guide code
/// (`GB-CHC`, `GB-COH`, `GB-NHS`...).
#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationIdentifier {
    #[serde(default)]
    pub identifier_scheme: Option<String>,
    pub identifier_type: String,
    pub identifier: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// HSDS 3.0 (not in the UK profile).
    #[serde(default)]
    pub phones: Vec<Phone>,
}

/// HSDS 3.0 `phone` (the UK profile has the object but attaches it nowhere).
#[derive(Debug, Clone, Deserialize)]
pub struct Phone {
    #[serde(default)]
    pub number: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attribute {
    #[serde(default)]
    pub link_type: Option<String>,
    #[serde(default)]
    pub taxonomy_term: Option<TaxonomyTerm>,
}

/// A term of a taxonomy. The UK profile carries the code in `term` (not `code`).
#[derive(Debug, Clone, Deserialize)]
pub struct TaxonomyTerm {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub taxonomy: Option<String>,
    #[serde(default)]
    pub term: Option<String>,
    #[serde(default)]
    pub term_uri: Option<String>,
}

impl Service {
    pub fn is_active(&self) -> bool {
        self.status == ServiceStatus::Active
    }

    /// The locations of the service, in feed order.
    pub fn locations(&self) -> impl Iterator<Item = &Location> {
        self.service_at_locations
            .iter()
            .filter_map(|sal| sal.location.as_ref())
    }

    /// Every taxonomy term attached to the service itself.
    pub fn taxonomy_terms(&self) -> impl Iterator<Item = &TaxonomyTerm> {
        self.attributes
            .iter()
            .filter_map(|a| a.taxonomy_term.as_ref())
    }

    /// Telephone numbers: the service's own, then its contacts', without repeats.
    pub fn phone_numbers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = self
            .phones
            .iter()
            .chain(self.contacts.iter().flat_map(|c| c.phones.iter()));
        for p in all {
            let n = p.number.as_deref().unwrap_or_default().trim();
            if !n.is_empty() && !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }
}

impl Location {
    /// The location's first address with a postcode (physical addresses first).
    pub fn postal_code(&self) -> Option<&str> {
        let with_code = |a: &&Address| {
            a.postal_code
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty())
        };
        self.addresses
            .iter()
            .filter(with_code)
            .find(|a| a.address_type != Some(LocationType::Postal))
            .or_else(|| self.addresses.iter().find(with_code))
            .and_then(|a| a.postal_code.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_minimal_service_parses_and_unknown_fields_are_ignored() {
        let s: Service = serde_json::from_value(json!({
            "id": "b5d6a1a0-0000-4000-8000-000000000001",
            "name": "Lunch club",
            "status": "temporarily closed",
            "something_local": {"x": 1}
        }))
        .expect("parses");
        assert_eq!(s.status, ServiceStatus::TemporarilyClosed);
        assert!(!s.is_active());
        assert!(s.locations().next().is_none());
        assert!(s.phone_numbers().is_empty());
    }

    #[test]
    fn phones_come_from_the_service_and_its_contacts_once_each() {
        let s: Service = serde_json::from_value(json!({
            "id": "x", "name": "n", "status": "active",
            "phones": [{"id": "p1", "number": "01632 960123"}],
            "contacts": [{"id": "c1", "phones": [{"id": "p2", "number": " 01632 960123 "}, {"id": "p3", "number": "07700 900456"}]}]
        }))
        .expect("parses");
        assert_eq!(s.phone_numbers(), ["01632 960123", "07700 900456"]);
    }

    #[test]
    fn a_locations_postcode_prefers_a_physical_address() {
        let l: Location = serde_json::from_value(json!({
            "id": "l", "location_type": "physical",
            "addresses": [
                {"id": "a1", "address_type": "postal", "postal_code": "HR1 2AA"},
                {"id": "a2", "address_type": "physical", "postal_code": "HR2 0RS"}
            ]
        }))
        .expect("parses");
        assert_eq!(l.postal_code(), Some("HR2 0RS"));
    }
}
