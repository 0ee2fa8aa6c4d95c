//! The SDK's errors as Rust values. They become JavaScript `Error`s only at the boundary
//! ([`SdkError::into_js`], called by the exported class), with `name = "FhircastError"` and,
//! for HTTP failures, the hub's `status`.

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
    Http { what: &'static str, status: u16, message: String },
    /// No answer: the network request itself failed.
    Network { what: &'static str, message: String },
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
            SdkError::Http { what, status, message } => {
                write!(f, "{what} failed: the hub answered {status}: {message}")
            }
            SdkError::Network { what, message } => write!(f, "{what} failed: no answer from the hub ({message})"),
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

    /// A JavaScript `Error` with this message, `name = "FhircastError"` and `status` when known.
    pub(crate) fn into_js(self) -> JsValue {
        js_error(&self.to_string(), self.status())
    }
}

/// A JavaScript `Error` named `FhircastError`, with an HTTP `status` when given.
pub(crate) fn js_error(message: &str, status: Option<u16>) -> JsValue {
    let e = js_sys::Error::new(&format!("fhircast-sdk: {message}"));
    e.set_name("FhircastError");
    if let Some(s) = status {
        let _ = js_sys::Reflect::set(&e, &"status".into(), &JsValue::from(s));
    }
    e.into()
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
        let e = SdkError::Http { what: "subscribe", status: 403, message: "scope missing".into() };
        assert_eq!(e.to_string(), "subscribe failed: the hub answered 403: scope missing");
        assert_eq!(e.status(), Some(403));
        let e = SdkError::ClosedEarly { code: 1006, reason: String::new() };
        assert_eq!(e.to_string(), "the WebSocket closed (code 1006) before the hub confirmed the subscription");
    }
}
