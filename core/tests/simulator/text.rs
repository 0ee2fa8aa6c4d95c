//! Event content the apps publish, and how the trace shows messages.

use super::*;

pub(super) fn patient(id: &str) -> ContextEntry {
    ContextEntry::resource_raw(
        "patient",
        &format!(r#"{{"resourceType":"Patient","id":"{id}","identifier":[{{"value":"{id}"}}]}}"#),
    )
    .expect("valid JSON")
}

pub(super) fn report(id: &str) -> ContextEntry {
    ContextEntry::resource_raw(
        "report",
        &format!(r#"{{"resourceType":"DiagnosticReport","id":"{id}","status":"preliminary"}}"#),
    )
    .expect("valid JSON")
}

pub(super) fn study(id: &str) -> ContextEntry {
    ContextEntry::resource_raw(
        "study",
        &format!(r#"{{"resourceType":"ImagingStudy","id":"{id}","status":"available"}}"#),
    )
    .expect("valid JSON")
}

/// A report's context: the report, its patient and its study, as full resources (so the Hub
/// derives `Patient-open` and `ImagingStudy-open` from it, req 97). Fixed per report.
pub(super) fn report_context(r: &str) -> Vec<ContextEntry> {
    let (p, s) = match r {
        "r1" => ("p1", "s1"),
        "r2" => ("p2", "s2"),
        _ => ("p4", "s3"),
    };
    vec![report(r), patient(p), study(s)]
}

/// A study's context: the study and its patient. Fixed per study (the reports' studies have
/// the reports' patients).
pub(super) fn study_context(s: &str) -> Vec<ContextEntry> {
    let p = match s {
        "s1" => "p1",
        "s2" => "p2",
        "s3" => "p4",
        _ => "p3",
    };
    vec![study(s), patient(p)]
}

/// The `parameters` of `UserLogout` and `UserHibernate` (req 130-131).
pub(super) fn parameters() -> ContextEntry {
    ContextEntry::resource_raw(
        "parameters",
        r#"{"resourceType":"Parameters","parameter":[{"name":"code","valueCoding":{"code":"user-initiated"}}]}"#,
    )
    .expect("valid JSON")
}

/// How a SyncError notification shows in its text.
pub(super) const SYNC_ERROR_MARK: &str = "\"hub.event\":\"SyncError\"";

pub(super) fn is_context_change(k: EventKind) -> bool {
    matches!(k, EventKind::Open | EventKind::Close | EventKind::HomeOpen | EventKind::UserLogout)
}

pub(super) fn ev_str(e: &Event) -> String {
    let anchor = e.anchor().map(|a| format!(" {a}")).unwrap_or_default();
    let v = e.version_id.as_ref().map(|v| format!(" v={v}")).unwrap_or_default();
    let ts = (e.timestamp.unix_nanos() - t0().unix_nanos()) as f64 / 1e9;
    format!("{}{anchor} id={}{v} ts={ts:+.3}", e.name, e.id)
}

pub(super) fn text_str(t: &str) -> String {
    if t.contains("\"hub.mode\"") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
            return format!("{} {}", v["hub.mode"], v.get("hub.reason").map(|r| r.to_string()).unwrap_or_default());
        }
    }
    match Event::parse_envelope(t) {
        Ok(e) if e.name.kind() == EventKind::SyncError => {
            let d = fhircast_core::syncerror::SyncErrorDetails::from_context(&e.context)
                .map(|d| format!("about {} {}: {}", d.event_name, d.event_id, d.diagnostics))
                .unwrap_or_default();
            format!("SyncError id={} {d}", e.id)
        }
        Ok(e) => ev_str(&e),
        Err(_) => t.to_owned(),
    }
}

pub(super) fn msg_str(m: &DownMsg) -> String {
    match m {
        DownMsg::Text(t) => text_str(t),
        DownMsg::Close(c) => format!("close {c}"),
    }
}

pub(super) fn text_is(m: &DownMsg, needle: &str) -> bool {
    matches!(m, DownMsg::Text(t) if t.contains(needle))
}

pub(super) fn status_str(s: &SyncStatus) -> String {
    match s {
        SyncStatus::OutOfSync { reason } => format!("OutOfSync({reason:?})"),
        s => format!("{s:?}"),
    }
}
