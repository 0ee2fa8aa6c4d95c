//! Targets for the core's parsers. Each one feeds text to a parser and, when it accepts,
//! checks that the core's own writer produces text the parser reads back identically: a
//! parser that accepts what its writer cannot reproduce (or the reverse) is a bug even when
//! nothing panics.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use fhircast_core::bundle::{Content, UpdateBundle};
use fhircast_core::follower::{Follower, FollowerConfig};
use fhircast_core::hub::endpoint_token;
use fhircast_core::scope::{Scope, Scopes};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::syncerror::SyncErrorDetails;
use fhircast_core::wire::{Ack, CurrentContext};
use fhircast_core::{Event, EventName, Timestamp};

use crate::gen::{self, pick, NAMES};

/// Valid (un)subscribe forms and JSON bodies, after the spec's examples (req 24-55).
fn subscription_templates() -> &'static [String] {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        [
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=T1&hub.events=Patient-open,Patient-close&hub.lease_seconds=3600&subscriber.name=App%20X",
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=T1&hub.events=patient-open%2CDiagnosticReport-update,SyncError",
            "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic=T1&hub.channel.endpoint=wss%3A%2F%2Fh%2Fapi%2Fhub%2Fws%2FT1%2Fabc%0A",
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=T1&hub.events=Patient-open&hub.channel.endpoint=wss://h/ws/T1/e1&hub.callback=x",
            r#"{"hub.channel.type":"websocket","hub.mode":"subscribe","hub.topic":"T1","hub.events":["Patient-open","SyncError"],"hub.lease_seconds":60,"subscriber.name":null}"#,
            r#"{"hub.channel.type":"websocket","hub.mode":"unsubscribe","hub.topic":"T1","hub.channel.endpoint":"wss://h/ws/T1/e1"}"#,
        ]
        .map(String::from)
        .to_vec()
    })
}

/// `SubscriptionRequest::from_form` and `from_json` (req 24-37, 50; neg 1-10).
pub fn subscription_form(u: &mut Unstructured<'_>) -> Result<()> {
    let body = gen::text(u, subscription_templates())?;
    for parsed in [SubscriptionRequest::from_form(&body), SubscriptionRequest::from_json(&body)] {
        match parsed {
            Ok(req) => {
                let again = SubscriptionRequest::from_form(&req.to_form());
                assert_eq!(again.as_ref(), Ok(&req), "to_form does not round-trip; input {body:?}");
            }
            Err(e) => {
                let status = e.http_status();
                assert!((400..500).contains(&status), "a bad form is a client error, got {status}: {e}");
                let _ = e.spec_ref();
            }
        }
    }
    Ok(())
}

fn event_templates() -> &'static [String] {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        let ev = |name: &str, extra: &str, context: &str| {
            format!(
                r#"{{"timestamp":"2026-01-01T10:00:00.5Z","id":"e-1","event":{{"hub.topic":"T1","hub.event":"{name}"{extra},"context":{context}}}}}"#
            )
        };
        let patient = r#"{"key":"patient","resource":{"resourceType":"Patient","id":"p1","identifier":[{"value":"1"}]}}"#;
        let report = r#"{"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r1","status":"final"}}"#;
        let study = r#"{"key":"study","resource":{"resourceType":"ImagingStudy","id":"s1"}}"#;
        let encounter =
            r#"{"key":"encounter","resource":{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"}}}"#;
        let report_ref = r#"{"key":"report","reference":{"reference":"DiagnosticReport/r1"}}"#;
        let bundle = r#"{"key":"updates","resource":{"resourceType":"Bundle","id":"b1","type":"transaction","entry":[{"request":{"method":"PUT","url":"Observation/o1"},"resource":{"resourceType":"Observation","id":"o1"}},{"request":{"method":"DELETE"},"fullUrl":"Observation/o2"}]}}"#;
        let oo = r#"{"key":"operationoutcome","resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","diagnostics":"App X refused","details":{"coding":[{"system":"https://fhircast.hl7.org/events/syncerror/eventid","code":"e1"},{"system":"https://fhircast.hl7.org/events/syncerror/eventname","code":"Patient-open"},{"system":"https://fhircast.hl7.org/events/syncerror/subscribername","code":"App X"}]}}]}}"#;
        let params = r#"{"key":"parameters","resource":{"resourceType":"Parameters","parameter":[{"name":"code","valueCoding":{"system":"http://fhircast.hl7.org/CodeSystem/fhircast-codesystem","code":"user-initiated"}}]}}"#;
        vec![
            ev("Patient-open", "", &format!("[{patient}]")),
            ev("Patient-close", "", &format!("[{patient},{{\"key\":\"extension\",\"data\":{{\"a\":1}}}}]")),
            ev("Encounter-open", "", &format!("[{encounter},{patient}]")),
            ev("DiagnosticReport-open", "", &format!("[{report},{patient},{study},{encounter}]")),
            ev("DiagnosticReport-update", r#","context.versionId":"v1""#, &format!("[{report_ref},{bundle}]")),
            ev(
                "DiagnosticReport-select",
                "",
                &format!(r#"[{report_ref},{{"key":"select","reference":{{"reference":"Observation/o1"}}}}]"#),
            ),
            ev("SyncError", "", &format!("[{oo}]")),
            ev("UserLogout", "", &format!("[{params}]")),
            ev("Home-open", "", "[]"),
            ev("org.example.thing", r#","context.priorVersionId":null"#, r#"[{"key":"x","string":"y"}]"#),
        ]
    })
}

/// `Event::parse`, `parse_envelope` and `validate` (req 59-69, 77; neg 12-14).
pub fn event_json(u: &mut Unstructured<'_>) -> Result<()> {
    let text = gen::text(u, event_templates())?;
    let envelope = Event::parse_envelope(&text);
    let full = Event::parse(&text);
    match (&envelope, &full) {
        (Ok(e), Ok(f)) => {
            assert_eq!(e, f, "parse and parse_envelope read the same event differently");
            let again = Event::parse(&f.to_json());
            assert_eq!(again.as_ref(), Ok(f), "to_json does not round-trip; input {text:?}");
            let _ = f.anchor();
        }
        (Ok(e), Err(err)) => assert_eq!(e.validate().as_ref(), Err(err), "parse = parse_envelope + validate"),
        (Err(_), Ok(_)) => panic!("parse accepted what parse_envelope refused: {text:?}"),
        (Err(e1), Err(e2)) => assert_eq!(e1, e2),
    }
    if let Err(e) = &full {
        let _ = (e.to_string(), e.spec_ref());
    }
    Ok(())
}

fn ack_templates() -> &'static [String] {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        [
            r#"{"id":"e-1","status":200}"#,
            r#"{"id":"e-1","status":"409"}"#,
            r#"{"id":7}"#,
            r#"{"id":"x","status":null,"extra":[1]}"#,
        ]
        .map(String::from)
        .to_vec()
    })
}

/// `Ack::parse`, the Hub's reading of every WebSocket message (req 70-74, neg 24).
pub fn ack(u: &mut Unstructured<'_>) -> Result<()> {
    let text = gen::text(u, ack_templates())?;
    if let Ok(ack) = Ack::parse(&text) {
        assert!(!ack.id.is_empty());
        assert!((100..=599).contains(&ack.status), "status {} accepted", ack.status);
        let again = Ack::parse(&serde_json::to_string(&ack).expect("an Ack serialises"));
        assert_eq!(again.as_ref(), Ok(&ack), "an ack does not round-trip; input {text:?}");
    }
    Ok(())
}

fn bundle_templates() -> &'static [String] {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        [
            r#"{"resourceType":"Bundle","id":"b1","type":"transaction","entry":[{"request":{"method":"PUT","url":"Observation/o1"},"resource":{"resourceType":"Observation","id":"o1"}},{"request":{"method":"DELETE","url":"Observation/o2"},"fullUrl":"Observation/o2"}]}"#,
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT"},"fullUrl":"urn:uuid:1","resource":{"resourceType":"ImagingStudy","id":"s9"}}]}"#,
            r#"{"resourceType":"Bundle","type":"transaction","link":[],"entry":[]}"#,
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Observation","id":"o1"}}]}"#,
        ]
        .map(String::from)
        .to_vec()
    })
}

/// `UpdateBundle::parse` and the content it builds (req 105, 111, 116; neg 17-18): a parsed
/// bundle applies, and the resulting content survives its collection-Bundle form.
pub fn update_bundle(u: &mut Unstructured<'_>) -> Result<()> {
    let text = gen::text(u, bundle_templates())?;
    let max = *pick(u, &[0usize, 1, 3, 500])?;
    match UpdateBundle::parse(&text, max) {
        Ok(bundle) => {
            let mut content = Content::default();
            content.apply(&bundle);
            assert!(content.len() <= max);
            let again = Content::from_collection_bundle(&content.collection_bundle_json());
            assert_eq!(again.as_ref(), Ok(&content), "content does not round-trip; input {text:?}");
        }
        Err(e) => {
            let status = e.http_status();
            assert!((400..500).contains(&status), "a bad bundle is a client error, got {status}: {e}");
        }
    }
    let _ = Content::from_collection_bundle(&text);
    Ok(())
}

/// The smaller parsers: timestamps, event names, scopes, SyncError OperationOutcomes,
/// endpoint URLs, get-current-context answers, and the follower reading Hub messages.
pub fn wire_misc(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0..=6u8)? {
        0 => {
            let t = gen::text(u, &["2026-01-01T10:00:00Z".into(), "2023-04-01T010:38:04.16".into()])?;
            if let Ok(ts) = Timestamp::parse(&t) {
                assert_eq!(Timestamp::parse(&ts.to_rfc3339()), Ok(ts), "timestamp {t:?}");
            }
        }
        1 => {
            let n = if u.arbitrary()? { pick(u, NAMES)?.to_string() } else { gen::raw(u)? };
            if let Ok(name) = EventName::parse(&n) {
                assert_eq!(EventName::parse(name.as_str()).as_ref(), Ok(&name));
                let _ = (name.kind(), name.resource_type(), name.anchor_key(), name.open_event(), name.context_spec());
            }
        }
        2 => {
            let s = gen::text(u, &["fhircast/Patient-open.read fhircast/*.write openid".into()])?;
            let lenient = Scopes::parse(&s);
            if let Ok(strict) = Scopes::parse_strict(&s) {
                assert_eq!(Scopes::parse_strict(&strict.to_string()), Ok(strict.clone()));
                assert_eq!(strict, lenient, "strict and lenient parses differ on valid scopes");
            }
            if let Ok(one) = s.parse::<Scope>() {
                let _ = one.to_string();
            }
        }
        3 => {
            let oo = gen::text(u, &[event_templates()[6].clone()])?;
            if let Ok(d) = SyncErrorDetails::from_operation_outcome(&oo) {
                let again = SyncErrorDetails::from_operation_outcome(&d.to_operation_outcome_json());
                assert_eq!(again.as_ref(), Ok(&d), "SyncError OperationOutcome does not round-trip");
            }
            if let Ok(e) = Event::parse_envelope(&oo) {
                let _ = SyncErrorDetails::from_context(&e.context);
            }
        }
        4 => {
            let url = gen::text(u, &["wss://h/api/hub/ws/T1/abc%0A".into(), " wss://h/ws/T1/e_1-2/?q#f ".into()])?;
            if let Some(token) = endpoint_token(&url) {
                assert!(!token.is_empty() && url.contains(token));
                assert_eq!(endpoint_token(token), Some(token));
            }
        }
        5 => {
            let body = gen::text(
                u,
                &[
                    r#"{"context.type":"","context":[]}"#.into(),
                    r#"{"context.type":"Patient","context.versionId":"v1","context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}"#.into(),
                ],
            )?;
            if let Ok(cc) = serde_json::from_str::<CurrentContext>(&body) {
                let again: CurrentContext = serde_json::from_str(&serde_json::to_string(&cc).expect("serialises"))
                    .expect("a written CurrentContext reads back");
                assert_eq!(again, cc);
            }
        }
        _ => follower_messages(u)?,
    }
    Ok(())
}

/// A follower fed a confirmation and then arbitrary Hub messages: it must never panic, and
/// its outputs must drain.
fn follower_messages(u: &mut Unstructured<'_>) -> Result<()> {
    let mut f = Follower::new("T1", Some("fuzz".into()), FollowerConfig::default());
    let mut now = Timestamp::from_unix_millis(1_767_261_600_000);
    f.handle_connecting(now);
    let confirm = r#"{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open,Patient-close,DiagnosticReport-open,DiagnosticReport-update,SyncError","hub.lease_seconds":3600}"#;
    let mut templates: Vec<String> = event_templates().to_vec();
    templates.push(confirm.into());
    templates.push(r#"{"hub.mode":"denied","hub.topic":"T1","hub.events":"Patient-open","hub.reason":"x"}"#.into());
    let _ = f.handle_text(confirm, now);
    for _ in 0..u.int_in_range(1..=12u8)? {
        let msg = gen::text(u, &templates)?;
        let _ = f.handle_text(&msg, now);
        now = now.add(std::time::Duration::from_millis(u.int_in_range(0..=20_000u64)?));
        if u.arbitrary()? {
            f.handle_timeout(now);
        }
        let mut n = 0;
        while f.poll_output().is_some() {
            n += 1;
            assert!(n < 10_000, "the follower's outputs never drain");
        }
        let _ = (f.status(), f.current(), f.poll_timeout());
    }
    Ok(())
}
