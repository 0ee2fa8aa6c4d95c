//! Answers shared by the Worker and the topic's Durable Object: plain text (for subscription
//! requests, req 39), JSON, and a FHIR OperationOutcome (event requests and get-current-context,
//! §5a-5). An [`Answer`] becomes a Response at the edge, or crosses from the object to the Worker
//! as the RPC reply of `publish` (`[status, content type, body]`, [`crate::contract`]).

use std::borrow::Cow;

use worker::{Response, Result};

use fhircast_core::outcome::operation_outcome;

/// A status, a content type and a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: Cow<'static, str>,
    pub(crate) body: String,
}

impl Answer {
    /// `status` with a plain-text body.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer::json(status, body, "text/plain; charset=utf-8")
    }

    /// `status` with `body` of `content_type`.
    pub(crate) fn json(status: u16, body: impl Into<String>, content_type: &'static str) -> Answer {
        Answer { status, content_type: Cow::Borrowed(content_type), body: body.into() }
    }

    /// `status` with an OperationOutcome saying `message`.
    pub(crate) fn outcome(status: u16, message: &str) -> Answer {
        Answer::json(status, operation_outcome(status, message), "application/fhir+json")
    }

    pub(crate) fn into_response(self) -> Result<Response> {
        let mut r = Response::ok(self.body)?.with_status(self.status);
        r.headers_mut().set("Content-Type", &self.content_type)?;
        Ok(r)
    }

    /// The RPC reply: `[status, content type, body]`.
    pub(crate) fn into_js(self) -> js_sys::Array {
        js_sys::Array::of3(&self.status.into(), &self.content_type.as_ref().into(), &self.body.into())
    }

    /// An RPC reply read back; `None` if it is not one.
    pub(crate) fn from_js(reply: &wasm_bindgen::JsValue) -> Option<Answer> {
        let a = js_sys::Array::from(reply);
        let status = a.get(0).as_f64().filter(|s| (100.0..=599.0).contains(s))? as u16;
        Some(Answer { status, content_type: Cow::Owned(a.get(1).as_string()?), body: a.get(2).as_string()? })
    }
}

/// `status` with a plain-text body.
pub(crate) fn text(status: u16, body: &str) -> Result<Response> {
    Answer::text(status, body).into_response()
}

/// `status` with `body` of `content_type`.
pub(crate) fn json(status: u16, body: &str, content_type: &'static str) -> Result<Response> {
    Answer::json(status, body, content_type).into_response()
}

/// `status` with an OperationOutcome saying `message`.
pub(crate) fn outcome(status: u16, message: &str) -> Result<Response> {
    Answer::outcome(status, message).into_response()
}
