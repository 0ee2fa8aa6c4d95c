//! Subscription requests (req 24-37, 50-55): the form a subscriber POSTs to `hub.url` to
//! subscribe or unsubscribe.
//!
//! Lenient in what we accept, strict in what we send, and never silently wrong:
//!
//! - [`SubscriptionRequest::from_form`] reads `application/x-www-form-urlencoded` (req 24),
//!   decoded by hand here (`+` is a space, `%XX` a byte, the result must be UTF-8). Surrounding
//!   whitespace is trimmed from every value, because the spec's own unsubscribe example ends its
//!   endpoint in `%0A` (req 55). Mode, channel type and event names are case-insensitive. An
//!   *empty* optional parameter (`hub.lease_seconds=`) counts as absent, as HTML forms send one.
//! - [`SubscriptionRequest::from_json`] reads the same parameters from a JSON object, for shells
//!   that have one already (the spec only defines the form; req 24, neg 1).
//! - [`SubscriptionRequest::to_form`] writes the one form every Hub understands: always
//!   `hub.channel.type=websocket`, values percent-encoded, no `hub.events` on unsubscribe.
//!
//! What is refused is refused with an error that names the parameter and the spec item, for
//! the developer reading the Hub's plain-text 400 (req 39): a repeated parameter (req 25, neg 7),
//! a missing or non-`websocket` channel type (req 26, 33, neg 2), a bad mode (neg 3), a missing
//! or URL-unsafe topic (neg 4), missing events on subscribe (neg 5, §5a-1), wildcards (neg 6), a
//! lease that is not a positive integer (neg 8), an unsubscribe without endpoint (neg 10).
//!
//! Ignored on purpose: `hub.callback` and `hub.secret` (webhook leftovers, req 33), `hub.events`
//! on unsubscribe (req 50-51: an unsubscribe only cancels), and parameters this module does not
//! know, which are not checked for repetition either: req 25 is enforced for the parameters the
//! request is built from, and a stray extension parameter must not break a subscription.
//!
//! The body size is the shell's to limit before calling in; the per-value limits below keep
//! what the core stores and echoes in messages small.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::catalog::{EventName, EventNameError};

/// At most this many characters in `hub.topic`: a topic is an opaque id such as a UUID
/// (req 10), and it becomes a URL path segment and a storage key.
pub const MAX_TOPIC_LEN: usize = 256;
/// At most this many characters in `subscriber.name` (req 32): it is shown in SyncErrors.
pub const MAX_NAME_LEN: usize = 256;
/// At most this many characters in `hub.channel.endpoint`: a Hub-issued WSS URL (req 41).
pub const MAX_ENDPOINT_LEN: usize = 2048;
/// At most this many characters in the raw `hub.events` value, before it is split.
pub const MAX_EVENTS_LEN: usize = 8192;
/// At most this many distinct events in one subscription (a Hub policy, req 37).
pub const MAX_EVENTS: usize = 100;
/// The longest lease accepted: ten years of 365.25 days. Anything longer is a client bug, not a
/// wish; a Hub clamps the lease further anyway (req 20, 30).
pub const MAX_LEASE_SECONDS: u64 = 315_576_000;

/// Longer values are cut to this many characters when echoed in an error message.
const ECHO_LEN: usize = 64;

/// `hub.mode` of a subscription request (req 27, 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `subscribe`: create a subscription, or replace one (re-subscribe, req 35).
    Subscribe,
    /// `unsubscribe`: cancel the subscription at `hub.channel.endpoint` (req 50-51).
    Unsubscribe,
}

impl Mode {
    /// The wire spelling: `subscribe` or `unsubscribe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Subscribe => "subscribe",
            Mode::Unsubscribe => "unsubscribe",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated (un)subscribe request (req 24-37, 50).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// Subscribe or unsubscribe.
    pub mode: Mode,
    /// The session (`hub.topic`): non-empty, URL-path safe, at most [`MAX_TOPIC_LEN`] characters.
    pub topic: String,
    /// The events asked for, as a set (req 29, 34): duplicates collapsed case-insensitively,
    /// first-seen order kept; non-empty on subscribe, empty on unsubscribe.
    pub events: Vec<EventName>,
    /// `hub.lease_seconds`: positive, at most [`MAX_LEASE_SECONDS`]; the Hub may disregard or
    /// clamp it (req 20, 30).
    pub lease_seconds: Option<u64>,
    /// `hub.channel.endpoint`, whitespace-trimmed (req 55): on subscribe the subscription being
    /// replaced (req 31, 35); on unsubscribe the one being cancelled (always present, req 50).
    pub endpoint: Option<String>,
    /// `subscriber.name`, trimmed: how SyncErrors name this subscriber (req 32, 92).
    pub subscriber_name: Option<String>,
}

/// Why a subscription request is refused. Every variant is a client error: see
/// [`SubscriptionError::http_status`] and [`SubscriptionError::spec_ref`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The body is not valid `application/x-www-form-urlencoded`.
    #[error("the body is not valid application/x-www-form-urlencoded: {reason} (req 24, neg 1)")]
    MalformedForm {
        /// What is wrong, and where.
        reason: String,
    },
    /// The body is not a JSON object, or a value has the wrong JSON type.
    #[error("the body is not a JSON object of subscription parameters: {reason} (neg 1)")]
    MalformedJson {
        /// What is wrong.
        reason: String,
    },
    /// A parameter appears more than once.
    #[error("parameter {param} appears more than once; send each parameter at most once and separate several events with commas in one hub.events (req 25, neg 7)")]
    Repeated {
        /// The repeated parameter.
        param: &'static str,
    },
    /// `hub.channel.type` is missing or empty.
    #[error("hub.channel.type is missing; set hub.channel.type=websocket (req 26, neg 2)")]
    MissingChannelType,
    /// `hub.channel.type` is not `websocket`.
    #[error("hub.channel.type {0:?} is not supported: FHIRcast STU3 defines only \"websocket\" (webhooks, hub.callback and hub.secret were removed) (req 26, req 33, neg 2)")]
    UnsupportedChannelType(String),
    /// `hub.mode` is missing or empty.
    #[error("hub.mode is missing; set hub.mode=subscribe or hub.mode=unsubscribe (req 27, neg 3)")]
    MissingMode,
    /// `hub.mode` is neither `subscribe` nor `unsubscribe`.
    #[error("hub.mode {0:?} is neither \"subscribe\" nor \"unsubscribe\" (req 27, neg 3)")]
    InvalidMode(String),
    /// `hub.topic` is missing or empty.
    #[error("hub.topic is missing; set it to the session id from the launch (req 28, neg 4)")]
    MissingTopic,
    /// `hub.topic` contains a character that is not safe in a URL path segment.
    #[error("hub.topic {topic:?} contains {found}: the topic is used as a URL path segment ({{hub.url}}/{{topic}}), so it must not contain whitespace, control characters, '/', '?' or '#' (req 28, neg 4)")]
    InvalidTopic {
        /// The topic (cut short if long).
        topic: String,
        /// The offending character, described.
        found: String,
    },
    /// `hub.events` is missing or lists no event on a subscribe.
    #[error("hub.events is missing or empty; a subscribe must list the events it wants, comma-separated, e.g. hub.events=Patient-open,Patient-close (req 29, neg 5, §5a-1)")]
    MissingEvents,
    /// `hub.events` contains a wildcard.
    #[error("hub.events contains the wildcard {0:?}: wildcards are not supported in hub.events, name each event (`*-open` is documentation shorthand; `*` exists only in scopes) (req 36, neg 6)")]
    WildcardEvent(String),
    /// An item of `hub.events` is not an event name.
    #[error("hub.events contains {name:?}, which is not an event name: {reason} (req 29, req 134)")]
    InvalidEvent {
        /// The item (cut short if long).
        name: String,
        /// Why it is not an event name.
        reason: EventNameError,
    },
    /// `hub.events` lists more distinct events than a subscription may hold.
    #[error("hub.events lists {count} distinct events; this Hub accepts at most {max} per subscription (req 37)")]
    TooManyEvents {
        /// The number of distinct events.
        count: usize,
        /// [`MAX_EVENTS`].
        max: usize,
    },
    /// `hub.lease_seconds` is not a positive integer in range.
    #[error("hub.lease_seconds {0:?} is not a positive whole number of seconds (digits only, no sign or decimals, 1 to {max}) (req 30, neg 8)", max = MAX_LEASE_SECONDS)]
    InvalidLease(String),
    /// An unsubscribe without `hub.channel.endpoint`.
    #[error("hub.channel.endpoint is missing; an unsubscribe must name the subscription's endpoint, the wss:// URL from the subscribe response (req 50, neg 10)")]
    MissingEndpoint,
    /// A value is longer than this Hub accepts.
    #[error("{param} is {len} characters long; at most {max} are accepted (req 37)")]
    TooLong {
        /// The parameter.
        param: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl SubscriptionError {
    /// The HTTP status a Hub answers with (req 39, 52): every refusal here is the client's
    /// mistake, so `400`, with [`Display`](fmt::Display) as the plain-text body.
    pub fn http_status(&self) -> u16 {
        400
    }

    /// The item of the requirements digest that this refusal enforces, for logs and tests.
    pub fn spec_ref(&self) -> &'static str {
        match self {
            SubscriptionError::MalformedForm { .. } | SubscriptionError::MalformedJson { .. } => "neg 1",
            SubscriptionError::Repeated { .. } => "neg 7",
            SubscriptionError::MissingChannelType | SubscriptionError::UnsupportedChannelType(_) => "neg 2",
            SubscriptionError::MissingMode | SubscriptionError::InvalidMode(_) => "neg 3",
            SubscriptionError::MissingTopic | SubscriptionError::InvalidTopic { .. } => "neg 4",
            SubscriptionError::TooLong { param: "hub.topic", .. } => "neg 4",
            SubscriptionError::MissingEvents => "neg 5",
            SubscriptionError::WildcardEvent(_) => "neg 6",
            SubscriptionError::InvalidEvent { .. } => "req 29",
            SubscriptionError::TooManyEvents { .. } | SubscriptionError::TooLong { .. } => "req 37",
            SubscriptionError::InvalidLease(_) => "neg 8",
            SubscriptionError::MissingEndpoint => "neg 10",
        }
    }
}

/// The parameters a request is built from, each at most once (req 25).
#[derive(Default)]
struct Params {
    channel_type: Option<String>,
    mode: Option<String>,
    topic: Option<String>,
    events: Option<String>,
    lease_seconds: Option<String>,
    endpoint: Option<String>,
    subscriber_name: Option<String>,
}

/// The parameter names a request is built from; only these are checked for repetition.
const KNOWN: [&str; 7] = [
    "hub.channel.type",
    "hub.mode",
    "hub.topic",
    "hub.events",
    "hub.lease_seconds",
    "hub.channel.endpoint",
    "subscriber.name",
];

impl Params {
    /// The `'static` spelling of a parameter this module reads; `None` for `hub.callback`,
    /// `hub.secret` (req 33) and anything unknown.
    fn known(key: &str) -> Option<&'static str> {
        KNOWN.iter().copied().find(|k| *k == key)
    }

    /// Stores the value of a known parameter, refusing a second one (req 25, neg 7).
    fn set(&mut self, param: &'static str, value: String) -> Result<(), SubscriptionError> {
        let slot = match param {
            "hub.channel.type" => &mut self.channel_type,
            "hub.mode" => &mut self.mode,
            "hub.topic" => &mut self.topic,
            "hub.events" => &mut self.events,
            "hub.lease_seconds" => &mut self.lease_seconds,
            "hub.channel.endpoint" => &mut self.endpoint,
            _ => &mut self.subscriber_name,
        };
        if slot.is_some() {
            return Err(SubscriptionError::Repeated { param });
        }
        *slot = Some(value);
        Ok(())
    }
}

/// A value trimmed of surrounding whitespace (req 55), or `None` when absent or empty.
fn present(v: Option<String>) -> Option<String> {
    let v = v?;
    let t = v.trim();
    if t.is_empty() {
        None
    } else if t.len() == v.len() {
        Some(v)
    } else {
        Some(t.to_owned())
    }
}

fn check_len(param: &'static str, v: &str, max: usize) -> Result<(), SubscriptionError> {
    let len = v.chars().count();
    if len > max {
        return Err(SubscriptionError::TooLong { param, len, max });
    }
    Ok(())
}

/// `s`, cut to [`ECHO_LEN`] characters with `…` when longer, for error messages.
fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_LEN) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl SubscriptionRequest {
    /// Parses an `application/x-www-form-urlencoded` body (req 24) and validates it (module docs).
    pub fn from_form(body: &str) -> Result<Self, SubscriptionError> {
        let mut params = Params::default();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key, "a parameter name")?;
            if let Some(param) = Params::known(&key) {
                params.set(param, percent_decode(raw_value, param)?)?;
            }
        }
        SubscriptionRequest::validate(params)
    }

    /// Parses a JSON object carrying the same parameter names and validates it like a form.
    ///
    /// Lenient about types where the meaning is plain: `hub.lease_seconds` may be a number,
    /// `hub.events` a comma-separated string or an array of strings, and `null` means absent.
    /// A repeated key is refused as in a form (req 25, neg 7); unknown keys are ignored.
    pub fn from_json(body: &str) -> Result<Self, SubscriptionError> {
        let JsonPairs(pairs) =
            serde_json::from_str(body).map_err(|e| SubscriptionError::MalformedJson { reason: e.to_string() })?;
        let mut params = Params::default();
        for (param, value) in pairs {
            let value = json_value(param, value).map_err(|reason| SubscriptionError::MalformedJson { reason })?;
            // `null` is absent, but still counts against repetition.
            params.set(param, value.unwrap_or_default())?;
        }
        SubscriptionRequest::validate(params)
    }

    /// The request as a form body: the strict form every Hub understands, always with
    /// `hub.channel.type=websocket`, values percent-encoded (`%20` for a space, as in the spec's
    /// examples), and no `hub.events` on unsubscribe (req 50). A valid request round-trips
    /// through [`SubscriptionRequest::from_form`]; nothing is checked here.
    pub fn to_form(&self) -> String {
        let mut out = String::from("hub.channel.type=websocket&hub.mode=");
        out.push_str(self.mode.as_str());
        out.push_str("&hub.topic=");
        percent_encode_into(&mut out, &self.topic);
        if self.mode == Mode::Subscribe {
            out.push_str("&hub.events=");
            for (i, e) in self.events.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                percent_encode_into(&mut out, e.as_str());
            }
        }
        if let Some(lease) = self.lease_seconds {
            out.push_str("&hub.lease_seconds=");
            out.push_str(&lease.to_string());
        }
        if let Some(endpoint) = &self.endpoint {
            out.push_str("&hub.channel.endpoint=");
            percent_encode_into(&mut out, endpoint);
        }
        if let Some(name) = &self.subscriber_name {
            out.push_str("&subscriber.name=");
            percent_encode_into(&mut out, name);
        }
        out
    }

    fn validate(p: Params) -> Result<Self, SubscriptionError> {
        let channel_type = present(p.channel_type).ok_or(SubscriptionError::MissingChannelType)?;
        if !channel_type.eq_ignore_ascii_case("websocket") {
            return Err(SubscriptionError::UnsupportedChannelType(echo(&channel_type)));
        }
        let mode = match present(p.mode) {
            None => return Err(SubscriptionError::MissingMode),
            Some(m) if m.eq_ignore_ascii_case("subscribe") => Mode::Subscribe,
            Some(m) if m.eq_ignore_ascii_case("unsubscribe") => Mode::Unsubscribe,
            Some(m) => return Err(SubscriptionError::InvalidMode(echo(&m))),
        };
        let topic = present(p.topic).ok_or(SubscriptionError::MissingTopic)?;
        check_topic(&topic)?;
        let events = match mode {
            Mode::Subscribe => parse_events(p.events.as_deref().unwrap_or(""))?,
            // An unsubscribe only cancels (req 50-51): its hub.events, if any, means nothing.
            Mode::Unsubscribe => Vec::new(),
        };
        let lease_seconds = present(p.lease_seconds).map(|l| parse_lease(&l)).transpose()?;
        let endpoint = present(p.endpoint);
        if let Some(e) = &endpoint {
            check_len("hub.channel.endpoint", e, MAX_ENDPOINT_LEN)?;
        }
        if mode == Mode::Unsubscribe && endpoint.is_none() {
            return Err(SubscriptionError::MissingEndpoint);
        }
        let subscriber_name = present(p.subscriber_name);
        if let Some(n) = &subscriber_name {
            check_len("subscriber.name", n, MAX_NAME_LEN)?;
        }
        Ok(SubscriptionRequest { mode, topic, events, lease_seconds, endpoint, subscriber_name })
    }
}

/// The first character of `topic` that cannot be in a topic: whitespace, a control character,
/// `/`, `?` or `#`. A topic becomes `{hub.url}/{topic}` and the WebSocket path, so it must be
/// one URL path segment; Hubs apply the same rule to event requests and URLs (neg 4).
pub fn topic_forbidden_char(topic: &str) -> Option<char> {
    topic.chars().find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#'))
}

/// Whether `topic` is `.` or `..`: a URL dot segment, which clients and proxies resolve away
/// (`{hub.url}/ws/../x` becomes `{hub.url}/x`), so no URL could name such a topic.
pub fn is_dot_segment(topic: &str) -> bool {
    topic == "." || topic == ".."
}

/// A topic becomes `{hub.url}/{topic}` and the WebSocket path: it must be one safe segment.
fn check_topic(topic: &str) -> Result<(), SubscriptionError> {
    check_len("hub.topic", topic, MAX_TOPIC_LEN)?;
    if is_dot_segment(topic) {
        return Err(SubscriptionError::InvalidTopic {
            topic: topic.to_owned(),
            found: "only dots (a URL dot segment)".into(),
        });
    }
    let bad = topic_forbidden_char(topic);
    if let Some(c) = bad {
        let found = match c {
            '/' | '?' | '#' => format!("{c:?}"),
            ' ' => "a space".to_owned(),
            '\t' => "a tab".to_owned(),
            '\n' | '\r' => "a line break".to_owned(),
            c if c.is_whitespace() => format!("whitespace (U+{:04X})", c as u32),
            c => format!("a control character (U+{:04X})", c as u32),
        };
        return Err(SubscriptionError::InvalidTopic { topic: echo(topic), found });
    }
    Ok(())
}

/// Splits `hub.events` on commas into a set of names (req 29, 34, 36).
fn parse_events(raw: &str) -> Result<Vec<EventName>, SubscriptionError> {
    check_len("hub.events", raw, MAX_EVENTS_LEN)?;
    let mut events: Vec<EventName> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = EventName::parse(item).map_err(|reason| match reason {
            EventNameError::Wildcard(w) => SubscriptionError::WildcardEvent(echo(&w)),
            reason => SubscriptionError::InvalidEvent { name: echo(item), reason },
        })?;
        // EventName equality is on the canonical spelling, i.e. case-insensitive (req 34).
        if !events.contains(&name) {
            if events.len() == MAX_EVENTS {
                let extra = raw.split(',').filter_map(|s| EventName::parse(s).ok());
                let mut all = events.clone();
                for e in extra {
                    if !all.contains(&e) {
                        all.push(e);
                    }
                }
                return Err(SubscriptionError::TooManyEvents { count: all.len(), max: MAX_EVENTS });
            }
            events.push(name);
        }
    }
    if events.is_empty() {
        return Err(SubscriptionError::MissingEvents);
    }
    Ok(events)
}

/// Digits only: `+5`, `-5`, `5.0`, `5e3` and `0` are all refused (neg 8).
fn parse_lease(s: &str) -> Result<u64, SubscriptionError> {
    let bad = || SubscriptionError::InvalidLease(echo(s));
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_LEASE_SECONDS).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

/// Decodes one form component: `+` is a space, `%XX` a byte, and the bytes must be UTF-8.
/// `what` names the component in errors.
fn percent_decode(s: &str, what: &str) -> Result<String, SubscriptionError> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => {
                        let end = (i + 3).min(b.len());
                        let escape = String::from_utf8_lossy(&b[i..end]);
                        return Err(SubscriptionError::MalformedForm {
                            reason: format!(
                                "{escape:?} in {what} is not a percent-escape: '%' must be followed by two hex digits (write a literal '%' as %25)"
                            ),
                        });
                    }
                };
                out.push(byte);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| SubscriptionError::MalformedForm {
        reason: format!("{what} does not decode to UTF-8; percent-encode the UTF-8 bytes of each character"),
    })
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` percent-encoded: unreserved characters (RFC 3986) and `,` stay as they are,
/// every other byte becomes `%XX` (so a space is `%20`, as in the spec's examples).
fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xF)] as char);
        }
    }
}

/// The known parameters of a JSON object in document order, repeats kept (serde_json's own
/// map would keep the last one silently, hiding a req 25 violation).
struct JsonPairs(Vec<(&'static str, serde_json::Value)>);

impl<'de> Deserialize<'de> for JsonPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonPairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of subscription parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonPairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match Params::known(&key) {
                        Some(param) => pairs.push((param, map.next_value()?)),
                        None => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(JsonPairs(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON parameter value as the string a form would carry.
fn json_value(key: &'static str, v: serde_json::Value) -> Result<Option<String>, String> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        // The lease check then refuses negatives and decimals with its own message (neg 8).
        Value::Number(n) if key == "hub.lease_seconds" => Ok(Some(n.to_string())),
        Value::Array(items) if key == "hub.events" => {
            let names = items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    other => Err(format!("hub.events items must be strings, not {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(names.join(",")))
        }
        other => {
            let expected = match key {
                "hub.lease_seconds" => "a number or a string",
                "hub.events" => "a string or an array of strings",
                _ => "a string",
            };
            Err(format!("{key} must be {expected}, not {}", echo(&other.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The spec's subscribe example (2-4), as a form body.
    const SUBSCRIBE: &str = "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=fdb2f928-5546-4f52-87a0-0648e9ded065&hub.events=Patient-open,Patient-close&subscriber.name=Acme%20Product";
    /// The spec's unsubscribe example (2-4), `%0A` and all (req 55).
    const UNSUBSCRIBE: &str = "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic=fdb2f928-5546-4f52-87a0-0648e9ded065&hub.channel.endpoint=wss%3A%2F%2Fhub.example.com%2Fee30d3b9-1558-4d5e-9d3b-6d3a1c4b3e2c%0A";
    const TOPIC: &str = "fdb2f928-5546-4f52-87a0-0648e9ded065";
    const ENDPOINT: &str = "wss://hub.example.com/ee30d3b9-1558-4d5e-9d3b-6d3a1c4b3e2c";

    fn n(s: &str) -> EventName {
        EventName::parse(s).unwrap()
    }

    fn form_err(body: &str) -> SubscriptionError {
        SubscriptionRequest::from_form(body).unwrap_err()
    }

    /// The spec's subscribe example with one parameter replaced (or removed, with `None`).
    fn subscribe_with(param: &str, value: Option<&str>) -> String {
        let mut parts: Vec<String> =
            SUBSCRIBE.split('&').filter(|p| !p.starts_with(&format!("{param}="))).map(str::to_owned).collect();
        if let Some(v) = value {
            parts.push(format!("{param}={v}"));
        }
        parts.join("&")
    }

    #[test]
    fn req24_req27_req28_req29_req32_spec_subscribe_example() {
        let r = SubscriptionRequest::from_form(SUBSCRIBE).unwrap();
        assert_eq!(r.mode, Mode::Subscribe);
        assert_eq!(r.topic, TOPIC);
        assert_eq!(r.events, vec![n("Patient-open"), n("Patient-close")]);
        assert_eq!(r.lease_seconds, None);
        assert_eq!(r.endpoint, None);
        assert_eq!(r.subscriber_name.as_deref(), Some("Acme Product"));
    }

    #[test]
    fn req50_req55_spec_unsubscribe_example_endpoint_is_trimmed() {
        let r = SubscriptionRequest::from_form(UNSUBSCRIBE).unwrap();
        assert_eq!(r.mode, Mode::Unsubscribe);
        assert_eq!(r.topic, TOPIC);
        assert!(r.events.is_empty());
        assert_eq!(r.endpoint.as_deref(), Some(ENDPOINT));
    }

    #[test]
    fn req55_endpoint_whitespace_is_trimmed() {
        for raw in ["%20%09wss%3A%2F%2Fh%2Fx%0D%0A", "+wss://h/x+", "wss://h/x%0A"] {
            let body =
                format!("hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic=t&hub.channel.endpoint={raw}");
            assert_eq!(SubscriptionRequest::from_form(&body).unwrap().endpoint.as_deref(), Some("wss://h/x"), "{raw}");
        }
    }

    #[test]
    fn req29_duplicate_events_collapse_case_insensitively() {
        let r = SubscriptionRequest::from_form(&subscribe_with(
            "hub.events",
            Some("patient-close,Patient-open,PATIENT-CLOSE,%20Patient-open%20,syncerror,SyncError"),
        ))
        .unwrap();
        assert_eq!(r.events, vec![n("Patient-close"), n("Patient-open"), n("SyncError")]);
        assert_eq!(r.events[0].as_str(), "Patient-close");
    }

    #[test]
    fn req29_empty_event_items_are_skipped() {
        let r = SubscriptionRequest::from_form(&subscribe_with("hub.events", Some(",Patient-open,,+,Patient-close,")))
            .unwrap();
        assert_eq!(r.events, vec![n("Patient-open"), n("Patient-close")]);
    }

    #[test]
    fn req29_req37_at_most_100_distinct_events() {
        let names: Vec<String> = (0..101).map(|i| format!("org.example.e{i}")).collect();
        let hundred = names[..100].join(",");
        let r =
            SubscriptionRequest::from_form(&subscribe_with("hub.events", Some(&format!("{hundred},org.example.e0"))))
                .unwrap();
        assert_eq!(r.events.len(), 100);
        let e = form_err(&subscribe_with("hub.events", Some(&names.join(","))));
        assert_eq!(e, SubscriptionError::TooManyEvents { count: 101, max: 100 });
        assert_eq!(e.spec_ref(), "req 37");
        let long = "a.b,".repeat(MAX_EVENTS_LEN / 4 + 1);
        assert!(matches!(
            form_err(&subscribe_with("hub.events", Some(&long))),
            SubscriptionError::TooLong { param: "hub.events", .. }
        ));
    }

    #[test]
    fn req29_req134_invalid_event_name_is_named() {
        let e = form_err(&subscribe_with("hub.events", Some("Patient-open,Foo-open")));
        assert!(matches!(&e, SubscriptionError::InvalidEvent { name, .. } if name == "Foo-open"), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("\"Foo-open\"") && msg.contains("not a FHIR R4 resource type"), "{msg}");
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn req33_callback_and_secret_are_ignored() {
        let body = format!("{SUBSCRIBE}&hub.callback=https%3A%2F%2Fapp%2Fcb&hub.secret=s&hub.callback=x");
        assert_eq!(SubscriptionRequest::from_form(&body).unwrap(), SubscriptionRequest::from_form(SUBSCRIBE).unwrap());
    }

    #[test]
    fn req24_unknown_parameters_are_ignored() {
        let body = format!("x-vendor=1&{SUBSCRIBE}&x-vendor=2&&flag&%F0%9F%94%A5=%FF");
        assert_eq!(SubscriptionRequest::from_form(&body).unwrap(), SubscriptionRequest::from_form(SUBSCRIBE).unwrap());
    }

    #[test]
    fn req30_lease_seconds_is_read() {
        let r = SubscriptionRequest::from_form(&subscribe_with("hub.lease_seconds", Some("7200"))).unwrap();
        assert_eq!(r.lease_seconds, Some(7200));
        let max = MAX_LEASE_SECONDS.to_string();
        assert_eq!(
            SubscriptionRequest::from_form(&subscribe_with("hub.lease_seconds", Some(&max))).unwrap().lease_seconds,
            Some(MAX_LEASE_SECONDS)
        );
        // Empty counts as absent, as an HTML form sends it.
        assert_eq!(
            SubscriptionRequest::from_form(&subscribe_with("hub.lease_seconds", Some(""))).unwrap().lease_seconds,
            None
        );
    }

    #[test]
    fn req31_req35_subscribe_may_name_an_endpoint_to_replace() {
        let body = format!("{SUBSCRIBE}&hub.channel.endpoint=wss%3A%2F%2Fh%2Fx");
        assert_eq!(SubscriptionRequest::from_form(&body).unwrap().endpoint.as_deref(), Some("wss://h/x"));
    }

    #[test]
    fn req32_subscriber_name_is_trimmed_and_limited() {
        let r = SubscriptionRequest::from_form(&subscribe_with("subscriber.name", Some("++Acme+%C3%A9+%26+Co%0A")))
            .unwrap();
        assert_eq!(r.subscriber_name.as_deref(), Some("Acme é & Co"));
        assert_eq!(
            SubscriptionRequest::from_form(&subscribe_with("subscriber.name", Some("+"))).unwrap().subscriber_name,
            None
        );
        let ok = "é".repeat(MAX_NAME_LEN);
        assert!(SubscriptionRequest::from_form(&subscribe_with("subscriber.name", Some(&ok))).is_ok());
        let e = form_err(&subscribe_with("subscriber.name", Some(&"n".repeat(MAX_NAME_LEN + 1))));
        assert_eq!(e, SubscriptionError::TooLong { param: "subscriber.name", len: 257, max: 256 });
        assert!(e.to_string().contains("at most 256"), "{e}");
    }

    #[test]
    fn req34_mode_and_channel_type_are_case_insensitive() {
        let body = "hub.channel.type=WebSocket&hub.mode=SUBSCRIBE&hub.topic=t&hub.events=patient-open";
        let r = SubscriptionRequest::from_form(body).unwrap();
        assert_eq!((r.mode, r.events[0].as_str()), (Mode::Subscribe, "Patient-open"));
    }

    #[test]
    fn neg1_bad_percent_escapes_are_rejected() {
        for bad in ["%", "%2", "%zz", "%G1", "abc%4"] {
            let e = form_err(&subscribe_with("subscriber.name", Some(bad)));
            assert!(matches!(e, SubscriptionError::MalformedForm { .. }), "{bad}: {e:?}");
            assert_eq!((e.spec_ref(), e.http_status()), ("neg 1", 400));
            assert!(e.to_string().contains("subscriber.name"), "{e}");
        }
        assert!(matches!(form_err(&format!("{SUBSCRIBE}&hub.to%pic=x")), SubscriptionError::MalformedForm { .. }));
    }

    #[test]
    fn neg1_invalid_utf8_is_rejected() {
        let e = form_err(&subscribe_with("hub.topic", Some("%FF%FE")));
        assert!(
            matches!(&e, SubscriptionError::MalformedForm { reason } if reason.contains("hub.topic") && reason.contains("UTF-8")),
            "{e:?}"
        );
    }

    #[test]
    fn neg1_json_that_is_not_an_object_is_rejected() {
        for body in [
            "",
            "[]",
            "\"hub.mode=subscribe\"",
            "{",
            r#"{"hub.topic":5}"#,
            r#"{"hub.events":[1]}"#,
            r#"{"hub.lease_seconds":true}"#,
        ] {
            let e = SubscriptionRequest::from_json(body).unwrap_err();
            assert!(matches!(e, SubscriptionError::MalformedJson { .. }), "{body}: {e:?}");
            assert_eq!(e.spec_ref(), "neg 1");
        }
    }

    #[test]
    fn neg2_missing_channel_type_is_rejected() {
        assert_eq!(form_err(&subscribe_with("hub.channel.type", None)), SubscriptionError::MissingChannelType);
        assert_eq!(form_err(&subscribe_with("hub.channel.type", Some(""))), SubscriptionError::MissingChannelType);
        assert_eq!(SubscriptionError::MissingChannelType.spec_ref(), "neg 2");
    }

    #[test]
    fn neg2_req33_webhook_channel_type_is_rejected() {
        let e = form_err(&subscribe_with("hub.channel.type", Some("webhook")));
        assert_eq!(e, SubscriptionError::UnsupportedChannelType("webhook".into()));
        assert_eq!(e.spec_ref(), "neg 2");
        assert!(e.to_string().contains("only \"websocket\""), "{e}");
    }

    #[test]
    fn neg3_missing_or_unknown_mode_is_rejected() {
        assert_eq!(form_err(&subscribe_with("hub.mode", None)), SubscriptionError::MissingMode);
        assert_eq!(
            form_err(&subscribe_with("hub.mode", Some("denied"))),
            SubscriptionError::InvalidMode("denied".into())
        );
        assert_eq!(form_err(&subscribe_with("hub.mode", Some("subscribed"))).spec_ref(), "neg 3");
    }

    #[test]
    fn neg4_missing_topic_is_rejected() {
        assert_eq!(form_err(&subscribe_with("hub.topic", None)), SubscriptionError::MissingTopic);
        assert_eq!(form_err(&subscribe_with("hub.topic", Some("%20"))), SubscriptionError::MissingTopic);
        assert_eq!(SubscriptionError::MissingTopic.spec_ref(), "neg 4");
    }

    #[test]
    fn neg4_url_unsafe_topic_is_rejected() {
        for bad in ["a%2Fb", "a?b", "a%3Fb", "a%23b", "a+b", "a%09b", "a%00b", "a%E2%80%A8b"] {
            let e = form_err(&subscribe_with("hub.topic", Some(bad)));
            assert!(matches!(e, SubscriptionError::InvalidTopic { .. }), "{bad}: {e:?}");
            assert_eq!(e.spec_ref(), "neg 4");
            assert!(e.to_string().contains("URL path segment ({hub.url}/{topic})"), "{e}");
        }
        // Unicode, '%' and '&' (encoded) are fine; surrounding whitespace is trimmed.
        let r = SubscriptionRequest::from_form(&subscribe_with("hub.topic", Some("%0Ac%C3%A9%25%26%3D%0A"))).unwrap();
        assert_eq!(r.topic, "cé%&=");
    }

    #[test]
    fn neg4_overlong_topic_is_rejected() {
        assert!(SubscriptionRequest::from_form(&subscribe_with("hub.topic", Some(&"t".repeat(MAX_TOPIC_LEN)))).is_ok());
        let e = form_err(&subscribe_with("hub.topic", Some(&"t".repeat(MAX_TOPIC_LEN + 1))));
        assert_eq!(e, SubscriptionError::TooLong { param: "hub.topic", len: 257, max: 256 });
        assert_eq!(e.spec_ref(), "neg 4");
    }

    #[test]
    fn neg5_missing_or_empty_events_on_subscribe_are_rejected() {
        for events in [None, Some(""), Some(",,"), Some("+%2C+")] {
            let e = form_err(&subscribe_with("hub.events", events));
            assert_eq!(e, SubscriptionError::MissingEvents, "{events:?}");
            assert_eq!(e.spec_ref(), "neg 5");
        }
    }

    #[test]
    fn neg6_wildcard_events_are_rejected() {
        for w in ["*", "*-open", "Patient-open,*", "Patient-*"] {
            let e = form_err(&subscribe_with("hub.events", Some(w)));
            assert!(matches!(e, SubscriptionError::WildcardEvent(_)), "{w}: {e:?}");
            assert_eq!(e.spec_ref(), "neg 6");
        }
    }

    #[test]
    fn neg7_repeated_parameter_is_rejected() {
        for param in [
            "hub.topic",
            "hub.mode",
            "hub.events",
            "hub.channel.type",
            "subscriber.name",
            "hub.lease_seconds",
            "hub.channel.endpoint",
        ] {
            let body = format!("{SUBSCRIBE}&{param}=x&{param}=y");
            let e = form_err(&body);
            assert!(matches!(e, SubscriptionError::Repeated { param: p } if p == param), "{param}: {e:?}");
            assert_eq!(e.spec_ref(), "neg 7");
        }
        // Even with the same value twice, and even when encoded differently.
        assert_eq!(
            form_err(&format!("{SUBSCRIBE}&hub%2Etopic={TOPIC}")),
            SubscriptionError::Repeated { param: "hub.topic" }
        );
        let msg = SubscriptionError::Repeated { param: "hub.events" }.to_string();
        assert!(msg.contains("hub.events") && msg.contains("req 25, neg 7"), "{msg}");
    }

    #[test]
    fn neg8_lease_that_is_not_a_positive_integer_is_rejected() {
        let too_long = (MAX_LEASE_SECONDS + 1).to_string();
        for bad in ["0", "-1", "%2B60", "1.5", "60.0", "1e3", "abc", "6+0", "99999999999999999999999", &too_long] {
            let e = form_err(&subscribe_with("hub.lease_seconds", Some(bad)));
            assert!(matches!(e, SubscriptionError::InvalidLease(_)), "{bad}: {e:?}");
            assert_eq!(e.spec_ref(), "neg 8");
        }
    }

    #[test]
    fn neg10_unsubscribe_without_endpoint_is_rejected() {
        let body = "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic=t";
        assert_eq!(form_err(body), SubscriptionError::MissingEndpoint);
        assert_eq!(form_err(&format!("{body}&hub.channel.endpoint=%0A")), SubscriptionError::MissingEndpoint);
        assert_eq!(SubscriptionError::MissingEndpoint.spec_ref(), "neg 10");
        let long = format!("{body}&hub.channel.endpoint={}", "e".repeat(MAX_ENDPOINT_LEN + 1));
        assert!(matches!(form_err(&long), SubscriptionError::TooLong { param: "hub.channel.endpoint", .. }));
    }

    #[test]
    fn req50_req51_unsubscribe_ignores_events() {
        let body = format!("{UNSUBSCRIBE}&hub.events=*,Foo-open");
        let r = SubscriptionRequest::from_form(&body).unwrap();
        assert!(r.events.is_empty());
        // ... but they are still a parameter, sent at most once (req 25).
        assert_eq!(form_err(&format!("{body}&hub.events=x")), SubscriptionError::Repeated { param: "hub.events" });
    }

    #[test]
    fn req24_spec_vectors_round_trip_through_to_form() {
        let r = SubscriptionRequest::from_form(SUBSCRIBE).unwrap();
        assert_eq!(r.to_form(), SUBSCRIBE);
        let u = SubscriptionRequest::from_form(UNSUBSCRIBE).unwrap();
        assert_eq!(u.to_form(), UNSUBSCRIBE.trim_end_matches("%0A"));
        let mut with_events = u.clone();
        with_events.events = vec![n("Patient-open")];
        assert!(!with_events.to_form().contains("hub.events"), "req 50: no hub.events on unsubscribe");
    }

    #[test]
    fn req24_json_bodies_are_read_like_forms() {
        let body = r#"{"hub.channel.type":"websocket","hub.mode":"subscribe","hub.topic":"fdb2f928-5546-4f52-87a0-0648e9ded065","hub.events":"Patient-open,Patient-close","subscriber.name":"Acme Product","x":{"y":[1]}}"#;
        assert_eq!(SubscriptionRequest::from_json(body).unwrap(), SubscriptionRequest::from_form(SUBSCRIBE).unwrap());
        let body = r#"{"hub.channel.type":"websocket","hub.mode":"subscribe","hub.topic":"t","hub.events":["Patient-open","patient-open","Encounter-open"],"hub.lease_seconds":3600,"hub.channel.endpoint":null}"#;
        let r = SubscriptionRequest::from_json(body).unwrap();
        assert_eq!(r.events, vec![n("Patient-open"), n("Encounter-open")]);
        assert_eq!((r.lease_seconds, r.endpoint), (Some(3600), None));
    }

    #[test]
    fn neg7_neg8_json_repeats_and_bad_leases_are_rejected() {
        let base =
            r#""hub.channel.type":"websocket","hub.mode":"subscribe","hub.topic":"t","hub.events":"Patient-open""#;
        let e = SubscriptionRequest::from_json(&format!(r#"{{{base},"hub.topic":"u"}}"#)).unwrap_err();
        assert_eq!(e, SubscriptionError::Repeated { param: "hub.topic" });
        let e = SubscriptionRequest::from_json(&format!(r#"{{{base},"hub.events":null}}"#)).unwrap_err();
        assert_eq!(e, SubscriptionError::Repeated { param: "hub.events" });
        for lease in ["-5", "1.5", "0", r#""60s""#] {
            let e = SubscriptionRequest::from_json(&format!(r#"{{{base},"hub.lease_seconds":{lease}}}"#)).unwrap_err();
            assert!(matches!(e, SubscriptionError::InvalidLease(_)), "{lease}: {e:?}");
        }
    }

    #[test]
    fn errors_echo_long_values_shortened() {
        let e = form_err(&subscribe_with("hub.mode", Some(&"m".repeat(1000))));
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn form_decoding_handles_plus_and_utf8() {
        assert_eq!(percent_decode("a+b%20c%2Bd%C3%A9", "x").unwrap(), "a b c+dé");
        assert_eq!(percent_decode("plain", "x").unwrap(), "plain");
        assert_eq!(percent_decode("é", "x").unwrap(), "é");
        let mut s = String::new();
        percent_encode_into(&mut s, "a b&c=d%e+f/é,~");
        assert_eq!(s, "a%20b%26c%3Dd%25e%2Bf%2F%C3%A9,~");
    }

    fn event_name() -> impl Strategy<Value = EventName> {
        prop_oneof![
            prop::sample::select(crate::catalog::STANDARD_EVENTS).prop_map(n),
            "[a-z][a-z0-9_]{0,8}(\\.[a-z][a-z0-9_]{0,8}){1,3}".prop_map(|s| n(&s)),
        ]
    }

    /// Text with no whitespace at either end: what survives trimming.
    fn trimmed(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("({chars}){{1,{max}}}"))
            .unwrap()
            .prop_filter("no surrounding whitespace", |s| !s.is_empty() && s.trim() == s)
    }

    fn request() -> impl Strategy<Value = SubscriptionRequest> {
        // Every valid topic: `.` and `..` are URL dot segments, no topic (neg 4).
        let topic = trimmed(r"[A-Za-z0-9\-._~%&=+,;:@!$'()*é日🔥]", 64)
            .prop_filter("not a dot segment", |t| !is_dot_segment(t));
        let text = || trimmed(r"[A-Za-z0-9 \-._~%&=+,;:@!$'()*/?#é日🔥\t\n]", 64);
        (
            any::<bool>(),
            topic,
            prop::collection::vec(event_name(), 1..8),
            prop::option::of(1..=MAX_LEASE_SECONDS),
            prop::option::of(text()),
            prop::option::of(text()),
        )
            .prop_map(|(subscribe, topic, events, lease_seconds, endpoint, subscriber_name)| {
                let mut set: Vec<EventName> = Vec::new();
                for e in events {
                    if !set.contains(&e) {
                        set.push(e);
                    }
                }
                let (mode, events, endpoint) = if subscribe {
                    (Mode::Subscribe, set, endpoint)
                } else {
                    (Mode::Unsubscribe, Vec::new(), Some(endpoint.unwrap_or_else(|| "wss://h/e".into())))
                };
                SubscriptionRequest { mode, topic, events, lease_seconds, endpoint, subscriber_name }
            })
    }

    proptest! {
        #[test]
        fn req24_to_form_round_trips_through_from_form(r in request()) {
            let form = r.to_form();
            prop_assert!(form.starts_with("hub.channel.type=websocket&"));
            prop_assert_eq!(SubscriptionRequest::from_form(&form).unwrap(), r);
        }

        #[test]
        fn neg1_from_form_never_panics(body in "[a-z.=&%+0-9A-F\u{e9}]{0,80}") {
            let _ = SubscriptionRequest::from_form(&body);
        }
    }
}
