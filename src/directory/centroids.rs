//! Places on Earth for the directory: a [`Position`] (WGS84 latitude and longitude), the
//! great-circle distance between two, and the centroid of each GB postcode district.
//!
//! The centroids are `profiles/directory/postcode-district-centroids.csv` (OS Code-Point Open,
//! Open Government Licence v3; source, release and attribution in `profiles/directory/README.md`),
//! embedded at build time and read once, on first use.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use super::postcode::PostcodeDistrict;

const TABLE: &str = include_str!("../../profiles/directory/postcode-district-centroids.csv");

/// The mean radius of the Earth (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point in WGS84 degrees, latitude within ±90 and longitude within ±180.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    latitude: f64,
    longitude: f64,
}

/// Why two numbers are not a position.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PositionError {
    #[error("latitude {0} is not between -90 and 90")]
    Latitude(f64),
    #[error("longitude {0} is not between -180 and 180")]
    Longitude(f64),
}

impl Position {
    pub fn new(latitude: f64, longitude: f64) -> Result<Position, PositionError> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(PositionError::Latitude(latitude));
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(PositionError::Longitude(longitude));
        }
        Ok(Position {
            latitude,
            longitude,
        })
    }

    pub fn latitude(&self) -> f64 {
        self.latitude
    }

    pub fn longitude(&self) -> f64 {
        self.longitude
    }

    /// The great-circle distance to `other` in kilometres (haversine formula on a sphere of the
    /// Earth's mean radius: within 0.5% of the ellipsoidal distance, finer than a district
    /// centroid is).
    pub fn distance_km(&self, other: &Position) -> f64 {
        let (p1, p2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dp = p2 - p1;
        let dl = (other.longitude - self.longitude).to_radians();
        let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.latitude, self.longitude)
    }
}

/// Why the embedded table cannot be read (a build with a broken table; tested).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("postcode-district-centroids.csv line {line}: {reason}")]
pub struct TableError {
    line: usize,
    reason: String,
}

/// Reads `district,latitude,longitude,postcodes` rows after a header line.
fn parse(table: &str) -> Result<HashMap<PostcodeDistrict, Position>, TableError> {
    let mut out = HashMap::new();
    for (n, row) in table.lines().enumerate().skip(1) {
        let bad = |reason: String| TableError {
            line: n + 1,
            reason,
        };
        let fields: Vec<&str> = row.split(',').collect();
        let [district, lat, lon, _count] = fields.as_slice() else {
            return Err(bad(format!("{} fields, not 4", fields.len())));
        };
        let district: PostcodeDistrict = district.parse().map_err(|e| bad(format!("{e}")))?;
        let number = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| bad(format!("{s:?} is not a number")))
        };
        let position = Position::new(number(lat)?, number(lon)?).map_err(|e| bad(e.to_string()))?;
        if out.insert(district.clone(), position).is_some() {
            return Err(bad(format!("{district} is listed twice")));
        }
    }
    Ok(out)
}

fn table() -> &'static Result<HashMap<PostcodeDistrict, Position>, TableError> {
    static TABLE_READ: OnceLock<Result<HashMap<PostcodeDistrict, Position>, TableError>> =
        OnceLock::new();
    TABLE_READ.get_or_init(|| parse(TABLE))
}

/// Checks the embedded table (at start, so that a broken build fails loudly rather than
/// searching without distances); answers how many districts it has.
pub fn check() -> Result<usize, TableError> {
    table().as_ref().map(HashMap::len).map_err(Clone::clone)
}

/// The centroid of a postcode district, when the table has it (GB districts in use; not
/// Northern Ireland, the Channel Islands or the Isle of Man).
pub fn centroid(district: &PostcodeDistrict) -> Option<Position> {
    table().as_ref().ok()?.get(district).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn district(s: &str) -> PostcodeDistrict {
        s.parse().expect("district")
    }

    #[test]
    fn the_embedded_table_reads_whole() {
        let n = check().expect("table");
        assert!((2800..3200).contains(&n), "{n} districts");
    }

    #[test]
    fn districts_have_their_centroid_and_others_none() {
        let hr2 = centroid(&district("HR2")).expect("HR2");
        assert!((hr2.latitude() - 52.0094).abs() < 1e-3, "{hr2}");
        assert!((hr2.longitude() + 2.7853).abs() < 1e-3, "{hr2}");
        assert!(centroid(&district("SW1A")).is_some());
        assert!(centroid(&district("ZE1")).is_some());
        assert_eq!(centroid(&district("BT1")), None, "no positions for NI");
        assert_eq!(centroid(&district("HR99")), None, "not in use");
    }

    #[test]
    fn distances_are_great_circle_kilometres() {
        let p = |lat, lon| Position::new(lat, lon).expect("position");
        // Hereford HR1 to Cardiff CF10: about 73 km as the crow flies.
        let d = centroid(&district("HR1"))
            .expect("HR1")
            .distance_km(&centroid(&district("CF10")).expect("CF10"));
        assert!((70.0..76.0).contains(&d), "{d}");
        // A degree of latitude is about 111.2 km; a point is 0 from itself; symmetric.
        assert!((p(52.0, -2.0).distance_km(&p(53.0, -2.0)) - 111.2).abs() < 0.1);
        assert_eq!(p(52.0, -2.0).distance_km(&p(52.0, -2.0)), 0.0);
        let (a, b) = (p(51.5, -0.1), p(55.9, -3.2));
        assert!((a.distance_km(&b) - b.distance_km(&a)).abs() < 1e-9);
        // Antipodes: half the circumference, no NaN.
        let half = p(0.0, 0.0).distance_km(&p(0.0, 180.0));
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn positions_off_the_earth_are_refused() {
        assert_eq!(Position::new(91.0, 0.0), Err(PositionError::Latitude(91.0)));
        assert_eq!(
            Position::new(0.0, -180.5),
            Err(PositionError::Longitude(-180.5))
        );
        assert!(Position::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn a_broken_table_is_an_error_naming_the_line() {
        let err = parse("district,latitude,longitude,postcodes\nHR2,52.0,-2.7,10\nHR2,x,1,1\n")
            .expect_err("bad number");
        assert_eq!(err.line, 3);
        assert!(parse("h\nHR2,52.0,-2.7\n").is_err());
        assert!(parse("h\nHR2,52,-2,1\nHR2,52,-2,1\n").is_err());
        assert!(parse("h\nHR2,95,-2,1\n").is_err());
        assert_eq!(parse("h\nHR2,52,-2,1\n").map(|t| t.len()), Ok(1));
    }
}
