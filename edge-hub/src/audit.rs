//! The audit trail's sink (issue 17): each topic's AuditEvents ([`fhircast_core::audit`]) go
//! to the Cloudflare Queue bound as `AUDIT_QUEUE` when there is one, else to the Worker's log
//! as one line each (`AuditEvent {json}`), as `AUDIT_SINK` says (README "Audit trail").
//!
//! Sent after the input's writes succeeded and without waiting: a queue that refuses a batch
//! is logged as an error with the AuditEvents it held, so none is lost silently.

use fhircast_core::audit::audit_event_json;
use fhircast_core::hub::Fact;
use wasm_bindgen::prelude::*;
use worker::{console_error, console_log, Env};

use crate::config::{AuditSink, Settings};

/// Where AuditEvents go.
pub(crate) enum Audit {
    /// Nowhere (`AUDIT_SINK=off`, or the settings are invalid).
    Off,
    /// The Worker's log.
    Log,
    /// The queue.
    Queue(JsValue),
}

#[wasm_bindgen(inline_js = "export function send_batch(queue, batch, lines) {
  try {
    queue.sendBatch(batch).catch((e) => console.error(`the audit queue refused a batch (${e}); its AuditEvents:\\n${lines}`));
  } catch (e) {
    console.error(`the audit queue could not be called (${e}); its AuditEvents:\\n${lines}`);
  }
}")]
extern "C" {
    /// `queue.sendBatch(batch)` without waiting; a refusal is logged with the AuditEvents
    /// (`lines`), never lost silently. (In JS: a closure per call from Rust would leak when
    /// the promise resolves.)
    fn send_batch(queue: &JsValue, batch: &js_sys::Array, lines: &str);
}

impl Audit {
    pub(crate) fn new(env: &Env, settings: Option<&Settings>) -> Audit {
        let Some(settings) = settings else { return Audit::Off };
        // A binding with a `sendBatch` method (a Queue producer).
        let queue = js_sys::Reflect::get(env, &JsValue::from_str("AUDIT_QUEUE"))
            .ok()
            .filter(|q| q.is_object())
            .filter(|q| js_sys::Reflect::get(q, &JsValue::from_str("sendBatch")).is_ok_and(|f| f.is_function()));
        match (settings.audit, queue) {
            (AuditSink::Off, _) => Audit::Off,
            (AuditSink::Log, _) | (AuditSink::Auto, None) => Audit::Log,
            (AuditSink::Auto | AuditSink::Queue, Some(q)) => Audit::Queue(q),
            (AuditSink::Queue, None) => {
                console_error!("AUDIT_SINK=queue but no queue is bound as AUDIT_QUEUE: audit events go to the log");
                Audit::Log
            }
        }
    }

    /// AuditEvents go somewhere.
    pub(crate) fn on(&self) -> bool {
        !matches!(self, Audit::Off)
    }

    /// Sends the AuditEvents of `facts` (those audited) for `topic`.
    pub(crate) fn send(&self, facts: &[Fact], topic: &str, site: Option<&str>) {
        if matches!(self, Audit::Off) || facts.is_empty() {
            return;
        }
        let events: Vec<String> = facts.iter().filter_map(|f| audit_event_json(f, topic, site)).collect();
        if events.is_empty() {
            return;
        }
        match self {
            Audit::Off => {}
            Audit::Log => {
                for e in &events {
                    console_log!("AuditEvent {e}");
                }
            }
            Audit::Queue(queue) => {
                let batch = js_sys::Array::new();
                for e in &events {
                    let message = js_sys::Object::new();
                    let body = js_sys::JSON::parse(e).unwrap_or_else(|_| JsValue::from_str(e));
                    let _ = js_sys::Reflect::set(&message, &JsValue::from_str("body"), &body);
                    batch.push(&message);
                }
                send_batch(queue, &batch, &events.join("\n"));
            }
        }
    }
}
