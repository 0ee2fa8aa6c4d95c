//! The wire model: the JSON shapes FHIRcast puts on HTTP and WebSocket (req 40-47, 59-62,
//! 70-74, 102).
//!
//! FHIR resources are carried as [`RawValue`]: the exact bytes a client sent are re-emitted, so
//! no field is lost, and a fan-out to many subscribers never re-parses or re-serialises them.
//! Only the few fields the protocol needs (`resourceType`, `id`, `reference`) are read, on
//! demand, through [`ContextEntry::resource_header`] and [`ContextEntry::reference_target`].

use std::fmt;

use serde::de::{self, IgnoredAny};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::vecmap::VecMap;

/// The name of the value field of a context entry (req 62): the lower-cased FHIR datatype.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueField {
    /// `resource`: a full FHIR resource.
    Resource,
    /// `reference`: a FHIR Reference.
    Reference,
    /// `data`: the value of an `extension` entry (req 69).
    Data,
    /// Any other datatype name (`string`, `coding`, ...), kept as sent.
    Other(String),
}

impl ValueField {
    /// The JSON field name.
    pub fn as_str(&self) -> &str {
        match self {
            ValueField::Resource => "resource",
            ValueField::Reference => "reference",
            ValueField::Data => "data",
            ValueField::Other(s) => s,
        }
    }

    fn from_name(s: &str) -> Self {
        match s {
            "resource" => ValueField::Resource,
            "reference" => ValueField::Reference,
            "data" => ValueField::Data,
            other => ValueField::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ValueField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named item of an event's `context` array: `{"key": "...", "<valuefield>": ...}`.
#[derive(Clone, Debug)]
pub struct ContextEntry {
    /// The context key (lower case, case-sensitive; req 63).
    pub key: String,
    /// Which value field carries the value.
    pub field: ValueField,
    /// The value, exactly as received.
    pub value: Box<RawValue>,
}

impl PartialEq for ContextEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.field == other.field && self.value.get() == other.value.get()
    }
}

/// The fields of a FHIR resource the protocol looks at.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ResourceHeader {
    /// `resourceType`.
    #[serde(rename = "resourceType")]
    pub resource_type: String,
    /// `id`, when present.
    #[serde(default)]
    pub id: Option<String>,
}

impl ContextEntry {
    /// Builds an entry from a value that serialises to JSON.
    pub fn new(key: &str, field: ValueField, value: &impl Serialize) -> Self {
        let json = serde_json::to_string(value).unwrap_or_else(|_| unreachable!("context values serialise"));
        ContextEntry {
            key: key.to_owned(),
            field,
            value: RawValue::from_string(json).unwrap_or_else(|_| unreachable!("serde_json output is valid JSON")),
        }
    }

    /// Builds a `resource` entry from raw JSON text (which must be valid JSON).
    pub fn resource_raw(key: &str, json: &str) -> Result<Self, serde_json::Error> {
        Ok(ContextEntry {
            key: key.to_owned(),
            field: ValueField::Resource,
            value: RawValue::from_string(json.to_owned())?,
        })
    }

    /// Builds a `reference` entry `{"reference": "<Type>/<id>"}`.
    pub fn reference(key: &str, resource_type: &str, id: &str) -> Self {
        // The JSON text written directly: a map type here would cost the browser SDK its code.
        let reference = serde_json::to_string(&format!("{resource_type}/{id}"))
            .unwrap_or_else(|_| unreachable!("strings serialise"));
        ContextEntry {
            key: key.to_owned(),
            field: ValueField::Reference,
            value: RawValue::from_string(format!("{{\"reference\":{reference}}}"))
                .unwrap_or_else(|_| unreachable!("valid JSON")),
        }
    }

    /// Reads `resourceType` and `id` of a resource value; `None` if the value is not a JSON
    /// object with a string `resourceType`.
    pub fn resource_header(&self) -> Option<ResourceHeader> {
        serde_json::from_str::<HeaderOnly>(self.value.get()).ok().map(|h| h.0)
    }

    /// Reads a Reference value's target `"<Type>/<id>"` (a relative reference, or the last two
    /// segments of an absolute URL, history suffix removed).
    pub fn reference_target(&self) -> Option<(String, String)> {
        #[derive(Deserialize)]
        struct R {
            reference: Option<String>,
        }
        let r: R = serde_json::from_str(self.value.get()).ok()?;
        split_reference(r.reference.as_deref()?)
    }
}

/// Identifies a FHIR resource by type and id: an anchor context (req 126) or a content item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceKey {
    /// The resource type, e.g. `Patient`.
    pub resource_type: String,
    /// The logical id.
    pub id: String,
}

impl ResourceKey {
    /// A key from its parts.
    pub fn new(resource_type: impl Into<String>, id: impl Into<String>) -> Self {
        ResourceKey { resource_type: resource_type.into(), id: id.into() }
    }

    /// Parses `Type/id` (or an absolute URL ending in `Type/id`).
    pub fn parse_reference(s: &str) -> Option<Self> {
        split_reference(s).map(|(t, i)| ResourceKey::new(t, i))
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.resource_type, self.id)
    }
}

/// Splits `Type/id`, `http://x/fhir/Type/id` or `Type/id/_history/3` into `(Type, id)`.
pub fn split_reference(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    let s = crate::before(s, "/_history/");
    let mut parts = s.rsplit('/');
    let id = parts.next()?;
    let ty = parts.next()?;
    let valid_ty =
        ty.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && ty.chars().all(|c| c.is_ascii_alphanumeric());
    (valid_ty && !id.is_empty()).then(|| (ty.to_owned(), id.to_owned()))
}

/// Deserialises only the header of a resource, skipping the rest without allocating.
struct HeaderOnly(ResourceHeader);

impl<'de> Deserialize<'de> for HeaderOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = HeaderOnly;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a FHIR resource object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<HeaderOnly, A::Error> {
                let mut resource_type = None;
                let mut id = None;
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*k {
                        "resourceType" => resource_type = Some(map.next_value::<String>()?),
                        "id" => id = map.next_value::<Option<String>>()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let resource_type = resource_type.ok_or_else(|| de::Error::missing_field("resourceType"))?;
                Ok(HeaderOnly(ResourceHeader { resource_type, id }))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for ContextEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", &self.key)?;
        m.serialize_entry(self.field.as_str(), &self.value)?;
        m.end()
    }
}

/// Why a context entry could not be read (req 62).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryShapeError {
    /// The entry has no `key`.
    #[error("a context entry has no \"key\" (req 62)")]
    MissingKey,
    /// The entry has no value field.
    #[error("context entry {key:?} has no value field such as \"resource\" or \"reference\" (req 62)")]
    MissingValue {
        /// The entry's key.
        key: String,
    },
    /// The entry has more than one value field.
    #[error("context entry {key:?} has several value fields ({fields}); exactly one is allowed (req 62)")]
    SeveralValues {
        /// The entry's key.
        key: String,
        /// The fields found, comma-separated.
        fields: String,
    },
}

impl<'de> Deserialize<'de> for ContextEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Sorted like a BTreeMap (the fields of an error are listed in that order), smaller in wasm.
        let mut m = VecMap::<String, Box<RawValue>>::deserialize(d)?;
        let key_raw = m.remove("key").ok_or_else(|| de::Error::custom(EntryShapeError::MissingKey))?;
        let key: String = serde_json::from_str(key_raw.get())
            .map_err(|_| de::Error::custom("a context entry's \"key\" must be a string (req 62)"))?;
        let mut it = m.into_iter();
        let (field, value) =
            it.next().ok_or_else(|| de::Error::custom(EntryShapeError::MissingValue { key: key.clone() }))?;
        if let Some((second, _)) = it.next() {
            let mut fields = vec![field, second];
            fields.extend(it.map(|(k, _)| k));
            return Err(de::Error::custom(EntryShapeError::SeveralValues { key, fields: fields.join(", ") }));
        }
        Ok(ContextEntry { key, field: ValueField::from_name(&field), value })
    }
}

/// The subscription confirmation the Hub sends first on a new WebSocket (req 43).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Always `"subscribe"`.
    #[serde(rename = "hub.mode")]
    pub mode: String,
    /// The session.
    #[serde(rename = "hub.topic")]
    pub topic: String,
    /// The granted events, comma-separated.
    #[serde(rename = "hub.events")]
    pub events: String,
    /// Seconds the subscription lasts, counted from this message.
    #[serde(rename = "hub.lease_seconds")]
    pub lease_seconds: u64,
}

impl Confirmation {
    /// Reads a confirmation from its members: the four are required, three strings and a
    /// whole number, as the derived `Deserialize` has them (but a repeated member counts once,
    /// its last value). Written by hand so the browser SDK links the readers it already has
    /// instead of one more derived deserialiser; the errors name the member.
    pub fn parse(text: &str) -> Result<Confirmation, String> {
        let v: VecMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        let lease_seconds = member(&v, "hub.lease_seconds")?;
        Ok(Confirmation {
            mode: member(&v, "hub.mode")?,
            topic: member(&v, "hub.topic")?,
            events: member(&v, "hub.events")?,
            lease_seconds,
        })
    }
}

/// A required member of a JSON object read member by member (the `parse` functions above), typed.
fn member<T: de::DeserializeOwned>(v: &VecMap<String, &RawValue>, name: &str) -> Result<T, String> {
    let raw = v.get(name).ok_or_else(|| format!("missing field \"{name}\""))?;
    serde_json::from_str(raw.get()).map_err(|e| format!("\"{name}\": {e}"))
}

/// A subscription denial (req 46-47): the Hub closes the socket after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// Always `"denied"`.
    #[serde(rename = "hub.mode")]
    pub mode: String,
    /// The session.
    #[serde(rename = "hub.topic")]
    pub topic: String,
    /// The events denied, comma-separated.
    #[serde(rename = "hub.events")]
    pub events: String,
    /// Why, for developers.
    #[serde(rename = "hub.reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The body of a `202 Accepted` answer to (un)subscribe (req 40, 53).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeResponse {
    /// The WebSocket URL of the subscription.
    #[serde(rename = "hub.channel.endpoint")]
    pub endpoint: String,
}

/// A subscriber's answer to a notification (req 70-74).
///
/// Strict when sending: `status` is a JSON number. Lenient when reading: a number, a numeric
/// string (the spec's own example sends `"200"`), or no status at all (some clients send only
/// the `id`; it counts as `200`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// The id of the notification answered.
    pub id: String,
    /// An HTTP status code: 2xx succeeded, anything else failed.
    pub status: u16,
}

impl Ack {
    /// Whether the status reports success (any 2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Parses a WebSocket text message as an ack, leniently.
    pub fn parse(text: &str) -> Result<Ack, AckError> {
        let mut w: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| AckError::NotJson(e.to_string()))?;
        let id = match w.remove("id") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(AckError::MissingId),
        };
        let status = match w.remove("status") {
            None | Some(serde_json::Value::Null) => 200,
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or(AckError::BadStatus)?
            }
            Some(serde_json::Value::String(s)) => s.trim().parse::<u16>().map_err(|_| AckError::BadStatus)?,
            Some(_) => return Err(AckError::BadStatus),
        };
        if !(100..=599).contains(&status) {
            return Err(AckError::BadStatus);
        }
        Ok(Ack { id, status })
    }
}

/// Why a WebSocket message from a subscriber is not an ack (neg 24: ignored, not fatal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// Not a JSON object.
    #[error("not a JSON ack object: {0}")]
    NotJson(String),
    /// No `id`.
    #[error("the ack has no \"id\" (req 70)")]
    MissingId,
    /// `status` is not an HTTP status code.
    #[error("the ack's \"status\" is not an HTTP status code (req 71)")]
    BadStatus,
}

/// The answer to `GET {hub.url}/{topic}` (req 101-106).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentContext {
    /// The anchor's resourceType, or `""` when no context is established.
    #[serde(rename = "context.type")]
    pub context_type: String,
    /// The anchor's version; absent when no context is established (as in the spec's example).
    #[serde(rename = "context.versionId", default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The context array of the most recent open, plus one `content` entry.
    pub context: Vec<ContextEntry>,
}

impl CurrentContext {
    /// The empty answer (req 103).
    pub fn empty() -> Self {
        CurrentContext { context_type: String::new(), version_id: None, context: Vec::new() }
    }

    /// Reads an answer from its members, as the derived `Deserialize` does (but a repeated
    /// member counts once, its last value): what a subscriber reads. Written by hand so the
    /// browser SDK links the readers it already has (members, strings, context entries)
    /// instead of one more derived deserialiser.
    pub fn parse(text: &str) -> Result<CurrentContext, String> {
        let v: VecMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        let context_type = member(&v, "context.type")?;
        // Optional: absent when no context is established.
        let version_id = if v.contains_key("context.versionId") { member(&v, "context.versionId")? } else { None };
        let context = member(&v, "context")?;
        Ok(CurrentContext { context_type, version_id, context })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn req74_ack_status_as_number_string_or_missing() {
        assert_eq!(Ack::parse(r#"{"id":"a","status":200}"#).unwrap().status, 200);
        assert_eq!(Ack::parse(r#"{"id":"a","status":"409"}"#).unwrap().status, 409);
        assert_eq!(Ack::parse(r#"{"id":"a"}"#).unwrap().status, 200);
        assert_eq!(Ack::parse(r#"{"id":7,"status":500}"#).unwrap().id, "7");
        assert!(Ack::parse(r#"{"status":200}"#).is_err());
        assert!(Ack::parse(r#"{"id":"a","status":"ok"}"#).is_err());
        assert!(Ack::parse(r#"{"id":"a","status":99999}"#).is_err());
        assert!(Ack::parse("[1]").is_err());
        assert!(Ack::parse("nonsense").is_err());
        assert_eq!(serde_json::to_string(&Ack { id: "a".into(), status: 200 }).unwrap(), r#"{"id":"a","status":200}"#);
    }

    #[test]
    fn req62_entries_keep_their_value_verbatim() {
        let text = r#"{"key":"patient","resource":{"resourceType":"Patient","id":"p1","x":[1,{"y":true}]}}"#;
        let e: ContextEntry = serde_json::from_str(text).unwrap();
        assert_eq!(e.key, "patient");
        assert_eq!(e.field, ValueField::Resource);
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
        let h = e.resource_header().unwrap();
        assert_eq!((h.resource_type.as_str(), h.id.as_deref()), ("Patient", Some("p1")));
    }

    #[test]
    fn req62_entry_shape_errors() {
        let err = |t: &str| serde_json::from_str::<ContextEntry>(t).unwrap_err().to_string();
        assert!(err(r#"{"resource":{}}"#).contains("no \"key\""));
        assert!(err(r#"{"key":"patient"}"#).contains("no value field"));
        assert!(err(r#"{"key":"patient","resource":{},"reference":{}}"#).contains("several value fields"));
        assert!(err(r#"{"key":3,"resource":{}}"#).contains("must be a string"));
    }

    #[test]
    fn references_are_split() {
        assert_eq!(split_reference("DiagnosticReport/abc"), Some(("DiagnosticReport".into(), "abc".into())));
        assert_eq!(split_reference("http://x/fhir/Patient/1/_history/2"), Some(("Patient".into(), "1".into())));
        assert_eq!(split_reference("abc"), None);
        assert_eq!(split_reference("patient/1"), None);
        let e = ContextEntry::reference("report", "DiagnosticReport", "r1");
        assert_eq!(e.reference_target(), Some(("DiagnosticReport".into(), "r1".into())));
    }

    #[test]
    fn req43_req47_messages_serialise_with_dotted_names() {
        let c = Confirmation {
            mode: "subscribe".into(),
            topic: "T1".into(),
            events: "Patient-open".into(),
            lease_seconds: 3600,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":3600}"#
        );
        let d = Denial { mode: "denied".into(), topic: "T1".into(), events: "Patient-open".into(), reason: None };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"hub.mode":"denied","hub.topic":"T1","hub.events":"Patient-open"}"#
        );
    }

    #[test]
    fn req103_empty_current_context_matches_the_spec_example() {
        assert_eq!(serde_json::to_string(&CurrentContext::empty()).unwrap(), r#"{"context.type":"","context":[]}"#);
    }

    #[test]
    fn confirmation_parse_reads_what_the_derived_deserialiser_reads() {
        let t = r#"{"hub.mode":"subscribe","hub.topic":"t","hub.events":"Patient-open,Patient-close","hub.lease_seconds":7200,"x":null}"#;
        assert_eq!(Confirmation::parse(t).unwrap(), serde_json::from_str::<Confirmation>(t).unwrap());
        let bad = [
            ("[]", "not a JSON object"),
            (
                r#"{"hub.mode":"subscribe","hub.topic":"t","hub.events":"Patient-open"}"#,
                "missing field \"hub.lease_seconds\"",
            ),
            (r#"{"hub.topic":"t","hub.events":"e","hub.lease_seconds":1}"#, "missing field \"hub.mode\""),
            (
                r#"{"hub.mode":"subscribe","hub.topic":1,"hub.events":"e","hub.lease_seconds":1}"#,
                "\"hub.topic\": invalid type",
            ),
            (
                r#"{"hub.mode":"subscribe","hub.topic":"t","hub.events":"e","hub.lease_seconds":-1}"#,
                "\"hub.lease_seconds\": invalid value",
            ),
            (
                r#"{"hub.mode":"subscribe","hub.topic":"t","hub.events":"e","hub.lease_seconds":1.5}"#,
                "\"hub.lease_seconds\": invalid type",
            ),
        ];
        for (t, want) in bad {
            assert!(serde_json::from_str::<Confirmation>(t).is_err(), "{t}");
            let e = Confirmation::parse(t).unwrap_err();
            assert!(e.starts_with(want), "{t}: {e}");
        }
    }

    #[test]
    fn current_context_parse_reads_what_the_derived_deserialiser_reads() {
        let ok = [
            r#"{"context.type":"","context":[]}"#,
            r#"{"context.type":"Patient","context.versionId":"v1","context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}"#,
            r#"{"context":[],"context.versionId":null,"context.type":"Encounter","extra":{"x":[1,2]}}"#,
        ];
        for t in ok {
            let derived: CurrentContext = serde_json::from_str(t).unwrap();
            assert_eq!(CurrentContext::parse(t).unwrap(), derived, "{t}");
        }
        let bad = [
            ("[]", "not a JSON object"),
            ("{", "not a JSON object"),
            (r#"{"context":[]}"#, "missing field \"context.type\""),
            (r#"{"context.type":"Patient"}"#, "missing field \"context\""),
            (r#"{"context.type":1,"context":[]}"#, "\"context.type\": invalid type"),
            (r#"{"context.type":"","context.versionId":2,"context":[]}"#, "\"context.versionId\": invalid type"),
            (r#"{"context.type":"","context":[{"key":"patient"}]}"#, "\"context\": "),
        ];
        for (t, want) in bad {
            assert!(serde_json::from_str::<CurrentContext>(t).is_err(), "{t}");
            let e = CurrentContext::parse(t).unwrap_err();
            assert!(e.starts_with(want), "{t}: {e}");
        }
    }
}
