//! `Patient`: the patient of a referral, as the GP system sent it, readable by id (no search: a
//! GP system searches its referrals by patient instead).

use actix_web::web;

use super::common::{read_route, resource};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/Patient/{id}").route(read_route("Patient")));
}
