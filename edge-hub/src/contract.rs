//! The contract between the Worker and a topic's Durable Object: the internal routes, the
//! headers each request carries, and how both sides build and read them. The Worker
//! (`entry.rs`) only builds requests with [`InternalRequest`]; the object (`topic_object.rs`)
//! only reads them with [`InternalRoute::parse`] and [`read_auth`].
//!
//! Event requests, the hot path, are not HTTP requests but an RPC call on the object's stub,
//! `publish(topic, auth, request id, body)` answered `[status, content type, body]`
//! (`entry.rs` `publish`, `topic_object.rs` `TopicObject::publish`, `edge-hub/js/entry.js`);
//! `auth` is [`auth_header`]'s text and is read with [`read_auth`] for [`InternalRoute::Event`],
//! as a header would be. During a deploy a Worker and an object of different releases may
//! meet: the object still serves events over fetch (`/internal/event`, as before RPC), and the
//! Worker sends one there when the object says it has no RPC.
//!
//! Why one module: the object trusts these headers (the Worker verified the token), so the
//! rules for them live in one place. Every request to the object is built here from scratch:
//! nothing a client sent is forwarded, not even for the WebSocket upgrade, and a request
//! without the authorization header is refused, never treated as open.

use fhircast_core::hub::Auth;

/// The verified authorization ([`Auth`] as JSON), set by the Worker only.
pub const HDR_AUTH: &str = "x-fhircast-auth";
/// The topic, as the Worker routed it.
pub const HDR_TOPIC: &str = "x-fhircast-topic";
/// The public WebSocket base URL endpoints are built from (subscriptions only).
pub const HDR_WS_BASE: &str = "x-fhircast-ws-base";
/// The request id the Worker gave this request: the object logs with it, and names it in
/// answers about internal failures.
pub const HDR_REQUEST_ID: &str = "x-fhircast-request-id";

/// A request the object serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InternalRoute {
    /// A validated (un)subscribe, as a canonical form.
    Subscription,
    /// An event request's body.
    Event,
    /// Get current context.
    Context,
    /// The roster.
    Roster,
    /// The timeline: facts after `since`, at most `limit`.
    Timeline {
        /// The last sequence number the caller has.
        since: u64,
        /// The most facts to return.
        limit: usize,
    },
    /// A WebSocket upgrade on an endpoint token.
    WebSocket {
        /// The endpoint token.
        token: String,
    },
}

impl InternalRoute {
    /// The path of the request to the object.
    pub fn path(&self) -> String {
        match self {
            InternalRoute::Subscription => "/internal/subscription".into(),
            InternalRoute::Event => "/internal/event".into(),
            InternalRoute::Context => "/internal/context".into(),
            InternalRoute::Roster => "/internal/roster".into(),
            InternalRoute::Timeline { since, limit } => format!("/internal/timeline/{since}/{limit}"),
            InternalRoute::WebSocket { token } => format!("/internal/ws/{}", encode_segment(token)),
        }
    }

    /// Reads a path built by [`InternalRoute::path`].
    pub fn parse(path: &str) -> Option<InternalRoute> {
        Some(match path {
            "/internal/subscription" => InternalRoute::Subscription,
            "/internal/event" => InternalRoute::Event,
            "/internal/context" => InternalRoute::Context,
            "/internal/roster" => InternalRoute::Roster,
            p if p.starts_with("/internal/timeline/") => {
                let (since, limit) = p.strip_prefix("/internal/timeline/")?.split_once('/')?;
                InternalRoute::Timeline { since: since.parse().ok()?, limit: limit.parse().ok()? }
            }
            p => {
                let token = p.strip_prefix("/internal/ws/")?;
                if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return None;
                }
                InternalRoute::WebSocket { token: token.to_owned() }
            }
        })
    }

    /// Whether the route acts for a caller whose token the Worker verified: every route but
    /// the WebSocket upgrade, whose endpoint token is the credential (req 41).
    pub fn needs_auth(&self) -> bool {
        !matches!(self, InternalRoute::WebSocket { .. })
    }
}

/// The value of [`HDR_AUTH`] for `auth`.
pub fn auth_header(auth: &Auth) -> String {
    serde_json::to_string(auth).unwrap_or_else(|_| unreachable!("Auth serialises"))
}

/// Why an internal request is refused: the Worker did not build it (a bug, never a client's
/// doing; the object answers 500 and logs it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// No [`HDR_AUTH`] on a route that needs it.
    #[error("an internal request to {0} without the authorization header")]
    MissingAuth(String),
    /// [`HDR_AUTH`] is not an [`Auth`].
    #[error("an internal request with an unreadable authorization header: {0}")]
    BadAuth(String),
    /// Not an internal route.
    #[error("unknown internal route {0:?}")]
    UnknownRoute(String),
}

/// Reads [`HDR_AUTH`] for `route`: required (never defaulted to open) where the route acts
/// for a caller; `None` for the WebSocket upgrade.
pub fn read_auth(route: &InternalRoute, header: Option<&str>) -> Result<Option<Auth>, ContractError> {
    if !route.needs_auth() {
        return Ok(None);
    }
    let h = header.ok_or_else(|| ContractError::MissingAuth(route.path()))?;
    serde_json::from_str(h).map(Some).map_err(|e| ContractError::BadAuth(e.to_string()))
}

/// Percent-encodes a path segment.
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_and_nothing_else_parses() {
        for r in [
            InternalRoute::Subscription,
            InternalRoute::Event,
            InternalRoute::Context,
            InternalRoute::Roster,
            InternalRoute::Timeline { since: 12, limit: 100 },
            InternalRoute::WebSocket { token: "abc123".into() },
        ] {
            assert_eq!(InternalRoute::parse(&r.path()), Some(r));
        }
        for bad in [
            "/internal/timeline/1",
            "/internal/timeline/x/2",
            "/internal/ws/",
            "/internal/ws/a%2Fb",
            "/internal/ws/a/b",
            "/internal/other",
            "/",
        ] {
            assert_eq!(InternalRoute::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn issue13_auth_is_required_where_a_caller_acts_and_never_defaults_to_open() {
        let ev = InternalRoute::Event;
        assert_eq!(read_auth(&ev, None), Err(ContractError::MissingAuth("/internal/event".into())));
        assert!(matches!(read_auth(&ev, Some("{")), Err(ContractError::BadAuth(_))));
        let auth = Auth { topic: Some("t".into()), ..Auth::open() };
        assert_eq!(read_auth(&ev, Some(&auth_header(&auth))), Ok(Some(auth)));
        // The upgrade carries no authorization at all: whatever a header says is not read.
        let ws = InternalRoute::WebSocket { token: "t1".into() };
        assert_eq!(read_auth(&ws, Some(&auth_header(&Auth::open()))), Ok(None));
    }
}
