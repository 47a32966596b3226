//! `Observation`: the outcomes a VCS organisation reports (wellbeing scores and the like), as the
//! GP system reads them back. Read, vread, and search by referral (`based-on`), patient or code.

use actix_web::{web, HttpRequest, HttpResponse};

use super::common::{handle, read_route, resource, vread_route};
use super::search::{referral_resources, Parameters};
use crate::api::extract::GpClient;
use crate::api::AppState;

/// The parameters of an Observation search.
const SEARCH: Parameters = Parameters {
    resource_type: "Observation",
    names: &[
        "based-on", "patient", "subject", "code", "_count", "_offset",
    ],
    paged: true,
    lenient: true,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/Observation").route(web::get().to(search)))
        .service(resource("/Observation/{id}").route(read_route("Observation")))
        .service(
            resource("/Observation/{id}/_history/{version}").route(vread_route("Observation")),
        );
}

async fn search(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        referral_resources(&state, &request, &client, &SEARCH, "based-on", true).await
    })
    .await
}
