//! Events: the envelope every context change, update, select and SyncError travels in
//! (req 59-69, 77), with validation against the catalog (req 64, §3).
//!
//! Reading is split in two so each side can be as lenient as it should be:
//! [`Event::parse_envelope`] reads the envelope (what a subscriber needs to follow a Hub it does
//! not control), and [`Event::validate`] checks the context against the catalog (what a Hub
//! does before it accepts a request). [`Event::parse`] does both.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::catalog::{EventKind, EventName, EventNameError, FieldKind};
use crate::time::{Timestamp, TimestampError};
use crate::wire::{ContextEntry, ResourceKey, ValueField};

/// The longest `id` or `hub.topic` accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// A resource id over [`MAX_ID_LEN`] bytes (FHIR ids are at most 64 characters): a Hub keeps
/// the ids of open contexts in storage rows of bounded size.
const ID_TOO_LONG: EventError =
    EventError::BadField { field: "a context resource's id", reason: "is longer than 256 bytes" };

/// An event, as requested by a subscriber (req 77) or notified by a Hub (req 59-60).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When the event occurred (req 59).
    pub timestamp: Timestamp,
    /// Unique id; a Hub reuses the requester's id in its broadcast (req 80).
    pub id: String,
    /// `hub.topic`: the session.
    pub topic: String,
    /// `hub.event`.
    pub name: EventName,
    /// `context.versionId` (req 61, 108-110).
    pub version_id: Option<String>,
    /// `context.priorVersionId` (req 110).
    pub prior_version_id: Option<String>,
    /// The context (req 60-62).
    pub context: Vec<ContextEntry>,
}

/// Why an event is malformed (neg 12, neg 14). Every variant is a client error (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not JSON, or a field of the wrong JSON type.
    #[error("the event is not valid JSON: {0} (req 1, neg 12)")]
    Json(String),
    /// A required envelope field is missing.
    #[error("the event has no {0:?} (req 59-60, neg 12)")]
    MissingField(&'static str),
    /// A field has the wrong type or an unusable value.
    #[error("{field:?} {reason} (req 59-60, neg 12)")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The timestamp cannot be read.
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    /// `hub.event` is not an event name.
    #[error("hub.event: {0}")]
    Name(#[from] EventNameError),
    /// A context entry is malformed.
    #[error("context: {0}")]
    Entry(String),
    /// A required context key is missing.
    #[error("{event} requires a context entry with key {key:?} (req 64, neg 14)")]
    MissingKey {
        /// The event.
        event: String,
        /// The key.
        key: &'static str,
    },
    /// A key appears more often than the catalog allows.
    #[error("{event} allows at most {max} context entry with key {key:?} (req 64)")]
    RepeatedKey {
        /// The event.
        event: String,
        /// The key.
        key: &'static str,
        /// The maximum.
        max: usize,
    },
    /// A key the event does not define (req 64: events SHALL NOT carry others).
    #[error("{event} does not define the context key {key:?}{hint}; allowed keys: {allowed} (req 64)")]
    UnexpectedKey {
        /// The event.
        event: String,
        /// The key.
        key: String,
        /// The keys allowed.
        allowed: String,
        /// A hint when the key differs only in case (req 63).
        hint: &'static str,
    },
    /// The value is given under the wrong value field (e.g. `reference` where a resource is
    /// required).
    #[error("context key {key:?} must be given as {expected:?}, not {found:?} (req 62, §3)")]
    WrongField {
        /// The key.
        key: String,
        /// The field required.
        expected: &'static str,
        /// The field found.
        found: String,
    },
    /// A resource is of the wrong type.
    #[error("context key {key:?} must hold {}, not {} (neg 14)", crate::A(.expected), crate::A(.found))]
    WrongResourceType {
        /// The key.
        key: String,
        /// The type required.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// A `resource` value is not a FHIR resource (no `resourceType`).
    #[error("context key {key:?} does not hold a FHIR resource (a JSON object with \"resourceType\") (req 3, 62)")]
    NotAResource {
        /// The key.
        key: String,
    },
    /// A `reference` value is not `{"reference": "Type/id"}`.
    #[error("context key {key:?} does not hold a Reference of the form {{\"reference\":\"Type/id\"}} (req 62)")]
    BadReference {
        /// The key.
        key: String,
    },
    /// The anchor resource has no `id`, so a close could never match it (req 126).
    #[error("the {key:?} resource has no \"id\"; an open or close must identify its anchor (req 126)")]
    MissingResourceId {
        /// The key.
        key: String,
    },
    /// An `extension` entry whose value is not a JSON object under `data` (req 69).
    #[error("the \"extension\" context entry must hold a JSON object under \"data\" (req 69)")]
    BadExtension,
    /// `*-update` without `context.versionId`.
    #[error("{event} requires \"context.versionId\", the anchor's current version (req 117, neg 15)")]
    MissingVersionId {
        /// The event.
        event: String,
    },
}

impl EventError {
    /// The spec item the rule comes from, for messages and OperationOutcomes.
    pub fn spec_ref(&self) -> &'static str {
        match self {
            EventError::Json(_) | EventError::MissingField(_) | EventError::BadField { .. } => "neg 12",
            EventError::Timestamp(_) => "req 59",
            EventError::Name(_) => "req 134",
            EventError::Entry(_) | EventError::WrongField { .. } | EventError::BadReference { .. } => "req 62",
            EventError::MissingKey { .. } | EventError::WrongResourceType { .. } => "neg 14",
            EventError::RepeatedKey { .. } | EventError::UnexpectedKey { .. } => "req 64",
            EventError::NotAResource { .. } => "req 3",
            EventError::MissingResourceId { .. } => "req 126",
            EventError::BadExtension => "req 69",
            EventError::MissingVersionId { .. } => "neg 15",
        }
    }
}

#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "hub.topic", borrow)]
    topic: Option<&'a RawValue>,
    #[serde(rename = "hub.event", borrow)]
    event: Option<&'a RawValue>,
    // Both spellings are read (req 61); the dotted one is written.
    #[serde(rename = "context.versionId", alias = "versionId", borrow)]
    version_id: Option<&'a RawValue>,
    #[serde(rename = "context.priorVersionId", alias = "priorVersionId", borrow)]
    prior_version_id: Option<&'a RawValue>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
}

fn string_field(raw: Option<&RawValue>, field: &'static str) -> Result<String, EventError> {
    let raw = raw.ok_or(EventError::MissingField(field))?;
    let s: String =
        serde_json::from_str(raw.get()).map_err(|_| EventError::BadField { field, reason: "must be a string" })?;
    let s = s.trim();
    if s.is_empty() {
        return Err(EventError::BadField { field, reason: "must not be empty" });
    }
    if s.len() > MAX_ID_LEN {
        return Err(EventError::BadField { field, reason: "is longer than 256 bytes" });
    }
    Ok(s.to_owned())
}

fn optional_string(raw: Option<&RawValue>, field: &'static str) -> Result<Option<String>, EventError> {
    match raw {
        Some(r) if r.get() != "null" => string_field(Some(r), field).map(Some),
        _ => Ok(None),
    }
}

impl Event {
    /// Reads an event and validates its context against the catalog: what a Hub does with a
    /// request (neg 12, neg 14).
    pub fn parse(json: &str) -> Result<Event, EventError> {
        let e = Event::parse_envelope(json)?;
        e.validate()?;
        Ok(e)
    }

    /// Reads the envelope only: timestamp, id, topic, event name, versions, and the shape of
    /// each context entry (req 59-62). Lenient about timestamps (see [`Timestamp::parse`]).
    pub fn parse_envelope(json: &str) -> Result<Event, EventError> {
        let env: WireEnvelope<'_> = serde_json::from_str(json).map_err(|e| EventError::Json(e.to_string()))?;
        let ts_text = string_field(env.timestamp, "timestamp")?;
        let timestamp = Timestamp::parse(&ts_text)?;
        let id = string_field(env.id, "id")?;
        let ev_raw = env.event.ok_or(EventError::MissingField("event"))?;
        let ev: WireEvent<'_> =
            serde_json::from_str(ev_raw.get()).map_err(|e| EventError::Json(format!("\"event\": {e}")))?;
        let topic = string_field(ev.topic, "hub.topic")?;
        let name = EventName::parse(&string_field(ev.event, "hub.event")?)?;
        let version_id = optional_string(ev.version_id, "context.versionId")?;
        let prior_version_id = optional_string(ev.prior_version_id, "context.priorVersionId")?;
        let ctx_raw = ev.context.ok_or(EventError::MissingField("event.context"))?;
        if !ctx_raw.get().starts_with('[') {
            return Err(EventError::BadField { field: "event.context", reason: "must be an array of context entries" });
        }
        let context: Vec<ContextEntry> =
            serde_json::from_str(ctx_raw.get()).map_err(|e| EventError::Entry(strip_position(&e.to_string())))?;
        Ok(Event { timestamp, id, topic, name, version_id, prior_version_id, context })
    }

    /// Checks the context against the catalog's rules for this event (req 62-65, 69, §3).
    pub fn validate(&self) -> Result<(), EventError> {
        let spec = self.name.context_spec();
        let event = || self.name.as_str().to_owned();
        let mut counts = vec![0usize; spec.keys.len()];
        for entry in &self.context {
            if entry.key == "extension" {
                if entry.field != ValueField::Data || !entry.value.get().trim_start().starts_with('{') {
                    return Err(EventError::BadExtension);
                }
                continue;
            }
            let Some(i) = spec.keys.iter().position(|k| k.key == entry.key) else {
                if spec.open_ended {
                    continue;
                }
                let allowed: Vec<&str> = spec.keys.iter().map(|k| k.key).chain(["extension"]).collect();
                let hint = if spec.keys.iter().any(|k| k.key.eq_ignore_ascii_case(&entry.key)) {
                    " (context keys are lower case and case-sensitive, req 63)"
                } else {
                    ""
                };
                return Err(EventError::UnexpectedKey {
                    event: event(),
                    key: entry.key.clone(),
                    allowed: allowed.join(", "),
                    hint,
                });
            };
            let k = &spec.keys[i];
            counts[i] += 1;
            if counts[i] > k.max {
                return Err(EventError::RepeatedKey { event: event(), key: k.key, max: k.max });
            }
            match k.field {
                FieldKind::Resource => {
                    if entry.field != ValueField::Resource {
                        return Err(EventError::WrongField {
                            key: entry.key.clone(),
                            expected: "resource",
                            found: entry.field.to_string(),
                        });
                    }
                    let h =
                        entry.resource_header().ok_or_else(|| EventError::NotAResource { key: entry.key.clone() })?;
                    if let Some(rt) = k.resource_type {
                        if h.resource_type != rt {
                            return Err(EventError::WrongResourceType {
                                key: entry.key.clone(),
                                expected: rt,
                                found: h.resource_type,
                            });
                        }
                    }
                }
                FieldKind::Reference => {
                    if entry.field != ValueField::Reference {
                        return Err(EventError::WrongField {
                            key: entry.key.clone(),
                            expected: "reference",
                            found: entry.field.to_string(),
                        });
                    }
                    let (rt, _) =
                        entry.reference_target().ok_or_else(|| EventError::BadReference { key: entry.key.clone() })?;
                    if let Some(expected) = k.resource_type {
                        if rt != expected {
                            return Err(EventError::WrongResourceType { key: entry.key.clone(), expected, found: rt });
                        }
                    }
                }
            }
        }
        for (k, n) in spec.keys.iter().zip(&counts) {
            if *n < k.min {
                return Err(EventError::MissingKey { event: event(), key: k.key });
            }
        }
        if matches!(self.name.kind(), EventKind::Open | EventKind::Close) && self.anchor().is_none() {
            let key = self.name.anchor_key().unwrap_or("resource").to_owned();
            return Err(EventError::MissingResourceId { key });
        }
        if spec.requires_version && self.version_id.is_none() {
            return Err(EventError::MissingVersionId { event: event() });
        }
        Ok(())
    }

    /// Checks that no resource or reference in the context has an id over [`MAX_ID_LEN`]
    /// bytes (FHIR ids are at most 64 characters). A Hub needs it: it keeps the ids of open
    /// contexts in storage rows of bounded size; a subscriber does not (kept apart from
    /// [`Event::validate`] so the browser SDK does not carry it).
    pub fn check_id_lengths(&self) -> Result<(), EventError> {
        for entry in &self.context {
            let len = match entry.field {
                ValueField::Resource => entry.resource_header().and_then(|h| h.id).map(|id| id.len()),
                ValueField::Reference => entry.reference_target().map(|(_, id)| id.len()),
                _ => None,
            };
            if len.is_some_and(|n| n > MAX_ID_LEN) {
                return Err(ID_TOO_LONG);
            }
        }
        Ok(())
    }

    /// The anchor this event is about: the resource (open, close) or reference (update,
    /// select) under the event's anchor key (req 65, 126).
    pub fn anchor(&self) -> Option<ResourceKey> {
        let key = self.name.anchor_key()?;
        let rt = self.name.resource_type()?;
        let entry = self.context.iter().find(|e| e.key == key)?;
        let (t, id) = match entry.field {
            ValueField::Resource => {
                let h = entry.resource_header()?;
                (h.resource_type, h.id?)
            }
            ValueField::Reference => entry.reference_target()?,
            _ => return None,
        };
        (t == rt && !id.is_empty()).then(|| ResourceKey::new(t, id))
    }

    /// The entries with `key`.
    pub fn entries<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ContextEntry> + 'a {
        self.context.iter().filter(move |e| e.key == key)
    }

    /// The JSON text of this event, as a Hub sends it and a subscriber posts it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("events serialise"))
    }
}

/// serde_json appends "at line 1 column 57" to messages; positions in a one-line body are noise.
fn strip_position(msg: &str) -> String {
    // The position is the message's end, and the message has no other " at line ".
    crate::before(msg, " at line ").to_owned()
}

struct EventBody<'a>(&'a Event);

impl Serialize for EventBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("hub.topic", &e.topic)?;
        m.serialize_entry("hub.event", &e.name)?;
        if let Some(v) = &e.version_id {
            m.serialize_entry("context.versionId", v)?;
        }
        if let Some(v) = &e.prior_version_id {
            m.serialize_entry("context.priorVersionId", v)?;
        }
        m.serialize_entry("context", &e.context)?;
        m.end()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("timestamp", &self.timestamp)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("event", &EventBody(self))?;
        m.end()
    }
}

/// Events are persisted (a Hub's open contexts) as their JSON text and read back leniently.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Event::parse_envelope(raw.get()).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENT_OPEN: &str = r#"{"timestamp":"2025-01-01T10:00:00Z","id":"e1","event":{"hub.topic":"T1","hub.event":"patient-open","context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1","identifier":[{"value":"1"}]}}]}}"#;

    fn with_context(event: &str, ctx: &str) -> String {
        format!(
            r#"{{"timestamp":"2025-01-01T10:00:00Z","id":"e1","event":{{"hub.topic":"T1","hub.event":"{event}","context":{ctx}}}}}"#
        )
    }

    #[test]
    fn issue13_resource_ids_longer_than_256_bytes_are_refused() {
        let ok = "i".repeat(MAX_ID_LEN);
        let open = |id: &str| {
            with_context(
                "Patient-open",
                &format!(r#"[{{"key":"patient","resource":{{"resourceType":"Patient","id":"{id}"}}}}]"#),
            )
        };
        let check = |json: &str| Event::parse(json).and_then(|e| e.check_id_lengths());
        assert!(check(&open(&ok)).is_ok());
        let e = check(&open(&format!("{ok}i"))).unwrap_err();
        assert!(e.to_string().contains("is longer than 256 bytes"), "{e}");
        assert!(Event::parse(&open(&format!("{ok}i"))).is_ok(), "a subscriber does not check");
        let update = |id: &str| {
            format!(
                r#"{{"timestamp":"2025-01-01T10:00:00Z","id":"e1","event":{{"hub.topic":"T1","hub.event":"DiagnosticReport-update","context.versionId":"v1","context":[{{"key":"report","reference":{{"reference":"DiagnosticReport/{id}"}}}},{{"key":"updates","resource":{{"resourceType":"Bundle","type":"transaction"}}}}]}}}}"#
            )
        };
        assert!(check(&update(&ok)).is_ok());
        assert!(check(&update(&format!("{ok}i"))).is_err());
    }

    #[test]
    fn req59_req80_round_trip_keeps_id_and_resource() {
        let e = Event::parse(PATIENT_OPEN).unwrap();
        assert_eq!(e.name.as_str(), "Patient-open");
        assert_eq!(e.anchor(), Some(ResourceKey::new("Patient", "p1")));
        let out = e.to_json();
        assert!(out.contains(r#""id":"e1""#));
        assert!(out.contains(r#""hub.event":"Patient-open""#));
        assert!(out.contains(r#"{"resourceType":"Patient","id":"p1","identifier":[{"value":"1"}]}"#));
        assert_eq!(Event::parse(&out).unwrap(), e);
    }

    #[test]
    fn neg12_missing_envelope_fields() {
        let cases = [
            (r#"{"id":"e1","event":{}}"#, "timestamp"),
            (r#"{"timestamp":"2025-01-01T10:00:00Z","event":{}}"#, "id"),
            (r#"{"timestamp":"2025-01-01T10:00:00Z","id":"e1"}"#, "event"),
            (
                r#"{"timestamp":"2025-01-01T10:00:00Z","id":"e1","event":{"hub.event":"Patient-open","context":[]}}"#,
                "hub.topic",
            ),
            (r#"{"timestamp":"2025-01-01T10:00:00Z","id":"e1","event":{"hub.topic":"T","context":[]}}"#, "hub.event"),
            (
                r#"{"timestamp":"2025-01-01T10:00:00Z","id":"e1","event":{"hub.topic":"T","hub.event":"Patient-open"}}"#,
                "event.context",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(Event::parse(json).unwrap_err(), EventError::MissingField(field), "{json}");
        }
    }

    #[test]
    fn neg12_malformed_json_and_types() {
        assert!(matches!(Event::parse("{"), Err(EventError::Json(_))));
        assert!(matches!(Event::parse("[]"), Err(EventError::Json(_))));
        let e = Event::parse(r#"{"timestamp":5,"id":"e1","event":{}}"#).unwrap_err();
        assert_eq!(e, EventError::BadField { field: "timestamp", reason: "must be a string" });
        let e = Event::parse(r#"{"timestamp":"2025-01-01T10:00:00Z","id":"","event":{}}"#).unwrap_err();
        assert_eq!(e, EventError::BadField { field: "id", reason: "must not be empty" });
        for not_array in ["{}", "\"patient\"", "5"] {
            let e = Event::parse(&with_context("Patient-open", not_array)).unwrap_err();
            assert_eq!(
                e.to_string(),
                "\"event.context\" must be an array of context entries (req 59-60, neg 12)",
                "{not_array}"
            );
        }
        let e = Event::parse(&with_context("Patient-open", "[5]")).unwrap_err();
        assert!(matches!(e, EventError::Entry(_)), "{e}");
    }

    #[test]
    fn neg14_missing_required_key() {
        let e = Event::parse(&with_context(
            "Encounter-open",
            r#"[{"key":"encounter","resource":{"resourceType":"Encounter","id":"x"}}]"#,
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "Encounter-open requires a context entry with key \"patient\" (req 64, neg 14)");
    }

    #[test]
    fn neg14_wrong_resource_type() {
        let e = Event::parse(&with_context(
            "Patient-open",
            r#"[{"key":"patient","resource":{"resourceType":"Encounter","id":"x"}}]"#,
        ))
        .unwrap_err();
        assert!(matches!(e, EventError::WrongResourceType { expected: "Patient", .. }), "{e}");
    }

    #[test]
    fn req64_unexpected_key_and_req63_case_hint() {
        let e = Event::parse(&with_context(
            "Patient-open",
            r#"[{"key":"patient","resource":{"resourceType":"Patient","id":"x"}},{"key":"Encounter","resource":{"resourceType":"Encounter","id":"y"}}]"#,
        ))
        .unwrap_err();
        assert!(matches!(e, EventError::UnexpectedKey { .. }), "{e}");
        let e = Event::parse(&with_context(
            "Patient-open",
            r#"[{"key":"Patient","resource":{"resourceType":"Patient","id":"x"}}]"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("lower case and case-sensitive, req 63"), "{e}");
    }

    #[test]
    fn req64_cardinality() {
        let p = r#"{"key":"patient","resource":{"resourceType":"Patient","id":"x"}}"#;
        let e = Event::parse(&with_context("Patient-open", &format!("[{p},{p}]"))).unwrap_err();
        assert!(matches!(e, EventError::RepeatedKey { key: "patient", max: 1, .. }), "{e}");
        // DiagnosticReport-open allows many studies.
        let s = r#"{"key":"study","resource":{"resourceType":"ImagingStudy","id":"s"}}"#;
        let r = r#"{"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r"}}"#;
        Event::parse(&with_context("DiagnosticReport-open", &format!("[{r},{s},{s},{p}]"))).unwrap();
    }

    #[test]
    fn req62_wrong_value_field() {
        let e =
            Event::parse(&with_context("Patient-open", r#"[{"key":"patient","reference":{"reference":"Patient/x"}}]"#))
                .unwrap_err();
        assert!(matches!(e, EventError::WrongField { expected: "resource", .. }), "{e}");
        let e = Event::parse(&with_context("Patient-open", r#"[{"key":"patient","resource":[1]}]"#)).unwrap_err();
        assert!(matches!(e, EventError::NotAResource { .. }), "{e}");
    }

    #[test]
    fn req126_anchor_needs_an_id() {
        let e = Event::parse(&with_context(
            "Patient-close",
            r#"[{"key":"patient","resource":{"resourceType":"Patient"}}]"#,
        ))
        .unwrap_err();
        assert!(matches!(e, EventError::MissingResourceId { .. }), "{e}");
    }

    #[test]
    fn req69_extension_entries() {
        let p = r#"{"key":"patient","resource":{"resourceType":"Patient","id":"x"}}"#;
        Event::parse(&with_context(
            "Patient-open",
            &format!(r#"[{p},{{"key":"extension","data":{{"user-timezone":"+1:00"}}}}]"#),
        ))
        .unwrap();
        let e = Event::parse(&with_context("Patient-open", &format!(r#"[{p},{{"key":"extension","data":"x"}}]"#)))
            .unwrap_err();
        assert_eq!(e, EventError::BadExtension);
    }

    #[test]
    fn req61_both_version_spellings_are_read_dotted_is_written() {
        let upd = |v: &str| {
            format!(
                r#"{{"timestamp":"2025-01-01T10:00:00Z","id":"u1","event":{{"hub.topic":"T1","hub.event":"DiagnosticReport-update","{v}":"v1","context":[{{"key":"report","reference":{{"reference":"DiagnosticReport/r1"}}}},{{"key":"updates","resource":{{"resourceType":"Bundle","type":"transaction","entry":[]}}}}]}}}}"#
            )
        };
        for spelling in ["context.versionId", "versionId"] {
            let e = Event::parse(&upd(spelling)).unwrap();
            assert_eq!(e.version_id.as_deref(), Some("v1"));
            assert!(e.to_json().contains(r#""context.versionId":"v1""#));
            assert_eq!(e.anchor(), Some(ResourceKey::new("DiagnosticReport", "r1")));
        }
    }

    #[test]
    fn neg15_update_without_version_is_rejected() {
        let e = Event::parse(&with_context(
            "DiagnosticReport-update",
            r#"[{"key":"report","reference":{"reference":"DiagnosticReport/r1"}},{"key":"updates","resource":{"resourceType":"Bundle","type":"transaction"}}]"#,
        ))
        .unwrap_err();
        assert!(matches!(e, EventError::MissingVersionId { .. }), "{e}");
    }

    #[test]
    fn req121_empty_selection_is_allowed() {
        Event::parse(&with_context(
            "DiagnosticReport-select",
            r#"[{"key":"report","reference":{"reference":"DiagnosticReport/r1"}}]"#,
        ))
        .unwrap();
    }

    #[test]
    fn req128_home_open_has_empty_context() {
        Event::parse(&with_context("home-open", "[]")).unwrap();
        assert!(Event::parse(&with_context(
            "Home-open",
            r#"[{"key":"patient","resource":{"resourceType":"Patient","id":"x"}}]"#
        ))
        .is_err());
    }

    #[test]
    fn req135_custom_events_carry_any_context() {
        let e = Event::parse(&with_context("org.example.ping", r#"[{"key":"anything","string":"x"}]"#)).unwrap();
        assert_eq!(e.name.kind(), EventKind::Custom);
    }

    #[test]
    fn generic_open_needs_its_anchor() {
        Event::parse(&with_context("MedicationRequest-open", r#"[{"key":"medicationrequest","resource":{"resourceType":"MedicationRequest","id":"m"}},{"key":"patient","resource":{"resourceType":"Patient","id":"p"}}]"#)).unwrap();
        let e = Event::parse(&with_context(
            "MedicationRequest-open",
            r#"[{"key":"patient","resource":{"resourceType":"Patient","id":"p"}}]"#,
        ))
        .unwrap_err();
        assert!(matches!(e, EventError::MissingKey { key: "medicationrequest", .. }), "{e}");
    }
}
