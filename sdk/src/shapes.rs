//! The shapes the JavaScript API sees, written as JSON text and turned into plain JS objects
//! with one `JSON.parse` (js.rs). Written by hand rather than with serde's `Serialize`: four
//! derived serialisers cost more wasm than this file. Field names are camelCase; the
//! TypeScript declarations in `npm/index.d.ts` describe exactly these. Tested natively.

use fhircast_core::follower::{Context, Decision, OutOfSyncReason, SyncErrorNotice, SyncStatus};
use serde_json::value::RawValue;

/// A JSON object under construction. Keys are literals that need no escaping.
struct Obj(String);

impl Obj {
    fn new() -> Obj {
        Obj(String::from("{"))
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(k);
        self.0.push_str("\":");
    }

    fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        self.0.push_str(&quoted(v));
        self
    }

    fn opt(self, k: &str, v: Option<&str>) -> Obj {
        match v {
            Some(v) => self.str(k, v),
            None => self,
        }
    }

    fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
        self
    }

    fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.0.push_str(json);
        self
    }

    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A JSON string literal.
pub(crate) fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| unreachable!("strings serialise"))
}

/// `{state, reason?}`.
pub(crate) fn status_json(s: &SyncStatus) -> String {
    let (state, reason) = match s {
        SyncStatus::Connecting => ("connecting", None),
        SyncStatus::InSync => ("in-sync", None),
        SyncStatus::OutOfSync { reason } => ("out-of-sync", Some(reason_json(reason))),
        SyncStatus::Disconnected { reason } => {
            ("disconnected", Some(Obj::new().str("kind", "disconnected").str("message", reason).end()))
        }
    };
    let o = Obj::new().str("state", state);
    match reason {
        Some(r) => o.raw("reason", &r).end(),
        None => o.end(),
    }
}

/// Why the app is out of sync: `{kind, message, eventId?, eventName?, subscriberName?, anchor?}`.
fn reason_json(r: &OutOfSyncReason) -> String {
    let (kind, event_id, event_name, subscriber, anchor) = match r {
        OutOfSyncReason::SyncError { event_id, event_name, subscriber, .. } => {
            ("sync-error", Some(event_id), Some(event_name), Some(subscriber), None)
        }
        OutOfSyncReason::OwnEventNotFollowed { event_id, event_name, subscriber, .. } => {
            ("own-event-not-followed", Some(event_id), Some(event_name), Some(subscriber), None)
        }
        OutOfSyncReason::Refused { event_id, event_name } => ("refused", Some(event_id), Some(event_name), None, None),
        OutOfSyncReason::Deciding { event_id, event_name } => {
            ("deciding", Some(event_id), Some(event_name), None, None)
        }
        OutOfSyncReason::VersionGap { anchor } => ("version-gap", None, None, None, Some(anchor)),
        OutOfSyncReason::ResyncFailed { .. } => ("resync-failed", None, None, None, None),
        _ => ("other", None, None, None, None),
    };
    Obj::new()
        .str("kind", kind)
        .str("message", &r.to_string())
        .opt("eventId", event_id.map(String::as_str))
        .opt("eventName", event_name.map(String::as_str))
        .opt("subscriberName", subscriber.map(String::as_str))
        .opt("anchor", anchor.map(String::as_str))
        .end()
}

/// What the app shows: `{anchor, event, context, versionId?, eventId?, timestamp?, shared?}`.
/// `shared`: the anchor's content as Bundles to apply in order (the core's
/// `Follower::shared_of`), which the facade turns into `resources` (npm/src/shared.js).
pub(crate) fn context_json(c: &Context, shared: Option<&[Box<RawValue>]>) -> String {
    let context = serde_json::to_string(&c.context).unwrap_or_else(|_| unreachable!("context entries serialise"));
    let obj = Obj::new()
        .str("anchor", &c.anchor.to_string())
        .str("event", c.event.as_str())
        .raw("context", &context)
        .opt("versionId", c.version_id.as_deref())
        .opt("eventId", c.event_id.as_deref())
        .opt("timestamp", c.timestamp.map(|t| t.to_rfc3339()).as_deref());
    match shared {
        Some(bundles) => {
            let mut list = String::from("[");
            for (i, b) in bundles.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(b.get());
            }
            list.push(']');
            obj.raw("shared", &list).end()
        }
        None => obj.end(),
    }
}

/// A SyncError received (req 84-96), for `onSyncError`.
pub(crate) fn sync_error_json(n: &SyncErrorNotice) -> String {
    Obj::new()
        .str("id", &n.id)
        .str("eventId", &n.details.event_id)
        .str("eventName", &n.details.event_name)
        .str("subscriberName", &n.details.subscriber_name)
        .str("diagnostics", &n.details.diagnostics)
        .str("code", n.details.code.as_str())
        .bool("ownEvent", n.own_event)
        .end()
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
    use fhircast_core::wire::ContextEntry;
    use fhircast_core::{ResourceKey, Timestamp};
    use serde_json::{json, Value};

    use super::*;

    fn v(s: String) -> Value {
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn statuses_are_camel_case_objects() {
        assert_eq!(v(status_json(&SyncStatus::InSync)), json!({"state": "in-sync"}));
        assert_eq!(v(status_json(&SyncStatus::Connecting)), json!({"state": "connecting"}));
        let s = SyncStatus::Disconnected { reason: "connection \"lost\"".into() };
        assert_eq!(
            v(status_json(&s)),
            json!({"state": "disconnected", "reason": {"kind": "disconnected", "message": "connection \"lost\""}})
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
            v(status_json(&s)),
            json!({"state": "out-of-sync", "reason": {"kind": "sync-error", "message": "Viewer refused",
                "eventId": "e1", "eventName": "Patient-open", "subscriberName": "Viewer"}})
        );
        let s = SyncStatus::OutOfSync { reason: OutOfSyncReason::VersionGap { anchor: "DiagnosticReport/r1".into() } };
        let s = v(status_json(&s));
        assert_eq!(s["reason"]["kind"], "version-gap");
        assert_eq!(s["reason"]["anchor"], "DiagnosticReport/r1");
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
            v(context_json(&c, None)),
            json!({"anchor": "Patient/p1", "event": "Patient-open", "versionId": "v1", "timestamp": "1970-01-01T00:00:00.000Z",
                "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": "p1"}}]})
        );
        let n = SyncErrorNotice {
            details: SyncErrorDetails {
                event_id: "e1".into(),
                event_name: "Patient-open".into(),
                subscriber_name: "Viewer".into(),
                diagnostics: "no\nway".into(),
                code: IssueCode::Processing,
                severity: fhircast_core::syncerror::Severity::Warning,
            },
            own_event: true,
            id: "s1".into(),
        };
        assert_eq!(
            v(sync_error_json(&n)),
            json!({"id": "s1", "eventId": "e1", "eventName": "Patient-open", "subscriberName": "Viewer",
                "diagnostics": "no\nway", "code": "processing", "ownEvent": true})
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
