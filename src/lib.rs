//! sp-gateway: FHIR R4 social-prescribing referrals from GP systems to voluntary and community
//! sector organisations, and their outcomes back.
//!
//! The way of one referral: `api` (HTTP) → `fhir::read` (JSON, or XML via fhirbolt) →
//! `validation` (the `sp-validator` engine) → `intake` (create rules, routing, ids) →
//! `translate` (the VCS referral record) → `store` (one transaction with the outbox row).
//! The way back: `api::vcs` → `lifecycle` (and `subscriptions`) → `store` → `delivery`.
//! `docs/ARCHITECTURE.md` has the picture and which module may import which.

pub mod accounts;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod conformance;
pub mod delivery;
pub mod directory;
pub mod domain;
pub mod fhir;
pub mod inbox;
pub mod intake;
pub mod lifecycle;
pub mod metrics;
pub mod onward;
pub mod operator;
pub mod reports;
pub mod reports_page;
pub mod seed;
pub mod store;
pub mod subscriptions;
pub mod translate;
pub mod validation;
