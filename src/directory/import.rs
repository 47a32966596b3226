//! Reading Open Referral UK feeds from files: one service (the `service_full` shape), a list
//! page (`{"total_items": …, "contents": [...]}`), an array of services, or a folder of such
//! files. Every service is validated against the UK profile's JSON Schema
//! (`profiles/oruk/schema/compiled/service.json`, embedded) with the `jsonschema` crate, formats
//! included; an invalid one is reported with its id and each fault's JSON pointer and the
//! crate's own message. Valid services are parsed into [`oruk::Service`].
//!
//! What `sp-gateway directory import` will do with the report (refuse all when anything is
//! invalid, or import the rest with `--skip-invalid`; exit codes) is its business: this module
//! reads and judges, it stores nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::coverage::{Coverage, CoverageNote};
use super::oruk;

/// The UK profile's schema of a service (`schema/compiled/service.json`, unchanged).
const SERVICE_SCHEMA: &str = include_str!("../../profiles/oruk/schema/compiled/service.json");

/// Why a feed cannot be read at all (as opposed to holding invalid services).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {what}")]
    Shape { path: PathBuf, what: String },
    #[error("the Open Referral UK service schema cannot be compiled: {0}")]
    Schema(String),
}

/// One fault of an invalid service: where (a JSON pointer into the service) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// Where a service came from: the file (or, for a polled feed, the URL), and its position in
/// the list it was in (if a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub index: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{} [{i}]", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// A service that failed the schema.
#[derive(Debug, Clone)]
pub struct InvalidService {
    /// Its `id` when it has a string one.
    pub id: Option<String>,
    pub origin: Origin,
    pub faults: Vec<Fault>,
}

impl fmt::Display for InvalidService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id.as_deref().unwrap_or("(no id)");
        write!(f, "service {id} ({}):", self.origin)?;
        for fault in &self.faults {
            write!(f, "\n  {fault}")?;
        }
        Ok(())
    }
}

/// A valid service, where it came from, and what of its places could not be read.
#[derive(Debug, Clone)]
pub struct ImportedService {
    pub service: oruk::Service,
    /// The service as the feed gave it (what the store keeps).
    pub raw: Value,
    pub origin: Origin,
    pub coverage: Coverage,
    pub notes: Vec<CoverageNote>,
}

/// Everything read from the given paths.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Valid services, in file order; a later copy of an id replaces an earlier one.
    pub services: Vec<ImportedService>,
    pub invalid: Vec<InvalidService>,
    /// Ids given to more than one service (the later one is kept).
    pub repeated: Vec<String>,
    /// Where each id is in `services`.
    positions: HashMap<String, usize>,
}

impl ImportReport {
    /// Adds one judged service: a valid one replaces an earlier copy of its id (which
    /// `repeated` names), an invalid one is listed.
    pub fn add(&mut self, judged: Result<ImportedService, InvalidService>) {
        match judged {
            Ok(s) => match self.positions.get(&s.service.id) {
                Some(&i) => {
                    self.repeated.push(s.service.id.clone());
                    self.services[i] = s;
                }
                None => {
                    self.positions
                        .insert(s.service.id.clone(), self.services.len());
                    self.services.push(s);
                }
            },
            Err(bad) => self.invalid.push(bad),
        }
    }

    /// Distinct organisations and locations of the valid services.
    pub fn organisation_and_location_counts(&self) -> (usize, usize) {
        let orgs: BTreeSet<&str> = self
            .services
            .iter()
            .filter_map(|s| s.service.organization.as_ref().map(|o| o.id.as_str()))
            .collect();
        let locs: BTreeSet<&str> = self
            .services
            .iter()
            .flat_map(|s| s.service.locations().map(|l| l.id.as_str()))
            .collect();
        (orgs.len(), locs.len())
    }
}

/// The compiled UK profile schema of a service. Compile once, judge many.
pub struct ServiceSchema {
    validator: jsonschema::Validator,
}

impl ServiceSchema {
    /// The embedded schema, with format checking on (`uuid`, `email`, `uri`, `date-time`).
    pub fn bundled() -> Result<ServiceSchema, ImportError> {
        let schema: Value =
            serde_json::from_str(SERVICE_SCHEMA).map_err(|e| ImportError::Schema(e.to_string()))?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| ImportError::Schema(e.to_string()))?;
        Ok(ServiceSchema { validator })
    }

    /// Every fault of `service`, in the order the validator finds them. A missing property is
    /// reported at the pointer where it is missing (`/name`), with the crate's message.
    pub fn faults(&self, service: &Value) -> Vec<Fault> {
        self.validator
            .iter_errors(service)
            .map(|e| {
                let mut pointer = e.instance_path().as_str().to_string();
                if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
                    if let Some(name) = property.as_str() {
                        pointer.push('/');
                        pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                    }
                }
                Fault {
                    pointer,
                    message: e.to_string(),
                }
            })
            .collect()
    }

    /// Judges and parses one service.
    pub fn check(&self, value: Value, origin: Origin) -> Result<ImportedService, InvalidService> {
        let id = value.get("id").and_then(Value::as_str).map(str::to_string);
        let faults = self.faults(&value);
        if !faults.is_empty() {
            return Err(InvalidService { id, origin, faults });
        }
        match oruk::Service::deserialize(&value) {
            Ok(service) => {
                let (coverage, notes) = Coverage::of(&service);
                Ok(ImportedService {
                    service,
                    raw: value,
                    origin,
                    coverage,
                    notes,
                })
            }
            // Only a field the UK profile leaves out (HSDS `phones`...) can get here.
            Err(e) => Err(InvalidService {
                id,
                origin,
                faults: vec![Fault {
                    pointer: String::new(),
                    message: e.to_string(),
                }],
            }),
        }
    }
}

/// Reads every path (files, and the `*.json` files of folders, sorted by name) into one report.
pub fn parse_paths(paths: &[PathBuf]) -> Result<ImportReport, ImportError> {
    let schema = ServiceSchema::bundled()?;
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(json_files(p)?);
        } else {
            files.push(p.clone());
        }
    }
    let mut report = ImportReport::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ImportError::Io {
            path: file.clone(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ImportError::Json {
            path: file.clone(),
            source,
        })?;
        let source = file.display().to_string();
        let items = services_of(value, &source).map_err(|e| ImportError::Shape {
            path: file.clone(),
            what: e.to_string(),
        })?;
        for (item, origin) in items {
            report.add(schema.check(item, origin));
        }
    }
    Ok(report)
}

/// The `*.json` files directly in a folder, sorted.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Why a JSON document is not an Open Referral UK feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAFeed {
    #[error("a list page's \"contents\" must be an array of services")]
    Contents,
    #[error("expected a service, a list page or an array of services")]
    Shape,
}

/// The services a document holds (a file's, or later a polled page's): a list page's
/// `contents`, an array's items, or the one object. `source` names it in each [`Origin`].
pub fn services_of(value: Value, source: &str) -> Result<Vec<(Value, Origin)>, NotAFeed> {
    let origin = |index| Origin {
        source: source.to_string(),
        index,
    };
    let items = match value {
        Value::Object(mut o) if o.contains_key("contents") => match o.remove("contents") {
            Some(Value::Array(items)) => items,
            _ => return Err(NotAFeed::Contents),
        },
        Value::Array(items) => items,
        one @ Value::Object(_) => return Ok(vec![(one, origin(None))]),
        _ => return Err(NotAFeed::Shape),
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, origin(Some(i))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE_FULL: &str = include_str!("../../profiles/oruk/examples/service_full.json");
    const EXAMPLE_LIST: &str = include_str!("../../profiles/oruk/examples/service_list.json");

    fn schema() -> ServiceSchema {
        ServiceSchema::bundled().expect("schema compiles")
    }

    fn origin() -> Origin {
        Origin {
            source: "feed.json".into(),
            index: Some(0),
        }
    }

    #[test]
    fn the_published_examples_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let full = dir.path().join("a-full.json");
        let list = dir.path().join("b-list.json");
        std::fs::write(&full, EXAMPLE_FULL).expect("write");
        std::fs::write(&list, EXAMPLE_LIST).expect("write");
        let report = parse_paths(&[dir.path().to_path_buf()]).expect("readable");
        assert!(report.invalid.is_empty(), "{:?}", report.invalid);
        // Both files hold the same service: the list page's copy (read second) is kept.
        assert_eq!(report.services.len(), 1);
        assert_eq!(report.repeated, ["ac148810-d857-441c-9679-408f346de14b"]);
        assert_eq!(report.services[0].origin.source, list.display().to_string());
        assert_eq!(report.organisation_and_location_counts(), (1, 0));
    }

    #[test]
    fn a_missing_name_and_a_bad_id_are_named_with_pointer_and_reason() {
        let bad = json!({"id": "walk-and-talk-1", "status": "active"});
        let Err(invalid) = schema().check(bad, origin()) else {
            panic!("must be invalid")
        };
        assert_eq!(invalid.id.as_deref(), Some("walk-and-talk-1"));
        let shown: Vec<String> = invalid.faults.iter().map(Fault::to_string).collect();
        assert!(
            shown.contains(&r#"/name: "name" is a required property"#.to_string()),
            "{shown:?}"
        );
        assert!(
            shown.contains(&r#"/id: "walk-and-talk-1" is not a "uuid""#.to_string()),
            "{shown:?}"
        );
        let text = invalid.to_string();
        assert!(
            text.starts_with("service walk-and-talk-1 (feed.json [0]):"),
            "{text}"
        );
    }

    #[test]
    fn nested_faults_point_into_the_service() {
        let bad = json!({
            "id": "2f1f4b4e-7d55-4d0e-9c39-3f7e3e1c2a10", "name": "n", "status": "open",
            "email": "not an email",
            "service_at_locations": [{"id": "0d7c9c59-8d0b-4c8a-bb1f-6a8f6f0d1b11",
                "location": {"id": "5f0e8a55-9f61-4c52-9a55-2f3a0c8c8e12"}}]
        });
        let Err(invalid) = schema().check(bad, origin()) else {
            panic!("must be invalid")
        };
        let pointers: Vec<&str> = invalid.faults.iter().map(|f| f.pointer.as_str()).collect();
        assert!(pointers.contains(&"/status"), "{pointers:?}");
        assert!(pointers.contains(&"/email"), "{pointers:?}");
        assert!(
            pointers.contains(&"/service_at_locations/0/location/location_type"),
            "{pointers:?}"
        );
    }

    #[test]
    fn the_fixture_feeds_hold_six_valid_and_two_invalid_services() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory"));
        let report = parse_paths(&[dir]).expect("readable");
        let names: Vec<&str> = report
            .services
            .iter()
            .map(|s| s.service.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Cyngor ar Ddyledion a Budd-daliadau / Debt and Benefits Advice",
                "Golden Valley Lunch Club",
                "Knit and Natter, Ewyas Harold",
                "Carers' Café",
                "Telephone Friends",
                "Golden Valley Men's Shed",
            ]
        );
        for s in &report.services {
            assert!(s.notes.is_empty(), "{}: {:?}", s.service.name, s.notes);
        }
        let faults: Vec<String> = report
            .invalid
            .iter()
            .flat_map(|i| i.faults.iter().map(Fault::to_string))
            .collect();
        assert_eq!(
            faults,
            [
                r#"/name: "name" is a required property"#,
                r#"/id: "walk-and-talk-1" is not a "uuid""#
            ]
        );
        assert_eq!(report.invalid[0].origin.index, Some(3));
        assert!(report.repeated.is_empty());
        assert_eq!(report.organisation_and_location_counts(), (6, 7));
    }

    #[test]
    fn every_file_shape_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = json!({"id": "7b0c3e8e-2c57-4c1b-9d8e-1a2b3c4d5e61", "name": "One", "status": "active"});
        let two = json!({"id": "7b0c3e8e-2c57-4c1b-9d8e-1a2b3c4d5e62", "name": "Two", "status": "inactive"});
        let three = json!({"id": "7b0c3e8e-2c57-4c1b-9d8e-1a2b3c4d5e63", "name": "Three", "status": "active"});
        let files = [
            ("single.json", one),
            ("array.json", json!([two])),
            ("page.json", json!({"total_items": 1, "contents": [three]})),
        ];
        let mut paths = Vec::new();
        for (name, v) in files {
            let p = dir.path().join(name);
            std::fs::write(&p, v.to_string()).expect("write");
            paths.push(p);
        }
        let report = parse_paths(&paths).expect("readable");
        let names: Vec<&str> = report
            .services
            .iter()
            .map(|s| s.service.name.as_str())
            .collect();
        assert_eq!(names, ["One", "Two", "Three"]);
        assert_eq!(report.services[0].origin.index, None);
        assert_eq!(report.services[2].origin.index, Some(0));
    }

    #[test]
    fn unreadable_feeds_are_errors_not_invalid_services() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.json");
        assert!(matches!(
            parse_paths(std::slice::from_ref(&missing)),
            Err(ImportError::Io { .. })
        ));
        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, "{not json").expect("write");
        assert!(matches!(
            parse_paths(std::slice::from_ref(&garbage)),
            Err(ImportError::Json { .. })
        ));
        let number = dir.path().join("number.json");
        std::fs::write(&number, "42").expect("write");
        let err = parse_paths(std::slice::from_ref(&number)).expect_err("a number");
        assert!(err.to_string().contains("expected a service"), "{err}");
        let page = dir.path().join("page.json");
        std::fs::write(&page, r#"{"contents": {}}"#).expect("write");
        assert!(matches!(
            parse_paths(std::slice::from_ref(&page)),
            Err(ImportError::Shape { .. })
        ));
    }
}
