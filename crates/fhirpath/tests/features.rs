//! Feature-by-feature behaviour, each with passing and failing cases.

use fhirpath::{compile, Context, EvalError, Item, ParseError, Resolver, Temporal, Terminology};
use serde_json::{json, Value};

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "active": true,
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"], "_given": [{"id": "g1"}]}
        ],
        "telecom": [{"system": "phone", "value": "555", "rank": 2}],
        "deceasedBoolean": false,
        "multipleBirthInteger": 2,
        "contained": [{"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Doc"}]}],
        "generalPractitioner": [{"reference": "#pr1"}],
        "managingOrganization": {"reference": "Organization/o1"}
    })
}

fn run_with(expr: &str, input: &Value, ctx: &Context<'_>) -> Result<Vec<String>, EvalError> {
    let e = compile(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
    Ok(e.evaluate(input, ctx)?
        .iter()
        .map(|i| i.to_string())
        .collect())
}

fn run(expr: &str) -> Vec<String> {
    run_with(expr, &patient(), &Context::default()).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn is_true(expr: &str) -> bool {
    match run(expr).as_slice() {
        [one] if one == "true" => true,
        [one] if one == "false" => false,
        other => panic!("{expr}: not a boolean: {other:?}"),
    }
}

fn fails(expr: &str) -> bool {
    run_with(expr, &patient(), &Context::default()).is_err()
}

#[test]
fn navigation() {
    assert_eq!(run("name.given"), ["Peter", "James", "Jim"]);
    assert_eq!(run("Patient.name.family"), ["Chalmers"]);
    assert!(run("Observation.name").is_empty());
    assert_eq!(run("name[1].use"), ["usual"]);
    assert!(run("name[5]").is_empty());
    assert!(run("nothing.at.all").is_empty());
    assert_eq!(run("`name`.`use`.first()"), ["official"]);
}

#[test]
fn choice_types() {
    assert_eq!(run("deceased"), ["false"]);
    assert!(is_true("deceased is boolean"));
    assert!(!is_true("deceased is dateTime"));
    assert_eq!(run("multipleBirth.ofType(integer)"), ["2"]);
    assert!(run("multipleBirth.ofType(boolean)").is_empty());
    assert!(run("deceasedDateTime").is_empty());
}

#[test]
fn primitive_extensions() {
    assert!(is_true("birthDate.hasValue()"));
    assert!(is_true("birthDate.extension.exists()"));
    assert!(is_true(
        "birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').exists()"
    ));
    assert!(!is_true("birthDate.extension('http://other').exists()"));
    assert_eq!(run("name[1].given.id"), ["g1"]);
    assert!(!is_true("name.hasValue()"));
}

#[test]
fn variables() {
    assert_eq!(run("%resource.id"), ["p1"]);
    assert_eq!(run("%context.id"), ["p1"]);
    assert_eq!(run("%rootResource.id"), ["p1"]);
    assert_eq!(run("%ucum"), ["http://unitsofmeasure.org"]);
    assert_eq!(run("%sct"), ["http://snomed.info/sct"]);
    assert_eq!(run("%loinc"), ["http://loinc.org"]);
    assert_eq!(
        run("%`vs-administrative-gender`"),
        ["http://hl7.org/fhir/ValueSet/administrative-gender"]
    );
    assert!(matches!(
        compile("%unknown"),
        Err(ParseError::UnknownVariable(_))
    ));
    let p = patient();
    let bundle = json!({"resourceType": "Bundle", "id": "b1"});
    let ctx = Context {
        resource: Some(&p),
        root_resource: Some(&bundle),
        ..Context::default()
    };
    let name = &p["name"][0];
    assert_eq!(run_with("%resource.id", name, &ctx).unwrap(), ["p1"]);
    assert_eq!(run_with("%rootResource.id", name, &ctx).unwrap(), ["b1"]);
    assert_eq!(
        run_with("%context.family", name, &ctx).unwrap(),
        ["Chalmers"]
    );
}

#[test]
fn this_index_total() {
    assert_eq!(
        run("name.given.where($this.startsWith('J'))"),
        ["James", "Jim"]
    );
    assert_eq!(run("name.given.select($index)"), ["0", "1", "2"]);
    assert_eq!(run("name.select(given.count() + $index)"), ["2", "2"]);
    assert_eq!(run("(1 | 2 | 3).aggregate($total + $this, 0)"), ["6"]);
}

#[test]
fn literals() {
    assert_eq!(run("'a\\'b'"), ["a'b"]);
    assert_eq!(run("1.50"), ["1.50"]);
    assert_eq!(run("-3"), ["-3"]);
    assert_eq!(run("@2014-01-25"), ["2014-01-25"]);
    assert_eq!(
        run("@2014-01-25T14:30:14.559+01:00"),
        ["2014-01-25T14:30:14.559+01:00"]
    );
    assert_eq!(run("@T14:30"), ["14:30"]);
    assert_eq!(run("4 'mg'"), ["4 'mg'"]);
    assert_eq!(run("4 days"), ["4 day"]);
    assert!(run("{}").is_empty());
    assert!(compile("@2014-13-01").is_err());
    assert!(compile("'unterminated").is_err());
}

#[test]
fn arithmetic() {
    assert_eq!(run("1 + 2 * 3"), ["7"]);
    assert_eq!(run("7 div 2"), ["3"]);
    assert_eq!(run("7 mod 2"), ["1"]);
    assert_eq!(run("1 / 4"), ["0.25"]);
    assert_eq!(run("1.8 - 1.2"), ["0.6"]);
    assert_eq!(run("'a' + 'b'"), ["ab"]);
    assert_eq!(run("'a' & {}"), ["a"]);
    assert!(run("'a' + {}").is_empty());
    assert!(run("1 / 0").is_empty());
    assert_eq!(run("-(2 + 3)"), ["-5"]);
    assert!(fails("1 + 'a'"));
    assert!(fails("-'a'"));
}

#[test]
fn comparison_and_equality() {
    assert!(is_true("1 < 2"));
    assert!(!is_true("'b' < 'a'"));
    assert!(is_true("1 = 1.0"));
    assert!(is_true("'a' != 'A'"));
    assert!(is_true("'a' ~ 'A'"));
    assert!(is_true("(1 | 2) ~ (2 | 1)"));
    assert!(!is_true("(1 | 2) = (2 | 1)"));
    assert!(run("{} = 1").is_empty());
    assert!(is_true("{} ~ {}"));
    assert!(fails("1 < 'a'"));
    assert!(fails("(1 | 2) < 3"));
    assert!(is_true("4 'g' = 4000 'mg'"));
    assert!(run("1 'g' = 1 'm'").is_empty());
}

#[test]
fn dates() {
    assert!(is_true("birthDate = @1974-12-25"));
    assert!(is_true("birthDate < @1975"));
    assert!(!is_true("birthDate > @1975-01-01"));
    // Precision mismatch: unknown.
    assert!(run("@2018-03 = @2018-03-01").is_empty());
    assert!(run("@2018-03 < @2018-03-01").is_empty());
    assert!(is_true("@2018-02 < @2018-03-01"));
    assert!(is_true(
        "@2017-11-05T01:30:00.0-04:00 = @2017-11-05T00:30:00.0-05:00"
    ));
    assert!(!is_true("@2012-04-15 ~ @2012-04-15T10:00:00"));
    assert_eq!(run("@2019-01-31 + 1 month"), ["2019-02-28"]);
    assert_eq!(run("@2019-01-01 - 1 day"), ["2018-12-31"]);
    assert_eq!(
        run("@2019-01-01T10:00:00Z + 90 minutes"),
        ["2019-01-01T11:30:00Z"]
    );
    assert!(fails("@2019-01-01 + 1 'mo'"));
    assert!(fails("@2019-01-01 * 2"));
}

#[test]
fn clock_is_injectable() {
    let now = Temporal::parse_datetime("2024-02-29T10:00:00Z").unwrap();
    let ctx = Context {
        now: Some(now),
        ..Context::default()
    };
    let p = patient();
    assert_eq!(run_with("today()", &p, &ctx).unwrap(), ["2024-02-29"]);
    assert_eq!(
        run_with("now()", &p, &ctx).unwrap(),
        ["2024-02-29T10:00:00Z"]
    );
    assert_eq!(run_with("birthDate < today()", &p, &ctx).unwrap(), ["true"]);
    assert_eq!(run_with("timeOfDay()", &p, &ctx).unwrap(), ["10:00:00"]);
}

#[test]
fn logic() {
    assert!(!is_true("true and false"));
    assert!(run("true and {}").is_empty());
    assert!(!is_true("false and {}"));
    assert!(is_true("{} or true"));
    assert!(run("{} or false").is_empty());
    assert!(is_true("true xor false"));
    assert!(run("true xor {}").is_empty());
    assert!(is_true("false implies {}"));
    assert!(run("true implies {}").is_empty());
    assert!(is_true("{} implies true"));
    assert!(!is_true("true.not()"));
    assert!(fails("(true | false) and true"));
}

#[test]
fn collections() {
    assert_eq!(run("(1 | 2 | 2)"), ["1", "2"]);
    assert_eq!(run("(1 | 2).combine(2)"), ["1", "2", "2"]);
    assert_eq!(run("(1 | 2 | 3).intersect(2 | 4)"), ["2"]);
    assert_eq!(run("(1 | 2 | 3).exclude(2)"), ["1", "3"]);
    assert!(is_true("2 in (1 | 2)"));
    assert!(!is_true("(1 | 2) contains 3"));
    assert!(run("{} in (1 | 2)").is_empty());
    assert!(fails("(1 | 2) in (1 | 2)"));
    assert!(is_true("(1 | 2).subsetOf(1 | 2 | 3)"));
    assert!(!is_true("(1 | 2 | 3).subsetOf(1 | 2)"));
    assert!(is_true("(1 | 2 | 3).supersetOf(1 | 2)"));
    assert!(is_true("name.given.isDistinct()"));
    assert!(!is_true("('a' | 'b').combine('a').isDistinct()"));
    assert_eq!(run("('a' | 'b').combine('a').distinct().count()"), ["2"]);
}

#[test]
fn existence_and_filtering() {
    assert!(is_true("name.exists()"));
    assert!(is_true("name.exists(use = 'usual')"));
    assert!(!is_true("name.exists(use = 'nickname')"));
    assert!(is_true("link.empty()"));
    assert!(is_true("name.all(given.exists())"));
    assert!(!is_true("name.all(family.exists())"));
    assert!(is_true("{}.all(false)"));
    assert!(is_true("(true | true).allTrue()"));
    assert!(is_true("(true | false).anyTrue()"));
    assert!(!is_true("(true | false).allFalse()"));
    assert!(is_true("(true | false).anyFalse()"));
    assert!(fails("(1 | 2).allTrue()"));
    assert_eq!(run("name.where(use = 'usual').given"), ["Jim"]);
    assert_eq!(run("name.select(given.first())"), ["Peter", "Jim"]);
    assert_eq!(run("name.count()"), ["2"]);
}

#[test]
fn subsetting() {
    assert_eq!(run("name.given.first()"), ["Peter"]);
    assert_eq!(run("name.given.last()"), ["Jim"]);
    assert_eq!(run("name.given.tail()"), ["James", "Jim"]);
    assert_eq!(run("name.given.skip(2)"), ["Jim"]);
    assert_eq!(run("name.given.take(1)"), ["Peter"]);
    assert_eq!(run("name[0].family.single()"), ["Chalmers"]);
    assert!(fails("name.given.single()"));
}

#[test]
fn tree_functions() {
    assert!(run("name[0].children()").len() == 4);
    assert!(is_true("descendants().where($this = 'Doc').exists()"));
    assert_eq!(run("contained.name.family.trace('x')"), ["Doc"]);
    assert!(is_true("repeat(contained).count() = 1"));
}

#[test]
fn types() {
    assert!(is_true("1 is Integer"));
    assert!(is_true("1 is System.Integer"));
    assert!(!is_true("1 is Decimal"));
    assert!(is_true("'a'.is(String)"));
    assert!(is_true("Patient.is(Patient)"));
    assert!(is_true("Patient is DomainResource"));
    assert!(is_true("contained.first() is Resource"));
    assert!(!is_true("Patient.is(Observation)"));
    assert_eq!(run("contained.ofType(Practitioner).id"), ["pr1"]);
    assert_eq!(run("(contained.first() as Practitioner).id"), ["pr1"]);
    assert!(run("(contained.first() as Patient).id").is_empty());
    assert_eq!(run("1.type().name"), ["Integer"]);
    assert_eq!(run("1.type().namespace"), ["System"]);
    assert_eq!(run("Patient.type().name"), ["Patient"]);
    assert!(fails("name.given is String"));
}

#[test]
fn iif_is_lazy() {
    assert_eq!(run("iif(true, 'y', 'n')"), ["y"]);
    assert_eq!(run("iif({}, 'y', 'n')"), ["n"]);
    assert!(run("iif(false, 'y')").is_empty());
    assert_eq!(run("iif(false, (1 | 2).single(), 3)"), ["3"]);
    assert!(fails("(1 | 2).iif(true, 1, 0)"));
}

#[test]
fn strings() {
    assert!(is_true("'abc'.startsWith('ab')"));
    assert!(!is_true("'abc'.endsWith('ab')"));
    assert!(is_true("'abc'.contains('b')"));
    assert_eq!(run("'abcdef'.substring(2, 2)"), ["cd"]);
    assert_eq!(run("'abcdef'.substring(4)"), ["ef"]);
    assert!(run("'abc'.substring(5)").is_empty());
    assert!(run("'abc'.substring(-1)").is_empty());
    assert_eq!(run("'abc'.indexOf('c')"), ["2"]);
    assert_eq!(run("'abc'.indexOf('x')"), ["-1"]);
    assert_eq!(run("'héllo'.length()"), ["5"]);
    assert_eq!(run("'Ab'.upper() + 'Ab'.lower()"), ["ABab"]);
    assert_eq!(run("'a-b-c'.replace('-', '+')"), ["a+b+c"]);
    assert_eq!(run("'a,b'.split(',')"), ["a", "b"]);
    assert_eq!(run("name.given.join('/')"), ["Peter/James/Jim"]);
    assert_eq!(run("'  x '.trim()"), ["x"]);
    assert_eq!(run("'ab'.toChars()"), ["a", "b"]);
    assert!(fails("name.startsWith('P')"));
    assert!(run("{}.startsWith('a')").is_empty());
}

#[test]
fn regexes() {
    assert!(is_true("'2019-01-01'.matches('^[0-9]{4}-')"));
    assert!(!is_true("'x2019'.matches('^[0-9]{4}')"));
    assert!(is_true("'abc'.matches('b')"));
    assert!(!is_true("'abc'.matchesFull('b')"));
    assert!(is_true("'abc'.matchesFull('a.c')"));
    assert_eq!(run("'a1b22'.replaceMatches('[0-9]+', '#')"), ["a#b#"]);
    assert_eq!(run("'ab'.replaceMatches('(a)(b)', '$2$1')"), ["ba"]);
    assert!(matches!(
        compile("'a'.matches('[')"),
        Err(ParseError::InvalidRegex(_))
    ));
    // A pattern computed at run time is compiled per evaluation.
    assert!(is_true("'abc'.matches('a' + 'b')"));
}

#[test]
fn conversions() {
    assert_eq!(run("'12'.toInteger() + 1"), ["13"]);
    assert!(run("'1.5'.toInteger()").is_empty());
    assert_eq!(run("'1.5'.toDecimal()"), ["1.5"]);
    assert_eq!(run("1.toString() + 'x'"), ["1x"]);
    assert_eq!(run("'yes'.toBoolean()"), ["true"]);
    assert!(run("'maybe'.toBoolean()").is_empty());
    assert_eq!(run("'2019-02'.toDate()"), ["2019-02"]);
    assert_eq!(
        run("'2019-02-03T10:00:00Z'.toDateTime()"),
        ["2019-02-03T10:00:00Z"]
    );
    assert_eq!(run("'10:30'.toTime()"), ["10:30"]);
    assert_eq!(run("'5 \\'mg\\''.toQuantity()"), ["5 'mg'"]);
    assert!(is_true("'12'.convertsToInteger()"));
    assert!(!is_true("'x'.convertsToDecimal()"));
    assert!(is_true("'true'.convertsToBoolean()"));
    assert!(is_true("'2019'.convertsToDate()"));
    assert!(!is_true("'2019-13'.convertsToDate()"));
    assert!(is_true("'2019-01-01T10:00'.convertsToDateTime()"));
    assert!(is_true("1.convertsToString()"));
    assert!(!is_true("name.first().convertsToString()"));
    assert!(fails("(1 | 2).toString()"));
}

#[test]
fn math() {
    assert_eq!(run("(-5).abs()"), ["5"]);
    assert_eq!(run("1.2.ceiling()"), ["2"]);
    assert_eq!(run("1.8.floor()"), ["1"]);
    assert_eq!(run("3.14159.round(2)"), ["3.14"]);
    assert_eq!(run("16.sqrt()"), ["4"]);
    assert!(run("(-1).sqrt()").is_empty());
    assert_eq!(run("2.7.truncate()"), ["2"]);
    assert_eq!(run("1.ln()"), ["0"]);
    assert_eq!(run("100.log(10)"), ["2"]);
    assert_eq!(run("2.power(10)"), ["1024"]);
    assert_eq!(run("0.exp()"), ["1"]);
    assert!(fails("'a'.abs()"));
}

struct MapResolver(Value);

impl Resolver for MapResolver {
    fn resolve(&self, reference: &str) -> Option<&Value> {
        (reference == "Organization/o1").then_some(&self.0)
    }
}

#[test]
fn resolve_contained_bundle_and_resolver() {
    assert_eq!(run("generalPractitioner.resolve().id"), ["pr1"]);
    assert!(run("managingOrganization.resolve()").is_empty());
    let org = MapResolver(json!({"resourceType": "Organization", "id": "o1"}));
    let p = patient();
    let ctx = Context {
        resolver: Some(&org),
        ..Context::default()
    };
    assert_eq!(
        run_with("managingOrganization.resolve().id", &p, &ctx).unwrap(),
        ["o1"]
    );
    assert_eq!(
        run_with("managingOrganization.resolve() is Organization", &p, &ctx).unwrap(),
        ["true"]
    );
    let bundle = json!({"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient", "id": "x",
            "managingOrganization": {"reference": "urn:uuid:b"},
            "generalPractitioner": [{"reference": "Practitioner/7"}]}},
        {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Organization", "id": "o"}},
        {"fullUrl": "http://h/fhir/Practitioner/7", "resource": {"resourceType": "Practitioner", "id": "7"}}
    ]});
    let ctx = Context {
        root_resource: Some(&bundle),
        ..Context::default()
    };
    let pat = &bundle["entry"][0]["resource"];
    assert_eq!(
        run_with("managingOrganization.resolve().id", pat, &ctx).unwrap(),
        ["o"]
    );
    assert_eq!(
        run_with("generalPractitioner.resolve().id", pat, &ctx).unwrap(),
        ["7"]
    );
}

/// A `#id` reference inside a Bundle entry, followed from an expression on the Bundle,
/// finds the contained resource of that entry (not of another entry with the same id).
#[test]
fn resolve_contained_in_an_entry_from_the_bundle() {
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://x/Observation/a", "resource": {"resourceType": "Observation", "id": "a",
            "contained": [{"resourceType": "Device", "id": "d", "status": "active"}],
            "device": {"reference": "#d"}}},
        {"fullUrl": "http://x/Observation/b", "resource": {"resourceType": "Observation", "id": "b",
            "contained": [{"resourceType": "Device", "id": "d", "status": "inactive"}],
            "device": {"reference": "#d"}}},
        {"fullUrl": "http://x/Observation/c", "resource": {"resourceType": "Observation", "id": "c",
            "device": {"reference": "#d"}}}
    ]});
    let ctx = Context {
        root_resource: Some(&bundle),
        ..Context::default()
    };
    assert_eq!(
        run_with("entry.resource.device.resolve().status", &bundle, &ctx).unwrap(),
        ["active", "inactive"]
    );
    assert_eq!(
        run_with(
            "entry.resource.ofType(Observation).all(device.resolve().exists())",
            &bundle,
            &ctx
        )
        .unwrap(),
        ["false"]
    );
}

#[test]
fn resolve_on_a_bundle_finds_an_entrys_contained_resource() {
    let entry = |device: &str| {
        json!({"resource": {"resourceType": "Observation", "device": {"reference": "#d"},
            "contained": [{"resourceType": "Device", "id": "d", "status": device}]}})
    };
    let one = json!({"resourceType": "Bundle", "entry": [entry("active")]});
    let ctx = Context {
        root_resource: Some(&one),
        ..Context::default()
    };
    let expr = "entry.resource.ofType(Observation).device.resolve().status";
    assert_eq!(run_with(expr, &one, &ctx).unwrap(), ["active"]);
    // Two entries contain a `#d`: each reference names its own entry's.
    let two = json!({"resourceType": "Bundle", "entry": [entry("active"), entry("inactive")]});
    let ctx = Context {
        root_resource: Some(&two),
        ..Context::default()
    };
    assert_eq!(run_with(expr, &two, &ctx).unwrap(), ["active", "inactive"]);
}

struct Genders;

impl Terminology for Genders {
    fn member_of(&self, code: &Item<'_>, value_set: &str) -> Option<bool> {
        if value_set != "http://hl7.org/fhir/ValueSet/administrative-gender" {
            return None;
        }
        Some(matches!(
            code.as_str(),
            Some("male" | "female" | "other" | "unknown")
        ))
    }
}

#[test]
fn member_of_needs_terminology() {
    let expr = "'male'.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')";
    assert!(matches!(
        run_with(expr, &patient(), &Context::default()),
        Err(EvalError::Unsupported(_))
    ));
    let ctx = Context {
        terminology: Some(&Genders),
        ..Context::default()
    };
    assert_eq!(run_with(expr, &patient(), &ctx).unwrap(), ["true"]);
    let bad = "'m'.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')";
    assert_eq!(run_with(bad, &patient(), &ctx).unwrap(), ["false"]);
}

#[test]
fn conforms_to_and_html_checks() {
    assert!(is_true(
        "conformsTo('http://hl7.org/fhir/StructureDefinition/Patient')"
    ));
    assert!(!is_true(
        "conformsTo('http://hl7.org/fhir/StructureDefinition/Observation')"
    ));
    assert!(fails("conformsTo('http://example.org/profile')"));
    assert!(is_true("htmlChecks()"));
}

#[test]
fn compile_errors() {
    assert!(matches!(
        compile("name.frobnicate()"),
        Err(ParseError::UnknownFunction(_))
    ));
    assert!(matches!(
        compile("name.first(1)"),
        Err(ParseError::Arity { .. })
    ));
    assert!(compile("name.").is_err());
    assert!(compile("name..given").is_err());
    assert!(compile("(name").is_err());
    assert!(compile("name[0").is_err());
    assert!(compile("1 +").is_err());
    assert!(compile("").is_err());
}

fn model() -> fhirpath::StructureDefinitionModel {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/r4-model.json");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let mut m = fhirpath::StructureDefinitionModel::new();
    m.add_bundle(&bundle);
    m
}

#[test]
fn model_types_nodes() {
    let m = model();
    let ctx = Context {
        model: Some(&m),
        ..Context::default()
    };
    let p = patient();
    let run = |e: &str| run_with(e, &p, &ctx).unwrap_or_else(|err| panic!("{e}: {err}"));
    assert_eq!(run("birthDate.type().name"), ["date"]);
    assert_eq!(run("name.first().type().name"), ["HumanName"]);
    assert_eq!(run("telecom.rank.type().name"), ["positiveInt"]);
    assert_eq!(run("active is boolean"), ["true"]);
    assert_eq!(run("name.given.first() is string"), ["true"]);
    assert_eq!(run("generalPractitioner.first() is Reference"), ["true"]);
    assert_eq!(run("contained.name.first() is HumanName"), ["true"]);
    // Typed as `date`: compared with a dateTime up to the common precision,
    // unknown (empty) when equal that far.
    assert_eq!(run("birthDate < @1974-12-26T00:00:00Z"), ["true"]);
    assert_eq!(
        run("birthDate < @1974-12-25T10:00:00Z"),
        Vec::<String>::new()
    );
    assert_eq!(run("birthDate < @1975-01-01"), ["true"]);
    // Backbone elements get their path as type name.
    let obs = json!({"resourceType": "Observation", "component": [{"code": {"text": "x"}, "valueInteger": 3}]});
    assert_eq!(
        run_with("component.type().name", &obs, &ctx).unwrap(),
        ["Observation.component"]
    );
    assert_eq!(
        run_with("component.value.ofType(integer)", &obs, &ctx).unwrap(),
        ["3"]
    );
}
