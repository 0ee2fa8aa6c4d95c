//! Table tests of the topic state machine, one or more per spec item.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::catalog::EventName;
use crate::event::Event;
use crate::scope::Scopes;
use crate::subscription::{Mode, SubscriptionRequest};
use crate::wire::ResourceKey;

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

fn sub_req(events: &str, name: Option<&str>) -> SubscriptionRequest {
    SubscriptionRequest {
        mode: Mode::Subscribe,
        topic: T.into(),
        events: events.split(',').map(|e| EventName::parse(e).unwrap()).collect(),
        lease_seconds: None,
        endpoint: None,
        subscriber_name: name.map(str::to_owned),
    }
}

impl H {
    fn tick(&mut self, d: Duration) {
        self.now = self.now.add(d);
        self.topic.handle_timeout(self.now);
    }

    fn subscribe(&mut self, events: &str, name: &str) -> String {
        self.n += 1;
        let token = format!("tok{}", self.n);
        let r = self.topic.handle_subscription(&sub_req(events, Some(name)), &Auth::open(), &token, self.now).unwrap();
        assert_eq!(r.endpoint, token);
        token
    }

    /// Subscribes, connects, and drains the confirmation (and any replay).
    fn join(&mut self, events: &str, name: &str) -> String {
        let t = self.subscribe(events, name);
        self.topic.handle_connect(&t, self.now).unwrap();
        self.drain_acking();
        t
    }

    fn drain(&mut self) -> Vec<Outbound> {
        std::iter::from_fn(|| self.topic.poll_outbound()).collect()
    }

    /// Drains, answering every notification 200 for every recipient; returns what was sent.
    fn drain_acking(&mut self) -> Vec<Outbound> {
        let out = self.drain();
        for o in &out {
            if let Outbound::Send { to, text } = o {
                let v: Value = serde_json::from_str(text).unwrap();
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    self.topic.handle_ack(to, &Ack { id: id.into(), status: 200 }, self.now);
                }
            }
        }
        out
    }

    fn post(&mut self, e: Value) -> Result<EventAccepted, EventRejected> {
        let ev = Event::parse_envelope(&e.to_string()).unwrap();
        self.topic.handle_event(ev, &Auth::open(), self.now)
    }

    fn ts(&self) -> String {
        self.now.to_rfc3339()
    }
}

use crate::wire::Ack;

fn to(out: &[Outbound], token: &str) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Send { to, text } if to == token => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn closes(out: &[Outbound], token: &str) -> Vec<u16> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Close { to, code, .. } if to == token => Some(*code),
            _ => None,
        })
        .collect()
}

fn patient(id: &str) -> Value {
    json!({"key":"patient","resource":{"resourceType":"Patient","id":id,"identifier":[{"value":id}]}})
}

fn ev(h: &H, id: &str, name: &str, context: Vec<Value>) -> Value {
    json!({"timestamp": h.ts(), "id": id, "event": {"hub.topic": T, "hub.event": name, "context": context}})
}

fn open_patient(h: &mut H, id: &str, pid: &str) -> EventAccepted {
    let e = ev(h, id, "Patient-open", vec![patient(pid)]);
    h.post(e).unwrap()
}

fn report(id: &str) -> Value {
    json!({"key":"report","resource":{"resourceType":"DiagnosticReport","id":id,"status":"preliminary"}})
}

fn study(id: &str) -> Value {
    json!({"key":"study","resource":{"resourceType":"ImagingStudy","id":id}})
}

fn open_report(h: &mut H, id: &str, rid: &str, pid: &str) -> EventAccepted {
    let e = ev(h, id, "DiagnosticReport-open", vec![report(rid), patient(pid)]);
    h.post(e).unwrap()
}

fn update(h: &H, id: &str, rid: &str, version: &str, entries: Value) -> Value {
    json!({"timestamp": h.ts(), "id": id, "event": {"hub.topic": T, "hub.event": "DiagnosticReport-update", "context.versionId": version, "context": [
        {"key":"report","reference":{"reference": format!("DiagnosticReport/{rid}")}},
        {"key":"updates","resource":{"resourceType":"Bundle","id":"b1","type":"transaction","entry": entries}}
    ]}})
}

fn obs_put(id: &str) -> Value {
    json!({"request":{"method":"PUT"},"resource":{"resourceType":"Observation","id":id,"status":"preliminary"}})
}

#[test]
fn req43_confirmation_lists_granted_events_and_lease() {
    let mut h = hub();
    let t = h.subscribe("patient-open,Patient-close", "A");
    assert!(h.drain().is_empty(), "nothing is sent before the socket connects");
    h.topic.handle_connect(&t, h.now).unwrap();
    let out = h.drain();
    assert_eq!(
        to(&out, &t),
        vec![
            json!({"hub.mode":"subscribe","hub.topic":T,"hub.events":"Patient-open,Patient-close","hub.lease_seconds":3600})
        ]
    );
}

#[test]
fn req44_replay_sends_the_current_context_with_its_original_id_and_timestamp() {
    let mut h = hub();
    let ts = h.ts();
    let v = open_patient(&mut h, "e1", "p1").version_id.unwrap();
    h.tick(Duration::from_secs(5));
    let t = h.subscribe("Patient-open", "A");
    h.topic.handle_connect(&t, h.now).unwrap();
    let msgs = to(&h.drain(), &t);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["id"], "e1");
    assert_eq!(msgs[1]["timestamp"], ts);
    assert_eq!(msgs[1]["event"]["context.versionId"], v.as_str());
    assert_eq!(msgs[1]["event"]["context"][0]["resource"]["id"], "p1");
}

#[test]
fn req44_req45_replay_is_filtered_by_events_and_ordered_by_opening() {
    let mut h = hub();
    open_patient(&mut h, "e1", "p1");
    let e = ev(&h, "e2", "ImagingStudy-open", vec![study("s1"), patient("p1")]);
    h.post(e).unwrap();
    let t = h.subscribe("Patient-open,ImagingStudy-open", "A");
    h.topic.handle_connect(&t, h.now).unwrap();
    let ids: Vec<Value> = to(&h.drain(), &t).iter().skip(1).map(|m| m["id"].clone()).collect();
    assert_eq!(ids, vec![json!("e1"), json!("e2")]);
    let t2 = h.subscribe("ImagingStudy-open", "B");
    h.topic.handle_connect(&t2, h.now).unwrap();
    let ids: Vec<Value> = to(&h.drain(), &t2).iter().skip(1).map(|m| m["id"].clone()).collect();
    assert_eq!(ids, vec![json!("e2")]);
}

#[test]
fn impl_5a9_no_replay_when_the_current_context_was_closed() {
    let mut h = hub();
    open_patient(&mut h, "e1", "p1");
    open_patient(&mut h, "e2", "p2");
    let e = ev(&h, "e3", "Patient-close", vec![patient("p2")]);
    h.post(e).unwrap();
    let t = h.subscribe("Patient-open,Patient-close", "A");
    h.topic.handle_connect(&t, h.now).unwrap();
    assert_eq!(to(&h.drain(), &t).len(), 1, "only the confirmation");
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), crate::wire::CurrentContext::empty());
}

#[test]
fn req80_req45_broadcast_reaches_every_subscriber_of_the_event_with_the_requesters_id() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let b = h.join("patient-open,Patient-close", "B");
    let c = h.join("Patient-close", "C");
    open_patient(&mut h, "req-1", "p1");
    let out = h.drain();
    assert_eq!(to(&out, &a)[0]["id"], "req-1");
    assert_eq!(to(&out, &b)[0]["id"], "req-1");
    assert!(to(&out, &c).is_empty(), "C did not subscribe to Patient-open");
}

#[test]
fn req35_resubscribe_replaces_events_and_renews_the_lease() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    open_patient(&mut h, "e1", "p1");
    h.drain_acking();
    h.tick(Duration::from_secs(100));
    let mut r = sub_req("Patient-close,Patient-open,ImagingStudy-open", None);
    r.endpoint = Some(format!("wss://hub/api/hub/ws/{T}/{a}\n"));
    r.lease_seconds = Some(50);
    let acc = h.topic.handle_subscription(&r, &Auth::open(), "unused", h.now).unwrap();
    assert_eq!(acc.endpoint, a);
    let msgs = to(&h.drain(), &a);
    assert_eq!(msgs[0]["hub.events"], "Patient-close,Patient-open,ImagingStudy-open");
    assert_eq!(msgs[0]["hub.lease_seconds"], 50);
    assert_eq!(msgs.len(), 1, "Patient-open was already granted: no replay again");
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(50))));
}

#[test]
fn neg10_resubscribe_or_unsubscribe_with_unknown_endpoint() {
    let mut h = hub();
    let mut r = sub_req("Patient-open", None);
    r.endpoint = Some("wss://hub/api/hub/ws/T1/nope".into());
    assert_eq!(h.topic.handle_subscription(&r, &Auth::open(), "x", h.now), Err(SubscribeError::UnknownEndpoint));
    r.mode = Mode::Unsubscribe;
    let e = h.topic.handle_subscription(&r, &Auth::open(), "x", h.now).unwrap_err();
    assert_eq!(e.http_status(), 404);
}

#[test]
fn req53_req47_req54_unsubscribe_sends_denial_closes_and_retires_the_endpoint() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let mut r = sub_req("Patient-open", None);
    r.mode = Mode::Unsubscribe;
    r.events.clear();
    r.endpoint = Some(format!("wss://hub/api/hub/ws/{T}/{a}"));
    let acc = h.topic.handle_subscription(&r, &Auth::open(), "x", h.now).unwrap();
    assert_eq!(acc.endpoint, a);
    let out = h.drain();
    assert_eq!(
        to(&out, &a),
        vec![json!({"hub.mode":"denied","hub.topic":T,"hub.events":"Patient-open","hub.reason":"unsubscribed"})]
    );
    assert_eq!(closes(&out, &a), vec![1000]);
    assert_eq!(h.topic.handle_connect(&a, h.now), Err(ConnectError::UnknownEndpoint));
    assert_eq!(h.topic.subscription_count(), 0);
}

#[test]
fn neg11_endpoints_are_single_use_and_unknown_ones_refused() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    assert_eq!(h.topic.handle_connect(&a, h.now), Err(ConnectError::AlreadyConnected));
    assert_eq!(h.topic.handle_connect("never-issued", h.now).unwrap_err().http_status(), 404);
}

#[test]
fn impl_5a3_an_unconnected_endpoint_expires() {
    let mut h = hub();
    let t = h.subscribe("Patient-open", "A");
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(60))));
    h.tick(Duration::from_secs(61));
    assert!(h.drain().is_empty());
    assert_eq!(h.topic.handle_connect(&t, h.now), Err(ConnectError::UnknownEndpoint));
    assert_eq!(h.topic.poll_timeout(), None, "an idle topic needs no alarm");
}

#[test]
fn req56_neg27_lease_expiry_denies_and_closes() {
    let mut h = hub();
    let mut r = sub_req("Patient-open", Some("A"));
    r.lease_seconds = Some(30);
    h.topic.handle_subscription(&r, &Auth::open(), "a", h.now).unwrap();
    h.topic.handle_connect("a", h.now).unwrap();
    h.drain();
    h.tick(Duration::from_secs(29));
    assert!(h.drain().is_empty());
    h.tick(Duration::from_secs(1));
    let out = h.drain();
    assert_eq!(to(&out, "a")[0]["hub.mode"], "denied");
    assert_eq!(to(&out, "a")[0]["hub.reason"], "lease expired");
    assert_eq!(closes(&out, "a"), vec![1000]);
    assert_eq!(h.topic.subscription_count(), 0);
}

#[test]
fn req56_expire_lease_takes_the_path_of_a_lease_that_ran_out() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let b = h.join("Patient-open", "B");
    assert!(h.topic.expire_lease(&a, h.now));
    let out = h.drain();
    assert_eq!(to(&out, &a)[0]["hub.mode"], "denied");
    assert_eq!(to(&out, &a)[0]["hub.reason"], "lease expired");
    assert_eq!(closes(&out, &a), vec![1000]);
    assert!(to(&out, &b).is_empty(), "the other subscriber is untouched");
    assert_eq!(h.topic.subscription_count(), 1);
    // Unknown, or issued and not connected: nothing happens.
    assert!(!h.topic.expire_lease(&a, h.now));
    let issued = h.subscribe("Patient-open", "C");
    assert!(!h.topic.expire_lease(&issued, h.now));
    assert_eq!(h.topic.subscription_count(), 2);
}

#[test]
fn req20_neg8_lease_is_clamped_to_maximum_and_token_expiry() {
    let mut h = hub();
    let mut r = sub_req("Patient-open", None);
    r.lease_seconds = Some(10_000_000);
    h.topic.handle_subscription(&r, &Auth::open(), "a", h.now).unwrap();
    h.topic.handle_connect("a", h.now).unwrap();
    assert_eq!(to(&h.drain(), "a")[0]["hub.lease_seconds"], 86_400);
    let auth = Auth { expires_at: Some(h.now.add(Duration::from_secs(120))), ..Auth::open() };
    h.topic.handle_subscription(&r, &auth, "b", h.now).unwrap();
    h.topic.handle_connect("b", h.now).unwrap();
    assert_eq!(to(&h.drain(), "b")[0]["hub.lease_seconds"], 120);
    let expired = Auth { expires_at: Some(h.now), ..Auth::open() };
    assert_eq!(h.topic.handle_subscription(&r, &expired, "c", h.now), Err(SubscribeError::TokenExpired));
}

#[test]
fn issue13_the_hub_refuses_resource_ids_over_256_bytes_before_storing_them() {
    let mut h = hub();
    let long = "p".repeat(257);
    let e = h.post(ev(
        &h,
        "e1",
        "Patient-open",
        vec![json!({"key": "patient", "resource": {"resourceType": "Patient", "id": long}})],
    ));
    let e = e.unwrap_err();
    assert_eq!(e.http_status(), 400);
    assert!(e.to_string().contains("longer than 256 bytes"), "{e}");
    assert!(h.topic.state().current().is_none());
}

#[test]
fn req20_issue13_a_late_connect_does_not_make_the_lease_outlive_the_token() {
    let mut h = hub();
    let r = sub_req("Patient-open", None);
    let auth = Auth { expires_at: Some(h.now.add(Duration::from_secs(60))), ..Auth::open() };
    h.topic.handle_subscription(&r, &auth, "late", h.now).unwrap();
    // The socket connects 40 s later (CONNECT_TIMEOUT_SECONDS is 60): 20 s of the token are left.
    h.now = h.now.add(Duration::from_secs(40));
    h.topic.handle_connect("late", h.now).unwrap();
    assert_eq!(to(&h.drain(), "late")[0]["hub.lease_seconds"], 20, "the confirmation grants what is left");
    h.tick(Duration::from_secs(19));
    assert!(h.topic.has_endpoint("late"));
    h.tick(Duration::from_secs(1));
    assert!(!h.topic.has_endpoint("late"), "the lease ended with the token, not 60 s after the connect");
    let out = h.drain();
    assert_eq!(to(&out, "late")[0]["hub.mode"], "denied");
}

#[test]
fn req18_neg5_neg9_scopes_grant_a_subset_or_refuse() {
    let mut h = hub();
    let auth = Auth {
        scopes: Some(Scopes::parse("openid fhircast/Patient-open.read fhircast/SyncError.read")),
        ..Auth::open()
    };
    h.topic.handle_subscription(&sub_req("Patient-open,Patient-close,SyncError", None), &auth, "a", h.now).unwrap();
    h.topic.handle_connect("a", h.now).unwrap();
    assert_eq!(to(&h.drain(), "a")[0]["hub.events"], "Patient-open,SyncError");
    let e = h.topic.handle_subscription(&sub_req("Encounter-open", None), &auth, "b", h.now).unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert!(e.to_string().contains("fhircast/Encounter-open.read"), "{e}");
}

#[test]
fn neg4_neg13_token_bound_to_another_topic() {
    let mut h = hub();
    let auth = Auth { topic: Some("other".into()), ..Auth::open() };
    assert_eq!(
        h.topic.handle_subscription(&sub_req("Patient-open", None), &auth, "a", h.now).unwrap_err().http_status(),
        403
    );
    let e = Event::parse_envelope(&ev(&h, "e1", "Patient-open", vec![patient("p1")]).to_string()).unwrap();
    assert_eq!(h.topic.handle_event(e, &auth, h.now).unwrap_err().http_status(), 403);
    assert_eq!(h.topic.current_context(&auth).unwrap_err().http_status(), 403);
}

#[test]
fn neg13_wrong_topic_and_missing_write_scope() {
    let mut h = hub();
    let mut e = ev(&h, "e1", "Patient-open", vec![patient("p1")]);
    e["event"]["hub.topic"] = json!("T2");
    assert!(matches!(h.post(e), Err(EventRejected::WrongTopic { .. })));
    let auth = Auth { scopes: Some(Scopes::parse("fhircast/Patient-open.read")), ..Auth::open() };
    let e = Event::parse_envelope(&ev(&h, "e1", "Patient-open", vec![patient("p1")]).to_string()).unwrap();
    let err = h.topic.handle_event(e, &auth, h.now).unwrap_err();
    assert_eq!(err.http_status(), 403);
    assert!(err.to_string().contains("fhircast/Patient-open.write"));
    assert!(h.topic.state().current().is_none(), "nothing applied");
}

fn sync_error_details(msg: &Value) -> crate::syncerror::SyncErrorDetails {
    assert_eq!(msg["event"]["hub.event"], "SyncError");
    let ctx: Vec<crate::wire::ContextEntry> = serde_json::from_value(msg["event"]["context"].clone()).unwrap();
    crate::syncerror::SyncErrorDetails::from_context(&ctx).unwrap()
}

#[test]
fn req72_req84_a_409_answer_sends_a_syncerror_to_the_others() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "EHR");
    let b = h.join("Patient-open,SyncError", "Viewer");
    let c = h.join("Patient-open", "NoSyncErrors");
    open_patient(&mut h, "e1", "p1");
    h.drain();
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.topic.handle_ack(&c, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.topic.handle_message(&b, r#"{"id":"e1","status":"409"}"#, h.now).unwrap();
    let out = h.drain();
    let d = sync_error_details(&to(&out, &a)[0]);
    assert_eq!(
        (d.event_id.as_str(), d.event_name.as_str(), d.subscriber_name.as_str()),
        ("e1", "Patient-open", "Viewer")
    );
    assert_eq!(d.code, crate::syncerror::IssueCode::Processing);
    assert!(d.diagnostics.contains("Viewer refused to follow Patient-open"), "{}", d.diagnostics);
    assert!(to(&out, &b).is_empty(), "not to the refusing subscriber");
    assert!(to(&out, &c).is_empty(), "req 88: only to subscribers of SyncError");
}

#[test]
fn req72_req95_a_5xx_answer_sends_a_syncerror_and_2xx_does_not() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open,SyncError", "B");
    open_patient(&mut h, "e1", "p1");
    h.drain();
    h.topic.handle_ack(&b, &Ack { id: "e1".into(), status: 202 }, h.now);
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    assert!(h.drain().is_empty(), "2xx answers raise nothing (req 71)");
    open_patient(&mut h, "e2", "p2");
    h.drain();
    h.topic.handle_ack(&b, &Ack { id: "e2".into(), status: 500 }, h.now);
    let d = sync_error_details(&to(&h.drain(), &a)[0]);
    assert!(d.diagnostics.contains("failed to process"), "{}", d.diagnostics);
}

#[test]
fn req96_a_413_answer_is_reported_as_too_long() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open,SyncError", "B");
    open_patient(&mut h, "e1", "p1");
    h.drain();
    h.topic.handle_ack(&b, &Ack { id: "e1".into(), status: 413 }, h.now);
    assert_eq!(sync_error_details(&to(&h.drain(), &a)[0]).code, crate::syncerror::IssueCode::TooLong);
}

#[test]
fn req85_req87_no_answer_within_10s_syncerror_then_unsubscribe() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open,SyncError", "Silent");
    open_patient(&mut h, "e1", "p1");
    h.drain();
    h.topic.handle_ack(&a, &Ack { id: "e1".into(), status: 200 }, h.now);
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(10))));
    h.tick(Duration::from_millis(9_999));
    assert!(h.drain().is_empty());
    h.tick(Duration::from_millis(1));
    let out = h.drain();
    let d = sync_error_details(&to(&out, &a)[0]);
    assert_eq!(d.subscriber_name, "Silent");
    assert!(d.diagnostics.contains("did not answer Patient-open within 10 s"), "{}", d.diagnostics);
    assert_eq!(to(&out, &b)[0]["hub.mode"], "denied");
    assert_eq!(closes(&out, &b), vec![1000]);
    assert!(!h.topic.has_endpoint(&b));
}

#[test]
fn req86_close_1000_or_1001_sends_no_syncerror() {
    for code in [1000, 1001] {
        let mut h = hub();
        let a = h.join("Patient-open,SyncError", "A");
        let b = h.join("Patient-open,SyncError", "B");
        open_patient(&mut h, "e1", "p1");
        h.drain_acking();
        h.topic.handle_close(&b, code, h.now);
        assert!(h.drain().is_empty());
        assert!(!h.topic.has_endpoint(&b));
        let _ = a;
    }
}

#[test]
fn req85_abnormal_close_sends_a_syncerror_about_the_current_context() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    let b = h.join("Patient-open,SyncError", "Crashy");
    open_patient(&mut h, "e1", "p1");
    h.drain_acking();
    h.topic.handle_close(&b, 1006, h.now);
    let d = sync_error_details(&to(&h.drain(), &a)[0]);
    assert_eq!((d.event_id.as_str(), d.subscriber_name.as_str()), ("e1", "Crashy"));
    assert!(d.diagnostics.contains("close code 1006"));
}

#[test]
fn neg24_malformed_messages_and_unknown_ids_are_ignored() {
    let mut h = hub();
    let a = h.join("Patient-open,SyncError", "A");
    open_patient(&mut h, "e1", "p1");
    h.drain();
    assert!(h.topic.handle_message(&a, "not json", h.now).is_err());
    h.topic.handle_message(&a, r#"{"id":"unknown","status":409}"#, h.now).unwrap();
    assert!(h.drain().is_empty());
    assert!(h.topic.has_endpoint(&a), "never closed for it");
    h.topic.handle_message(&a, r#"{"id":"e1"}"#, h.now).unwrap();
    assert_eq!(h.topic.poll_timeout().unwrap(), h.now.add(Duration::from_secs(3600)), "an id-only ack counts as 200");
}

#[test]
fn req84_subscriber_syncerrors_are_forwarded_and_malformed_ones_refused() {
    let mut h = hub();
    let a = h.join("SyncError", "A");
    let details = crate::syncerror::SyncErrorDetails {
        event_id: "e1".into(),
        event_name: "Patient-open".into(),
        subscriber_name: "Dictation".into(),
        diagnostics: "user cancelled".into(),
        code: crate::syncerror::IssueCode::Processing,
        severity: crate::syncerror::Severity::Warning,
    };
    let oo: Value = serde_json::from_str(&details.to_operation_outcome_json()).unwrap();
    let e = ev(&h, "s1", "syncerror", vec![json!({"key":"operationoutcome","resource":oo})]);
    h.post(e).unwrap();
    let msgs = to(&h.drain(), &a);
    assert_eq!(msgs[0]["id"], "s1");
    assert_eq!(sync_error_details(&msgs[0]), details);
    let bad = ev(
        &h,
        "s2",
        "SyncError",
        vec![json!({"key":"operationoutcome","resource":{"resourceType":"OperationOutcome","issue":[]}})],
    );
    assert_eq!(h.post(bad).unwrap_err().http_status(), 400);
}

#[test]
fn req108_req123_open_assigns_a_version_and_reopen_keeps_it() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let v1 = open_patient(&mut h, "e1", "p1").version_id.unwrap();
    assert_eq!(to(&h.drain_acking(), &a)[0]["event"]["context.versionId"], v1.as_str());
    let v2 = open_patient(&mut h, "e2", "p2").version_id.unwrap();
    assert_ne!(v1, v2);
    let v1b = open_patient(&mut h, "e3", "p1").version_id.unwrap();
    assert_eq!(v1, v1b, "reopening an open context keeps its version");
    assert_eq!(h.topic.state().current(), Some(&ResourceKey::new("Patient", "p1")));
    assert_eq!(h.topic.state().open_contexts().count(), 2, "nothing was closed (req 123)");
}

#[test]
fn req110_req105_update_applies_and_broadcasts_new_and_prior_version() {
    let mut h = hub();
    let a = h.join("DiagnosticReport-open,DiagnosticReport-update", "A");
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    h.drain_acking();
    let u = update(&h, "u1", "r1", &v1, json!([obs_put("o1"), obs_put("o2")]));
    let v2 = h.post(u).unwrap().version_id.unwrap();
    assert_ne!(v1, v2);
    let msg = &to(&h.drain_acking(), &a)[0];
    assert_eq!(msg["id"], "u1");
    assert_eq!(msg["event"]["context.versionId"], v2.as_str());
    assert_eq!(msg["event"]["context.priorVersionId"], v1.as_str());
    assert_eq!(msg["event"]["context"][1]["resource"]["id"], "b1", "req 112: same bundle id");
    let cc = h.topic.current_context(&Auth::open()).unwrap();
    assert_eq!(cc.version_id.as_deref(), Some(v2.as_str()));
    let content = cc.context.iter().find(|e| e.key == "content").unwrap();
    let bundle: Value = serde_json::from_str(content.value.get()).unwrap();
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 2);
    // req 106: the context array is exactly the open's, plus content.
    assert_eq!(cc.context[0].resource_header().unwrap().id.as_deref(), Some("r1"));
    assert_eq!(cc.context.len(), 3);
}

#[test]
fn req109_neg15_a_stale_version_is_refused_and_nothing_applied() {
    let mut h = hub();
    let a = h.join("DiagnosticReport-update", "A");
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    let u = update(&h, "u1", "r1", &v1, json!([obs_put("o1")]));
    let v2 = h.post(u).unwrap().version_id.unwrap();
    h.drain_acking();
    let stale = update(&h, "u2", "r1", &v1, json!([obs_put("o9")]));
    let err = h.post(stale).unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert!(err.to_string().contains(&v2), "{err}");
    assert!(to(&h.drain(), &a).is_empty(), "nothing broadcast");
    let content = h.topic.state().content_of(&ResourceKey::new("DiagnosticReport", "r1")).unwrap();
    assert_eq!(content.len(), 1, "nothing applied");
    assert_eq!(h.topic.state().version_of(&ResourceKey::new("DiagnosticReport", "r1")), Some(v2.as_str()));
}

#[test]
fn req111_neg17_a_bad_bundle_is_refused_whole() {
    let mut h = hub();
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    let post = json!({"request":{"method":"POST"},"resource":{"resourceType":"Observation","id":"o3"}});
    let bad = update(&h, "u1", "r1", &v1, json!([obs_put("o1"), post]));
    assert_eq!(h.post(bad).unwrap_err().http_status(), 400);
    assert!(h.topic.state().content_of(&ResourceKey::new("DiagnosticReport", "r1")).unwrap().is_empty());
    assert_eq!(h.topic.state().version_of(&ResourceKey::new("DiagnosticReport", "r1")), Some(v1.as_str()));
}

#[test]
fn neg18_too_many_entries_is_413() {
    let mut h = hub_with(HubConfig { max_bundle_entries: 2, ..HubConfig::default() });
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    let big = update(&h, "u1", "r1", &v1, json!([obs_put("o1"), obs_put("o2"), obs_put("o3")]));
    assert_eq!(h.post(big).unwrap_err().http_status(), 413);
}

#[test]
fn neg16_update_of_an_anchor_not_open_or_not_current() {
    let mut h = hub_with(HubConfig { non_current_updates: false, ..HubConfig::default() });
    let u = update(&h, "u1", "r9", "v", json!([]));
    assert!(matches!(h.post(u), Err(EventRejected::NotOpen { .. })));
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    open_report(&mut h, "e2", "r2", "p1");
    let u = update(&h, "u2", "r1", &v1, json!([]));
    assert!(matches!(h.post(u), Err(EventRejected::NotCurrent { .. })));
}

#[test]
fn req119_update_of_a_non_current_anchor_when_enabled() {
    let mut h = hub();
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    open_report(&mut h, "e2", "r2", "p1");
    let u = update(&h, "u2", "r1", &v1, json!([obs_put("o1")]));
    h.post(u).unwrap();
    assert_eq!(h.topic.state().current(), Some(&ResourceKey::new("DiagnosticReport", "r2")), "current unchanged");
}

#[test]
fn neg20_select_is_only_for_the_current_anchor() {
    let mut h = hub();
    let a = h.join("DiagnosticReport-select", "A");
    open_report(&mut h, "e1", "r1", "p1");
    open_report(&mut h, "e2", "r2", "p1");
    let sel = |h: &H, id: &str, r: &str| {
        json!({"timestamp": h.ts(), "id": id, "event": {"hub.topic": T, "hub.event": "DiagnosticReport-select", "context": [
            {"key":"report","reference":{"reference": format!("DiagnosticReport/{r}")}},
            {"key":"select","reference":{"reference":"Observation/o1"}}]}})
    };
    let e = sel(&h, "s1", "r1");
    assert_eq!(h.post(e).unwrap_err().http_status(), 409);
    let e = sel(&h, "s2", "r2");
    h.post(e).unwrap();
    assert_eq!(to(&h.drain(), &a)[0]["id"], "s2");
}

#[test]
fn req124_closing_the_current_context_leaves_none_and_closing_another_keeps_it() {
    let mut h = hub();
    open_patient(&mut h, "e1", "p1");
    open_patient(&mut h, "e2", "p2");
    let e = ev(&h, "c1", "Patient-close", vec![patient("p1")]);
    h.post(e).unwrap();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap().context_type, "Patient");
    let e = ev(&h, "c2", "Patient-close", vec![patient("p2")]);
    h.post(e).unwrap();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), crate::wire::CurrentContext::empty());
    assert_eq!(h.topic.state().open_contexts().count(), 0);
}

#[test]
fn req113_req125_closing_drops_that_anchors_content_only() {
    let mut h = hub();
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    let u = update(&h, "u1", "r1", &v1, json!([obs_put("o1")]));
    h.post(u).unwrap();
    let v2 = open_report(&mut h, "e2", "r2", "p1").version_id.unwrap();
    let u = update(&h, "u2", "r2", &v2, json!([obs_put("o2")]));
    h.post(u).unwrap();
    let e = ev(&h, "c1", "DiagnosticReport-close", vec![report("r1"), patient("p1")]);
    h.post(e).unwrap();
    assert!(h.topic.state().content_of(&ResourceKey::new("DiagnosticReport", "r1")).is_none());
    assert_eq!(h.topic.state().content_of(&ResourceKey::new("DiagnosticReport", "r2")).unwrap().len(), 1);
}

#[test]
fn neg19_closing_a_context_that_is_not_open_is_refused() {
    let mut h = hub();
    let a = h.join("Patient-close", "A");
    let e = ev(&h, "c1", "Patient-close", vec![patient("p1")]);
    let err = h.post(e).unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert!(err.to_string().contains("Patient/p1 is not an open context"));
    assert!(to(&h.drain(), &a).is_empty());
}

#[test]
fn req139_duplicate_ids() {
    let mut h = hub();
    let a = h.join("Patient-open", "A");
    let e = ev(&h, "e1", "Patient-open", vec![patient("p1")]);
    assert!(!h.post(e.clone()).unwrap().duplicate);
    h.drain_acking();
    assert!(h.post(e).unwrap().duplicate, "a retry is accepted");
    assert!(to(&h.drain(), &a).is_empty(), "and not broadcast again");
    let other = ev(&h, "e1", "Patient-open", vec![patient("p2")]);
    assert!(matches!(h.post(other), Err(EventRejected::IdReused { .. })));
}

#[test]
fn req67_a_context_change_older_than_the_current_context_is_refused() {
    let mut h = hub();
    open_patient(&mut h, "e1", "p1");
    let mut old = ev(&h, "e2", "Patient-open", vec![patient("p2")]);
    old["timestamp"] = json!(h.now.sub(Duration::from_millis(1)).to_rfc3339());
    let err = h.post(old).unwrap_err();
    assert_eq!(err.http_status(), 409);
    assert!(err.to_string().contains("req 67"));
    let same_time = ev(&h, "e3", "Patient-open", vec![patient("p3")]);
    h.post(same_time).unwrap();
}

#[test]
fn req97_derived_opens_and_closes_reach_subscribers_of_the_implied_event_only() {
    let mut h = hub();
    let ehr = h.join("Patient-open,Patient-close", "EHR");
    let rep = h.join("DiagnosticReport-open,DiagnosticReport-close,Patient-open", "Reporting");
    let e = ev(&h, "d1", "DiagnosticReport-open", vec![report("r1"), study("s1"), patient("p1")]);
    h.post(e).unwrap();
    let out = h.drain_acking();
    let ehr_msgs = to(&out, &ehr);
    assert_eq!(ehr_msgs.len(), 1);
    assert_eq!(ehr_msgs[0]["event"]["hub.event"], "Patient-open");
    assert_ne!(ehr_msgs[0]["id"], "d1", "derived events get fresh ids (req 139)");
    assert_eq!(ehr_msgs[0]["event"]["context"][0]["resource"]["id"], "p1");
    let rep_msgs = to(&out, &rep);
    assert_eq!(rep_msgs.len(), 1, "subscribers of the source get the source only (req 98)");
    assert_eq!(rep_msgs[0]["id"], "d1");
    // A second report of the same patient: P1 is already the patient in context, no duplicate.
    let e = ev(&h, "d2", "DiagnosticReport-open", vec![report("r2"), patient("p1")]);
    h.post(e).unwrap();
    assert!(to(&h.drain_acking(), &ehr).is_empty());
    // Closing r2, the current context, leaves none (req 124): the EHR's view is empty, so it
    // is sent Patient-close P1 (decision: views), although r1, still open, carries P1.
    let e = ev(&h, "c2", "DiagnosticReport-close", vec![report("r2"), patient("p1")]);
    h.post(e).unwrap();
    let ehr_msgs = to(&h.drain_acking(), &ehr);
    assert_eq!(ehr_msgs.len(), 1);
    assert_eq!(ehr_msgs[0]["event"]["hub.event"], "Patient-close");
    assert_eq!(ehr_msgs[0]["event"]["context"][0]["resource"]["id"], "p1");
    assert!(h.topic.state().open_contexts().any(|k| k.to_string() == "Patient/p1"), "P1 stays open with r1");
    // Closing r1 (not current) changes no view: nothing more; P1 goes with it.
    let e = ev(&h, "c1", "DiagnosticReport-close", vec![report("r1"), patient("p1")]);
    h.post(e).unwrap();
    assert!(to(&h.drain_acking(), &ehr).is_empty());
    assert_eq!(h.topic.state().open_contexts().count(), 0);
}

#[test]
fn req97_derived_open_is_replayed_to_late_subscribers() {
    let mut h = hub();
    let e = ev(&h, "d1", "ImagingStudy-open", vec![study("s1"), patient("p1")]);
    h.post(e).unwrap();
    let t = h.subscribe("Patient-open", "Late");
    h.topic.handle_connect(&t, h.now).unwrap();
    let msgs = to(&h.drain(), &t);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["event"]["hub.event"], "Patient-open");
    assert_eq!(msgs[1]["event"]["context"][0]["resource"]["id"], "p1");
}

#[test]
fn req98_a_derived_open_is_not_replayed_to_subscribers_of_its_source() {
    // Found by the simulator: a subscriber of both events got the derived Patient-open in its
    // replay, before the current DiagnosticReport-open; having answered that one before its
    // socket broke, it took it for a duplicate and stayed on the patient.
    let mut h = hub();
    let e = ev(&h, "d1", "DiagnosticReport-open", vec![report("r1"), patient("p1")]);
    h.post(e).unwrap();
    let t = h.subscribe("Patient-open,DiagnosticReport-open", "Both");
    h.topic.handle_connect(&t, h.now).unwrap();
    let msgs = to(&h.drain(), &t);
    let names: Vec<&str> = msgs.iter().skip(1).filter_map(|m| m["event"]["hub.event"].as_str()).collect();
    assert_eq!(names, vec!["DiagnosticReport-open"], "as live: the source only (req 98)");
    assert_eq!(msgs[1]["id"], "d1");
}

#[test]
fn user_logout_clears_every_context_and_home_open_clears_the_current_one() {
    let mut h = hub();
    open_patient(&mut h, "e1", "p1");
    let e = ev(&h, "h1", "Home-open", vec![]);
    h.post(e).unwrap();
    assert!(h.topic.state().current().is_none());
    assert_eq!(h.topic.state().open_contexts().count(), 1);
    open_patient(&mut h, "e2", "p2");
    let logout = ev(
        &h,
        "l1",
        "UserLogout",
        vec![
            json!({"key":"parameters","resource":{"resourceType":"Parameters","parameter":[{"name":"code","valueCoding":{"code":"user-initiated"}}]}}),
        ],
    );
    h.post(logout).unwrap();
    assert_eq!(h.topic.state().open_contexts().count(), 0);
    assert!(h.topic.state().current().is_none());
}

#[test]
fn state_round_trips_through_json_and_the_restored_topic_behaves_the_same() {
    let mut h = hub();
    let a = h.join("Patient-open,DiagnosticReport-update,SyncError", "A");
    let v1 = open_report(&mut h, "e1", "r1", "p1").version_id.unwrap();
    let u = update(&h, "u1", "r1", &v1, json!([obs_put("o1")]));
    h.post(u).unwrap();
    open_patient(&mut h, "e2", "p2");
    h.drain();
    let json = serde_json::to_string(h.topic.state()).unwrap();
    let restored = Topic::restore(serde_json::from_str(&json).unwrap(), HubConfig::default());
    assert_eq!(restored.state(), h.topic.state());
    // The same state stored in rows (what the Durable Object does) reads back equal.
    let mut store = crate::hub::store::MemoryStore::default();
    let w = h.topic.take_writes(crate::hub::store::WriteScope::All);
    store.apply(&w, crate::hub::store::ROW_LIMIT_BYTES).unwrap();
    let meta = h.topic.state().meta_row();
    assert!(!meta.contains(&a), "the meta row holds no subscription");
    assert!(!meta.contains("\"u1\""), "nor the recent request ids");
    assert!(!meta.contains("\"o1\""), "nor content");
    assert_eq!(store.recent.len(), 3);
    assert_eq!(&store.load().unwrap().unwrap(), h.topic.state());
    // A topic stored by the two earlier layouts reads back equal, every row marked: its next
    // write puts it in today's rows whole.
    let whole = serde_json::to_value(h.topic.state()).unwrap();
    let mut legacy_meta = whole.clone();
    let subs = legacy_meta.as_object_mut().unwrap().remove("subscriptions").unwrap();
    legacy_meta.as_object_mut().unwrap().remove("recent_ids");
    let recent: Vec<(String, String)> =
        h.topic.state().recent_ids().map(|(i, f)| (i.to_owned(), f.to_owned())).collect();
    let from_parts = TopicState::from_legacy_parts(&legacy_meta.to_string(), &subs.to_string(), recent).unwrap();
    let from_one_row: TopicState = serde_json::from_value(whole).unwrap();
    for mut legacy in [from_parts, from_one_row] {
        assert_eq!(&legacy, h.topic.state());
        legacy.mark_all();
        let mut t = Topic::restore(legacy, HubConfig::default());
        let migrated = crate::hub::store::MemoryStore::default().evict(&mut t).unwrap();
        assert_eq!(migrated.state(), h.topic.state(), "migrated to rows, whole");
    }
    assert_eq!(restored.poll_timeout(), h.topic.poll_timeout());
    assert_eq!(restored.current_context(&Auth::open()), h.topic.current_context(&Auth::open()));
    // Pending acks and their deadlines survived: A never answered, so 10 s on it is dropped.
    let mut h2 = H { topic: restored, now: h.now, n: 100 };
    h2.tick(Duration::from_secs(10));
    let out = h2.drain();
    assert_eq!(to(&out, &a).last().unwrap()["hub.mode"], "denied");
    assert_eq!(closes(&out, &a), vec![1000]);
}

#[test]
fn req133_heartbeat_only_when_enabled_and_only_while_connected() {
    let mut h = hub();
    h.join("Patient-open", "A");
    h.drain();
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(3600))), "lease only: no heartbeat in STU3");
    let mut h = hub_with(HubConfig { heartbeat: Some(Duration::from_secs(10)), ..HubConfig::default() });
    let a = h.join("Patient-open", "A");
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(10))));
    h.tick(Duration::from_secs(10));
    let msgs = to(&h.drain(), &a);
    assert_eq!(msgs[0]["event"]["hub.event"], "heartbeat");
    assert_eq!(msgs[0]["event"]["context"][0]["decimal"], 10.0);
    h.topic.handle_close(&a, 1000, h.now);
    h.tick(Duration::from_secs(10));
    assert!(h.drain().is_empty());
    assert_eq!(h.topic.poll_timeout(), None, "idle: no alarm");
}

#[test]
fn endpoint_tokens_are_read_from_urls() {
    assert_eq!(endpoint_token("wss://h/api/hub/ws/T1/abcDEF123\n"), Some("abcDEF123"));
    assert_eq!(endpoint_token("wss://h/api/hub/ws/T1/abc?x=1"), Some("abc"));
    assert_eq!(endpoint_token("abc"), Some("abc"));
    assert_eq!(endpoint_token("wss://h/a/b%2F"), None);
    assert_eq!(endpoint_token(""), None);
}

#[test]
fn roster_lists_subscribers_their_pending_and_last_answers_without_endpoints() {
    let mut h = hub();
    let ehr = h.join("Patient-open,SyncError", "EHR");
    let viewer = h.join("Patient-open,Patient-close", "Viewer");
    let waiting = h.subscribe("Patient-open", "Late");
    open_patient(&mut h, "e1", "p1");
    let out = h.drain();
    // The EHR follows, the viewer has not answered yet.
    h.topic.handle_ack(&ehr, &Ack { id: "e1".into(), status: 200 }, h.now);
    let r = h.topic.roster(&Auth::open()).unwrap();
    assert_eq!(r.topic, T);
    let names: Vec<_> = r.subscribers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["EHR", "Viewer", "Late"]);
    assert!(r.subscribers[0].connected && r.subscribers[1].connected && !r.subscribers[2].connected);
    assert_eq!(r.subscribers[0].last_answer.as_ref().unwrap().status, Some(200));
    assert_eq!(r.subscribers[1].awaiting.len(), 1);
    assert_eq!(r.subscribers[1].awaiting[0].id, "e1");
    assert!(r.subscribers[1].last_answer.is_none());
    // The viewer refuses: it is no longer awaited, and its answer is the 409.
    assert_eq!(to(&out, &viewer).len(), 1);
    h.topic.handle_ack(&viewer, &Ack { id: "e1".into(), status: 409 }, h.now);
    let r = h.topic.roster(&Auth::open()).unwrap();
    assert!(r.subscribers[1].awaiting.is_empty());
    let last = r.subscribers[1].last_answer.as_ref().unwrap();
    assert_eq!((last.id.as_str(), last.event.as_str(), last.status), ("e1", "Patient-open", Some(409)));
    // req 22: the endpoint tokens never appear.
    let text = serde_json::to_string(&r).unwrap();
    for t in [&ehr, &viewer, &waiting] {
        assert!(!text.contains(t.as_str()), "{text}");
    }
    assert!(text.contains(r#""lastAnswer":{"id":"e1","event":"Patient-open","status":409}"#), "{text}");
}

#[test]
fn roster_needs_a_token_for_this_topic_that_may_read_sync_errors() {
    let h = hub();
    let other = Auth { topic: Some("T2".into()), ..Auth::open() };
    assert!(matches!(h.topic.roster(&other), Err(ContextError::TopicNotAllowed { .. })));
    let no_sync = Auth { scopes: Some(Scopes::parse("fhircast/Patient-open.read")), ..Auth::open() };
    assert!(matches!(h.topic.roster(&no_sync), Err(ContextError::RosterNeedsSyncErrorRead)));
    let ok = Auth { scopes: Some(Scopes::parse("fhircast/SyncError.read")), topic: Some(T.into()), ..Auth::open() };
    assert!(h.topic.roster(&ok).unwrap().subscribers.is_empty());
}

#[test]
fn state_stored_before_the_roster_existed_still_loads() {
    let mut h = hub();
    h.join("Patient-open", "A");
    open_patient(&mut h, "e1", "p1");
    h.drain_acking();
    let mut v = serde_json::to_value(h.topic.state()).unwrap();
    for s in v["subscriptions"].as_object_mut().unwrap().values_mut() {
        assert!(s.as_object_mut().unwrap().remove("last_answer").is_some());
    }
    let state: TopicState = serde_json::from_value(v).unwrap();
    assert_eq!(Topic::restore(state, HubConfig::default()).roster(&Auth::open()).unwrap().subscribers.len(), 1);
}

// Issue 17: the timeline's facts.

fn recording() -> H {
    hub_with(HubConfig { record: true, ack_timeout: Duration::from_secs(10), ..HubConfig::default() })
}

/// The facts taken, as JSON with `at` removed (the scripted session's times are checked apart).
fn facts(h: &mut H) -> Vec<Value> {
    h.topic
        .take_facts()
        .into_iter()
        .map(|f| {
            let mut v = serde_json::to_value(&f).unwrap();
            v.as_object_mut().unwrap().remove("at");
            v
        })
        .collect()
}

#[test]
fn issue17_a_scripted_session_records_exactly_its_facts_in_order() {
    let mut h = recording();
    let viewer = h.join("Patient-open,Patient-close", "Viewer");
    let ehr = h.join("Patient-open,SyncError", "EHR");
    assert_eq!(
        facts(&mut h),
        vec![
            json!({"fact":"subscribed","subscriber":"Viewer","events":["Patient-open","Patient-close"],"leaseSeconds":3600,"renewed":false}),
            json!({"fact":"connected","subscriber":"Viewer"}),
            json!({"fact":"subscribed","subscriber":"EHR","events":["Patient-open","SyncError"],"leaseSeconds":3600,"renewed":false}),
            json!({"fact":"connected","subscriber":"EHR"}),
        ]
    );
    let auth = Auth { subject: Some("dr-who".into()), client: Some("ehr-app".into()), ..Auth::open() };
    let e = Event::parse_envelope(&ev(&h, "e1", "Patient-open", vec![patient("p1")]).to_string()).unwrap();
    h.topic.handle_event(e, &auth, h.now).unwrap();
    h.drain();
    h.now = h.now.add(Duration::from_millis(40));
    h.topic.handle_ack(&ehr, &Ack { id: "e1".into(), status: 200 }, h.now);
    h.now = h.now.add(Duration::from_millis(60));
    h.topic.handle_ack(&viewer, &Ack { id: "e1".into(), status: 409 }, h.now);
    let sync_id = match &to(&h.drain(), &ehr)[..] {
        [s] => s["id"].as_str().unwrap().to_owned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        facts(&mut h),
        vec![
            json!({"fact":"event","id":"e1","event":"Patient-open","anchor":"Patient/p1","versionId":"h-3","by":{"subject":"dr-who","client":"ehr-app"}}),
            json!({"fact":"notified","id":"e1","event":"Patient-open","to":["Viewer","EHR"]}),
            json!({"fact":"answered","subscriber":"EHR","id":"e1","event":"Patient-open","status":200,"latencyMs":40}),
            json!({"fact":"answered","subscriber":"Viewer","id":"e1","event":"Patient-open","status":409,"latencyMs":100}),
            json!({"fact":"syncError","id":sync_id,"aboutId":"e1","aboutEvent":"Patient-open","subscriber":"Viewer","source":"hub","cause":"refused","diagnostics":"Viewer refused to follow Patient-open (409 Conflict)"}),
            json!({"fact":"notified","id":sync_id,"event":"SyncError","to":["EHR"]}),
        ]
    );
    // A refused event: recorded with its status and reason, nothing else.
    let stale = json!({"timestamp": "2020-01-01T00:00:00Z", "id": "e2", "event": {"hub.topic": T, "hub.event": "Patient-open", "context": [patient("p2")]}});
    assert_eq!(h.post(stale).unwrap_err().http_status(), 409);
    let refused = facts(&mut h);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["fact"], "eventRefused");
    assert_eq!(refused[0]["status"], 409);
    assert!(refused[0]["reason"].as_str().unwrap().contains("earlier than"), "{refused:?}");
    // The EHR leaves the SyncError unanswered: a timeout, then its subscription ends.
    h.tick(Duration::from_secs(11));
    let late = facts(&mut h);
    assert_eq!(late[0], json!({"fact":"timedOut","subscriber":"EHR","id":sync_id,"event":"SyncError"}));
    assert_eq!(late[1]["fact"], "unsubscribed");
    assert_eq!(late[1]["subscriber"], "EHR");
    assert!(late[1]["reason"].as_str().unwrap().starts_with("unresponsive"), "{late:?}");
    // The others are told it stopped following: a SyncError whose cause is "unresponsive".
    assert_eq!(
        (late[2]["fact"].as_str(), late[2]["cause"].as_str()),
        (Some("syncError"), Some("unresponsive")),
        "{late:?}"
    );
    // The viewer closes its socket; a new subscription never connects.
    h.topic.handle_close(&viewer, 1001, h.now);
    h.subscribe("Patient-open", "Ghost");
    h.tick(Duration::from_secs(61));
    let end = facts(&mut h);
    assert_eq!(end[0], json!({"fact":"closed","subscriber":"Viewer","code":1001}));
    assert_eq!(end.len(), 3, "a 1001 close raises no SyncError: {end:?}");
    assert_eq!(end[1]["fact"], "subscribed");
    assert_eq!(end[2], json!({"fact":"unsubscribed","subscriber":"Ghost","reason":"never connected"}));
}

#[test]
fn issue17_facts_name_anchors_never_resource_bodies_nor_an_apps_sync_error_text() {
    let mut h = recording();
    let t = h.join("Patient-open,DiagnosticReport-open,DiagnosticReport-update,SyncError", "Reporter");
    let marked = "Zzyzx-MARKED-Name";
    let pat = json!({"key":"patient","resource":{"resourceType":"Patient","id":"p9","name":[{"family":marked}]}});
    let report = json!({"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r9","status":"preliminary","conclusion":marked}});
    let acc = h.post(ev(&h, "o1", "DiagnosticReport-open", vec![report, pat])).unwrap();
    h.drain_acking();
    let bundle = json!({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Observation/ob1"},"resource":{"resourceType":"Observation","id":"ob1","status":"final","code":{"text":marked}}}]});
    let mut up = ev(
        &h,
        "u1",
        "DiagnosticReport-update",
        vec![
            json!({"key":"report","reference":{"reference":"DiagnosticReport/r9"}}),
            json!({"key":"updates","resource":bundle}),
        ],
    );
    up["event"]["context.versionId"] = json!(acc.version_id.unwrap());
    h.post(up).unwrap();
    h.drain_acking();
    // A refused event quoting the name, and an app's SyncError whose text names the patient.
    let bad = json!({"key":"patient","resource":{"resourceType":"Patient","id":"p9","name":[{"family":marked}]}});
    let mut refused = ev(&h, "o2", "Patient-open", vec![bad]);
    refused["timestamp"] = json!("2020-01-01T00:00:00Z");
    assert!(h.post(refused).is_err());
    let outcome = json!({"key":"operationoutcome","resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","diagnostics":format!("cannot show {marked}")}]}});
    let mut se = ev(&h, "s1", "SyncError", vec![outcome]);
    se["event"]["context"][0]["resource"]["issue"][0]["details"] = json!({"coding":[{"system":crate::syncerror::EVENT_ID_SYSTEM,"code":"o1"},{"system":crate::syncerror::EVENT_NAME_SYSTEM,"code":"DiagnosticReport-open"},{"system":crate::syncerror::SUBSCRIBER_NAME_SYSTEM,"code":"Reporter"}]});
    let _ = h.post(se);
    h.drain_acking();
    let _ = t;
    let text = serde_json::to_string(&h.topic.take_facts()).unwrap();
    for shown in ["DiagnosticReport/r9", "\"eventRefused\"", "\"source\":\"subscriber\"", "\"aboutId\":\"o1\""] {
        assert!(text.contains(shown), "{shown} missing: {text}");
    }
    assert!(!text.contains("MARKED"), "a fact carries resource content: {text}");
}

#[test]
fn issue17_nothing_is_collected_when_recording_is_off() {
    let mut h = hub();
    h.join("Patient-open", "Viewer");
    open_patient(&mut h, "e1", "p1");
    h.drain_acking();
    assert!(h.topic.take_facts().is_empty());
}
