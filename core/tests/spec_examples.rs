//! Every JSON example of the spec (`tests/spec-examples/`, copied from the pages of
//! HL7/fhircast-docs) run through the core, and where it makes sense through a [`Topic`].
//! `spec_examples_b.rs` additionally covers the SyncError OperationOutcome and the update
//! Bundles in depth.
//!
//! | file | what it is | verdict |
//! |---|---|---|
//! | `2-4-Subscribing__0` | WS subscription confirmation | accepted as `wire::Confirmation`; the Hub's own confirmation for the same request is identical |
//! | `2-4-Subscribing__1` | WS subscription denial | accepted as `wire::Denial`; its topic `fba7b1e2-…-2af57ab4e2c` is one hex digit short of a UUID (harmless: topics are opaque) |
//! | `2-4-Subscribing__2` | `202` body of (un)subscribe | accepted as `wire::SubscribeResponse`; `endpoint_token` reads the last path segment |
//! | `2-5-ReceiveEventNotification__0` | Patient-open notification | accepted (no zone: read as UTC, §5a-23); its identifier coding has `value` where FHIR has `code` (not checked, req 114) |
//! | `2-5-ReceiveEventNotification__1` | ack `{"id","status":"200"}` | accepted by `wire::Ack::parse`, status 200 (req 74); settles the notification above in a Hub |
//! | `2-8-Extensions__0` | a bare `context` fragment | not an event (no envelope: `Event::parse` says no `timestamp`); inside a Patient-open envelope it is accepted (req 69) |
//! | `2-9-GetCurrentContext__1` | empty GET current context | accepted as `wire::CurrentContext`, equal to `CurrentContext::empty()` and to a fresh Hub's answer (req 103) |
//! | `3-1-1-template__0` | event template with placeholders | rejected: `Patient-open does not define the context key "key-from-above"` (req 64); its envelope alone parses |
//! | `3-2-1-SyncError__0` | SyncError (`hub.event` `syncerror`) | accepted; forwarded by a Hub to subscribers of SyncError only (req 84, 88). Its eventid coding holds the *topic* id |
//! | `3-2-2-UserLogout__0` | UserLogout (`userLogout`) | accepted; a Hub clears every context |
//! | `3-2-3-UserHibernate__0` | UserHibernate (`userHibernate`) | accepted; broadcast |
//! | `3-2-5-Home-open__0` | Home-open (`home-open`) | accepted; a Hub clears the current context. It shares its `id` with the two above, so one Hub refuses the second of them (409, req 139) |
//! | `3-3-1-Patient-open__0` | Patient-open | rejected: timestamp `2023-04-01T010:38:04.16`, "the hour must be two digits"; corrected to `T10:` accepted |
//! | `3-3-2-Patient-close__0` | Patient-close | rejected: same wart (`T010:50:22.16`); corrected accepted; closes the open above (same Patient id) |
//! | `3-4-1-Encounter-open__0` | Encounter-open | rejected: same wart; corrected accepted |
//! | `3-4-2-Encounter-close__0` | Encounter-close | rejected: same wart; corrected accepted; same ids as the open |
//! | `3-5-1-ImagingStudy-open__0` | ImagingStudy-open | rejected: same wart (`T011:`); corrected accepted |
//! | `3-5-2-ImagingStudy-close__0` | ImagingStudy-close | rejected: same wart; corrected accepted; same ids as the open |
//! | `3-5-2-ImagingStudy-close__1` | ImagingStudy-close, accession in `basedOn` | rejected: same wart; corrected accepted. Same id, timestamp and anchor as `__0`, so a Hub takes it as a retry (duplicate, nothing re-sent) |
//! | `3-6-1-DiagnosticReport-open__0` | DiagnosticReport-open | rejected: same wart; corrected accepted. Its report uses R5's `study` element (R4: `imagingStudy`; not checked) |
//! | `3-6-2-DiagnosticReport-close__0` | DiagnosticReport-close | rejected: same wart; corrected accepted; same ids as the open |
//! | `3-6-3-DiagnosticReport-update__0` | update request | accepted; a Hub refuses its `context.versionId` (409: not a version it minted) and accepts it with the Hub's version |
//! | `3-6-3-DiagnosticReport-update__1` | the Hub's broadcast of it | accepted; same id and Bundle as the request, plus `context.priorVersionId`: the shape a Hub sends |
//! | `3-6-3-DiagnosticReport-update__2` | update with a DELETE | accepted; applied after `__0` it removes the Observation |
//! | `3-6-4-DiagnosticReport-select__0` | select, two `select` entries | accepted; forwarded for the current report |
//! | `4-1-launch-scenarios__0` | SMART token response | not an event; carries `hub.url` and `hub.topic` (req 7); its `scope` has no `fhircast/` scope, which req 7 requires |
//!
//! Every open and close example's timestamp is the only thing wrong with it: with the hour
//! corrected, each passes `Event::parse` and a Hub accepts the whole story in order.

use std::path::PathBuf;
use std::time::Duration;

use fhircast_core::hub::{endpoint_token, Auth, EventRejected, HubConfig, Outbound, Topic};
use fhircast_core::scope::Scopes;
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::time::Timestamp;
use fhircast_core::wire::{Ack, Confirmation, CurrentContext, Denial, SubscribeResponse};
use fhircast_core::{Event, EventError, EventKind, ResourceKey};
use serde_json::{json, Value};

const TOPIC: &str = "fdb2f928-5546-4f52-87a0-0648e9ded065";
const PATIENT: &str = "503824b8-fe8c-4227-b061-7181ba6c3926";
const ENCOUNTER: &str = "8cc652ba-770e-4ae1-b688-6e8e7c737438";
const STUDY: &str = "e25c1d31-20a2-41f8-8d85-fe2fdeac74fd";
const REPORT: &str = "2402d3bd-e988-414b-b7f2-4322e86c9327";

/// What each file is, and what the core makes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An event `Event::parse` accepts as it is.
    Event,
    /// An event rejected only for the three-digit hour of its timestamp.
    EventBadHour,
    /// An event template rejected for its placeholder context key.
    Template,
    Confirmation,
    Denial,
    SubscribeResponse,
    Ack,
    CurrentContext,
    ContextFragment,
    SmartTokenResponse,
}

const EXAMPLES: &[(&str, Kind)] = &[
    ("2-4-Subscribing__0.json", Kind::Confirmation),
    ("2-4-Subscribing__1.json", Kind::Denial),
    ("2-4-Subscribing__2.json", Kind::SubscribeResponse),
    ("2-5-ReceiveEventNotification__0.json", Kind::Event),
    ("2-5-ReceiveEventNotification__1.json", Kind::Ack),
    ("2-8-Extensions__0.json", Kind::ContextFragment),
    ("2-9-GetCurrentContext__1.json", Kind::CurrentContext),
    ("3-1-1-template__0.json", Kind::Template),
    ("3-2-1-SyncError__0.json", Kind::Event),
    ("3-2-2-UserLogout__0.json", Kind::Event),
    ("3-2-3-UserHibernate__0.json", Kind::Event),
    ("3-2-5-Home-open__0.json", Kind::Event),
    ("3-3-1-Patient-open__0.json", Kind::EventBadHour),
    ("3-3-2-Patient-close__0.json", Kind::EventBadHour),
    ("3-4-1-Encounter-open__0.json", Kind::EventBadHour),
    ("3-4-2-Encounter-close__0.json", Kind::EventBadHour),
    ("3-5-1-ImagingStudy-open__0.json", Kind::EventBadHour),
    ("3-5-2-ImagingStudy-close__0.json", Kind::EventBadHour),
    ("3-5-2-ImagingStudy-close__1.json", Kind::EventBadHour),
    ("3-6-1-DiagnosticReport-open__0.json", Kind::EventBadHour),
    ("3-6-2-DiagnosticReport-close__0.json", Kind::EventBadHour),
    ("3-6-3-DiagnosticReport-update__0.json", Kind::Event),
    ("3-6-3-DiagnosticReport-update__1.json", Kind::Event),
    ("3-6-3-DiagnosticReport-update__2.json", Kind::Event),
    ("3-6-4-DiagnosticReport-select__0.json", Kind::Event),
    ("4-1-launch-scenarios__0.json", Kind::SmartTokenResponse),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/spec-examples")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn value(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The example with its three-digit hour (`T010:`, `T011:`) corrected to two digits.
fn corrected(name: &str) -> String {
    let text = read(name);
    let fixed = text.replacen("T010:", "T10:", 1).replacen("T011:", "T11:", 1);
    assert_ne!(fixed, text, "{name} has no three-digit hour to correct");
    fixed
}

/// The example as a Hub reads it: corrected when it needs to be.
fn event_text(name: &str) -> String {
    match EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k) {
        Some(Kind::EventBadHour) => corrected(name),
        Some(Kind::Event) => read(name),
        other => panic!("{name} is not an event: {other:?}"),
    }
}

fn parse(name: &str) -> Event {
    Event::parse(&event_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

// ---------------------------------------------------------------------------------------
// A small driver for a Topic.

struct Hub {
    topic: Topic,
    now: Timestamp,
    n: u32,
}

impl Hub {
    fn new(topic: &str) -> Hub {
        Hub {
            topic: Topic::new(topic, "h", HubConfig::default()),
            now: Timestamp::parse("2025-06-01T12:00:00Z").unwrap(),
            n: 0,
        }
    }

    fn subscribe_form(&mut self, form: &str) -> String {
        self.n += 1;
        let token = format!("tok{}", self.n);
        let req = SubscriptionRequest::from_form(form).unwrap();
        self.topic.handle_subscription(&req, &Auth::open(), &token, self.now).unwrap();
        token
    }

    /// Subscribes and connects; returns the token and what was sent on connecting.
    fn join(&mut self, events: &str) -> (String, Vec<Value>) {
        let topic = self.topic.topic().to_owned();
        let t = self.subscribe_form(&format!(
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={topic}&hub.events={events}"
        ));
        self.topic.handle_connect(&t, self.now).unwrap();
        let out = self.drain();
        let msgs = to(&out, &t);
        (t, msgs)
    }

    fn drain(&mut self) -> Vec<Outbound> {
        std::iter::from_fn(|| self.topic.poll_outbound()).collect()
    }

    /// Drains and answers every notification with 200.
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

    fn post_text(&mut self, text: &str) -> Result<fhircast_core::hub::EventAccepted, EventRejected> {
        let e = Event::parse_envelope(text).unwrap();
        self.topic.handle_event(e, &Auth::open(), self.now)
    }

    fn post(&mut self, name: &str) -> Result<fhircast_core::hub::EventAccepted, EventRejected> {
        self.post_text(&event_text(name))
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

/// The example's JSON with `context.versionId` replaced.
fn with_version(name: &str, version: &str) -> String {
    let mut v = value(name);
    v["event"]["context.versionId"] = json!(version);
    v.to_string()
}

// ---------------------------------------------------------------------------------------
// The folder and the table agree.

#[test]
fn every_spec_example_is_classified() {
    let mut files: Vec<String> =
        std::fs::read_dir(dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    let listed: Vec<String> = EXAMPLES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(files, listed, "a spec example was added or removed: classify it in EXAMPLES and the table");
}

#[test]
fn req59_every_example_gets_its_documented_verdict() {
    for &(name, kind) in EXAMPLES {
        let text = read(name);
        let parsed = Event::parse(&text);
        match kind {
            Kind::Event => {
                parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            Kind::EventBadHour => {
                let e = parsed.unwrap_err();
                assert!(matches!(e, EventError::Timestamp(_)), "{name}: {e}");
                assert!(e.to_string().contains("hour must be two digits"), "{name}: {e}");
                // Nothing else is wrong with it.
                Event::parse(&corrected(name)).unwrap_or_else(|e| panic!("{name} corrected: {e}"));
            }
            Kind::Template => {
                let e = parsed.unwrap_err();
                assert!(
                    matches!(e, EventError::UnexpectedKey { ref key, .. } if key == "key-from-above"),
                    "{name}: {e}"
                );
            }
            _ => {
                // Not an event: it has no envelope at all.
                assert!(value(name).get("event").is_none(), "{name}");
                assert_eq!(parsed.unwrap_err(), EventError::MissingField("timestamp"), "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// [2-4] Subscribing.

#[test]
fn req43_spec_confirmation_example_is_what_the_hub_sends() {
    let c: Confirmation = serde_json::from_str(&read("2-4-Subscribing__0.json")).unwrap();
    assert_eq!(
        c,
        Confirmation {
            mode: "subscribe".into(),
            topic: TOPIC.into(),
            events: "Patient-open,Patient-close".into(),
            lease_seconds: 7200,
        }
    );
    let mut h = Hub::new(TOPIC);
    let t = h.subscribe_form(&format!(
        "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={TOPIC}&hub.events=patient-open,Patient-close&hub.lease_seconds=7200"
    ));
    h.topic.handle_connect(&t, h.now).unwrap();
    assert_eq!(to(&h.drain(), &t), vec![value("2-4-Subscribing__0.json")]);
}

#[test]
fn req47_spec_denial_example_has_the_shape_the_hub_sends() {
    let d: Denial = serde_json::from_str(&read("2-4-Subscribing__1.json")).unwrap();
    assert_eq!(d.mode, "denied");
    assert_eq!(d.events, "Patient-open,Patient-close");
    assert_eq!(d.reason.as_deref(), Some("session unexpectedly stopped"));
    // A wart: the topic is one hex digit short of a UUID. Topics are opaque; it is read as is.
    assert_eq!(d.topic.len(), 35);
    // The Hub's own denial on unsubscribe has exactly the same fields.
    let mut h = Hub::new(&d.topic);
    let (t, _) = h.join("Patient-open,Patient-close");
    let topic = d.topic.clone();
    h.subscribe_form(&format!(
        "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic={topic}&hub.channel.endpoint=wss%3A%2F%2Fhub.example.com%2F{t}%0A"
    ));
    let sent = to(&h.drain(), &t);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&sent[0]), keys(&value("2-4-Subscribing__1.json")));
    assert_eq!(sent[0]["hub.events"], "Patient-open,Patient-close");
}

#[test]
fn req40_spec_202_body_example() {
    let r: SubscribeResponse = serde_json::from_str(&read("2-4-Subscribing__2.json")).unwrap();
    assert_eq!(r.endpoint, "wss://hub.example.com/ee30d3b9-1558-464f-a299-cbad6f8135de");
    assert_eq!(endpoint_token(&r.endpoint), Some("ee30d3b9-1558-464f-a299-cbad6f8135de"));
    assert_eq!(serde_json::to_value(&r).unwrap(), value("2-4-Subscribing__2.json"));
}

// ---------------------------------------------------------------------------------------
// [2-5] Notification and its ack.

#[test]
fn req70_req74_spec_notification_and_string_status_ack_settle_in_a_hub() {
    let e = parse("2-5-ReceiveEventNotification__0.json");
    assert_eq!(e.timestamp, Timestamp::parse("2018-01-08T01:37:05.14Z").unwrap(), "no zone: UTC (§5a-23)");
    assert_eq!(e.anchor(), Some(ResourceKey::new("Patient", "ewUbXT9RWEbSj5wPEdgRaBw3")));
    let ack = Ack::parse(&read("2-5-ReceiveEventNotification__1.json")).unwrap();
    assert_eq!(ack, Ack { id: "q9v3jubddqt63n1".into(), status: 200 });
    assert!(ack.is_success());

    let mut h = Hub::new(TOPIC);
    let (a, _) = h.join("Patient-open,SyncError");
    let (b, _) = h.join("Patient-open,SyncError");
    h.post("2-5-ReceiveEventNotification__0.json").unwrap();
    let out = h.drain();
    assert_eq!(to(&out, &a)[0]["id"], "q9v3jubddqt63n1", "req 80: the request's id");
    h.topic.handle_message(&a, &read("2-5-ReceiveEventNotification__1.json"), h.now).unwrap();
    h.topic.handle_message(&b, &read("2-5-ReceiveEventNotification__1.json"), h.now).unwrap();
    assert!(h.drain().is_empty(), "a \"200\" ack raises nothing");
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(3600))), "no ack is pending");
}

// ---------------------------------------------------------------------------------------
// [2-8] Extensions, [2-9] GET current context, [3-1-1] template, [4-1] launch.

#[test]
fn req69_spec_extension_fragment_is_accepted_inside_an_envelope() {
    let fragment = value("2-8-Extensions__0.json");
    let wrapped = json!({"timestamp":"2025-01-01T10:00:00Z","id":"x1","event":{
        "hub.topic": TOPIC, "hub.event": "Patient-open", "context": fragment["context"]}});
    let e = Event::parse(&wrapped.to_string()).unwrap();
    let ext = e.entries("extension").next().unwrap();
    assert_eq!(ext.value.get(), r#"{"user-timezone":"+1:00"}"#.replace(' ', ""));
    // A Hub passes it on untouched.
    let mut h = Hub::new(TOPIC);
    let (a, _) = h.join("Patient-open");
    h.post_text(&wrapped.to_string()).unwrap();
    assert_eq!(to(&h.drain(), &a)[0]["event"]["context"][1], fragment["context"][1]);
}

#[test]
fn req103_spec_empty_current_context_example_is_what_a_fresh_hub_returns() {
    let c: CurrentContext = serde_json::from_str(&read("2-9-GetCurrentContext__1.json")).unwrap();
    assert_eq!(c, CurrentContext::empty());
    let h = Hub::new(TOPIC);
    let answer = h.topic.current_context(&Auth::open()).unwrap();
    assert_eq!(serde_json::to_value(&answer).unwrap(), value("2-9-GetCurrentContext__1.json"));
}

#[test]
fn req64_spec_template_is_refused_for_its_placeholder_key() {
    let text = read("3-1-1-template__0.json");
    let env = Event::parse_envelope(&text).unwrap();
    assert_eq!(env.context.len(), 2, "the envelope itself is well formed");
    let e = Event::parse(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Patient-open does not define the context key \"key-from-above\"; allowed keys: patient, extension (req 64)"
    );
    let mut h = Hub::new(TOPIC);
    assert_eq!(h.post_text(&text).unwrap_err().http_status(), 400);
}

#[test]
fn req7_spec_smart_token_response_carries_hub_url_and_topic() {
    let v = value("4-1-launch-scenarios__0.json");
    assert_eq!(v["hub.url"], "https://hub.example.com");
    assert_eq!(v["hub.topic"], TOPIC, "the same session as the event examples");
    assert_eq!(
        fhircast_core::wellknown::well_known_url(v["hub.url"].as_str().unwrap()),
        "https://hub.example.com/.well-known/fhircast-configuration"
    );
    // A wart: req 7 says the app SHALL request fhircast/ scopes; this response grants none.
    assert!(Scopes::parse(v["scope"].as_str().unwrap()).is_empty());
}

// ---------------------------------------------------------------------------------------
// [3-2] Infrastructure events.

#[test]
fn req88_spec_syncerror_example_is_forwarded_to_syncerror_subscribers_only() {
    let e = parse("3-2-1-SyncError__0.json");
    assert_eq!(e.name.kind(), EventKind::SyncError);
    let mut h = Hub::new(&e.topic);
    let (a, _) = h.join("SyncError,Patient-open");
    let (b, _) = h.join("Patient-open");
    h.post("3-2-1-SyncError__0.json").unwrap();
    let out = h.drain();
    let got = to(&out, &a);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], "q9v3jubddqt63n1");
    assert_eq!(got[0]["event"]["hub.event"], "SyncError", "sent in its canonical spelling");
    let sent_oo = &got[0]["event"]["context"][0]["resource"];
    assert_eq!(*sent_oo, value("3-2-1-SyncError__0.json")["event"]["context"][0]["resource"], "verbatim");
    assert!(to(&out, &b).is_empty());
}

#[test]
fn req128_spec_home_open_logout_and_hibernate_examples() {
    for (name, kind) in [
        ("3-2-2-UserLogout__0.json", EventKind::UserLogout),
        ("3-2-3-UserHibernate__0.json", EventKind::UserHibernate),
        ("3-2-5-Home-open__0.json", EventKind::HomeOpen),
    ] {
        let e = parse(name);
        assert_eq!(e.name.kind(), kind, "{name}");
        let mut h = Hub::new(TOPIC);
        let (a, _) = h.join(e.name.as_str());
        h.post(name).unwrap();
        assert_eq!(to(&h.drain(), &a)[0]["id"], e.id.as_str(), "{name}");
    }
}

#[test]
fn req139_spec_infrastructure_examples_share_one_id() {
    // UserLogout, UserHibernate and Home-open all use id 35d0b1d4-…: one Hub accepts the first
    // and refuses the others as a reused id (409), since they are different events.
    let ids: Vec<String> = ["3-2-2-UserLogout__0.json", "3-2-3-UserHibernate__0.json", "3-2-5-Home-open__0.json"]
        .iter()
        .map(|n| parse(n).id)
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]));
    let mut h = Hub::new(TOPIC);
    h.post("3-2-5-Home-open__0.json").unwrap();
    let e = h.post("3-2-2-UserLogout__0.json").unwrap_err();
    assert!(matches!(e, EventRejected::IdReused { .. }), "{e}");
    assert_eq!(e.http_status(), 409);
}

#[test]
fn user_logout_example_clears_the_contexts_home_open_example_clears_the_current_one() {
    // The 2019 examples precede the 2023 opens, so the opens here are re-stamped earlier.
    let open = |h: &mut Hub, id: &str| {
        let mut v: Value = serde_json::from_str(&corrected("3-3-1-Patient-open__0.json")).unwrap();
        v["timestamp"] = json!("2019-01-01T00:00:00Z");
        v["id"] = json!(id);
        h.post_text(&v.to_string()).unwrap();
    };
    let mut h = Hub::new(TOPIC);
    open(&mut h, "o1");
    h.post("3-2-5-Home-open__0.json").unwrap();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), CurrentContext::empty());
    assert_eq!(h.topic.state().open_contexts().count(), 1, "Home-open closes nothing");
    let mut h = Hub::new(TOPIC);
    open(&mut h, "o1");
    h.post("3-2-2-UserLogout__0.json").unwrap();
    assert_eq!(h.topic.state().open_contexts().count(), 0);
}

// ---------------------------------------------------------------------------------------
// [3-3..3-6] Open, close, update, select.

#[test]
fn req126_spec_patient_open_and_close_examples_match_by_id() {
    let open = parse("3-3-1-Patient-open__0.json");
    let close = parse("3-3-2-Patient-close__0.json");
    assert_eq!(open.anchor(), Some(ResourceKey::new("Patient", PATIENT)));
    assert_eq!(close.anchor(), open.anchor(), "the close names the open's Patient id");
    assert!(close.timestamp > open.timestamp);

    let mut h = Hub::new(TOPIC);
    let (a, _) = h.join("Patient-open,Patient-close");
    let v = h.post("3-3-1-Patient-open__0.json").unwrap().version_id.unwrap();
    let sent = to(&h.drain_acking(), &a);
    assert_eq!(sent[0]["id"], open.id.as_str());
    assert_eq!(sent[0]["timestamp"], "2023-04-01T10:38:04.160Z", "re-emitted strictly, with Z");
    assert_eq!(sent[0]["event"]["context.versionId"], v.as_str());
    assert_eq!(sent[0]["event"]["context"], value("3-3-1-Patient-open__0.json")["event"]["context"]);
    let cc = h.topic.current_context(&Auth::open()).unwrap();
    assert_eq!(cc.context_type, "Patient");
    assert_eq!(cc.context[0].resource_header().unwrap().id.as_deref(), Some(PATIENT));

    h.post("3-3-2-Patient-close__0.json").unwrap();
    assert_eq!(to(&h.drain_acking(), &a)[0]["id"], close.id.as_str());
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), CurrentContext::empty());
    assert_eq!(h.topic.state().open_contexts().count(), 0);
}

#[test]
fn req126_spec_close_examples_name_the_ids_of_their_opens() {
    for (open, closes) in [
        ("3-4-1-Encounter-open__0.json", &["3-4-2-Encounter-close__0.json"][..]),
        ("3-5-1-ImagingStudy-open__0.json", &["3-5-2-ImagingStudy-close__0.json", "3-5-2-ImagingStudy-close__1.json"]),
        ("3-6-1-DiagnosticReport-open__0.json", &["3-6-2-DiagnosticReport-close__0.json"]),
    ] {
        let o = parse(open);
        let ids = |e: &Event| -> Vec<(String, Option<String>)> {
            e.context
                .iter()
                .map(|c| {
                    let h = c.resource_header().unwrap();
                    (h.resource_type, h.id)
                })
                .collect()
        };
        for close in closes {
            let c = parse(close);
            assert_eq!(c.anchor(), o.anchor(), "{close}");
            assert_eq!(ids(&c), ids(&o), "{close}: every resource id matches the open");
        }
    }
}

/// The whole set of open/close/update/select examples, corrected, through one Hub in the order
/// of their timestamps: every one is accepted, or refused/deduplicated for a documented reason.
#[test]
fn spec_examples_story_through_one_hub() {
    let mut h = Hub::new(TOPIC);
    let (all, _) = h.join(
        "Patient-open,Patient-close,Encounter-open,Encounter-close,ImagingStudy-open,ImagingStudy-close,\
         DiagnosticReport-open,DiagnosticReport-close,DiagnosticReport-update,DiagnosticReport-select,SyncError",
    );
    let (ehr, _) = h.join("Patient-open,Patient-close");

    for name in ["3-3-1-Patient-open__0.json", "3-3-2-Patient-close__0.json"] {
        h.post(name).unwrap();
        let out = h.drain_acking();
        assert_eq!(to(&out, &all)[0]["id"], parse(name).id.as_str());
        assert_eq!(to(&out, &ehr)[0]["id"], parse(name).id.as_str());
    }

    // Encounter-open implies Patient-open for the EHR, which did not subscribe to encounters
    // (req 97); closing the encounter derives the Patient-close.
    h.post("3-4-1-Encounter-open__0.json").unwrap();
    let out = h.drain_acking();
    assert_eq!(to(&out, &all).len(), 1, "subscribers of the source get only the source (req 98)");
    let derived = to(&out, &ehr);
    assert_eq!(derived[0]["event"]["hub.event"], "Patient-open");
    assert_eq!(derived[0]["event"]["context"][0]["resource"]["id"], PATIENT);
    assert_eq!(h.topic.state().current(), Some(&ResourceKey::new("Encounter", ENCOUNTER)));
    h.post("3-4-2-Encounter-close__0.json").unwrap();
    assert_eq!(to(&h.drain_acking(), &ehr)[0]["event"]["hub.event"], "Patient-close");
    assert!(h.topic.state().current().is_none());

    h.post("3-5-1-ImagingStudy-open__0.json").unwrap();
    h.drain_acking();
    assert_eq!(h.topic.state().current(), Some(&ResourceKey::new("ImagingStudy", STUDY)));
    h.post("3-5-2-ImagingStudy-close__0.json").unwrap();
    h.drain_acking();
    // The second close variant has the same id, timestamp and anchor: a retry (req 139).
    let dup = h.post("3-5-2-ImagingStudy-close__1.json").unwrap();
    assert!(dup.duplicate);
    assert!(h.drain().is_empty());

    let v1 = h.post("3-6-1-DiagnosticReport-open__0.json").unwrap().version_id.unwrap();
    let out = h.drain_acking();
    assert_eq!(to(&out, &all)[0]["event"]["context.versionId"], v1.as_str(), "req 108");
    let report = ResourceKey::new("DiagnosticReport", REPORT);

    // The update as the spec writes it names a version this Hub never minted: 409 (req 109).
    let e = h.post("3-6-3-DiagnosticReport-update__0.json").unwrap_err();
    assert!(matches!(e, EventRejected::VersionMismatch { .. }), "{e}");
    assert_eq!(e.http_status(), 409);
    assert!(h.drain().is_empty());
    assert!(h.topic.state().content_of(&report).unwrap().is_empty());

    // With the Hub's version it is applied and broadcast in the shape of update__1.
    let v2 = h.post_text(&with_version("3-6-3-DiagnosticReport-update__0.json", &v1)).unwrap().version_id.unwrap();
    let out = h.drain_acking();
    let sent = &to(&out, &all)[0];
    let spec_broadcast = value("3-6-3-DiagnosticReport-update__1.json");
    assert_eq!(sent["id"], spec_broadcast["id"], "the request's id (req 80)");
    assert_eq!(sent["event"]["context.versionId"], v2.as_str());
    assert_eq!(sent["event"]["context.priorVersionId"], v1.as_str(), "req 110");
    assert_eq!(sent["event"]["context"], spec_broadcast["event"]["context"], "same Bundle (req 112)");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v["event"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(sent), keys(&spec_broadcast));
    assert_eq!(h.topic.state().content_of(&report).unwrap().len(), 3);

    // The broadcast example posted back is a retry of the request (same id, time, anchor).
    assert!(h.post("3-6-3-DiagnosticReport-update__1.json").unwrap().duplicate);

    // update__2 deletes the Observation and replaces the report.
    let v3 = h.post_text(&with_version("3-6-3-DiagnosticReport-update__2.json", &v2)).unwrap().version_id.unwrap();
    h.drain_acking();
    let content = h.topic.state().content_of(&report).unwrap();
    assert_eq!(content.len(), 2);
    assert!(content.get(&ResourceKey::new("Observation", "40afe766-3628-4ded-b5bd-925727c013b3")).is_none());

    h.post("3-6-4-DiagnosticReport-select__0.json").unwrap();
    let sel = to(&h.drain_acking(), &all);
    assert_eq!(sel[0]["event"]["context"], value("3-6-4-DiagnosticReport-select__0.json")["event"]["context"]);

    let cc = h.topic.current_context(&Auth::open()).unwrap();
    assert_eq!(cc.context_type, "DiagnosticReport");
    assert_eq!(cc.version_id.as_deref(), Some(v3.as_str()));
    assert_eq!(cc.context.len(), 4, "the open's three entries, exactly as sent (req 106), plus content");
    assert_eq!(
        serde_json::to_value(&cc.context[..3]).unwrap(),
        value("3-6-1-DiagnosticReport-open__0.json")["event"]["context"]
    );

    h.post("3-6-2-DiagnosticReport-close__0.json").unwrap();
    h.drain_acking();
    assert_eq!(h.topic.current_context(&Auth::open()).unwrap(), CurrentContext::empty());
    assert_eq!(h.topic.state().open_contexts().count(), 0, "derived Patient and study closed with it");
    assert!(h.topic.state().content_of(&report).is_none(), "content dropped (req 113)");
    assert_eq!(h.topic.poll_timeout(), Some(h.now.add(Duration::from_secs(3600))), "every notification answered");
}
