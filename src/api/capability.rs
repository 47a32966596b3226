//! `GET /fhir/metadata`: a CapabilityStatement that says exactly what this server does.

use serde_json::{json, Value};

use crate::config::Config;
use crate::fhir::FHIR_VERSION;

pub fn capability_statement(config: &Config) -> Value {
    let base = config.base_url();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "sp-gateway",
        "kind": "instance",
        "software": {"name": "sp-gateway", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Social-prescribing referral gateway", "url": format!("{base}/fhir")},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "documentation": "GP systems send social-prescribing referrals; each is validated, routed to a community organisation and delivered to it.",
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}],
                    "text": "SMART Backend Services: a private_key_jwt client assertion at /oauth2/token gives a short-lived bearer token with system/ scopes; static lab tokens are accepted too"}],
                "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": format!("{base}/oauth2/token")}]}]
            },
            "resource": [
                {
                    "type": "ServiceRequest",
                    "supportedProfile": [sp_validator::SP_SERVICE_REQUEST],
                    "interaction": [{"code": "create"}, {"code": "read"}, {"code": "vread"}, {"code": "search-type"}],
                    "versioning": "versioned",
                    "readHistory": false,
                    "updateCreate": false,
                    "conditionalCreate": true,
                    "searchParam": [
                        {"name": "identifier", "type": "token", "documentation": "The GP system's referral identifier: system|value or value"},
                        {"name": "patient", "type": "reference", "documentation": "Patient/{id} as returned by this server"},
                        {"name": "status", "type": "token", "documentation": "Comma-separated request statuses"},
                        {"name": "_count", "type": "number", "documentation": "Page size (default 20, at most 100)"}
                    ],
                    "operation": [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
                },
                {
                    "type": "Patient",
                    "supportedProfile": [sp_validator::SP_PATIENT],
                    "interaction": [{"code": "read"}]
                },
                {
                    "type": "Bundle",
                    "operation": [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
                }
            ],
            "interaction": [{"code": "transaction", "documentation": "One referral per transaction: ServiceRequest with Patient, Practitioner/PractitionerRole, Organization and Consent"}],
            "operation": [{"name": "process-message", "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"}]
        }]
    })
}
