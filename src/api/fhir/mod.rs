//! The FHIR R4 API GP systems call (`/fhir`): one file per resource or endpoint family, each
//! with its own `routes`; `common` and `search` are what they share. A handler reads who is
//! calling from `GpClient` (or `Operator`), parses, calls the rules (`intake`, `lifecycle`,
//! `subscriptions`, `store`) and renders a resource or an OperationOutcome; it holds no rule.
//!
//! To add a resource: a file here with its `routes`, a line below, its declaration in
//! `metadata` (a test calls whatever the CapabilityStatement declares), and its scope in
//! `auth::scopes` if GP systems read or write it.

use actix_web::web;

pub mod audit_event;
pub mod bundle;
pub mod common;
pub mod conformance;
pub mod healthcare_service;
pub mod location;
pub mod measure;
pub mod metadata;
pub mod observation;
pub mod patient;
pub mod search;
pub mod service_request;
pub mod subscription;
pub mod task;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir")
            .configure(bundle::routes)
            .configure(metadata::routes)
            .configure(service_request::routes)
            .configure(patient::routes)
            .configure(conformance::routes)
            .configure(task::routes)
            .configure(observation::routes)
            .configure(subscription::routes)
            .configure(audit_event::routes)
            .configure(healthcare_service::routes)
            .configure(measure::routes),
    );
}
