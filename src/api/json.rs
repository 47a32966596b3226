//! What the JSON APIs (the VCS API and the operator's) share besides their errors: `limit` and
//! `offset` paging, the shape of a page, and rendering a handler's result.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use super::errors::Problem;

/// `limit` and `offset`, the paging parameters every JSON list endpoint takes.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
    max_limit: usize,
}

impl Page {
    pub fn new(default_limit: usize, max_limit: usize) -> Self {
        Page {
            limit: default_limit,
            offset: 0,
            max_limit,
        }
    }

    /// Takes `name=value` when it is `limit` or `offset` (a larger limit is capped); `false` for
    /// any other parameter.
    pub fn take(&mut self, name: &str, value: &str) -> Result<bool, Problem> {
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| Problem::BadRequest(format!("{name} is a whole number.")))
        };
        match name {
            "limit" => self.limit = number()?.min(self.max_limit),
            "offset" => self.offset = number()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One page of a JSON list: the items, the total, and where the next page starts (if any).
pub fn json_page(total: usize, offset: usize, items: Vec<serde_json::Value>) -> serde_json::Value {
    let next_offset = (offset + items.len() < total).then_some(offset + items.len());
    json!({"total": total, "offset": offset, "next_offset": next_offset, "items": items})
}

/// Renders a JSON API handler's result.
pub fn json_result(result: Result<(StatusCode, serde_json::Value), Problem>) -> HttpResponse {
    match result {
        Ok((status, body)) => HttpResponse::build(status)
            .content_type("application/json")
            .body(body.to_string()),
        Err(problem) => problem.into_response(),
    }
}
