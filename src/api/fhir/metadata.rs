//! `GET /fhir/metadata`: a CapabilityStatement that says exactly what this server does. A test
//! (`tests/capability.rs`) walks it and calls every interaction, search parameter and operation
//! it declares, so a declaration without a working route fails the build.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::common::{handle, resource};
use crate::api::errors::Reply;
use crate::api::AppState;
use crate::config::Config;
use crate::conformance::Conformance;
use crate::fhir::FHIR_VERSION;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metadata").route(web::get().to(metadata)));
}

/// `GET /fhir/metadata`, readable without a token.
async fn metadata(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async move {
        Ok(Reply::ok(capability_statement(
            &state.config,
            state.validation.conformance(),
        )))
    })
    .await
}

const SP_BASE: &str = "http://hl7.org/fhir/SearchParameter";
const VALIDATE: &str = "http://hl7.org/fhir/OperationDefinition/Resource-validate";
const EXPAND: &str = "http://hl7.org/fhir/OperationDefinition/ValueSet-expand";
const PROCESS_MESSAGE: &str =
    "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message";

/// A search parameter: name, type, the core definition (when it is a core one), documentation.
fn param(name: &str, kind: &str, definition: Option<String>, doc: &str) -> Value {
    let mut p = json!({"name": name, "type": kind, "documentation": doc});
    if let Some(d) = definition {
        p["definition"] = json!(d);
    }
    p
}

/// One of our SearchParameters (`profiles/sp/SearchParameter-{id}.json`, readable at
/// `/fhir/SearchParameter/{id}`).
fn ours(id: &str) -> Option<String> {
    Some(format!("https://fhir.sp-gateway.uk/SearchParameter/{id}"))
}

fn core(resource: &str, name: &str) -> Option<String> {
    Some(format!("{SP_BASE}/{resource}-{name}"))
}

/// `_count` and `_offset`, which every search here pages with.
fn paging() -> [Value; 2] {
    [
        param(
            "_count",
            "number",
            None,
            "Page size (default 20, at most 100)",
        ),
        param(
            "_offset",
            "number",
            None,
            "Where the page starts, as in the Bundle's next link",
        ),
    ]
}

fn format_param() -> Value {
    param(
        "_format",
        "token",
        None,
        "json, xml, application/fhir+json or application/fhir+xml (overrides Accept)",
    )
}

fn interactions(codes: &[&str]) -> Value {
    json!(codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>())
}

fn conformance_resource(kind: &str) -> Value {
    let mut r = json!({
        "type": kind,
        "documentation": "Our definitions (profiles/sp), readable without a token.",
        "interaction": interactions(&["read", "search-type"]),
        "searchParam": [
            param("url", "uri", core("conformance", "url"), "The canonical URL; url|version also names the version"),
            param("name", "string", core("conformance", "name"), "Computer name, starts with (case-insensitive)"),
            param("version", "token", core("conformance", "version"), "The business version"),
            format_param()
        ]
    });
    if kind == "StructureDefinition" {
        r["documentation"] = json!("Our profiles, each with its differential and a generated snapshot, readable without a token.");
    }
    if kind == "ValueSet" {
        r["operation"] = json!([{"name": "expand", "definition": EXPAND,
            "documentation": "GET ValueSet/{id}/$expand or ValueSet/$expand?url=…, with filter (words that start words of the display), offset and count"}]);
    }
    r
}

pub fn capability_statement(config: &Config, conformance: &Conformance) -> Value {
    let base = config.base_url();
    let [count, offset] = paging();
    let mut resources = vec![
        json!({
            "type": "ServiceRequest",
            "profile": "http://hl7.org/fhir/StructureDefinition/ServiceRequest",
            "supportedProfile": [sp_validator::SP_SERVICE_REQUEST],
            "documentation": "A social-prescribing referral. Updates (PUT, or JSON Patch) may only revoke it, with If-Match.",
            "interaction": interactions(&["create", "read", "vread", "update", "patch", "history-instance", "search-type"]),
            "versioning": "versioned-update",
            "readHistory": true,
            "updateCreate": false,
            "conditionalCreate": true,
            "conditionalRead": "not-supported",
            "conditionalUpdate": false,
            "conditionalDelete": "not-supported",
            "searchRevInclude": ["Task:focus", "Observation:based-on", "ServiceRequest:based-on"],
            "searchParam": [
                param("identifier", "token", core("clinical", "identifier"), "The GP system's referral identifier: system|value or value"),
                param("patient", "reference", core("clinical", "patient"), "Patient/{id} as returned by this server"),
                param("status", "token", core("ServiceRequest", "status"), "Comma-separated request statuses"),
                param("based-on", "reference", core("ServiceRequest", "based-on"), "ServiceRequest/{id}: the onward referrals a link worker made from that referral"),
                count.clone(), offset.clone(), format_param()
            ],
            "operation": [{"name": "validate", "definition": VALIDATE}]
        }),
        json!({
            "type": "Patient",
            "supportedProfile": [sp_validator::SP_PATIENT],
            "documentation": "The person referred, as the GP system sent them (stored with the referral).",
            "interaction": interactions(&["read"])
        }),
        json!({
            "type": "Task",
            "supportedProfile": [sp_validator::SP_REFERRAL_TASK],
            "documentation": "What happened to a referral, one version per report from the organisation; each version's note is the one reported with it (the whole story: _history).",
            "interaction": interactions(&["read", "vread", "history-instance", "search-type"]),
            "versioning": "versioned",
            "readHistory": true,
            "searchRevInclude": ["Task:part-of"],
            "searchParam": [
                param("focus", "reference", core("Task", "focus"), "ServiceRequest/{id}: the referral's Task"),
                param("part-of", "reference", core("Task", "part-of"), "Task/{id}: the Tasks of the onward referrals made from that Task's referral"),
                param("patient", "reference", core("Task", "patient"), "Patient/{id}"),
                param("subject", "reference", core("Task", "subject"), "Patient/{id} (the same as patient)"),
                count.clone(), offset.clone(), format_param()
            ]
        }),
        json!({
            "type": "Observation",
            "supportedProfile": [sp_validator::SP_OUTCOME_OBSERVATION],
            "documentation": "Wellbeing scores (ONS4, WEMWBS, SWEMWBS) reported by the organisation.",
            "interaction": interactions(&["read", "vread", "search-type"]),
            "versioning": "versioned",
            "readHistory": true,
            "searchParam": [
                param("based-on", "reference", core("Observation", "based-on"), "ServiceRequest/{id}"),
                param("patient", "reference", core("clinical", "patient"), "Patient/{id}"),
                param("subject", "reference", core("Observation", "subject"), "Patient/{id} (the same as patient)"),
                param("code", "token", core("clinical", "code"), "system|code or code of the measure"),
                count.clone(), offset.clone(), format_param()
            ]
        }),
        json!({
            "type": "Subscription",
            "documentation": "rest-hook notifications of Task and Observation changes (criteria Task?… or Observation?…), signed the Standard Webhooks way.",
            "interaction": interactions(&["create", "read", "delete"])
        }),
        json!({
            "type": "AuditEvent",
            "documentation": "Who read, created or changed what (operators' token only).",
            "interaction": interactions(&["search-type"]),
            "searchParam": [
                param("patient", "reference", core("AuditEvent", "patient"), "Patient/{id}"),
                param("entity", "reference", core("AuditEvent", "entity"), "Type/id: records about that resource (a Subscription, a ServiceRequest…)"),
                param("date", "date", core("AuditEvent", "date"), "ge/gt/le/lt/eq and a date or dateTime"),
                count.clone(), offset.clone(), format_param()
            ]
        }),
        json!({
            "type": "HealthcareService",
            "supportedProfile": [crate::directory::fhir::SP_HEALTHCARE_SERVICE],
            "documentation": "The service directory (Open Referral UK feeds): community services by need and place, best matches first (the postcode's district, then its area, then services that cover everywhere; nearest first within each, with the distance as the location-distance extension of entry.search). Readable by GP systems and VCS organisations.",
            "interaction": interactions(&["read", "search-type"]),
            "searchInclude": ["HealthcareService:organization", "HealthcareService:location"],
            "searchParam": [
                param("need", "token", ours("HealthcareService-need"), "A need (SNOMED CT, ValueSet sp-referral-need) or need category, system|code or code; comma-separated means any. Finds the services in its need category"),
                param("postcode", "string", ours("HealthcareService-postcode"), "A UK postcode (HR2 0LT) or district (HR2): the services covering it, district before area before everywhere, nearest first within each (from the district's centroid, OS Code-Point Open); not a UK postcode is a 400"),
                param("service-category", "token", core("HealthcareService", "service-category"), "A need category (https://fhir.sp-gateway.uk/CodeSystem/need-category|code or code)"),
                param("name", "string", core("HealthcareService", "name"), "Words that start words of the name or description"),
                param("_text", "string", ours("HealthcareService-text"), "Words that start words of the name or description"),
                param("organization", "reference", core("HealthcareService", "organization"), "Organization/{id} of the directory"),
                param("active", "token", core("HealthcareService", "active"), "true or false (withdrawn services are not active)"),
                count.clone(), offset.clone(), format_param()
            ]
        }),
        json!({
            "type": "Organization",
            "supportedProfile": [crate::directory::fhir::SP_DIRECTORY_ORGANIZATION],
            "documentation": "Organisations of the service directory, with their charity, company and ODS identifiers.",
            "interaction": interactions(&["read"])
        }),
        json!({
            "type": "Location",
            "supportedProfile": [crate::directory::fhir::SP_DIRECTORY_LOCATION],
            "documentation": "Places and areas of the service directory's services; search by near finds the places of listed services that have a position, nearest first, with the location-distance extension of entry.search.",
            "interaction": interactions(&["read", "search-type"]),
            "searchParam": [
                param("near", "special", core("Location", "near"), "latitude|longitude|distance|units (WGS84; units km, m or [mi_i], km when left out; 25 km when the distance is left out); required; a value that cannot be read is a 400"),
                count, offset, format_param()
            ]
        }),
        json!({
            "type": "Measure",
            "documentation": "The indicators of the commissioners' reports (one per report column: referrals received, accepted, …, median days to first contact; wellbeing people, means and share reaching the meaningful-change threshold per measure), readable without a token.",
            "interaction": interactions(&["read", "search-type"]),
            "searchParam": [
                param("url", "uri", core("conformance", "url"), "The canonical URL (https://fhir.sp-gateway.uk/Measure/{id})"),
                format_param()
            ]
        }),
        json!({
            "type": "MeasureReport",
            "documentation": "Commissioners' tokens only: summary MeasureReports of the Measures named, over the referrals received in the period within the commissioner's scope, stratified by month, practice, organisation and need category. Counts from 1 to 4 (and figures over fewer than 5 people) are absent, marked data-absent-reason masked.",
            "interaction": interactions(&["search-type"]),
            "searchParam": [
                param("measure", "reference", core("MeasureReport", "measure"), "The Measure's canonical URL or id; comma-separated for several; absent, every Measure"),
                param("period", "date", core("MeasureReport", "period"), "geYYYY-MM-DD (first day) and leYYYY-MM-DD (last day); without ge, 365 days up to the last day; without le, up to today"),
                format_param()
            ]
        }),
        json!({
            "type": "Bundle",
            "documentation": "Transaction and BaRS message Bundles are accepted at the base and at $process-message; $validate checks one without storing it.",
            "operation": [{"name": "validate", "definition": VALIDATE}]
        }),
    ];
    resources.extend(conformance.published_types().map(conformance_resource));
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-03",
        "publisher": "sp-gateway",
        "kind": "instance",
        "software": {"name": "sp-gateway", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Social-prescribing referral gateway", "url": format!("{base}/fhir")},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "GP systems send social-prescribing referrals; each is validated, routed to a community organisation and delivered to it. Status and outcomes come back as Task and Observation versions.",
            // The token endpoint is named here and in /fhir/.well-known/smart-configuration. The
            // older oauth-uris extension is not used: R4 defines it with a required `authorize`
            // endpoint, which a Backend Services server (no user login) does not have.
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}],
                    "text": "SMART Backend Services"}],
                "description": format!("SMART Backend Services: a `private_key_jwt` client assertion at the token endpoint {base}/oauth2/token gives a short-lived bearer token with `system/` scopes (discovery: {base}/fhir/.well-known/smart-configuration); static lab tokens are accepted too.")
            },
            "resource": resources,
            "interaction": [{"code": "transaction", "documentation": "One referral per transaction: ServiceRequest with Patient, Practitioner/PractitionerRole, Organization and Consent"}],
            "operation": [{"name": "process-message", "definition": PROCESS_MESSAGE}]
        }]
    })
}
