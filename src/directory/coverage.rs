//! Which postcodes a service covers, by the convention of `profiles/README.md` ("Service
//! directory (Open Referral UK)"), and how well a service matches a postcode.
//!
//! 1. A `service_areas` entry with `extent_type` `"text"` whose `extent` lists postcode areas or
//!    districts (`"HR2, HR3, HR9"`, `"RM"`) covers those. When at least one such entry is read,
//!    locations do not widen the coverage.
//! 2. Otherwise the service covers the postcode districts of its physical locations.
//! 3. Otherwise a service whose locations are all `virtual` (and that has no service area the
//!    gateway could not read) covers everywhere.
//! 4. Otherwise it covers no postcode: it is found by need, name and organisation, never by
//!    postcode. Each thing the gateway could not read is returned as a [`CoverageNote`].

use std::collections::BTreeSet;
use std::fmt;

use super::oruk::{LocationType, Service};
use super::postcode::{PostcodeArea, PostcodeDistrict};

/// The postcodes a service covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// Delivered remotely (telephone, online): any postcode.
    Everywhere,
    /// These districts and whole areas (both may be empty: no postcode at all).
    Places {
        districts: BTreeSet<PostcodeDistrict>,
        areas: BTreeSet<PostcodeArea>,
    },
}

/// How a covered postcode is covered; the order is the ranking (best first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchRank {
    /// The postcode's district is named (or is where the service meets).
    District,
    /// The postcode's whole area is named.
    Area,
    /// The service covers everywhere.
    Everywhere,
}

/// Something in a service's places the gateway could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverageNote {
    /// A service area of another kind than `text` (GeoJSON, KML...), or with no extent.
    ExtentNotRead {
        area_id: String,
        extent_type: Option<String>,
    },
    /// A word of a text extent that is neither a postcode area nor a district.
    NotAPlace { area_id: String, word: String },
    /// A physical location whose address has no postcode, or one that is not a UK postcode.
    LocationWithoutPostcode {
        location_id: String,
        postal_code: Option<String>,
    },
    /// Nothing to go by: the service is never found by postcode.
    CoversNoPostcode,
}

impl fmt::Display for CoverageNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoverageNote::ExtentNotRead {
                area_id,
                extent_type,
            } => write!(
                f,
                "service area {area_id}: extent_type {} is not read (only \"text\" listing postcode areas or districts)",
                extent_type.as_deref().map_or("(none)".to_string(), |t| format!("{t:?}"))
            ),
            CoverageNote::NotAPlace { area_id, word } => write!(
                f,
                "service area {area_id}: {word:?} is neither a postcode area nor a district; ignored"
            ),
            CoverageNote::LocationWithoutPostcode {
                location_id,
                postal_code: Some(code),
            } => write!(
                f,
                "location {location_id}: {code:?} is not a UK postcode; the location adds no coverage"
            ),
            CoverageNote::LocationWithoutPostcode {
                location_id,
                postal_code: None,
            } => write!(
                f,
                "location {location_id}: no postcode; the location adds no coverage"
            ),
            CoverageNote::CoversNoPostcode => f.write_str(
                "covers no postcode (no readable service area, no physical location with a postcode, not only virtual): never found by postcode",
            ),
        }
    }
}

/// A place named in a text extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    District(PostcodeDistrict),
    Area(PostcodeArea),
}

/// The places of a text extent (`"HR2, HR3; RM"`), and the words that are neither. An area must
/// be written in capitals (`RM`, not `rm`): in prose, `of`, `to` or `me` would otherwise read as
/// areas. Districts hold a digit and are read in any case.
pub fn read_extent(extent: &str) -> (Vec<Place>, Vec<String>) {
    let mut places = Vec::new();
    let mut unread = Vec::new();
    let words = extent
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|w| !w.is_empty());
    for word in words {
        if let Ok(d) = word.parse::<PostcodeDistrict>() {
            places.push(Place::District(d));
        } else if let Some(a) = word
            .bytes()
            .all(|b| b.is_ascii_uppercase())
            .then(|| word.parse::<PostcodeArea>().ok())
            .flatten()
        {
            places.push(Place::Area(a));
        } else {
            unread.push(word.to_string());
        }
    }
    (places, unread)
}

impl Coverage {
    /// Covers no postcode.
    pub fn nowhere() -> Coverage {
        Coverage::Places {
            districts: BTreeSet::new(),
            areas: BTreeSet::new(),
        }
    }

    /// The coverage of a service by the convention above, with what could not be read.
    pub fn of(service: &Service) -> (Coverage, Vec<CoverageNote>) {
        let mut notes = Vec::new();
        let mut districts = BTreeSet::new();
        let mut areas = BTreeSet::new();
        let mut unread_area = false;
        for sa in &service.service_areas {
            let text = sa.extent_type.as_deref().map(str::trim);
            let extent = sa.extent.as_deref().map(str::trim).unwrap_or_default();
            if !text.is_some_and(|t| t.eq_ignore_ascii_case("text")) || extent.is_empty() {
                unread_area = true;
                notes.push(CoverageNote::ExtentNotRead {
                    area_id: sa.id.clone(),
                    extent_type: sa.extent_type.clone(),
                });
                continue;
            }
            let (places, unread) = read_extent(extent);
            for word in unread {
                notes.push(CoverageNote::NotAPlace {
                    area_id: sa.id.clone(),
                    word,
                });
            }
            if places.is_empty() {
                unread_area = true;
            }
            for p in places {
                match p {
                    Place::District(d) => districts.insert(d),
                    Place::Area(a) => areas.insert(a),
                };
            }
        }
        if !districts.is_empty() || !areas.is_empty() {
            return (Coverage::Places { districts, areas }, notes);
        }
        let mut physical = 0;
        let mut virtual_only = true;
        let mut any_location = false;
        for loc in service.locations() {
            any_location = true;
            match loc.location_type {
                LocationType::Virtual => continue,
                LocationType::Postal => {
                    virtual_only = false;
                    continue;
                }
                LocationType::Physical => {
                    virtual_only = false;
                    physical += 1;
                }
            }
            let code = loc.postal_code();
            match code.and_then(|c| c.parse::<super::postcode::Postcode>().ok()) {
                Some(p) => {
                    districts.insert(p.district().clone());
                }
                None => notes.push(CoverageNote::LocationWithoutPostcode {
                    location_id: loc.id.clone(),
                    postal_code: code.map(str::to_string),
                }),
            }
        }
        if !districts.is_empty() {
            return (Coverage::Places { districts, areas }, notes);
        }
        if any_location && virtual_only && physical == 0 && !unread_area {
            return (Coverage::Everywhere, notes);
        }
        notes.push(CoverageNote::CoversNoPostcode);
        (Coverage::nowhere(), notes)
    }

    /// How the service covers a postcode in `district` (whose area is `area`), if it does.
    pub fn rank_in(&self, district: &PostcodeDistrict, area: &PostcodeArea) -> Option<MatchRank> {
        match self {
            Coverage::Everywhere => Some(MatchRank::Everywhere),
            Coverage::Places { districts, areas } => {
                if districts.contains(district) {
                    Some(MatchRank::District)
                } else if areas.contains(area) {
                    Some(MatchRank::Area)
                } else {
                    None
                }
            }
        }
    }

    /// How the service covers a postcode in `district`, if it does.
    pub fn rank(&self, district: &PostcodeDistrict) -> Option<MatchRank> {
        self.rank_in(district, &district.area())
    }

    /// Whether it covers no postcode at all.
    pub fn is_nowhere(&self) -> bool {
        matches!(self, Coverage::Places { districts, areas } if districts.is_empty() && areas.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn service(extra: Value) -> Service {
        let mut s = json!({"id": "s1", "name": "n", "status": "active"});
        if let (Some(o), Value::Object(e)) = (s.as_object_mut(), extra) {
            o.extend(e);
        }
        serde_json::from_value(s).expect("service")
    }

    fn district(s: &str) -> PostcodeDistrict {
        s.parse().expect("district")
    }

    fn physical(id: &str, postcode: &str) -> Value {
        json!({"id": format!("sal-{id}"), "location": {"id": id, "location_type": "physical",
            "addresses": [{"id": format!("a-{id}"), "postal_code": postcode, "address_type": "physical"}]}})
    }

    fn virtual_location(id: &str) -> Value {
        json!({"id": format!("sal-{id}"), "location": {"id": id, "location_type": "virtual"}})
    }

    #[test]
    fn text_service_areas_name_districts_and_areas() {
        let s = service(json!({
            "service_areas": [
                {"id": "a1", "extent_type": "text", "extent": "HR2, HR3,HR9"},
                {"id": "a2", "extent_type": "Text", "extent": "RM"}
            ],
            "service_at_locations": [physical("l1", "CF10 1EP")]
        }));
        let (c, notes) = Coverage::of(&s);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c.rank(&district("HR2")), Some(MatchRank::District));
        assert_eq!(c.rank(&district("HR9")), Some(MatchRank::District));
        assert_eq!(c.rank(&district("RM13")), Some(MatchRank::Area));
        assert_eq!(c.rank(&district("HR4")), None);
        // The areas listed replace the locations: CF10 is not covered.
        assert_eq!(c.rank(&district("CF10")), None);
    }

    #[test]
    fn without_service_area_the_physical_locations_districts_count() {
        let s = service(json!({
            "service_at_locations": [physical("l1", "hr2 0rs"), physical("l2", "HR3 5AA"), virtual_location("v")]
        }));
        let (c, notes) = Coverage::of(&s);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c.rank(&district("HR2")), Some(MatchRank::District));
        assert_eq!(c.rank(&district("HR3")), Some(MatchRank::District));
        assert_eq!(
            c.rank(&district("HR1")),
            None,
            "a location's district, not its area"
        );
    }

    #[test]
    fn a_service_whose_only_location_is_virtual_covers_everywhere() {
        let s = service(json!({"service_at_locations": [virtual_location("v")]}));
        let (c, notes) = Coverage::of(&s);
        assert_eq!(c, Coverage::Everywhere);
        assert!(notes.is_empty());
        assert_eq!(c.rank(&district("ZE1")), Some(MatchRank::Everywhere));
    }

    #[test]
    fn what_cannot_be_read_is_noted_and_never_widens_coverage() {
        let s = service(json!({
            "service_areas": [
                {"id": "a1", "extent_type": "geojson", "extent": "{\"type\": \"Polygon\"}"},
                {"id": "a2", "extent_type": "text", "extent": "Golden Valley"}
            ],
            "service_at_locations": [virtual_location("v")]
        }));
        let (c, notes) = Coverage::of(&s);
        assert!(
            c.is_nowhere(),
            "an area we cannot read must not become everywhere"
        );
        assert_eq!(
            notes,
            [
                CoverageNote::ExtentNotRead {
                    area_id: "a1".into(),
                    extent_type: Some("geojson".into())
                },
                CoverageNote::NotAPlace {
                    area_id: "a2".into(),
                    word: "Golden".into()
                },
                CoverageNote::NotAPlace {
                    area_id: "a2".into(),
                    word: "Valley".into()
                },
                CoverageNote::CoversNoPostcode,
            ]
        );
        assert!(
            notes[0].to_string().contains("\"geojson\" is not read"),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn a_location_without_a_usable_postcode_is_noted() {
        let s = service(json!({"service_at_locations": [physical("l1", "ABC 1234")]}));
        let (c, notes) = Coverage::of(&s);
        assert!(c.is_nowhere());
        assert_eq!(
            notes[0],
            CoverageNote::LocationWithoutPostcode {
                location_id: "l1".into(),
                postal_code: Some("ABC 1234".into())
            }
        );
        assert_eq!(notes[1], CoverageNote::CoversNoPostcode);
    }

    #[test]
    fn ranks_order_district_before_area_before_everywhere() {
        assert!(MatchRank::District < MatchRank::Area);
        assert!(MatchRank::Area < MatchRank::Everywhere);
        let (places, unread) = read_extent(" HR2;HR ,, sw1a  x1 to");
        assert_eq!(
            places,
            [
                Place::District(district("HR2")),
                Place::Area("HR".parse().expect("area")),
                Place::District(district("SW1A")),
            ]
        );
        assert_eq!(unread, ["x1", "to"], "an area is written in capitals");
    }
}
