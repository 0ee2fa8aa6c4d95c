//! Which request is which (pure: no `worker` types, tested natively).
//!
//! Under the hub base (default `/api/hub`):
//! - `POST {base}`: a form (`application/x-www-form-urlencoded`) is a subscription request; JSON
//!   (`application/json`, `application/fhir+json`) is an event request (neg 1, req 4);
//! - `POST {base}/{topic}`: an event request (older clients);
//! - `GET {base}/{topic}`: get current context (req 101);
//! - `GET {base}/{topic}/subscribers`: the topic's roster (this hub's extension, for EHR
//!   dashboards: who subscribed, connected, awaited and last answered; no endpoints);
//! - `GET {base}/{topic}/timeline?since={seq}&limit={n}`: the topic's recorded facts (this
//!   hub's extension for its operators, issue 17);
//! - `GET {base}/.well-known/fhircast-configuration` (req 11);
//! - `GET {base}/ws/{topic}/{token}` with `Upgrade: websocket`: a subscription's endpoint;
//! - `OPTIONS` anything under the base: CORS preflight.

/// What the body of a POST is, by its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json` or `application/fhir+json` (or any `+json`).
    Json,
    /// Anything else (or none).
    Other,
}

/// Classifies a `Content-Type` header value (parameters such as `charset` ignored).
pub fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(ct) = content_type else { return BodyKind::Other };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "application/json" | "application/fhir+json" => BodyKind::Json,
        e if e.starts_with("application/") && e.ends_with("+json") => BodyKind::Json,
        _ => BodyKind::Other,
    }
}

/// How a refusal is written (§5a-5): plain text for subscription requests (req 39), a FHIR
/// OperationOutcome (`application/fhir+json`) for event requests and get-current-context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorBody {
    /// `text/plain`.
    Text,
    /// An OperationOutcome.
    Outcome,
}

/// The error body for refusals of a POST found before its body is parsed (415, 413, an
/// unreadable or non-UTF-8 body): a POST to `{base}/{topic}` is always an event request, and
/// a JSON POST to `{base}` is read as one; forms and unknown types get plain text.
pub fn post_error_body(kind: BodyKind, to_topic: bool) -> ErrorBody {
    if to_topic || kind == BodyKind::Json {
        ErrorBody::Outcome
    } else {
        ErrorBody::Text
    }
}

/// The close code the Hub answers a subscriber's Close frame with (RFC 6455 §5.5.1: an
/// endpoint that receives a Close sends one back). The subscriber's code is echoed when it may
/// be sent on the wire; 1005, 1006, 1015 and unassigned codes are answered with 1000.
pub fn close_reply_code(received: u16) -> u16 {
    match received {
        1000..=1003 | 1007..=1014 | 3000..=4999 => received,
        _ => 1000,
    }
}

/// Whether a JSON body to `{base}` is a subscription request sent as JSON (lenient, neg 1): an
/// object with a `hub.mode` member. The members' values are not parsed, so a value nested
/// deeper than a JSON parser's recursion limit does not turn a subscription into an "event".
pub fn looks_like_subscription(body: &str) -> bool {
    serde_json::from_str::<std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>>(body)
        .is_ok_and(|m| m.contains_key("hub.mode"))
}

/// A request the hub serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST {base}`.
    PostHub,
    /// `POST {base}/{topic}`.
    PostTopic {
        /// The topic in the path.
        topic: String,
    },
    /// `GET {base}/{topic}`.
    GetContext {
        /// The topic.
        topic: String,
    },
    /// `GET {base}/{topic}/subscribers`.
    Roster {
        /// The topic.
        topic: String,
    },
    /// `GET {base}/{topic}/timeline`.
    Timeline {
        /// The topic.
        topic: String,
    },
    /// `GET {base}/.well-known/fhircast-configuration`.
    WellKnown,
    /// `GET {base}/ws/{topic}/{token}`.
    WebSocket {
        /// The topic.
        topic: String,
        /// The endpoint token.
        token: String,
    },
    /// `OPTIONS` under the base.
    Preflight,
    /// Under the base, but not a route: 404 with the list of routes.
    NotFound,
    /// Under the base, a known path with the wrong method: 405 with `Allow`.
    MethodNotAllowed {
        /// The methods allowed.
        allow: &'static str,
    },
    /// Not under the base (static assets, the examples).
    Outside,
}

/// Decodes a percent-encoded path segment; `None` if malformed.
fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes a path segment that names a topic: `None` if malformed, empty, or not a topic a
/// subscription could have (whitespace, control characters, an encoded `/`, `?` or `#`, a dot
/// segment, or longer than a topic may be; neg 4).
fn decode_topic(s: &str) -> Option<String> {
    use fhircast_core::subscription::{is_dot_segment, topic_forbidden_char, MAX_TOPIC_LEN};
    decode_segment(s).filter(|t| {
        !t.is_empty() && t.chars().count() <= MAX_TOPIC_LEN && topic_forbidden_char(t).is_none() && !is_dot_segment(t)
    })
}

/// Routes a request by method and path.
pub fn route(method: &str, path: &str, base: &str) -> Route {
    let base = base.trim_end_matches('/');
    let Some(rest) = path.strip_prefix(base) else { return Route::Outside };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Route::Outside;
    }
    let rest = rest.trim_start_matches('/').trim_end_matches('/');
    if method.eq_ignore_ascii_case("OPTIONS") {
        return Route::Preflight;
    }
    let segments: Vec<&str> = if rest.is_empty() { vec![] } else { rest.split('/').collect() };
    let get = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let post = method.eq_ignore_ascii_case("POST");
    match segments.as_slice() {
        [] if post => Route::PostHub,
        [] => Route::MethodNotAllowed { allow: "POST, OPTIONS" },
        [".well-known", "fhircast-configuration"] if get => Route::WellKnown,
        [".well-known", "fhircast-configuration"] => Route::MethodNotAllowed { allow: "GET, OPTIONS" },
        ["ws", topic, token] if get => match (decode_topic(topic), decode_segment(token)) {
            (Some(topic), Some(token)) if !token.is_empty() => Route::WebSocket { topic, token },
            _ => Route::NotFound,
        },
        [topic] if !topic.starts_with('.') => match decode_topic(topic) {
            Some(topic) if post => Route::PostTopic { topic },
            Some(topic) if get => Route::GetContext { topic },
            Some(_) => Route::MethodNotAllowed { allow: "GET, POST, OPTIONS" },
            None => Route::NotFound,
        },
        [topic, "subscribers"] if !topic.starts_with('.') => match decode_topic(topic) {
            Some(topic) if get => Route::Roster { topic },
            Some(_) => Route::MethodNotAllowed { allow: "GET, OPTIONS" },
            None => Route::NotFound,
        },
        [topic, "timeline"] if !topic.starts_with('.') => match decode_topic(topic) {
            Some(topic) if get => Route::Timeline { topic },
            Some(_) => Route::MethodNotAllowed { allow: "GET, OPTIONS" },
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// The parts of a request's URL as the runtime serialises it (WHATWG): scheme, authority
/// (host and port) and path, without a URL parser (whose host parsing was a visible part of the
/// Worker's time per request). `None` for anything not of the form `scheme://authority/path`.
pub fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.find('/') {
        Some(i) => Some((scheme, &rest[..i], &rest[i..])),
        None => Some((scheme, rest, "/")),
    }
}

/// The value of the query parameter `name` in `url` (not decoded: for numbers), if present.
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or_default();
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_a_serialised_url_without_parsing_it() {
        assert_eq!(
            split_url("https://hub.example:8443/api/hub/t1?x=/y#z"),
            Some(("https", "hub.example:8443", "/api/hub/t1"))
        );
        assert_eq!(split_url("http://127.0.0.1:8787/"), Some(("http", "127.0.0.1:8787", "/")));
        assert_eq!(split_url("http://localhost"), Some(("http", "localhost", "/")));
        assert_eq!(split_url("http://[::1]:80/a%20b"), Some(("http", "[::1]:80", "/a%20b")));
        assert_eq!(split_url("not a url"), None);
    }

    use super::*;

    const B: &str = "/api/hub";

    #[test]
    fn neg1_req4_content_types() {
        assert_eq!(body_kind(Some("application/x-www-form-urlencoded; charset=UTF-8")), BodyKind::Form);
        assert_eq!(body_kind(Some("application/json")), BodyKind::Json);
        assert_eq!(body_kind(Some("Application/FHIR+JSON; fhirVersion=4.0")), BodyKind::Json);
        assert_eq!(body_kind(Some("text/plain")), BodyKind::Other);
        assert_eq!(body_kind(None), BodyKind::Other);
    }

    #[test]
    fn impl_5a5_error_bodies_of_posts() {
        assert_eq!(post_error_body(BodyKind::Json, false), ErrorBody::Outcome);
        assert_eq!(post_error_body(BodyKind::Form, true), ErrorBody::Outcome);
        assert_eq!(post_error_body(BodyKind::Other, true), ErrorBody::Outcome);
        assert_eq!(post_error_body(BodyKind::Form, false), ErrorBody::Text);
        assert_eq!(post_error_body(BodyKind::Other, false), ErrorBody::Text);
    }

    #[test]
    fn close_frames_are_answered_with_a_sendable_code() {
        assert_eq!(close_reply_code(1000), 1000);
        assert_eq!(close_reply_code(1001), 1001);
        assert_eq!(close_reply_code(4000), 4000);
        assert_eq!(close_reply_code(1005), 1000);
        assert_eq!(close_reply_code(1006), 1000);
        assert_eq!(close_reply_code(1015), 1000);
        assert_eq!(close_reply_code(999), 1000);
    }

    #[test]
    fn neg1_json_subscriptions_are_recognised() {
        assert!(looks_like_subscription(r#"{"hub.mode":"subscribe","hub.topic":"T"}"#));
        let deep = format!(r#"{{"hub.mode":"subscribe","x":{}{}}}"#, "[".repeat(1000), "]".repeat(1000));
        assert!(looks_like_subscription(&deep));
        assert!(!looks_like_subscription(r#"{"timestamp":"t","id":"1","event":{}}"#));
        assert!(!looks_like_subscription("[1]"));
        assert!(!looks_like_subscription("{"));
    }

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/api/hub", B), Route::PostHub);
        assert_eq!(route("POST", "/api/hub/", B), Route::PostHub);
        assert_eq!(route("GET", "/api/hub", B), Route::MethodNotAllowed { allow: "POST, OPTIONS" });
        assert_eq!(route("GET", "/api/hub/.well-known/fhircast-configuration", B), Route::WellKnown);
        assert_eq!(route("GET", "/api/hub/T1", B), Route::GetContext { topic: "T1".into() });
        assert_eq!(route("POST", "/api/hub/T%3A1", B), Route::PostTopic { topic: "T:1".into() });
        assert_eq!(route("GET", "/api/hub/ws/T1/abc", B), Route::WebSocket { topic: "T1".into(), token: "abc".into() });
        assert_eq!(route("OPTIONS", "/api/hub/T1", B), Route::Preflight);
        assert_eq!(route("DELETE", "/api/hub/T1", B), Route::MethodNotAllowed { allow: "GET, POST, OPTIONS" });
        assert_eq!(route("GET", "/api/hub/a/b", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hub/T1/subscribers", B), Route::Roster { topic: "T1".into() });
        assert_eq!(route("GET", "/api/hub/T1/timeline", B), Route::Timeline { topic: "T1".into() });
        assert_eq!(route("POST", "/api/hub/T1/timeline", B), Route::MethodNotAllowed { allow: "GET, OPTIONS" });
        assert_eq!(super::query_param("http://h/a/T1/timeline?limit=5&since=12#x", "since"), Some("12"));
        assert_eq!(super::query_param("http://h/a?sincere=1", "since"), None);
        assert_eq!(route("POST", "/api/hub/T1/subscribers", B), Route::MethodNotAllowed { allow: "GET, OPTIONS" });
        assert_eq!(route("GET", "/api/hub/a%20b/subscribers", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hub/.x/subscribers", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hub/%zz", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hubx", B), Route::Outside);
        assert_eq!(route("GET", "/", B), Route::Outside);
        assert_eq!(route("GET", "/api/hub/.env", B), Route::NotFound);
        // neg 4: a segment decoding to something no subscription could use as topic.
        assert_eq!(route("GET", "/api/hub/..%2F..%2Fetc%2Fpasswd", B), Route::NotFound);
        assert_eq!(route("POST", "/api/hub/a%20b", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hub/a%00", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hub/ws/a%3Fb/abc", B), Route::NotFound);
        // Found by the hostile corpus: a dot segment, or a topic longer than any subscription's.
        assert_eq!(route("GET", "/api/hub/ws/../abc", B), Route::NotFound);
        assert_eq!(route("GET", "/api/hub/ws/%2E%2E/abc", B), Route::NotFound);
        assert_eq!(route("GET", &format!("/api/hub/{}", "x".repeat(257)), B), Route::NotFound);
        assert_eq!(
            route("GET", &format!("/api/hub/{}", "x".repeat(256)), B),
            Route::GetContext { topic: "x".repeat(256) }
        );
    }
}
