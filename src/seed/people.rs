//! The synthetic side of `seed`: obviously made-up people (NHS numbers from the 999 test range),
//! the demo's GP practices, needs by category, and the FHIR referral a GP system would send for
//! them. Nothing here is a real person or a real place's patient.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rand::Rng;
use serde_json::{json, Value};

use crate::domain::{Identifier, NeedCategory, NhsNumber};

/// A GP practice referrals come from: ODS code, name, town, postcode.
pub(super) struct Practice {
    pub ods: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub postcode: &'static str,
}

/// The practices of the repository's fixtures.
pub(super) const PRACTICES: [Practice; 3] = [
    Practice {
        ods: "Y01234",
        name: "Kirkgate Medical Practice",
        city: "Leeds",
        postcode: "LS1 6BY",
    },
    Practice {
        ods: "W97001",
        name: "Meddygfa Heol y Frenhines / Queen Street Surgery",
        city: "Cardiff",
        postcode: "CF10 2BH",
    },
    Practice {
        ods: "W97045",
        name: "Uplands and Mumbles Medical Practice",
        city: "Swansea",
        postcode: "SA2 0NR",
    },
];

/// One SNOMED CT need of each category (codes of ConceptMap need-to-category).
pub(super) const NEEDS: [(NeedCategory, &str, &str); 10] = [
    (
        NeedCategory::SocialConnection,
        "422650009",
        "Social isolation",
    ),
    (NeedCategory::MentalWellbeing, "73595000", "Stress"),
    (
        NeedCategory::PhysicalActivity,
        "40979000",
        "Lack of physical exercise",
    ),
    (NeedCategory::MoneyAndDebt, "160932005", "Financial problem"),
    (NeedCategory::Housing, "105531004", "Housing unsatisfactory"),
    (NeedCategory::WorkAndLearning, "73438004", "Unemployed"),
    (NeedCategory::Carers, "302767002", "Cares for a relative"),
    (NeedCategory::Food, "733423003", "Food insecurity"),
    (
        NeedCategory::Safety,
        "706893006",
        "Victim of intimate partner abuse",
    ),
    (
        NeedCategory::PracticalSupport,
        "266934004",
        "Transport problems",
    ),
];

const GIVEN: [&str; 12] = [
    "Alex", "Sam", "Jo", "Robin", "Charlie", "Morgan", "Jamie", "Ffion", "Dylan", "Priya",
    "Tomasz", "Amara",
];
const FAMILY: [&str; 6] = [
    "Example",
    "Specimen",
    "Sample",
    "Testperson",
    "Madeup",
    "Fictional",
];

/// A synthetic NHS number: 999 then six random digits and the Modulus 11 check digit (numbers
/// whose check would be 10 are drawn again).
pub(super) fn nhs_number(rng: &mut impl Rng) -> NhsNumber {
    loop {
        let digits: Vec<u32> = [9, 9, 9]
            .into_iter()
            .chain((0..6).map(|_| rng.gen_range(0..10)))
            .collect();
        let weighted: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = match 11 - weighted % 11 {
            11 => 0,
            10 => continue,
            check => check,
        };
        let text: String = digits
            .iter()
            .chain(std::iter::once(&check))
            .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
            .collect();
        if let Ok(number) = text.parse() {
            return number;
        }
    }
}

/// Everything one synthetic referral is made of.
pub(super) struct Referral<'a> {
    pub number: usize,
    pub client: &'a str,
    pub practice: &'a Practice,
    pub performer: &'a Identifier,
    pub performer_name: &'a str,
    pub need: (NeedCategory, &'static str, &'static str),
    pub authored: DateTime<Utc>,
}

/// The SP-ServiceRequest a GP system would send for `referral`, about a made-up person.
pub(super) fn service_request(referral: &Referral<'_>, rng: &mut impl Rng) -> Value {
    let given = GIVEN[rng.gen_range(0..GIVEN.len())];
    let family = FAMILY[rng.gen_range(0..FAMILY.len())];
    let born = NaiveDate::from_ymd_opt(rng.gen_range(1940..2006), rng.gen_range(1..13), 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(rng.gen_range(0..28))))
        .map(|d| d.to_string())
        .unwrap_or_else(|| "1970-01-01".into());
    let gender = ["female", "male", "other"][rng.gen_range(0..3)];
    let phone = format!("01632 960{:03}", rng.gen_range(0..1000));
    let email = format!(
        "{}.{}{}@example.org",
        given.to_lowercase(),
        family.to_lowercase(),
        referral.number
    );
    let practice = referral.practice;
    let day = referral.authored.date_naive().to_string();
    let authored = referral
        .authored
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, code, display) = referral.need;
    json!({
        "resourceType": "ServiceRequest",
        "meta": {"profile": ["https://fhir.sp-gateway.uk/StructureDefinition/SP-ServiceRequest"]},
        "contained": [
            {
                "resourceType": "Patient", "id": "pat",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                "value": nhs_number(rng).as_str()}],
                "name": [{"use": "official", "family": family, "given": [given]}],
                "telecom": [{"system": "phone", "value": phone, "use": "home"},
                            {"system": "email", "value": email, "use": "home"}],
                "gender": gender,
                "birthDate": born,
                "address": [{"use": "home", "line": [format!("{} Sample Street", rng.gen_range(1..200))],
                             "city": practice.city, "postalCode": practice.postcode, "country": "GB"}]
            },
            {
                "resourceType": "Organization", "id": "practice",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                "value": practice.ods}],
                "active": true,
                "name": practice.name
            },
            {
                "resourceType": "Practitioner", "id": "gp",
                "name": [{"use": "official", "family": "Placeholder", "given": ["Dana"], "prefix": ["Dr"]}]
            },
            {
                "resourceType": "PractitionerRole", "id": "role", "active": true,
                "practitioner": {"reference": "#gp", "display": "Dr Dana Placeholder"},
                "organization": {"reference": "#practice", "display": practice.name}
            },
            {
                "resourceType": "Consent", "id": "consent", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                      "code": "patient-privacy", "display": "Privacy Consent"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0",
                                          "display": "Patient Consent"}]}],
                "patient": {"reference": "#pat"},
                "dateTime": day,
                "organization": [{"reference": "#practice"}],
                "policyRule": {"text": "Explicit consent (opt-in) to share details with the social prescribing service"},
                "provision": {"type": "permit", "period": {"start": day}}
            }
        ],
        "identifier": [{"system": format!("https://fhir.{}.example/Id/referral", referral.client),
                        "value": format!("SEED-{}-{:05}", referral.authored.year(), referral.number)}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005",
                                  "display": "Patient referral"}]}],
        "priority": "routine",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "871731000000106",
                             "display": "Referral to social prescribing service"}],
                 "text": "Referral to social prescribing service"},
        "subject": {"reference": "#pat", "display": format!("{given} {family}")},
        "authoredOn": authored,
        "requester": {"reference": "#role", "display": "Dr Dana Placeholder"},
        "performer": [{"type": "Organization",
                       "identifier": {"system": referral.performer.system, "value": referral.performer.value},
                       "display": referral.performer_name}],
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}],
        "supportingInfo": [{"reference": "#consent", "display": "Consent to share with the VCS organisation"}]
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::validation::Validation;

    #[test]
    fn nhs_numbers_are_in_the_test_range_and_pass_modulus_11() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let number = nhs_number(&mut rng);
            assert!(number.as_str().starts_with("999"), "{}", number.as_str());
            // Parsing is the Modulus 11 check.
            assert!(number.as_str().parse::<NhsNumber>().is_ok());
        }
    }

    #[test]
    fn every_need_is_in_its_category() {
        let validation = Validation::bundled().expect("bundled profiles");
        let vocabulary = validation.conformance().needs();
        for (category, code, _) in NEEDS {
            let known = vocabulary.lookup(crate::domain::systems::SNOMED, code);
            assert_eq!(known.map(|k| k.category), Some(category), "{code}");
        }
        let categories: std::collections::HashSet<_> = NEEDS.iter().map(|n| n.0).collect();
        assert_eq!(categories.len(), NeedCategory::ALL.len());
    }
}
