//! Delivery: the outbox worker that sends signed webhooks to VCS organisations.
//!
//! Every outward message is written to the outbox in the same transaction as the change it
//! announces; this module only ever sends what is there, so nothing accepted can be lost.

pub mod email;
pub mod outcome;
pub mod retry;
pub mod signing;
pub mod ssrf;
pub mod worker;

pub use worker::{DeliveryWorker, Heartbeat, Wake};
