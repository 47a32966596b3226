//! UK postcodes as the directory uses them: a full [`Postcode`] (what a GP types for the person),
//! its [`PostcodeDistrict`] (the outward code, `HR2`) and its [`PostcodeArea`] (the letters, `HR`).
//!
//! Parsed from user input: case and spaces are tolerated (`hr20lt`, ` HR2  0LT `); anything that
//! is not shaped like a UK postcode is refused with [`PostcodeError`] naming what was given. The
//! shape rules are those of the Royal Mail format (area letters, district number with an optional
//! letter, inward code digit + two letters); whether a postcode is actually in use is not known
//! offline and not checked.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a UK postcode, district or area.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostcodeError {
    #[error("{0:?} is not a UK postcode (like HR2 0LT)")]
    Postcode(String),
    #[error("{0:?} is not a UK postcode district (like HR2 or SW1A)")]
    District(String),
    #[error("{0:?} is not a UK postcode area (one or two letters, like HR or B)")]
    Area(String),
}

/// Letters never used in the first position of an area.
const NOT_FIRST: &[u8] = b"QVX";
/// Letters never used in the second position of an area.
const NOT_SECOND: &[u8] = b"IJZ";
/// Letters never used in the inward code's last two positions.
const NOT_INWARD: &[u8] = b"CIKMOV";

/// Upper case, without any whitespace; `None` for anything beyond ASCII.
fn squeeze(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    s.is_ascii().then_some(s)
}

fn valid_area(a: &[u8]) -> bool {
    match a {
        [x] => x.is_ascii_uppercase() && !NOT_FIRST.contains(x),
        [x, y] => {
            x.is_ascii_uppercase()
                && !NOT_FIRST.contains(x)
                && y.is_ascii_uppercase()
                && !NOT_SECOND.contains(y)
        }
        _ => false,
    }
}

/// The split of an outward code into area letters and the district part, when well formed.
fn split_district(outward: &[u8]) -> Option<usize> {
    let letters = outward
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if !valid_area(&outward[..letters]) {
        return None;
    }
    let rest = &outward[letters..];
    let ok = match rest {
        [d] => d.is_ascii_digit(),
        [d, e] => d.is_ascii_digit() && (e.is_ascii_digit() || e.is_ascii_uppercase()),
        _ => false,
    };
    ok.then_some(letters)
}

/// A UK postcode area: the leading letters (`HR`, `B`, `CF`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostcodeArea(String);

/// A UK postcode district: the outward code (`HR2`, `CF10`, `SW1A`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostcodeDistrict {
    code: String,
    /// Length of the area letters at the start of `code`.
    area_len: usize,
}

/// A full UK postcode, normalised to upper case with one space (`HR2 0LT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Postcode {
    district: PostcodeDistrict,
    inward: String,
}

impl PostcodeArea {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PostcodeDistrict {
    pub fn as_str(&self) -> &str {
        &self.code
    }

    pub fn area(&self) -> PostcodeArea {
        PostcodeArea(self.code[..self.area_len].to_string())
    }
}

impl Postcode {
    pub fn district(&self) -> &PostcodeDistrict {
        &self.district
    }

    pub fn area(&self) -> PostcodeArea {
        self.district.area()
    }

    /// The inward code (`0LT`).
    pub fn inward(&self) -> &str {
        &self.inward
    }
}

impl FromStr for PostcodeArea {
    type Err = PostcodeError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match squeeze(raw) {
            Some(s) if valid_area(s.as_bytes()) => Ok(PostcodeArea(s)),
            _ => Err(PostcodeError::Area(raw.to_string())),
        }
    }
}

impl FromStr for PostcodeDistrict {
    type Err = PostcodeError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || PostcodeError::District(raw.to_string());
        let s = squeeze(raw).ok_or_else(bad)?;
        let area_len = split_district(s.as_bytes()).ok_or_else(bad)?;
        Ok(PostcodeDistrict { code: s, area_len })
    }
}

impl FromStr for Postcode {
    type Err = PostcodeError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || PostcodeError::Postcode(raw.to_string());
        let s = squeeze(raw).ok_or_else(bad)?;
        if s.len() < 5 {
            return Err(bad());
        }
        let (outward, inward) = s.split_at(s.len() - 3);
        let ok_inward = match inward.as_bytes() {
            [d, x, y] => {
                d.is_ascii_digit()
                    && [x, y]
                        .iter()
                        .all(|c| c.is_ascii_uppercase() && !NOT_INWARD.contains(c))
            }
            _ => false,
        };
        if !ok_inward {
            return Err(bad());
        }
        let area_len = split_district(outward.as_bytes()).ok_or_else(bad)?;
        Ok(Postcode {
            district: PostcodeDistrict {
                code: outward.to_string(),
                area_len,
            },
            inward: inward.to_string(),
        })
    }
}

/// The district of what a user typed for a place: a full postcode (`HR2 0LT`) or a district
/// alone (`HR2`). The error names the input as not a UK postcode. Input with a space inside
/// must be a full postcode (`HR2 0` is not the district `HR20`).
pub fn district_of(input: &str) -> Result<PostcodeDistrict, PostcodeError> {
    let one_word = !input.trim().contains(char::is_whitespace);
    input
        .parse::<Postcode>()
        .map(|p| p.district)
        .or_else(|e| {
            if one_word {
                input.parse::<PostcodeDistrict>()
            } else {
                Err(e)
            }
        })
        .map_err(|_| PostcodeError::Postcode(input.to_string()))
}

impl fmt::Display for PostcodeArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PostcodeDistrict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.district, self.inward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes_are_read_whatever_the_case_and_spacing() {
        for raw in ["HR2 0LT", "hr20lt", "  Hr2   0lT ", "HR2\t0LT"] {
            let p: Postcode = raw.parse().expect(raw);
            assert_eq!(p.to_string(), "HR2 0LT");
            assert_eq!(p.district().as_str(), "HR2");
            assert_eq!(p.area().as_str(), "HR");
            assert_eq!(p.inward(), "0LT");
        }
    }

    #[test]
    fn every_outward_shape_is_understood() {
        for (raw, district, area) in [
            ("B1 1AA", "B1", "B"),
            ("B33 8TH", "B33", "B"),
            ("CF10 1EP", "CF10", "CF"),
            ("W1A 0AX", "W1A", "W"),
            ("SW1A 1AA", "SW1A", "SW"),
            ("EC1A 1BB", "EC1A", "EC"),
            ("M1 1AE", "M1", "M"),
        ] {
            let p: Postcode = raw.parse().expect(raw);
            assert_eq!(p.district().as_str(), district, "{raw}");
            assert_eq!(p.area().as_str(), area, "{raw}");
            assert_eq!(p.to_string(), raw);
        }
    }

    #[test]
    fn what_is_not_a_postcode_is_refused_by_name() {
        for raw in [
            "",
            "HR2",
            "HR2 0L",
            "12345",
            "HR2 OLT",
            "QR2 0LT",
            "HZ2 0LT",
            "HR2 0LC",
            "ABC 1234",
            "HR222 0LT",
            "HR2 0LTX",
            "HR2 ÖLT",
            "HR-2 0LT",
        ] {
            let err = raw.parse::<Postcode>().expect_err(raw);
            assert_eq!(err, PostcodeError::Postcode(raw.to_string()));
            assert!(err.to_string().contains("is not a UK postcode"), "{err}");
        }
    }

    #[test]
    fn a_place_to_search_is_a_postcode_or_a_district() {
        assert_eq!(
            district_of("hr2 0lt").map(|d| d.to_string()),
            Ok("HR2".into())
        );
        assert_eq!(
            district_of("CF10").map(|d| d.to_string()),
            Ok("CF10".into())
        );
        assert_eq!(
            district_of("Hereford"),
            Err(PostcodeError::Postcode("Hereford".into()))
        );
        assert!(district_of("HR2 0").is_err(), "not the district HR20");
    }

    #[test]
    fn districts_and_areas_parse_on_their_own() {
        let d: PostcodeDistrict = " hr2 ".parse().expect("district");
        assert_eq!(d.as_str(), "HR2");
        assert_eq!(d.area(), "HR".parse().expect("area"));
        assert_eq!(
            "sw1a"
                .parse::<PostcodeDistrict>()
                .map(|d| d.area().to_string()),
            Ok("SW".into())
        );
        assert!("HR".parse::<PostcodeDistrict>().is_err());
        assert!("HR2 0LT".parse::<PostcodeDistrict>().is_err());
        assert!("2HR".parse::<PostcodeDistrict>().is_err());
        assert_eq!(
            "rm".parse::<PostcodeArea>().map(|a| a.to_string()),
            Ok("RM".into())
        );
        assert!("HR2".parse::<PostcodeArea>().is_err());
        assert!("HRX".parse::<PostcodeArea>().is_err());
        assert_eq!(
            "X".parse::<PostcodeArea>(),
            Err(PostcodeError::Area("X".into()))
        );
    }
}
