//! The `SyncError` OperationOutcome (req 84-96, §5a-12): what a Hub or subscriber sends when
//! somebody could not follow an event.
//!
//! Strict when writing: exactly one issue, severity `warning` (req 92, 94), the three FHIRcast
//! codings in profile order, and the profile's `…/subscribername` system (req 93).
//! Lenient when reading, because SyncErrors come from other vendors and from the spec's own
//! example: the legacy `…/subscriber` system, any severity, extra issues and extra codings
//! (vendor error codes, req 92) are accepted. Only the two codings without which a SyncError
//! means nothing, the failed event's id and name, are required.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::vecmap::VecMap;
use crate::wire::{ContextEntry, ValueField};

/// Coding system whose code is the `id` of the event that failed (req 92).
pub const EVENT_ID_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/eventid";
/// Coding system whose code is the name of the event that failed (req 92).
pub const EVENT_NAME_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/eventname";
/// Coding system whose code is the `subscriber.name` of the subscriber at fault (req 92).
pub const SUBSCRIBER_NAME_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/subscribername";
/// The spelling the spec page's example uses instead of [`SUBSCRIBER_NAME_SYSTEM`] (req 93):
/// accepted when reading, never emitted.
pub const LEGACY_SUBSCRIBER_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/subscriber";

/// The context key of a SyncError's OperationOutcome (req 91).
pub const CONTEXT_KEY: &str = "operationoutcome";

/// The OperationOutcome `issue.code` of a SyncError (req 92, 96).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssueCode {
    /// `processing`: the profile's fixed code, for every refusal or delivery failure (req 92).
    Processing,
    /// `too-long`: the recipient could not handle an event this large (req 96, neg 18).
    TooLong,
}

impl IssueCode {
    /// The FHIR IssueType code.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Processing => "processing",
            IssueCode::TooLong => "too-long",
        }
    }

    /// Reads an IssueType code. Only `too-long` has a protocol meaning besides the profile's
    /// `processing`, so every other code (or none) reads as [`IssueCode::Processing`]: a
    /// vendor's `exception` or `timeout` still tells the reader that sync failed.
    pub fn from_code(code: Option<&str>) -> IssueCode {
        match code {
            Some("too-long") => IssueCode::TooLong,
            _ => IssueCode::Processing,
        }
    }
}

/// The meaning of a SyncError, without its FHIR packaging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncErrorDetails {
    /// The `id` of the event that could not be followed.
    pub event_id: String,
    /// The name of that event, e.g. `Patient-open`.
    pub event_name: String,
    /// The `subscriber.name` of the subscriber at fault (req 32); empty when it gave none.
    pub subscriber_name: String,
    /// Human-readable source and reason, for developers and logs (req 92).
    pub diagnostics: String,
    /// Why: a refusal or failure, or an event too large (req 96).
    pub code: IssueCode,
}

#[derive(Serialize)]
struct OutcomeOut<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    issue: [IssueOut<'a>; 1],
}

#[derive(Serialize)]
struct IssueOut<'a> {
    severity: &'static str,
    code: &'static str,
    diagnostics: &'a str,
    details: DetailsOut<'a>,
}

#[derive(Serialize)]
struct DetailsOut<'a> {
    coding: [CodingOut<'a>; 3],
}

#[derive(Serialize)]
struct CodingOut<'a> {
    system: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
}

impl SyncErrorDetails {
    /// The OperationOutcome, exactly as the profile describes it (req 92, 96): one issue with
    /// severity `warning`, the code, `diagnostics`, and `details.coding` with the systems
    /// eventid, eventname and subscribername, in that order.
    ///
    /// FHIR forbids empty strings, so two gaps are filled in a way that stays valid: a
    /// subscriber with no `subscriber.name` gets a subscribername coding with no `code` (the
    /// profile requires the coding, not its code; §5a-12), and an empty `diagnostics` (1..1
    /// in the profile) is replaced by a sentence built from the other fields.
    pub fn to_operation_outcome_json(&self) -> String {
        let fallback;
        let diagnostics = if self.diagnostics.is_empty() {
            let who = if self.subscriber_name.is_empty() { "a subscriber" } else { &self.subscriber_name };
            fallback = format!("{who} could not follow {} event {}", self.event_name, self.event_id);
            &fallback
        } else {
            &self.diagnostics
        };
        fn non_empty(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        let outcome = OutcomeOut {
            resource_type: "OperationOutcome",
            issue: [IssueOut {
                severity: "warning",
                code: self.code.as_str(),
                diagnostics,
                details: DetailsOut {
                    coding: [
                        CodingOut { system: EVENT_ID_SYSTEM, code: non_empty(&self.event_id) },
                        CodingOut { system: EVENT_NAME_SYSTEM, code: non_empty(&self.event_name) },
                        CodingOut { system: SUBSCRIBER_NAME_SYSTEM, code: non_empty(&self.subscriber_name) },
                    ],
                },
            }],
        };
        serde_json::to_string(&outcome).unwrap_or_else(|_| unreachable!("an OperationOutcome of strings serialises"))
    }

    /// The SyncError's single context entry: key `operationoutcome`, field `resource` (req 91).
    pub fn context_entry(&self) -> ContextEntry {
        ContextEntry {
            key: CONTEXT_KEY.to_owned(),
            field: ValueField::Resource,
            value: RawValue::from_string(self.to_operation_outcome_json())
                .unwrap_or_else(|_| unreachable!("serde_json output is valid JSON")),
        }
    }

    /// Reads a SyncError OperationOutcome, leniently (req 92-93).
    ///
    /// The issue used is the first one whose `details.coding` carries an eventid coding with a
    /// code; other issues and codings are ignored. Its eventname coding must have a code too.
    /// The subscriber's name comes from the `…/subscribername` coding, or else from the legacy
    /// `…/subscriber` one, or is empty. Severity is not checked; a missing `diagnostics` reads
    /// as empty; an `issue.code` other than `too-long` reads as [`IssueCode::Processing`].
    pub fn from_operation_outcome(json: &str) -> Result<Self, SyncErrorParseError> {
        let value: &RawValue = serde_json::from_str(json).map_err(|e| SyncErrorParseError::NotJson(e.to_string()))?;
        let Some(outcome) = object(value) else {
            return Err(SyncErrorParseError::NotAnOperationOutcome { found: json_kind(value).to_owned() });
        };
        match outcome.get("resourceType").and_then(|v| string(v)) {
            Some(t) if t == "OperationOutcome" => {}
            Some(t) => return Err(SyncErrorParseError::NotAnOperationOutcome { found: t }),
            None => return Err(SyncErrorParseError::NotAnOperationOutcome { found: "no resourceType".to_owned() }),
        }
        let issues = outcome.get("issue").and_then(|v| array(v)).unwrap_or_default();
        let (issue, codings) = issues
            .iter()
            .find_map(|issue| {
                let issue = object(issue)?;
                let codings = array(object(issue.get("details")?)?.get("coding")?)?;
                coding_code(&codings, EVENT_ID_SYSTEM).map(|_| (issue, codings))
            })
            .ok_or(SyncErrorParseError::MissingEventId)?;
        let event_id = coding_code(&codings, EVENT_ID_SYSTEM).ok_or(SyncErrorParseError::MissingEventId)?;
        let event_name = coding_code(&codings, EVENT_NAME_SYSTEM).ok_or(SyncErrorParseError::MissingEventName)?;
        let subscriber_name = coding_code(&codings, SUBSCRIBER_NAME_SYSTEM)
            .or_else(|| coding_code(&codings, LEGACY_SUBSCRIBER_SYSTEM))
            .unwrap_or_default();
        Ok(SyncErrorDetails {
            event_id,
            event_name,
            subscriber_name,
            diagnostics: issue.get("diagnostics").and_then(|v| string(v)).unwrap_or_default(),
            code: IssueCode::from_code(issue.get("code").and_then(|v| string(v)).as_deref()),
        })
    }

    /// Reads the SyncError from an event's context: its one `operationoutcome` entry (req 91).
    pub fn from_context(context: &[ContextEntry]) -> Result<Self, SyncErrorParseError> {
        let mut found = context.iter().filter(|e| e.key == CONTEXT_KEY);
        let entry = found.next().ok_or(SyncErrorParseError::MissingContext)?;
        if found.next().is_some() {
            return Err(SyncErrorParseError::SeveralContexts);
        }
        if entry.field != ValueField::Resource {
            return Err(SyncErrorParseError::NotAResource { field: entry.field.to_string() });
        }
        SyncErrorDetails::from_operation_outcome(entry.value.get())
    }
}

// The OperationOutcome is read as raw JSON values, each parsed only as far as it is used, into
// a map that behaves as serde_json's (keys in order, the last of a repeated key wins). Not
// `serde_json::Value`: its code and its BTreeMap would cost the browser SDK ~5 KB gzipped.

/// A JSON object's members, or `None` for another kind of value.
fn object(v: &RawValue) -> Option<VecMap<String, &RawValue>> {
    serde_json::from_str(v.get()).ok()
}

/// A JSON array's items, or `None` for another kind of value.
fn array(v: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(v.get()).ok()
}

/// A JSON string's value, or `None` for another kind of value.
fn string(v: &RawValue) -> Option<String> {
    serde_json::from_str(v.get()).ok()
}

/// The non-empty string `code` of the first coding with `system`.
fn coding_code(codings: &[&RawValue], system: &str) -> Option<String> {
    codings
        .iter()
        .filter_map(|c| object(c))
        .filter(|c| c.get("system").and_then(|v| string(v)).as_deref() == Some(system))
        .find_map(|c| c.get("code").and_then(|v| string(v)).filter(|s| !s.is_empty()))
}

/// What kind of JSON value `v` (valid JSON) is, for messages.
fn json_kind(v: &RawValue) -> &'static str {
    match v.get().trim_start().as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// Why a SyncError could not be read (req 91-93).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncErrorParseError {
    /// The OperationOutcome is not JSON.
    #[error("the SyncError OperationOutcome is not valid JSON: {0} (req 91)")]
    NotJson(String),
    /// The value is not an OperationOutcome resource.
    #[error("the SyncError's operationoutcome is {found}, not a JSON object with resourceType \"OperationOutcome\" (req 91)")]
    NotAnOperationOutcome {
        /// What was found instead: the resourceType, or the kind of JSON value.
        found: String,
    },
    /// No issue names the failed event's id.
    #[error("no issue of the SyncError has a details.coding with system \"https://fhircast.hl7.org/events/syncerror/eventid\" and a code: the id of the failed event is required (req 92)")]
    MissingEventId,
    /// The issue that names the event's id does not name the event.
    #[error("the SyncError issue has no details.coding with system \"https://fhircast.hl7.org/events/syncerror/eventname\" and a code: the name of the failed event is required (req 92)")]
    MissingEventName,
    /// The event's context has no `operationoutcome` entry.
    #[error("the SyncError's context has no \"operationoutcome\" entry (req 91)")]
    MissingContext,
    /// The event's context has more than one `operationoutcome` entry.
    #[error("the SyncError's context has several \"operationoutcome\" entries; exactly one is allowed (req 91)")]
    SeveralContexts,
    /// The `operationoutcome` entry is not a full resource.
    #[error("the SyncError's \"operationoutcome\" entry uses the value field {field:?}; it must be \"resource\" (req 62, 91)")]
    NotAResource {
        /// The value field used.
        field: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> SyncErrorDetails {
        SyncErrorDetails {
            event_id: "e1".into(),
            event_name: "Patient-open".into(),
            subscriber_name: "App X".into(),
            diagnostics: "App X refused Patient-open".into(),
            code: IssueCode::Processing,
        }
    }

    fn outcome_with(codings: &str, extra_issue_fields: &str) -> String {
        format!(
            r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"information","code":"processing"{extra_issue_fields},"details":{{"coding":[{codings}]}}}}]}}"#
        )
    }

    #[test]
    fn req92_syncerror_outcome_is_exact() {
        // The digest's rewritten OperationOutcome (req 96), byte for byte.
        let expected = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","diagnostics":"App X refused Patient-open","details":{"coding":[{"system":"https://fhircast.hl7.org/events/syncerror/eventid","code":"e1"},{"system":"https://fhircast.hl7.org/events/syncerror/eventname","code":"Patient-open"},{"system":"https://fhircast.hl7.org/events/syncerror/subscribername","code":"App X"}]}}]}"#;
        assert_eq!(details().to_operation_outcome_json(), expected);
    }

    #[test]
    fn req96_too_long_code() {
        let d = SyncErrorDetails { code: IssueCode::TooLong, ..details() };
        let json = d.to_operation_outcome_json();
        assert!(json.contains(r#""code":"too-long""#), "{json}");
        assert_eq!(SyncErrorDetails::from_operation_outcome(&json).unwrap(), d);
    }

    #[test]
    fn req91_context_entry_round_trips() {
        let e = details().context_entry();
        assert_eq!((e.key.as_str(), &e.field), ("operationoutcome", &ValueField::Resource));
        assert_eq!(SyncErrorDetails::from_context(&[e]).unwrap(), details());
    }

    #[test]
    fn req91_context_needs_exactly_one_resource_entry() {
        let e = details().context_entry();
        assert_eq!(SyncErrorDetails::from_context(&[]), Err(SyncErrorParseError::MissingContext));
        assert_eq!(SyncErrorDetails::from_context(&[e.clone(), e.clone()]), Err(SyncErrorParseError::SeveralContexts));
        let wrong = ContextEntry { field: ValueField::Reference, ..e };
        assert!(matches!(SyncErrorDetails::from_context(&[wrong]), Err(SyncErrorParseError::NotAResource { .. })));
    }

    #[test]
    fn req93_legacy_subscriber_system_accepted() {
        let json = outcome_with(
            &format!(
                r#"{{"system":"{EVENT_ID_SYSTEM}","code":"e1"}},{{"system":"{EVENT_NAME_SYSTEM}","code":"Patient-open"}},{{"system":"{LEGACY_SUBSCRIBER_SYSTEM}","code":"Acme"}}"#
            ),
            "",
        );
        let d = SyncErrorDetails::from_operation_outcome(&json).unwrap();
        assert_eq!(d.subscriber_name, "Acme");
        assert_eq!(d.diagnostics, "", "missing diagnostics reads as empty");
    }

    #[test]
    fn req93_subscribername_wins_over_legacy_system() {
        let json = outcome_with(
            &format!(
                r#"{{"system":"{LEGACY_SUBSCRIBER_SYSTEM}","code":"Old"}},{{"system":"{EVENT_ID_SYSTEM}","code":"e1"}},{{"system":"{EVENT_NAME_SYSTEM}","code":"X-open"}},{{"system":"{SUBSCRIBER_NAME_SYSTEM}","code":"New"}}"#
            ),
            "",
        );
        assert_eq!(SyncErrorDetails::from_operation_outcome(&json).unwrap().subscriber_name, "New");
    }

    #[test]
    fn req92_reader_accepts_extra_issues_codings_and_any_severity() {
        let json = format!(
            r#"{{"resourceType":"OperationOutcome","issue":[
                {{"severity":"error","code":"exception","diagnostics":"unrelated"}},
                {{"severity":"fatal","code":"processing","diagnostics":"why","details":{{"coding":[
                    {{"system":"http://vendor.example/err","code":"E42"}},
                    {{"system":"{EVENT_NAME_SYSTEM}","code":"Patient-open"}},
                    {{"system":"{EVENT_ID_SYSTEM}","code":"e9"}}]}}}}]}}"#
        );
        let d = SyncErrorDetails::from_operation_outcome(&json).unwrap();
        assert_eq!((d.event_id.as_str(), d.event_name.as_str(), d.diagnostics.as_str()), ("e9", "Patient-open", "why"));
        assert_eq!(d.subscriber_name, "", "no subscriber coding reads as an empty name");
        assert_eq!(d.code, IssueCode::Processing);
    }

    #[test]
    fn req92_missing_event_id_or_name_is_an_error() {
        let no_id = outcome_with(&format!(r#"{{"system":"{EVENT_NAME_SYSTEM}","code":"Patient-open"}}"#), "");
        assert_eq!(SyncErrorDetails::from_operation_outcome(&no_id), Err(SyncErrorParseError::MissingEventId));
        let no_name = outcome_with(&format!(r#"{{"system":"{EVENT_ID_SYSTEM}","code":"e1"}}"#), "");
        assert_eq!(SyncErrorDetails::from_operation_outcome(&no_name), Err(SyncErrorParseError::MissingEventName));
        let empty_id = outcome_with(&format!(r#"{{"system":"{EVENT_ID_SYSTEM}","code":""}}"#), "");
        assert_eq!(SyncErrorDetails::from_operation_outcome(&empty_id), Err(SyncErrorParseError::MissingEventId));
        let no_issue = r#"{"resourceType":"OperationOutcome"}"#;
        assert_eq!(SyncErrorDetails::from_operation_outcome(no_issue), Err(SyncErrorParseError::MissingEventId));
        assert!(SyncErrorDetails::from_operation_outcome(&no_id).unwrap_err().to_string().contains("req 92"));
    }

    #[test]
    fn req91_not_an_operation_outcome() {
        let err = |j: &str| SyncErrorDetails::from_operation_outcome(j).unwrap_err();
        assert!(matches!(err("{"), SyncErrorParseError::NotJson(_)));
        assert_eq!(err("[]"), SyncErrorParseError::NotAnOperationOutcome { found: "an array".into() });
        assert_eq!(
            err(r#"{"resourceType":"Parameters"}"#),
            SyncErrorParseError::NotAnOperationOutcome { found: "Parameters".into() }
        );
        assert!(err("{}").to_string().contains("no resourceType"));
    }

    #[test]
    fn req92_empty_subscriber_name_and_diagnostics_stay_valid_fhir() {
        // §5a-12: no subscriber.name → the coding is kept (3..* codings) without a code;
        // diagnostics is 1..1, so an empty one is replaced by a generated sentence.
        let d = SyncErrorDetails { subscriber_name: String::new(), diagnostics: String::new(), ..details() };
        let json = d.to_operation_outcome_json();
        assert!(json.contains(&format!(r#"{{"system":"{SUBSCRIBER_NAME_SYSTEM}"}}"#)), "{json}");
        assert!(!json.contains(r#""""#), "no empty strings: {json}");
        let back = SyncErrorDetails::from_operation_outcome(&json).unwrap();
        assert_eq!(back.subscriber_name, "");
        assert_eq!(back.diagnostics, "a subscriber could not follow Patient-open event e1");
    }

    #[test]
    fn user_data_is_escaped_not_concatenated() {
        let d = SyncErrorDetails {
            subscriber_name: "Evil\",\"x\":\"".into(),
            diagnostics: "line\nbreak \u{1F600} \\".into(),
            ..details()
        };
        let json = d.to_operation_outcome_json();
        serde_json::from_str::<serde_json::Value>(&json).unwrap();
        assert_eq!(SyncErrorDetails::from_operation_outcome(&json).unwrap(), d);
    }
}
