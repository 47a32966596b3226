//! Profiles the FHIR specification requires by content: R4 observation-vitalsigns says an
//! Observation that carries a vital sign SHALL conform to the matching core profile. Which
//! codes mean which vital sign is the HL7 validator's table (its policy advisor's implied
//! profiles for Observation, org.hl7.fhir.validation): LOINC codes are looked for first, in
//! the order below, then SNOMED CT codes; the first profile that matches applies.

use serde_json::{Map, Value};

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";

/// A vital-signs profile and the codes that call for it.
struct VitalSign {
    url: &'static str,
    name: &'static str,
    loinc: &'static [&'static str],
    snomed: &'static [&'static str],
}

const VITAL_SIGNS: &[VitalSign] = &[
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/vitalspanel",
        name: "Vital Signs Panel",
        loinc: &["85353-1"],
        snomed: &["46680005"],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/resprate",
        name: "Respiratory Rate",
        loinc: &[
            "9279-1", "76170-0", "76172-6", "76171-8", "19840-8", "33438-3", "76270-8", "11291-2",
        ],
        snomed: &["86290005", "271625008", "271306003"],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/heartrate",
        name: "Heart rate",
        loinc: &[
            "60978-4", "73795-7", "73799-9", "76476-1", "76477-9", "8867-4", "8889-8", "8890-6",
            "8891-4", "8892-2", "8893-0", "40443-4", "55425-3", "68999-2", "11328-2", "69000-8",
            "8886-4",
        ],
        snomed: &[
            "271306003",
            "249043002",
            "444981005",
            "399017001",
            "251670001",
            "429525003",
            "429614003",
        ],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/oxygensat",
        name: "Oxygen saturation",
        loinc: &[
            "2708-6", "19224-5", "20564-1", "2709-4", "2710-2", "2713-6", "51733-4", "59408-5",
            "59417-6", "89276-0", "97549-0",
        ],
        snomed: &["442476006", "431314004"],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/bodytemp",
        name: "Body temperature",
        loinc: &[
            "8310-5", "60834-9", "60835-6", "60836-4", "60838-0", "60955-2", "61009-7", "75539-7",
            "75987-8", "76010-8", "76011-6", "76278-1", "8309-7", "8328-7", "8329-5", "8330-3",
            "8331-1", "8332-9", "8333-7", "8334-5", "91371-5", "98657-0", "98663-8",
        ],
        snomed: &[
            "386725007",
            "276885007",
            "300076005",
            "1222808002",
            "364246006",
            "307047009",
            "708499008",
            "431598003",
            "698831002",
            "698832009",
            "415882003",
            "415974002",
            "415929009",
            "415945006",
        ],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/bodyheight",
        name: "Body height",
        loinc: &["8302-2", "3137-7", "3138-5", "8306-3", "8308-9"],
        snomed: &[
            "1153637007",
            "1162419008",
            "50373000",
            "1162418000",
            "1230278008",
            "1162392001",
            "1162417005",
        ],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/headcircum",
        name: "Head circumference",
        loinc: &["9843-4", "8287-5"],
        snomed: &["363812007", "169876006", "1269262007", "363811000"],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/bodyweight",
        name: "Body weight",
        loinc: &[
            "29463-7", "3141-9", "3142-7", "75292-3", "79348-9", "8350-1", "8351-9",
        ],
        snomed: &[
            "735395000",
            "425024002",
            "424927000",
            "784399000",
            "1162416001",
            "1162415002",
        ],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/bmi",
        name: "Body mass index",
        loinc: &["39156-5", "89270-3"],
        snomed: &["60621009"],
    },
    VitalSign {
        url: "http://hl7.org/fhir/StructureDefinition/bp",
        name: "Blood pressure systolic and diastolic",
        loinc: &[
            "85354-9", "35094-2", "8459-0", "76534-7", "55284-4", "8480-6",
        ],
        snomed: &[
            "251076008",
            "163033001",
            "163035008",
            "386534000",
            "386536003",
            "271649006",
            "271650006",
            "407556006",
            "407554009",
            "716579001",
            "399304008",
        ],
    },
];

/// Why a profile applies: (profile URL, profile name, code system name, code).
pub(crate) type Implied = (&'static str, &'static str, &'static str, String);

/// The core vital-signs profile an Observation's `code` calls for, if any.
pub(crate) fn vital_signs_profile(observation: &Map<String, Value>) -> Option<Implied> {
    let codings = observation
        .get("code")?
        .get("coding")?
        .as_array()?
        .as_slice();
    let find = |system: &str, codes: fn(&VitalSign) -> &'static [&'static str]| {
        VITAL_SIGNS.iter().find_map(|vs| {
            codings.iter().find_map(|c| {
                let code = c.get("code")?.as_str()?;
                (c.get("system")?.as_str()? == system && codes(vs).contains(&code))
                    .then(|| (vs.url, vs.name, code.to_string()))
            })
        })
    };
    if let Some((url, name, code)) = find(LOINC, |vs| vs.loinc) {
        return Some((url, name, "LOINC", code));
    }
    find(SNOMED, |vs| vs.snomed).map(|(url, name, code)| (url, name, "SNOMED CT", code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loinc_first_then_snomed() {
        let obs = |codings: Value| {
            json!({"resourceType": "Observation", "code": {"coding": codings}})
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let temp = vital_signs_profile(&obs(json!([{"system": SNOMED, "code": "276885007"}])));
        assert_eq!(
            temp.map(|t| (t.0, t.2)),
            Some((
                "http://hl7.org/fhir/StructureDefinition/bodytemp",
                "SNOMED CT"
            ))
        );
        // A LOINC code wins over an earlier SNOMED CT coding.
        let bp = vital_signs_profile(&obs(json!([
            {"system": SNOMED, "code": "276885007"},
            {"system": LOINC, "code": "85354-9"}
        ])));
        assert_eq!(
            bp.map(|t| t.0),
            Some("http://hl7.org/fhir/StructureDefinition/bp")
        );
        assert!(vital_signs_profile(&obs(json!([{"system": LOINC, "code": "1234-5"}]))).is_none());
        assert!(vital_signs_profile(&Map::new()).is_none());
    }
}
