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

pub(super) fn report_patient(r: &str) -> &'static str {
    match r {
        "r1" => "p1",
        "r2" => "p2",
        _ => "p4",
    }
}

pub(super) fn is_context_change(k: EventKind) -> bool {
    matches!(k, EventKind::Open | EventKind::Close | EventKind::HomeOpen | EventKind::UserLogout)
}

pub(super) fn ev_str(e: &Event) -> String {
    let anchor = e.anchor().map(|a| format!(" {a}")).unwrap_or_default();
    let v = e.version_id.as_ref().map(|v| format!(" v={v}")).unwrap_or_default();
    let ts = e.timestamp.since(t0()).as_secs_f64();
    format!("{}{anchor} id={}{v} ts=+{ts:.3}", e.name, e.id)
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
