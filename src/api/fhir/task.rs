//! `Task`: the VCS organisation's progress with a referral (accepted, contacted, completed…), as
//! the GP system reads it back. Read, vread, history (each report's note is on the version it
//! made), and search by referral (`focus`), patient, or parent Task (`part-of`: the Tasks of
//! onward referrals), with `_revinclude=Task:part-of`.

use actix_web::{web, HttpRequest, HttpResponse};

use super::common::{handle, history_route, read_route, resource, vread_route};
use super::search::{referral_resources, Parameters};
use crate::api::extract::GpClient;
use crate::api::AppState;

/// The parameters of a Task search.
const SEARCH: Parameters = Parameters {
    resource_type: "Task",
    names: &[
        "focus",
        "part-of",
        "patient",
        "subject",
        "_count",
        "_offset",
        "_revinclude",
    ],
    paged: true,
    lenient: true,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/Task").route(web::get().to(search)))
        .service(resource("/Task/{id}").route(read_route("Task")))
        .service(resource("/Task/{id}/_history").route(history_route("Task")))
        .service(resource("/Task/{id}/_history/{version}").route(vread_route("Task")));
}

async fn search(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        referral_resources(&state, &request, &client, &SEARCH, "focus", false).await
    })
    .await
}
