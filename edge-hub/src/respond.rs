//! Response builders shared by the Worker and the topic's Durable Object: plain text (for
//! subscription requests, req 39), JSON, and a FHIR OperationOutcome (event requests and
//! get-current-context, §5a-5).

use worker::{Response, Result};

use fhircast_core::outcome::operation_outcome;

/// `status` with a plain-text body.
pub(crate) fn text(status: u16, body: &str) -> Result<Response> {
    json(status, body, "text/plain; charset=utf-8")
}

/// `status` with `body` of `content_type`.
pub(crate) fn json(status: u16, body: &str, content_type: &str) -> Result<Response> {
    let mut r = Response::ok(body)?.with_status(status);
    r.headers_mut().set("Content-Type", content_type)?;
    Ok(r)
}

/// `status` with an OperationOutcome saying `message`.
pub(crate) fn outcome(status: u16, message: &str) -> Result<Response> {
    json(status, &operation_outcome(status, message), "application/fhir+json")
}
