//! The SDK's errors as Rust values. They become JavaScript `Error`s only at the boundary
//! ([`SdkError::into_js`], called by the exported class), with `name = "FhircastError"`, a
//! `code` and, for HTTP failures, the hub's `status`. Messages name the URL and the likely
//! cause: what a developer needs to fix it without opening the network panel.

use std::fmt;

use wasm_bindgen::JsValue;

/// Why an SDK call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SdkError {
    /// A connect option is missing or unusable.
    Option { name: &'static str, reason: String },
    /// An argument of a method is unusable.
    Argument(String),
    /// The hub answered with an error status.
    Http { what: &'static str, url: String, status: u16, message: String },
    /// No answer: the network request itself failed.
    Network { what: &'static str, url: String, message: String },
    /// The hub denied or ended the subscription (req 46-48).
    Denied(String),
    /// The WebSocket closed before the hub confirmed the subscription.
    ClosedEarly { code: u16, reason: String },
    /// The access-token provider failed or returned something other than a string.
    Token(String),
    /// `close()` was called.
    ClientClosed,
}

impl fmt::Display for SdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdkError::Option { name, reason } => write!(f, "option `{name}` {reason}"),
            SdkError::Argument(m) => f.write_str(m),
            SdkError::Http { what, url, status, message } => {
                write!(f, "{what} failed: {url} answered {status}: {message}")?;
                f.write_str(match status {
                    404 | 405 => " (is hubUrl the hub's URL with its base path, e.g. …/api/hub?)",
                    401 => " (the access token is missing, expired or not accepted)",
                    403 => " (the access token lacks the scope, e.g. fhircast/Patient-open.read, or names another topic)",
                    _ => "",
                })
            }
            SdkError::Network { what, url, message } => write!(
                f,
                "{what} failed: no answer from {url} ({message}). Is the hub running there, and does it allow this page's origin (CORS)?"
            ),
            SdkError::Denied(reason) => write!(f, "the hub denied the subscription: {reason}"),
            SdkError::ClosedEarly { code, reason } => {
                write!(f, "the WebSocket closed (code {code}) before the hub confirmed the subscription")?;
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            SdkError::Token(m) => write!(f, "the accessToken provider failed: {m}"),
            SdkError::ClientClosed => f.write_str("the client is closed"),
        }
    }
}

impl SdkError {
    /// The HTTP status, for errors that have one.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            SdkError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What kind of failure it is: the error's `code` in JavaScript (index.d.ts lists them).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            SdkError::Option { .. } => "option",
            SdkError::Argument(_) => "argument",
            SdkError::Http { .. } => "http",
            SdkError::Network { .. } => "network",
            SdkError::Denied(_) => "denied",
            SdkError::ClosedEarly { .. } => "closed-early",
            SdkError::Token(_) => "token",
            SdkError::ClientClosed => "closed",
        }
    }

    /// A JavaScript `Error` with this message, `name = "FhircastError"`, `code`, and `status`
    /// when known.
    pub(crate) fn into_js(self) -> JsValue {
        js_error(&self.to_string(), self.code(), self.status())
    }
}

/// A JavaScript `Error` named `FhircastError`, with a `code` and an HTTP `status` when given.
pub(crate) fn js_error(message: &str, code: &str, status: Option<u16>) -> JsValue {
    let e = js_sys::Error::new(&format!("fhircast-sdk: {message}"));
    e.set_name("FhircastError");
    let _ = js_sys::Reflect::set(&e, &"code".into(), &code.into());
    if let Some(s) = status {
        let _ = js_sys::Reflect::set(&e, &"status".into(), &JsValue::from(s));
    }
    e.into()
}

/// The error of an HTTP answer that is not 2xx.
pub(crate) fn http_error(what: &'static str, r: crate::http::Reply) -> SdkError {
    SdkError::Http { what, status: r.status, message: hub_message(&r.body), url: r.url }
}

/// What a hub's error body says: the diagnostics of an OperationOutcome (the hub's JSON
/// errors), else the text itself (its plain-text errors, §5a-5), shortened.
pub(crate) fn hub_message(body: &str) -> String {
    if body.trim_start().starts_with('{') {
        // Read with the browser's JSON.parse: a serde pass here costs wasm size.
        let issue = crate::js::get(&crate::js::get(&crate::js::from_json_text(body), "issue"), "0");
        if let Some(d) = crate::js::get(&issue, "diagnostics").as_string() {
            return d;
        }
    }
    shorten(body)
}

/// `text`, trimmed and cut to 300 characters.
fn shorten(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None if t.is_empty() => "(no message)".to_owned(),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_text_messages_are_trimmed_and_shortened() {
        assert_eq!(shorten("  hub.topic is missing (req 27)\n"), "hub.topic is missing (req 27)");
        assert_eq!(shorten(""), "(no message)");
        assert_eq!(shorten(&"x".repeat(400)).chars().count(), 301);
    }

    #[test]
    fn messages_name_what_failed() {
        let url = || "https://ehr.example/api/hub".to_owned();
        let e = SdkError::Http { what: "subscribe", url: url(), status: 403, message: "scope missing".into() };
        assert_eq!(
            e.to_string(),
            "subscribe failed: https://ehr.example/api/hub answered 403: scope missing (the access token lacks the scope, e.g. fhircast/Patient-open.read, or names another topic)"
        );
        assert_eq!(e.status(), Some(403));
        let e = SdkError::ClosedEarly { code: 1006, reason: String::new() };
        assert_eq!(e.to_string(), "the WebSocket closed (code 1006) before the hub confirmed the subscription");
        let e = SdkError::Http { what: "subscribe", url: url(), status: 404, message: "(no message)".into() };
        assert!(e
            .to_string()
            .ends_with("answered 404: (no message) (is hubUrl the hub's URL with its base path, e.g. …/api/hub?)"));
        let e = SdkError::Network { what: "subscribe", url: url(), message: "Failed to fetch".into() };
        assert_eq!(
            e.to_string(),
            "subscribe failed: no answer from https://ehr.example/api/hub (Failed to fetch). Is the hub running there, and does it allow this page's origin (CORS)?"
        );
        assert_eq!(e.code(), "network");
    }
}
