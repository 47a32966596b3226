//! FHIR R4's `near` search parameter of Location: `[latitude]|[longitude]|[distance]|[units]`
//! (WGS84), the units a UCUM code (kilometres when left out), the distance left to the server
//! when left out. Read into a [`Near`]; the distances found are written back in the units asked
//! for, as the `location-distance` extension of a search result.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use super::centroids::{Position, PositionError};

/// How far `near` reaches when the search names no distance (FHIR leaves it to the server): a
/// bus ride in the country, several districts in a town.
pub const DEFAULT_WITHIN_KM: f64 = 25.0;

/// The extension FHIR defines for the distance of a search result (context `Bundle.entry.search`).
pub const LOCATION_DISTANCE: &str = "http://hl7.org/fhir/StructureDefinition/location-distance";

const UCUM: &str = "http://unitsofmeasure.org";

/// The units of distance `near` accepts, by their UCUM codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistanceUnit {
    Kilometre,
    Metre,
    /// The international mile, UCUM `[mi_i]`.
    Mile,
}

impl DistanceUnit {
    pub fn code(self) -> &'static str {
        match self {
            DistanceUnit::Kilometre => "km",
            DistanceUnit::Metre => "m",
            DistanceUnit::Mile => "[mi_i]",
        }
    }

    fn human(self) -> &'static str {
        match self {
            DistanceUnit::Kilometre => "km",
            DistanceUnit::Metre => "m",
            DistanceUnit::Mile => "mi",
        }
    }

    fn km_per_unit(self) -> f64 {
        match self {
            DistanceUnit::Kilometre => 1.0,
            DistanceUnit::Metre => 0.001,
            DistanceUnit::Mile => 1.609_344,
        }
    }

    pub fn from_km(self, km: f64) -> f64 {
        km / self.km_per_unit()
    }

    pub fn to_km(self, value: f64) -> f64 {
        value * self.km_per_unit()
    }
}

impl FromStr for DistanceUnit {
    type Err = NearError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "km" => Ok(DistanceUnit::Kilometre),
            "m" => Ok(DistanceUnit::Metre),
            "[mi_i]" => Ok(DistanceUnit::Mile),
            other => Err(NearError::Units(other.to_string())),
        }
    }
}

/// A `near` search: around a point, within a distance, answered in a unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub origin: Position,
    pub within_km: f64,
    pub unit: DistanceUnit,
}

/// Why a `near` value cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NearError {
    #[error("{0:?} is not latitude|longitude|distance|units (like 52.05|-2.71|10|km)")]
    Shape(String),
    #[error("{0:?} is not a number")]
    Number(String),
    #[error(transparent)]
    Position(#[from] PositionError),
    #[error("the distance {0} is not a finite number of at least 0")]
    Distance(f64),
    #[error("units {0:?} are not one of the UCUM codes km, m, [mi_i]")]
    Units(String),
}

fn number(s: &str) -> Result<f64, NearError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| NearError::Number(s.to_string()))
}

impl FromStr for Near {
    type Err = NearError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = raw.split('|').collect();
        let (lat, lon, distance, units) = match parts.as_slice() {
            [lat, lon] => (lat, lon, None, None),
            [lat, lon, d] => (lat, lon, Some(d), None),
            [lat, lon, d, u] => (lat, lon, Some(d), Some(u.trim())),
            _ => return Err(NearError::Shape(raw.to_string())),
        };
        let origin = Position::new(number(lat)?, number(lon)?)?;
        let unit = match units.filter(|u| !u.is_empty()) {
            Some(u) => u.parse()?,
            None => DistanceUnit::Kilometre,
        };
        let within_km = match distance.filter(|d| !d.trim().is_empty()) {
            Some(d) => {
                let value = number(d)?;
                if value < 0.0 {
                    return Err(NearError::Distance(value));
                }
                unit.to_km(value)
            }
            None => DEFAULT_WITHIN_KM,
        };
        Ok(Near {
            origin,
            within_km,
            unit,
        })
    }
}

/// A distance rounded to the metre (or a thousandth of the unit), as the `location-distance`
/// extension of a `Bundle.entry.search`.
pub fn distance_extension(km: f64, unit: DistanceUnit) -> Value {
    let value = (unit.from_km(km) * 1000.0).round() / 1000.0;
    json!({
        "url": LOCATION_DISTANCE,
        "valueDistance": {"value": value, "unit": unit.human(), "system": UCUM, "code": unit.code()}
    })
}

impl fmt::Display for DistanceUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_parts_and_their_defaults() {
        let n: Near = "52.0575|-2.7165|10|km".parse().expect("near");
        assert_eq!(n.origin, Position::new(52.0575, -2.7165).expect("p"));
        assert_eq!((n.within_km, n.unit), (10.0, DistanceUnit::Kilometre));
        let n: Near = "52|-2".parse().expect("no distance");
        assert_eq!(n.within_km, DEFAULT_WITHIN_KM);
        let n: Near = "52|-2|5".parse().expect("no units: km");
        assert_eq!((n.within_km, n.unit), (5.0, DistanceUnit::Kilometre));
        let n: Near = "52|-2|5|[mi_i]".parse().expect("miles");
        assert!((n.within_km - 8.04672).abs() < 1e-9);
        let n: Near = "52|-2|1500|m".parse().expect("metres");
        assert!((n.within_km - 1.5).abs() < 1e-12);
    }

    #[test]
    fn what_is_not_near_is_named() {
        for (raw, err) in [
            ("52", NearError::Shape("52".into())),
            ("1|2|3|km|x", NearError::Shape("1|2|3|km|x".into())),
            ("north|-2", NearError::Number("north".into())),
            ("52|-2|far", NearError::Number("far".into())),
            ("NaN|-2", NearError::Number("NaN".into())),
            ("95|-2", NearError::Position(PositionError::Latitude(95.0))),
            ("52|-2|-1", NearError::Distance(-1.0)),
            ("52|-2|5|mi", NearError::Units("mi".into())),
        ] {
            assert_eq!(raw.parse::<Near>(), Err(err), "{raw}");
        }
        assert!(NearError::Units("mi".into()).to_string().contains("[mi_i]"));
    }

    #[test]
    fn distances_are_written_in_the_units_asked_for() {
        let e = distance_extension(8.04672, DistanceUnit::Mile);
        assert_eq!(e["url"], LOCATION_DISTANCE);
        assert_eq!(e["valueDistance"]["value"], 5.0);
        assert_eq!(e["valueDistance"]["code"], "[mi_i]");
        assert_eq!(e["valueDistance"]["system"], UCUM);
        let e = distance_extension(1.23456, DistanceUnit::Metre);
        assert_eq!(e["valueDistance"]["value"], 1234.56);
        let e = distance_extension(1.23456, DistanceUnit::Kilometre);
        assert_eq!(e["valueDistance"]["value"], 1.235);
    }
}
