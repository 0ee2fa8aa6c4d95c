//! The shapes the JavaScript API sees, as serialisable views of the core's types. They are
//! turned into plain JS objects with one `JSON.parse` (js.rs): cheaper in code size than a
//! field-by-field conversion, and tested natively here. Field names are camelCase; the
//! TypeScript declarations in `npm/index.d.ts` describe exactly these.

use fhircast_core::follower::{Context, Decision, OutOfSyncReason, SyncErrorNotice, SyncStatus};
use fhircast_core::wire::ContextEntry;
use serde::Serialize;

/// `{state, reason?}`.
#[derive(Serialize)]
pub(crate) struct StatusView<'a> {
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<ReasonView<'a>>,
}

/// Why the app is out of sync or disconnected.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReasonView<'a> {
    kind: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriber_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anchor: Option<&'a str>,
}

impl<'a> StatusView<'a> {
    pub(crate) fn new(s: &'a SyncStatus) -> Self {
        let (state, reason) = match s {
            SyncStatus::Connecting => ("connecting", None),
            SyncStatus::InSync => ("in-sync", None),
            SyncStatus::OutOfSync { reason } => ("out-of-sync", Some(ReasonView::new(reason))),
            SyncStatus::Disconnected { reason } => (
                "disconnected",
                Some(ReasonView {
                    kind: "disconnected",
                    message: reason.clone(),
                    event_id: None,
                    event_name: None,
                    subscriber_name: None,
                    anchor: None,
                }),
            ),
        };
        StatusView { state, reason }
    }
}

impl<'a> ReasonView<'a> {
    fn new(r: &'a OutOfSyncReason) -> Self {
        let mut v = ReasonView {
            kind: "",
            message: r.to_string(),
            event_id: None,
            event_name: None,
            subscriber_name: None,
            anchor: None,
        };
        match r {
            OutOfSyncReason::SyncError { event_id, event_name, subscriber, .. } => {
                v.kind = "sync-error";
                (v.event_id, v.event_name, v.subscriber_name) =
                    (Some(event_id.as_str()), Some(event_name.as_str()), Some(subscriber.as_str()));
            }
            OutOfSyncReason::OwnEventNotFollowed { event_id, event_name, subscriber, .. } => {
                v.kind = "own-event-not-followed";
                (v.event_id, v.event_name, v.subscriber_name) =
                    (Some(event_id.as_str()), Some(event_name.as_str()), Some(subscriber.as_str()));
            }
            OutOfSyncReason::Refused { event_id, event_name } => {
                v.kind = "refused";
                (v.event_id, v.event_name) = (Some(event_id.as_str()), Some(event_name.as_str()));
            }
            OutOfSyncReason::Deciding { event_id, event_name } => {
                v.kind = "deciding";
                (v.event_id, v.event_name) = (Some(event_id.as_str()), Some(event_name.as_str()));
            }
            OutOfSyncReason::VersionGap { anchor } => {
                v.kind = "version-gap";
                v.anchor = Some(anchor.as_str());
            }
            OutOfSyncReason::ResyncFailed { .. } => v.kind = "resync-failed",
            _ => v.kind = "other",
        }
        v
    }
}

/// What the app shows: `{anchor, event, context, versionId?, eventId?, timestamp?}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContextView<'a> {
    anchor: String,
    event: &'a str,
    context: &'a [ContextEntry],
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
}

impl<'a> ContextView<'a> {
    pub(crate) fn new(c: &'a Context) -> Self {
        ContextView {
            anchor: c.anchor.to_string(),
            event: c.event.as_str(),
            context: &c.context,
            version_id: c.version_id.as_deref(),
            event_id: c.event_id.as_deref(),
            timestamp: c.timestamp.map(|t| t.to_rfc3339()),
        }
    }
}

/// A SyncError received (req 84-96), for `onSyncError`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SyncErrorView<'a> {
    id: &'a str,
    event_id: &'a str,
    event_name: &'a str,
    subscriber_name: &'a str,
    diagnostics: &'a str,
    code: &'static str,
    own_event: bool,
}

impl<'a> SyncErrorView<'a> {
    pub(crate) fn new(n: &'a SyncErrorNotice) -> Self {
        SyncErrorView {
            id: &n.id,
            event_id: &n.details.event_id,
            event_name: &n.details.event_name,
            subscriber_name: &n.details.subscriber_name,
            diagnostics: &n.details.diagnostics,
            code: n.details.code.as_str(),
            own_event: n.own_event,
        }
    }
}

/// A handler's answer given as a word: `accept`, `refuse`, `defer` or `fail` (any case).
pub(crate) fn parse_outcome(s: &str) -> Option<Decision> {
    match s.trim().to_ascii_lowercase().as_str() {
        "accept" => Some(Decision::Accept),
        "refuse" => Some(Decision::Refuse),
        "defer" => Some(Decision::Defer),
        "fail" => Some(Decision::Fail),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use fhircast_core::catalog::EventName;
    use fhircast_core::syncerror::{IssueCode, SyncErrorDetails};
    use fhircast_core::{ResourceKey, Timestamp};
    use serde_json::{json, to_value};

    use super::*;

    #[test]
    fn statuses_are_camel_case_objects() {
        assert_eq!(to_value(StatusView::new(&SyncStatus::InSync)).unwrap(), json!({"state": "in-sync"}));
        assert_eq!(to_value(StatusView::new(&SyncStatus::Connecting)).unwrap(), json!({"state": "connecting"}));
        let s = SyncStatus::Disconnected { reason: "connection lost".into() };
        assert_eq!(
            to_value(StatusView::new(&s)).unwrap(),
            json!({"state": "disconnected", "reason": {"kind": "disconnected", "message": "connection lost"}})
        );
        let s = SyncStatus::OutOfSync {
            reason: OutOfSyncReason::SyncError {
                message: "Viewer refused".into(),
                event_id: "e1".into(),
                event_name: "Patient-open".into(),
                subscriber: "Viewer".into(),
            },
        };
        assert_eq!(
            to_value(StatusView::new(&s)).unwrap(),
            json!({"state": "out-of-sync", "reason": {"kind": "sync-error", "message": "Viewer refused",
                "eventId": "e1", "eventName": "Patient-open", "subscriberName": "Viewer"}})
        );
        let s = SyncStatus::OutOfSync { reason: OutOfSyncReason::VersionGap { anchor: "DiagnosticReport/r1".into() } };
        let v = to_value(StatusView::new(&s)).unwrap();
        assert_eq!(v["reason"]["kind"], "version-gap");
        assert_eq!(v["reason"]["anchor"], "DiagnosticReport/r1");
    }

    #[test]
    fn contexts_and_sync_errors() {
        let c = Context {
            anchor: ResourceKey::new("Patient", "p1"),
            event: EventName::parse("patient-open").unwrap(),
            context: vec![ContextEntry::resource_raw("patient", r#"{"resourceType":"Patient","id":"p1"}"#).unwrap()],
            version_id: Some("v1".into()),
            event_id: None,
            timestamp: Some(Timestamp::from_unix_millis(0)),
        };
        assert_eq!(
            to_value(ContextView::new(&c)).unwrap(),
            json!({"anchor": "Patient/p1", "event": "Patient-open", "versionId": "v1", "timestamp": "1970-01-01T00:00:00.000Z",
                "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": "p1"}}]})
        );
        let n = SyncErrorNotice {
            details: SyncErrorDetails {
                event_id: "e1".into(),
                event_name: "Patient-open".into(),
                subscriber_name: "Viewer".into(),
                diagnostics: "no".into(),
                code: IssueCode::Processing,
            },
            own_event: true,
            id: "s1".into(),
        };
        assert_eq!(
            to_value(SyncErrorView::new(&n)).unwrap(),
            json!({"id": "s1", "eventId": "e1", "eventName": "Patient-open", "subscriberName": "Viewer",
                "diagnostics": "no", "code": "processing", "ownEvent": true})
        );
    }

    #[test]
    fn req71_outcome_words() {
        assert_eq!(parse_outcome("Accept"), Some(Decision::Accept));
        assert_eq!(parse_outcome(" refuse "), Some(Decision::Refuse));
        assert_eq!(parse_outcome("defer"), Some(Decision::Defer));
        assert_eq!(parse_outcome("fail"), Some(Decision::Fail));
        assert_eq!(parse_outcome("ok"), None);
    }
}
