//! Spec items the core decides that had no test named after them, through the public API,
//! and regression tests for the bugs the property tests (`hub_properties.rs`) found.

use std::collections::BTreeSet;
use std::time::Duration;

use fhircast_core::hub::{Auth, ConnectError, EventRejected, HubConfig, Outbound, SubscribeError, Topic};
use fhircast_core::scope::Scopes;
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::syncerror::SyncErrorDetails;
use fhircast_core::time::Timestamp;
use fhircast_core::wellknown::WellKnown;
use fhircast_core::wire::{Ack, ContextEntry, CurrentContext};
use fhircast_core::{Event, EventError, EventName, ResourceKey};
use serde_json::{json, Value};

const T: &str = "T1";

struct H {
    topic: Topic,
    now: Timestamp,
    n: u32,
}

fn hub() -> H {
    hub_with(HubConfig::default())
}

fn hub_with(config: HubConfig) -> H {
    H { topic: Topic::new(T, "h", config), now: Timestamp::from_unix_millis(1_700_000_000_000), n: 0 }
}

fn form(events: &str, name: Option<&str>) -> SubscriptionRequest {
    let mut f = format!("hub.channel.type=websocket&hub.mode=subscribe&hub.topic={T}&hub.events={events}");
    if let Some(n) = name {
        f.push_str(&format!("&subscriber.name={n}"));
    }
    SubscriptionRequest::from_form(&f).unwrap()
}

impl H {
    fn subscribe_as(&mut self, events: &str, name: Option<&str>, auth: &Auth) -> String {
        self.n += 1;
        let token = format!("tok{}", self.n);
        self.topic.handle_subscription(&form(events, name), auth, &token, self.now).unwrap();
        token
    }

    /// Subscribes, connects, and drains the confirmation and any replay.
    fn join(&mut self, events: &str, name: &str) -> String {
        let t = self.subscribe_as(events, Some(name), &Auth::open());
        self.topic.handle_connect(&t, self.now).unwrap();
        self.drain();
        t
    }

    fn drain(&mut self) -> Vec<Outbound> {
        std::iter::from_fn(|| self.topic.poll_outbound()).collect()
    }

    fn ack_all(&mut self, out: &[Outbound]) {
        for o in out {
            if let Outbound::Send { to, text } = o {
                let v: Value = serde_json::from_str(text).unwrap();
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    self.topic.handle_ack(to, &Ack { id: id.into(), status: 200 }, self.now);
                }
            }
        }
    }

    fn drain_acking(&mut self) -> Vec<Outbound> {
        let out = self.drain();
        self.ack_all(&out);
        out
    }

    fn post(&mut self, e: Value) -> Result<fhircast_core::hub::EventAccepted, EventRejected> {
        let ev = Event::parse_envelope(&e.to_string()).unwrap();
        self.topic.handle_event(ev, &Auth::open(), self.now)
    }

    fn tick(&mut self, d: Duration) {
        self.now = self.now.add(d);
        self.topic.handle_timeout(self.now);
    }

    fn ev(&self, id: &str, name: &str, context: Vec<Value>) -> Value {
        json!({"timestamp": self.now.to_rfc3339(), "id": id, "event": {"hub.topic": T, "hub.event": name, "context": context}})
    }
}

fn to(out: &[Outbound], token: &str) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Send { to, text } if to == token => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn patient(id: &str) -> Value {
    json!({"key":"patient","resource":{"resourceType":"Patient","id":id}})
}

fn report(id: &str) -> Value {
    json!({"key":"report","resource":{"resourceType":"DiagnosticReport","id":id}})
}

fn study(id: &str) -> Value {
    json!({"key":"study","resource":{"resourceType":"ImagingStudy","id":id}})
}

fn syncerror(msg: &Value) -> SyncErrorDetails {
    assert_eq!(msg["event"]["hub.event"], "SyncError", "{msg}");
    let ctx: Vec<ContextEntry> = serde_json::from_value(msg["event"]["context"].clone()).unwrap();
    SyncErrorDetails::from_context(&ctx).unwrap()
}

// ---------------------------------------------------------------------------------------
// Regressions.

/// Two subscribers that both miss the ack deadline are dropped in the same `handle_timeout`.
/// The Hub used to send the SyncError about the first to the second in the instant it dropped
/// the second (a notification nobody would wait an answer for). Now every silent subscriber
/// is dropped before any SyncError goes out, and only the subscribers that remain get them.
#[test]
fn req87_subscribers_dropped_together_get_no_syncerror_about_each_other() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open,SyncError", "B");
    let c = h.join("Patient-open,SyncError", "C");
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    h.topic.handle_ack(&c, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.tick(Duration::from_secs(10));
    let out = h.drain();
    for silent in [&a, &b] {
        let msgs = to(&out, silent);
        assert_eq!(msgs.len(), 1, "{silent}: only its denial, no SyncError about the other: {msgs:?}");
        assert_eq!(msgs[0]["hub.mode"], "denied");
        assert!(!h.topic.has_endpoint(silent));
    }
    let names: BTreeSet<String> = to(&out, &c).iter().map(|m| syncerror(m).subscriber_name).collect();
    assert_eq!(names, BTreeSet::from(["A".to_owned(), "B".to_owned()]), "C hears about both");
}

/// Two reports of the same patient, closed in the order they were opened. The Patient-open
/// derived from the first report used to stay open for ever once that report closed (the
/// second still carried the patient), so the Patient-only subscriber never got its
/// Patient-close. It now goes with the report that still carries it.
#[test]
fn req97_req99_a_derived_patient_closes_with_the_last_report_that_carries_it() {
    let mut h = hub();
    let ehr = h.join("Patient-open,Patient-close", "EHR");
    h.post(h.ev("d1", "DiagnosticReport-open", vec![report("r1"), study("s1"), patient("p1")])).unwrap();
    assert_eq!(to(&h.drain_acking(), &ehr)[0]["event"]["hub.event"], "Patient-open");
    h.post(h.ev("d2", "DiagnosticReport-open", vec![report("r2"), patient("p1")])).unwrap();
    assert!(to(&h.drain_acking(), &ehr).is_empty(), "req 98: P1 already open");
    h.post(h.ev("c1", "DiagnosticReport-close", vec![report("r1"), patient("p1")])).unwrap();
    assert!(to(&h.drain_acking(), &ehr).is_empty(), "r2 still shows P1");
    h.post(h.ev("c2", "DiagnosticReport-close", vec![report("r2"), patient("p1")])).unwrap();
    let msgs = to(&h.drain_acking(), &ehr);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["event"]["hub.event"], "Patient-close");
    assert_eq!(msgs[0]["event"]["context"][0]["resource"]["id"], "p1");
    assert_eq!(h.topic.state().open_contexts().count(), 0);
}

/// The same through a chain: a study implies the patient, a report of that study carries it
/// on. Closing the study while the report is current is refused (decision: views); once the
/// report is closed, the EHR's view is empty (Patient-close), and closing the study then
/// closes the patient it implied.
#[test]
fn req97_req99_a_derived_patient_outlives_its_study_only_while_a_report_carries_it() {
    let mut h = hub();
    let ehr = h.join("Patient-open,Patient-close", "EHR");
    h.post(h.ev("i1", "ImagingStudy-open", vec![study("s1"), patient("p1")])).unwrap();
    assert_eq!(to(&h.drain_acking(), &ehr).len(), 1);
    h.post(h.ev("d1", "DiagnosticReport-open", vec![report("r1"), study("s1"), patient("p1")])).unwrap();
    let e = h.post(h.ev("x1", "ImagingStudy-close", vec![study("s1"), patient("p1")])).unwrap_err();
    assert_eq!(e.http_status(), 409, "{e}");
    assert!(e.to_string().contains("part of the current context DiagnosticReport/r1"), "{e}");
    assert!(to(&h.drain_acking(), &ehr).is_empty());
    h.post(h.ev("x2", "DiagnosticReport-close", vec![report("r1"), patient("p1")])).unwrap();
    let msgs = to(&h.drain_acking(), &ehr);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["event"]["hub.event"], "Patient-close");
    h.post(h.ev("x3", "ImagingStudy-close", vec![study("s1"), patient("p1")])).unwrap();
    assert!(to(&h.drain_acking(), &ehr).is_empty(), "nothing more to tell the EHR");
    assert_eq!(h.topic.state().open_contexts().count(), 0);
}

// ---------------------------------------------------------------------------------------
// §2 items.

#[test]
fn req1_req2_req3_every_message_is_json_and_resources_are_relayed_byte_for_byte() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let resource = r#"{"resourceType":"Patient","id":"p1","multipleBirthInteger":2,"_x":{"y":[1.50,"é\u00e9"]}}"#;
    let body = format!(
        r#"{{"timestamp":"{}","id":"e1","event":{{"hub.topic":"T1","hub.event":"Patient-open","context":[{{"key":"patient","resource":{resource}}}]}}}}"#,
        h.now.to_rfc3339()
    );
    h.topic.handle_event(Event::parse(&body).unwrap(), &Auth::open(), h.now).unwrap();
    let out = h.drain();
    let Some(Outbound::Send { text, .. }) = out.first() else { panic!("{out:?}") };
    serde_json::from_str::<Value>(text).unwrap();
    assert!(text.contains(resource), "the resource is re-sent exactly as received: {text}");
    assert_eq!(to(&out, &a).len(), 1);
}

#[test]
fn req21_req22_the_endpoint_carries_the_subscribers_rights() {
    // The WebSocket is opened without a token (browsers cannot send one): the endpoint token
    // is the ticket, and it carries what the subscribing token granted.
    let mut h = hub();
    let auth = Auth { scopes: Some(Scopes::parse("fhircast/Patient-open.read")), ..Auth::open() };
    let t = h.subscribe_as("Patient-open,Patient-close", None, &auth);
    h.topic.handle_connect(&t, h.now).unwrap();
    assert_eq!(to(&h.drain(), &t)[0]["hub.events"], "Patient-open");
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.post(h.ev("e2", "Patient-close", vec![patient("p1")])).unwrap();
    let got: Vec<Value> = to(&h.drain(), &t).iter().map(|m| m["event"]["hub.event"].clone()).collect();
    assert_eq!(got, vec![json!("Patient-open")]);
}

#[test]
fn req23_req38_req39_req52_refusals_have_a_status_and_a_developer_message() {
    let mut h = hub_with(HubConfig { max_subscriptions: 1, ..HubConfig::default() });
    let now = h.now;
    let sub = |h: &mut H, r: &SubscriptionRequest, auth: &Auth| {
        h.topic.handle_subscription(r, auth, "x", now).map(|_| ()).unwrap_err()
    };
    let mut other_topic = form("Patient-open", None);
    other_topic.topic = "T2".into();
    let mut unknown = form("Patient-open", None);
    unknown.endpoint = Some("wss://hub/ws/T1/nope".into());
    let scoped = Auth { scopes: Some(Scopes::parse("fhircast/Encounter-open.read")), ..Auth::open() };
    let expired = Auth { expires_at: Some(now), ..Auth::open() };
    let bound = Auth { topic: Some("T2".into()), ..Auth::open() };
    let mut errors: Vec<(SubscribeError, u16)> = vec![
        (sub(&mut h, &other_topic, &Auth::open()), 400),
        (sub(&mut h, &form("Patient-open", None), &bound), 403),
        (sub(&mut h, &form("Patient-open", None), &scoped), 403),
        (sub(&mut h, &form("Patient-open", None), &expired), 401),
        (sub(&mut h, &unknown, &Auth::open()), 404),
    ];
    h.topic.handle_subscription(&form("Patient-open", None), &Auth::open(), "a", now).unwrap();
    errors.push((sub(&mut h, &form("Patient-open", None), &Auth::open()), 429));
    for (e, status) in &errors {
        assert_eq!(e.http_status(), *status, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("(req ") || msg.contains("(neg "), "names the spec item: {msg}");
    }
    let mut unsubscribe = unknown.clone();
    unsubscribe.mode = fhircast_core::subscription::Mode::Unsubscribe;
    assert_eq!(h.topic.handle_subscription(&unsubscribe, &Auth::open(), "y", now).unwrap_err().http_status(), 404);
    assert_eq!(h.topic.handle_connect("nope", now).unwrap_err(), ConnectError::UnknownEndpoint);
    let bad_form = SubscriptionRequest::from_form("hub.mode=subscribe").unwrap_err();
    assert_eq!(bad_form.http_status(), 400);
    assert!(bad_form.to_string().contains("hub.channel.type"), "{bad_form}");
}

#[test]
fn req25_req26_each_parameter_once_and_the_channel_is_websocket() {
    let base = "hub.mode=subscribe&hub.topic=T1&hub.events=Patient-open";
    let e = SubscriptionRequest::from_form(&format!("{base}&hub.channel.type=websocket&hub.topic=T1")).unwrap_err();
    assert!(e.to_string().contains("appears more than once"), "{e}");
    let e = SubscriptionRequest::from_form(&format!("{base}&hub.channel.type=webhook")).unwrap_err();
    assert!(e.to_string().contains("websocket"), "{e}");
    let r = SubscriptionRequest::from_form(&format!("{base}&hub.channel.type=WebSocket")).unwrap();
    assert_eq!(r.events, vec![EventName::parse("Patient-open").unwrap()]);
}

#[test]
fn req46_every_end_of_a_subscription_is_told_with_a_reason() {
    let mut h = hub();
    let mut short = form("Patient-open", None);
    short.lease_seconds = Some(20);
    h.topic.handle_subscription(&short, &Auth::open(), "lease", h.now).unwrap();
    h.topic.handle_connect("lease", h.now).unwrap();
    let silent = h.join("Patient-open", "Silent");
    h.drain();
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    h.topic.handle_ack("lease", &Ack { id: "e1".into(), status: 200 }, h.now);
    h.tick(Duration::from_secs(10));
    assert_eq!(to(&h.drain(), &silent)[0]["hub.reason"], "unresponsive: no answer within 10 s");
    h.tick(Duration::from_secs(10));
    assert_eq!(to(&h.drain(), "lease")[0]["hub.reason"], "lease expired");
}

#[test]
fn req58_req80_req138_subscribers_get_their_events_with_the_request_id() {
    let mut h = hub();
    let a = h.join("Patient-open,Patient-close", "A");
    h.post(h.ev("client-id-1", "patient-open", vec![patient("p1")])).unwrap();
    h.post(h.ev("client-id-2", "PATIENT-CLOSE", vec![patient("p1")])).unwrap();
    let msgs = to(&h.drain(), &a);
    let got: Vec<(Value, Value)> = msgs.iter().map(|m| (m["id"].clone(), m["event"]["hub.event"].clone())).collect();
    assert_eq!(
        got,
        vec![(json!("client-id-1"), json!("Patient-open")), (json!("client-id-2"), json!("Patient-close"))]
    );
}

#[test]
fn req60_req77_envelope_fields_are_required_and_request_ids_unique() {
    let h = hub();
    let full = h.ev("e1", "Patient-open", vec![patient("p1")]);
    for (path, field) in [
        (vec!["timestamp"], "timestamp"),
        (vec!["id"], "id"),
        (vec!["event"], "event"),
        (vec!["event", "hub.topic"], "hub.topic"),
        (vec!["event", "hub.event"], "hub.event"),
        (vec!["event", "context"], "event.context"),
    ] {
        let mut v = full.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut obj = &mut v;
        for p in parents {
            obj = &mut obj[*p];
        }
        obj.as_object_mut().unwrap().remove(*last);
        assert_eq!(Event::parse(&v.to_string()).unwrap_err(), EventError::MissingField(field));
    }
    let mut h = hub();
    h.post(full).unwrap();
    let reuse = h.ev("e1", "Patient-open", vec![patient("p2")]);
    assert_eq!(h.post(reuse).unwrap_err().http_status(), 409);
}

#[test]
fn req68_a_reopen_replaces_the_open_context_completely() {
    let mut h = hub();
    h.post(h.ev("e1", "DiagnosticReport-open", vec![report("r1"), study("s1"), patient("p1")])).unwrap();
    h.post(h.ev("e2", "DiagnosticReport-open", vec![report("r1"), patient("p1")])).unwrap();
    let cc = h.topic.current_context(&Auth::open()).unwrap();
    let keys: Vec<&str> = cc.context.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["report", "patient", "content"], "not merged with the earlier open");
}

#[test]
fn req71_any_2xx_settles_a_notification_anything_else_is_a_failure() {
    for (status, fails) in
        [(200, false), (202, false), (204, false), (299, false), (302, true), (409, true), (503, true)]
    {
        let mut h = hub();
        let a = h.join("Patient-open,SyncError", "A");
        let b = h.join("Patient-open,SyncError", "B");
        h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
        h.drain();
        h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
        h.topic.handle_ack(&b, &Ack { id: "e1".into(), status }, h.now);
        assert_eq!(!to(&h.drain(), &a).is_empty(), fails, "status {status}");
    }
}

#[test]
fn req83_the_rewritten_context_change_example_is_accepted() {
    let mut h = hub();
    h.now = Timestamp::parse("2025-01-01T10:00:00Z").unwrap();
    h.post(h.ev("o1", "Patient-open", vec![patient("p1")])).unwrap();
    let example = r#"{"timestamp":"2025-01-01T10:00:00Z","id":"c1","event":{"hub.topic":"T1","hub.event":"Patient-close","context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}}"#;
    let acc = h.topic.handle_event(Event::parse(example).unwrap(), &Auth::open(), h.now).unwrap();
    assert_eq!(acc.id, "c1");
}

#[test]
fn req89_a_hub_syncerror_is_sent_once() {
    // The Hub MAY repeat SyncErrors; this one does not (no alarm is kept for it).
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open", "B");
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.topic.handle_ack(&b, &Ack { id: "e1".into(), status: 409 }, h.now);
    let out = h.drain_acking();
    assert_eq!(to(&out, &a).len(), 1);
    h.tick(Duration::from_secs(60));
    assert!(h.drain().is_empty());
}

#[test]
fn req90_req91_a_syncerror_carries_exactly_one_operationoutcome() {
    let h = hub();
    let d = SyncErrorDetails {
        event_id: "e1".into(),
        event_name: "Patient-open".into(),
        subscriber_name: "A".into(),
        diagnostics: "x".into(),
        code: fhircast_core::syncerror::IssueCode::Processing,
        severity: fhircast_core::syncerror::Severity::Warning,
    };
    let oo: Value = serde_json::from_str(&d.to_operation_outcome_json()).unwrap();
    let entry = json!({"key":"operationoutcome","resource":oo});
    Event::parse(&h.ev("s1", "syncerror", vec![entry.clone()]).to_string()).unwrap();
    let two = Event::parse(&h.ev("s1", "SyncError", vec![entry.clone(), entry]).to_string()).unwrap_err();
    assert!(matches!(two, EventError::RepeatedKey { key: "operationoutcome", .. }), "{two}");
    let none = Event::parse(&h.ev("s1", "SyncError", vec![]).to_string()).unwrap_err();
    assert!(matches!(none, EventError::MissingKey { key: "operationoutcome", .. }), "{none}");
}

#[test]
fn req98_derived_opens_are_not_sent_twice() {
    let mut h = hub();
    let ehr = h.join("Patient-open", "EHR");
    let both = h.join("Patient-open,DiagnosticReport-open", "Both");
    h.post(h.ev("p", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain_acking();
    h.post(h.ev("d1", "DiagnosticReport-open", vec![report("r1"), patient("p1")])).unwrap();
    let out = h.drain_acking();
    assert!(to(&out, &ehr).is_empty(), "P1 is already the most recent patient");
    assert_eq!(to(&out, &both).len(), 1, "the source only");
    h.post(h.ev("d2", "DiagnosticReport-open", vec![report("r2"), patient("p2")])).unwrap();
    let out = h.drain_acking();
    assert_eq!(to(&out, &ehr).len(), 1);
    assert_eq!(to(&out, &both)[0]["event"]["hub.event"], "DiagnosticReport-open", "never source and derived both");
    assert_eq!(to(&out, &both).len(), 1);
}

#[test]
fn req100_req102_get_current_context_is_advertised_and_answers_type_version_and_context() {
    let events: Vec<EventName> = ["Patient-open"].iter().map(|e| EventName::parse(e).unwrap()).collect();
    let w = WellKnown::for_hub(&events, true);
    assert!(w.supports_get_current_context());
    assert_eq!(w.get_current_support, Some(true), "the deprecated twin too");
    let mut h = hub();
    let v = h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap().version_id.unwrap();
    let cc = serde_json::to_value(h.topic.current_context(&Auth::open()).unwrap()).unwrap();
    assert_eq!(cc["context.type"], "Patient");
    assert_eq!(cc["context.versionId"], v.as_str());
    assert_eq!(cc["context"][0], patient("p1"));
}

#[test]
fn req104_req122_closing_the_current_context_does_not_fall_back_to_an_older_one() {
    let mut h = hub();
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.post(h.ev("e2", "Patient-open", vec![patient("p2")])).unwrap();
    h.post(h.ev("e3", "Patient-close", vec![patient("p2")])).unwrap();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), CurrentContext::empty());
    assert_eq!(h.topic.state().open_contexts().collect::<Vec<_>>(), vec![&ResourceKey::new("Patient", "p1")]);
    h.post(h.ev("e4", "Patient-open", vec![patient("p1")])).unwrap();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap().context_type, "Patient");
}

#[test]
fn req106_req114_the_open_context_comes_back_exactly_as_sent_unvalidated() {
    let mut h = hub();
    // Not valid FHIR (gender must be a code), which the Hub does not have to check.
    let odd = json!({"key":"patient","resource":{"resourceType":"Patient","id":"p1","gender":42,"zz":{"a":[]}}});
    h.post(h.ev("e1", "Patient-open", vec![odd.clone()])).unwrap();
    let cc = h.topic.current_context(&Auth::open()).unwrap();
    assert_eq!(serde_json::to_value(&cc.context[0]).unwrap(), odd);
}

#[test]
fn req115_req121_selects_are_forwarded_including_an_empty_one() {
    let mut h = hub();
    let a = h.join("DiagnosticReport-select", "A");
    h.post(h.ev("d1", "DiagnosticReport-open", vec![report("r1"), patient("p1")])).unwrap();
    let r = json!({"key":"report","reference":{"reference":"DiagnosticReport/r1"}});
    let s = |id: &str| json!({"key":"select","reference":{"reference":format!("Observation/{id}")}});
    h.post(h.ev("s1", "DiagnosticReport-select", vec![r.clone(), s("o1"), s("o2")])).unwrap();
    h.post(h.ev("s2", "DiagnosticReport-select", vec![r])).unwrap();
    let msgs = to(&h.drain(), &a);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["event"]["context"].as_array().unwrap().len(), 3, "each selection its own entry");
    assert_eq!(msgs[1]["event"]["context"].as_array().unwrap().len(), 1, "an empty selection clears");
}

#[test]
fn req130_req131_logout_and_hibernate_carry_a_parameters_resource() {
    let h = hub();
    let params = json!({"key":"parameters","resource":{"resourceType":"Parameters","parameter":[
        {"name":"code","valueCoding":{"code":"system-timeout"}},{"name":"hub","valueBoolean":true}]}});
    for name in ["UserLogout", "UserHibernate"] {
        Event::parse(&h.ev("x", name, vec![params.clone()]).to_string()).unwrap();
        let e = Event::parse(&h.ev("x", name, vec![]).to_string()).unwrap_err();
        assert!(matches!(e, EventError::MissingKey { key: "parameters", .. }), "{name}: {e}");
        let e = Event::parse(&h.ev("x", name, vec![patient("p1")]).to_string()).unwrap_err();
        assert!(matches!(e, EventError::UnexpectedKey { .. }), "{name}: {e}");
    }
}

#[test]
fn req137_ids_the_hub_mints_are_unique_and_carry_its_prefix() {
    let mut h = hub();
    let ehr = h.join("Patient-open,Patient-close,ImagingStudy-open,ImagingStudy-close,SyncError", "EHR");
    let b = h.join("Patient-open,SyncError", "B");
    let mut minted = Vec::new();
    for i in 0..5 {
        let r = format!("r{i}");
        let p = format!("p{i}");
        h.post(h.ev(&format!("d{i}"), "DiagnosticReport-open", vec![report(&r), study(&format!("s{i}")), patient(&p)]))
            .unwrap();
        h.post(h.ev(&format!("c{i}"), "DiagnosticReport-close", vec![report(&r), patient(&p)])).unwrap();
        let out = h.drain();
        minted.extend(to(&out, &ehr).iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        for m in to(&out, &b) {
            h.topic.handle_ack(&b, &Ack { id: m["id"].as_str().unwrap().into(), status: 500 }, h.now);
        }
        h.ack_all(&out);
        minted.extend(to(&h.drain(), &ehr).iter().map(|m| m["id"].as_str().unwrap().to_owned()));
    }
    // The EHR's view is the study (views: only the view's open is derived), closed with the
    // report; B's Patient-open refused (500) raises a SyncError.
    assert_eq!(minted.len(), 15, "derived ImagingStudy-open, ImagingStudy-close and a SyncError per round");
    assert!(minted.iter().all(|id| id.starts_with("h-")), "{minted:?}");
    let unique: BTreeSet<&String> = minted.iter().collect();
    assert_eq!(unique.len(), minted.len(), "{minted:?}");
}

// ---------------------------------------------------------------------------------------
// §4 negative cases.

#[test]
fn neg21_a_refusing_subscriber_is_named_in_the_syncerror_by_its_subscriber_name() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "EHR");
    let b = h.join("Patient-open,SyncError", "Dictation App");
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.topic.handle_ack(&b, &Ack { id: "e1".into(), status: 404 }, h.now);
    let d = syncerror(&to(&h.drain(), &a)[0]);
    assert_eq!(d.subscriber_name, "Dictation App");
    assert!(d.diagnostics.contains("rejected Patient-open (404)"), "{}", d.diagnostics);
}

#[test]
fn neg22_the_ack_timeout_is_a_setting_and_one_miss_unsubscribes() {
    let mut h = hub_with(HubConfig { ack_timeout: Duration::from_secs(3), ..HubConfig::default() });
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open", "Slow");
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(3))));
    h.tick(Duration::from_secs(3));
    let out = h.drain();
    assert!(syncerror(&to(&out, &a)[0]).diagnostics.contains("within 3 s"));
    assert!(!h.topic.has_endpoint(&b), "N = 1");
}

#[test]
fn neg23_any_close_ends_the_subscription_and_the_endpoint_cannot_reconnect() {
    for code in [1000, 1001, 1006, 1011, 4000] {
        let mut h = hub();
        let a = h.join("Patient-open", "A");
        h.topic.handle_close(&a, code, h.now);
        assert!(!h.topic.has_endpoint(&a), "{code}");
        assert_eq!(h.topic.handle_connect(&a, h.now), Err(ConnectError::UnknownEndpoint), "{code}");
        assert_eq!(h.topic.poll_timeout(), None);
    }
}

#[test]
fn neg25_no_context_is_the_empty_answer() {
    let mut h = hub();
    assert_eq!(
        serde_json::to_string(&h.topic.current_context(&Auth::open()).unwrap()).unwrap(),
        r#"{"context.type":"","context":[]}"#
    );
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.post(h.ev("h1", "Home-open", vec![])).unwrap();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), CurrentContext::empty());
}

// ---------------------------------------------------------------------------------------
// §5a decisions.

#[test]
fn impl_5a2_a_resubscribe_before_connecting_keeps_the_endpoint() {
    let mut h = hub();
    let t = h.subscribe_as("Patient-open", None, &Auth::open());
    let mut r = form("Patient-close", None);
    r.endpoint = Some(format!("wss://hub/ws/{T}/{t}"));
    assert_eq!(h.topic.handle_subscription(&r, &Auth::open(), "unused", h.now).unwrap().endpoint, t);
    assert!(h.drain().is_empty(), "not connected: nothing to confirm yet");
    h.topic.handle_connect(&t, h.now).unwrap();
    assert_eq!(to(&h.drain(), &t)[0]["hub.events"], "Patient-close");
    assert_eq!(h.topic.subscription_count(), 1);
}

#[test]
fn impl_5a8_get_current_context_needs_the_read_scope_of_the_current_open() {
    let mut h = hub();
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    let reader = Auth { scopes: Some(Scopes::parse("fhircast/Patient-open.read")), ..Auth::open() };
    let other = Auth { scopes: Some(Scopes::parse("fhircast/Encounter-open.read")), ..Auth::open() };
    assert_eq!(h.topic.current_context(&reader).unwrap().context_type, "Patient");
    let e = h.topic.current_context(&other).unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert!(e.to_string().contains("fhircast/Patient-open.read"), "{e}");
}

#[test]
fn impl_5a12_an_unnamed_subscriber_is_numbered_in_syncerrors() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let t = h.subscribe_as("Patient-open", None, &Auth::open());
    h.topic.handle_connect(&t, h.now).unwrap();
    h.drain();
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.topic.handle_ack(&t, &Ack { id: "e1".into(), status: 500 }, h.now);
    let d = syncerror(&to(&h.drain(), &a)[0]);
    assert!(d.subscriber_name.starts_with("unnamed subscriber #"), "{}", d.subscriber_name);
    assert!(!d.subscriber_name.contains(&t), "the endpoint (a secret) is never revealed");
}

#[test]
fn impl_5a15_hub_syncerrors_go_to_the_other_subscribers_of_syncerror() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open,SyncError", "B");
    let c = h.join("Patient-open", "C");
    let d = h.join("SyncError", "D");
    h.post(h.ev("e1", "Patient-open", vec![patient("p1")])).unwrap();
    h.drain();
    for t in [&a, &c] {
        h.topic.handle_ack(t, &Ack { id: "e1".into(), status: 200 }, h.now);
    }
    h.topic.handle_ack(&b, &Ack { id: "e1".into(), status: 409 }, h.now);
    let out = h.drain();
    let got: BTreeSet<&str> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Send { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(got, BTreeSet::from([a.as_str(), d.as_str()]), "not B (at fault), not C (no SyncError)");
}

#[test]
fn req94_a_subscribers_syncerror_has_severity_warning_and_is_forwarded_as_sent() {
    let d = SyncErrorDetails {
        event_id: "e1".into(),
        event_name: "Patient-open".into(),
        subscriber_name: "Viewer".into(),
        diagnostics: "Viewer answered 202 and then refused Patient-open".into(),
        code: fhircast_core::syncerror::IssueCode::Processing,
        severity: fhircast_core::syncerror::Severity::Warning,
    };
    let oo: Value = serde_json::from_str(&d.to_operation_outcome_json()).unwrap();
    assert_eq!(oo["issue"][0]["severity"], "warning");
    let mut h = hub();
    let a = h.join("SyncError", "A");
    h.post(h.ev("s1", "SyncError", vec![json!({"key":"operationoutcome","resource":oo})])).unwrap();
    let msgs = to(&h.drain(), &a);
    assert_eq!(msgs[0]["id"], "s1");
    assert_eq!(msgs[0]["event"]["context"][0]["resource"], oo);
}

#[test]
fn impl_5a4_the_hub_grants_a_subset_of_the_request_never_a_superset() {
    let mut h = hub();
    let all = Auth { scopes: Some(Scopes::parse("fhircast/*.read")), ..Auth::open() };
    let t = h.subscribe_as("Patient-open", None, &all);
    h.topic.handle_connect(&t, h.now).unwrap();
    assert_eq!(to(&h.drain(), &t)[0]["hub.events"], "Patient-open", "not everything the scope allows");
}

#[test]
fn impl_5a25_events_sent_on_the_websocket_are_not_acted_on() {
    // Subscribers send events by HTTP POST only; on the socket the Hub reads acks and nothing else.
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let event = h.ev("ws1", "Patient-open", vec![patient("p1")]).to_string();
    let _ = h.topic.handle_message(&a, &event, h.now);
    assert!(h.drain().is_empty());
    assert!(h.topic.state().current().is_none());
    assert!(h.topic.has_endpoint(&a), "and the socket is not closed for it (neg 24)");
}

/// Get current context with mixed grants (§5a-8, req 18, 45, 97): a token that may read only
/// `Patient-open` gets the patient the current report implies — exactly the derived open a
/// subscriber with that grant was sent — and never the report; a token that may read the
/// report gets the report; one that may read neither is refused.
#[test]
fn impl_5a8_req18_req97_get_current_context_is_filtered_by_the_tokens_read_scopes() {
    let mut h = hub();
    let ehr = h.join("Patient-open", "EHR");
    h.post(h.ev("d1", "DiagnosticReport-open", vec![report("r1"), study("s1"), patient("p1")])).unwrap();
    let derived = to(&h.drain_acking(), &ehr);
    assert_eq!(derived[0]["event"]["hub.event"], "Patient-open");
    let scoped = |s: &str| Auth { scopes: Some(Scopes::parse(s)), ..Auth::open() };

    let cc = h.topic.current_context(&scoped("fhircast/Patient-open.read")).unwrap();
    let as_json = |cc: &CurrentContext| serde_json::to_value(cc).unwrap();
    assert_eq!(cc.context_type, "Patient");
    assert_eq!(as_json(&cc)["context"][0], derived[0]["event"]["context"][0], "the derived open's context");
    assert_eq!(as_json(&cc)["context.versionId"], derived[0]["event"]["context.versionId"]);
    assert!(!as_json(&cc).to_string().contains("DiagnosticReport"), "req 18: no report for a Patient-only token");

    let full = h.topic.current_context(&scoped("fhircast/DiagnosticReport-open.read")).unwrap();
    assert_eq!(full.context_type, "DiagnosticReport");
    assert_eq!(full, h.topic.current_context(&Auth::open()).unwrap(), "open mode is unfiltered");

    // Patient and ImagingStudy readable: the most recent derived open, the study's (it carries
    // the patient too), as a subscriber of both was sent last.
    let both = h.topic.current_context(&scoped("fhircast/Patient-open.read fhircast/ImagingStudy-open.read")).unwrap();
    assert_eq!(both.context_type, "ImagingStudy");

    let e = h.topic.current_context(&scoped("fhircast/Encounter-open.read")).unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert!(e.to_string().contains("fhircast/DiagnosticReport-open.read"), "{e}");

    // Once the report is closed (and with it the derived patient), nothing is current.
    h.post(h.ev("c1", "DiagnosticReport-close", vec![report("r1"), patient("p1")])).unwrap();
    h.drain_acking();
    assert_eq!(h.topic.current_context(&scoped("fhircast/Patient-open.read")).unwrap(), CurrentContext::empty());
}

/// Found by the hostile corpus (tests/hub/hostile.test.mjs): any valid token, even one with no
/// `fhircast/` scope at all, could cancel a subscription whose endpoint it knew. Cancelling now
/// needs some fhircast scope, as subscribing needs a read scope; the refusal comes before the
/// endpoint is looked up, so such a token cannot probe endpoints either.
#[test]
fn neg9_unsubscribing_needs_a_token_with_a_fhircast_scope() {
    let mut h = hub();
    let t = h.join("Patient-open", "A");
    let unsub = |endpoint: &str| {
        SubscriptionRequest::from_form(&format!(
            "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic={T}&hub.channel.endpoint=wss://h/ws/{T}/{endpoint}"
        ))
        .unwrap()
    };
    let no_scope = Auth { scopes: Some(Scopes::parse("openid profile")), ..Auth::open() };
    for endpoint in [t.as_str(), "unknown"] {
        let e = h.topic.handle_subscription(&unsub(endpoint), &no_scope, "x", h.now).unwrap_err();
        assert_eq!(e, SubscribeError::NoFhircastScope);
        assert_eq!(e.http_status(), 403);
    }
    assert!(h.topic.has_endpoint(&t));
    let write_only = Auth { scopes: Some(Scopes::parse("fhircast/Patient-open.write")), ..Auth::open() };
    h.topic.handle_subscription(&unsub(&t), &write_only, "x", h.now).unwrap();
    assert!(!h.topic.has_endpoint(&t));
}

/// Found by the hostile corpus: a topic `..` was accepted, and its endpoint URL
/// `{hub.url}/ws/../{token}` is resolved away by every client (neg 4).
#[test]
fn neg4_a_dot_segment_is_no_topic() {
    for topic in [".", ".."] {
        let form = format!("hub.channel.type=websocket&hub.mode=subscribe&hub.topic={topic}&hub.events=Patient-open");
        let e = SubscriptionRequest::from_form(&form).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains("dot segment"), "{e}");
    }
    assert!(SubscriptionRequest::from_form(
        "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=...&hub.events=Patient-open"
    )
    .is_ok());
}
