//! Table tests of the follower, one or more per [SUB] spec item.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::wire::CurrentContext;

struct F {
    f: Follower,
    now: Timestamp,
}

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000)
}

fn follower() -> F {
    follower_with("Patient-open,Patient-close,DiagnosticReport-open,DiagnosticReport-update,SyncError")
}

/// A follower the Hub confirmed with `events` granted, its snapshot asked for and not answered.
fn confirmed(events: &str) -> Follower {
    let mut f = Follower::new("T1", Some("Viewer".into()), FollowerConfig::default());
    let now = t0();
    f.handle_connecting(now);
    let confirmation = json!({"hub.mode":"subscribe","hub.topic":"T1","hub.events":events,"hub.lease_seconds":3600});
    f.handle_text(&confirmation.to_string(), now).unwrap();
    let out: Vec<Output> = std::iter::from_fn(|| f.poll_output()).collect();
    assert!(out.contains(&Output::FetchCurrentContext));
    f
}

/// A follower granted `events`, in sync on a hub with no context.
fn follower_with(events: &str) -> F {
    let mut f = confirmed(events);
    let now = t0();
    f.handle_snapshot(&CurrentContext::empty(), now);
    let mut f = F { f, now };
    f.drain();
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    f
}

impl F {
    /// Receives and accepts `report_open(id, v)`: its content is unknown, so the follower reads
    /// it (content sharing), and gets `content` (a collection Bundle's entries) at `v`.
    fn open_report(&mut self, id: &str, v: &str, content: Value) {
        let now = self.now;
        self.recv(report_open(id, v));
        self.f.decide(id, Decision::Accept, now);
        assert!(self.drain().contains(&Output::FetchCurrentContext), "the report's content is read");
        self.f.handle_snapshot(&report_snapshot(v, content), now);
        self.drain();
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.f.poll_output()).collect()
    }
    fn tick(&mut self, d: Duration) {
        self.now = self.now.add(d);
        self.f.handle_timeout(self.now);
    }
    fn recv(&mut self, v: Value) {
        self.f.handle_text(&v.to_string(), self.now).unwrap();
    }
}

fn acks(out: &[Output]) -> Vec<(String, u16)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(t) => {
                let v: Value = serde_json::from_str(t).unwrap();
                Some((v["id"].as_str().unwrap().to_owned(), v["status"].as_u64().unwrap() as u16))
            }
            _ => None,
        })
        .collect()
}

fn delivered(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(e) => Some(e.id.clone()),
            _ => None,
        })
        .collect()
}

fn open(id: &str, pid: &str, ts: Timestamp) -> Value {
    json!({"timestamp": ts.to_rfc3339(), "id": id, "event": {"hub.topic":"T1","hub.event":"Patient-open","context.versionId": format!("v-{pid}"),
        "context":[{"key":"patient","resource":{"resourceType":"Patient","id":pid,"name":[{"family":"Doe"}],"extension":[{"url":"x","valueString":"kept"}]}}]}})
}

fn close(id: &str, pid: &str, ts: Timestamp) -> Value {
    json!({"timestamp": ts.to_rfc3339(), "id": id, "event": {"hub.topic":"T1","hub.event":"Patient-close",
        "context":[{"key":"patient","resource":{"resourceType":"Patient","id":pid}}]}})
}

fn sync_error(id: &str, about: &str, name: &str, who: &str, ts: Timestamp) -> Value {
    let d = SyncErrorDetails {
        event_id: about.into(),
        event_name: name.into(),
        subscriber_name: who.into(),
        diagnostics: format!("{who} refused to follow {name} (409 Conflict)"),
        code: crate::syncerror::IssueCode::Processing,
        severity: crate::syncerror::Severity::Information,
    };
    let oo: Value = serde_json::from_str(&d.to_operation_outcome_json()).unwrap();
    json!({"timestamp": ts.to_rfc3339(), "id": id, "event": {"hub.topic":"T1","hub.event":"SyncError","context":[{"key":"operationoutcome","resource":oo}]}})
}

fn shown(f: &F) -> Option<String> {
    f.f.current().map(|c| c.anchor.to_string())
}

#[test]
fn req43_confirmation_then_snapshot_puts_the_follower_in_sync() {
    let mut f = Follower::new("T1", None, FollowerConfig::default());
    f.handle_connecting(t0());
    assert_eq!(f.status(), &SyncStatus::Connecting);
    f.handle_text(
        r#"{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"patient-open","hub.lease_seconds":60}"#,
        t0(),
    )
    .unwrap();
    assert_eq!(f.granted_events(), &[EventName::parse("Patient-open").unwrap()]);
    assert_eq!(f.status(), &SyncStatus::Connecting, "not in sync before the current context is known");
    let snap: CurrentContext =
        serde_json::from_value(json!({"context.type":"Patient","context.versionId":"v1","context":[
        {"key":"patient","resource":{"resourceType":"Patient","id":"p1"}},
        {"key":"content","resource":{"resourceType":"Bundle","type":"collection"}}]}))
        .unwrap();
    f.handle_snapshot(&snap, t0());
    assert_eq!(f.status(), &SyncStatus::InSync);
    let c = f.current().unwrap();
    assert_eq!(c.anchor.to_string(), "Patient/p1");
    assert_eq!(c.version_id.as_deref(), Some("v1"));
    assert_eq!(c.context.len(), 1, "content is not part of the context array");
}

#[test]
fn req70_req71_each_decision_is_answered_with_its_status() {
    for (decision, status) in
        [(Decision::Accept, 200), (Decision::Refuse, 409), (Decision::Fail, 500), (Decision::Defer, 202)]
    {
        let mut f = follower();
        let now = f.now;
        f.recv(open("e1", "p1", now));
        assert_eq!(delivered(&f.drain()), vec!["e1"]);
        f.f.decide("e1", decision, now);
        assert_eq!(acks(&f.drain()), vec![("e1".to_owned(), status)], "{decision:?}");
    }
}

#[test]
fn req66_req71_accepting_applies_the_context_and_keeps_every_field() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p1"));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    let c = f.f.current().unwrap();
    assert!(c.context[0].value.get().contains(r#""valueString":"kept""#), "req 66: full resources");
    assert_eq!(f.f.version_of(&ResourceKey::new("Patient", "p1")), Some("v-p1"));
}

#[test]
fn req71_refusing_keeps_the_old_context_and_reports_out_of_sync() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    f.recv(open("e2", "p2", now.add(Duration::from_secs(1))));
    f.f.decide("e2", Decision::Refuse, now);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p1"));
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { .. } }));
    f.recv(open("e3", "p3", now.add(Duration::from_secs(2))));
    f.f.decide("e3", Decision::Accept, now);
    assert_eq!(f.f.status(), &SyncStatus::InSync, "a later change followed: in sync again");
}

#[test]
fn req75_req94_defer_then_refuse_posts_a_syncerror() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.drain();
    f.f.decide("e1", Decision::Defer, now);
    assert_eq!(acks(&f.drain()), vec![("e1".to_owned(), 202)]);
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::Deciding { .. } }));
    f.f.decide("e1", Decision::Refuse, now);
    let out = f.drain();
    assert!(acks(&out).is_empty(), "no second answer on the socket");
    let post = out.iter().find_map(|o| if let Output::Post(e) = o { Some(e.clone()) } else { None }).unwrap();
    assert_eq!(post.name.as_str(), "SyncError");
    let d = SyncErrorDetails::from_context(&post.context).unwrap();
    assert_eq!(
        (d.event_id.as_str(), d.event_name.as_str(), d.subscriber_name.as_str()),
        ("e1", "Patient-open", "Viewer")
    );
    let oo: Value = serde_json::from_str(post.context[0].value.get()).unwrap();
    assert_eq!(oo["issue"][0]["severity"], "warning", "req 94: severity warning");
}

#[test]
fn req75_defer_then_accept_applies_without_another_answer() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Defer, now);
    f.drain();
    f.f.decide("e1", Decision::Accept, now);
    assert!(f.drain().iter().all(|o| !matches!(o, Output::Send(_) | Output::Post(_))));
    assert_eq!(shown(&f).as_deref(), Some("Patient/p1"));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn req75_an_undecided_app_answers_202_in_time_then_refuses_after_10s() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.drain();
    assert_eq!(f.f.poll_timeout(), Some(now.add(Duration::from_secs(3))));
    f.tick(Duration::from_secs(3));
    assert_eq!(acks(&f.drain()), vec![("e1".to_owned(), 202)], "answered well before the hub's 10 s");
    f.tick(Duration::from_secs(7));
    let out = f.drain();
    assert!(out.iter().any(|o| matches!(o, Output::Post(e) if e.name.as_str() == "SyncError")));
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { .. } }));
}

#[test]
fn req67_older_events_never_replace_a_newer_context() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e2", "p2", now.add(Duration::from_secs(10))));
    f.f.decide("e2", Decision::Accept, now);
    f.drain();
    f.recv(open("e1", "p1", now));
    let out = f.drain();
    assert!(delivered(&out).is_empty(), "ignored");
    assert_eq!(acks(&out), vec![("e1".to_owned(), 200)], "still answered");
    f.recv(close("c1", "p2", now));
    assert!(delivered(&f.drain()).is_empty());
    assert_eq!(shown(&f).as_deref(), Some("Patient/p2"));
}

#[test]
fn req67_duplicates_are_answered_again_but_not_delivered() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Refuse, now);
    f.drain();
    f.recv(open("e1", "p1", now));
    let out = f.drain();
    assert!(delivered(&out).is_empty());
    assert_eq!(acks(&out), vec![("e1".to_owned(), 409)], "the same answer as before");
}

#[test]
fn req127_several_opens_in_a_row_are_not_a_sync_error() {
    let mut f = follower();
    let now = f.now;
    for (i, p) in ["p1", "p2", "p3"].iter().enumerate() {
        let id = format!("e{i}");
        f.recv(open(&id, p, now.add(Duration::from_secs(i as u64))));
        f.f.decide(&id, Decision::Accept, now);
    }
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p3"));
}

#[test]
fn a_newer_context_change_supersedes_an_undecided_one() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.recv(open("e2", "p2", now.add(Duration::from_secs(1))));
    assert_eq!(acks(&f.drain()), vec![("e1".to_owned(), 202)]);
    f.f.decide("e1", Decision::Accept, now);
    assert_eq!(shown(&f), None, "a late decision on a superseded event does nothing");
    f.f.decide("e2", Decision::Accept, now);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p2"));
}

#[test]
fn req84_a_syncerror_is_reported_and_the_status_says_out_of_sync() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    f.drain();
    f.recv(sync_error("s1", "e1", "Patient-open", "Dictation", now));
    let out = f.drain();
    assert_eq!(acks(&out), vec![("s1".to_owned(), 200)]);
    let n = out.iter().find_map(|o| if let Output::SyncError(n) = o { Some(n.clone()) } else { None }).unwrap();
    assert_eq!(n.details.subscriber_name, "Dictation");
    assert!(!n.own_event);
    match f.f.status() {
        SyncStatus::OutOfSync { reason: OutOfSyncReason::SyncError { subscriber, .. } } => {
            assert_eq!(subscriber, "Dictation")
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn a_syncerror_about_an_older_context_change_does_not_change_the_status() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    f.recv(open("e2", "p2", now.add(Duration::from_secs(1))));
    f.f.decide("e2", Decision::Accept, now);
    f.drain();
    f.recv(sync_error("s1", "e1", "Patient-open", "Dictation", now));
    assert!(f.drain().iter().any(|o| matches!(o, Output::SyncError(_))), "still reported");
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn req81_own_event_not_followed_is_resent_with_its_timestamp_until_sync_returns() {
    let mut f = follower();
    let now = f.now;
    let e =
        f.f.prepare(
            EventName::parse("Patient-open").unwrap(),
            vec![ContextEntry::resource_raw("patient", r#"{"resourceType":"Patient","id":"p9"}"#).unwrap()],
            "own1",
            now,
        )
        .unwrap();
    f.f.handle_post_result("own1", Ok(()), now);
    let mut echo = serde_json::from_str::<Value>(&e.to_json()).unwrap();
    echo["event"]["context.versionId"] = json!("v9");
    f.recv(echo);
    let out = f.drain();
    assert!(out.contains(&Output::Published { id: "own1".into() }));
    assert_eq!(acks(&out), vec![("own1".to_owned(), 200)]);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p9"));
    f.recv(sync_error("s1", "own1", "Patient-open", "Dictation", now));
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::OwnEventNotFollowed { .. } }));
    f.drain();
    f.tick(Duration::from_secs(10));
    let resent = f.drain().into_iter().find_map(|o| if let Output::Post(e) = o { Some(e) } else { None }).unwrap();
    assert_eq!(resent.id, "own1-resend-1", "a new id");
    assert_eq!(resent.timestamp, e.timestamp, "the original timestamp");
    f.f.handle_post_result(&resent.id, Ok(()), f.now);
    f.recv(serde_json::from_str(&resent.to_json()).unwrap());
    f.drain();
    f.tick(Duration::from_secs(12));
    assert_eq!(f.f.status(), &SyncStatus::InSync, "no SyncError about the resend: sync restored");
}

#[test]
fn req81_no_resend_once_a_newer_event_arrived() {
    let mut f = follower();
    let now = f.now;
    f.f.prepare(
        EventName::parse("Patient-open").unwrap(),
        vec![ContextEntry::resource_raw("patient", r#"{"resourceType":"Patient","id":"p9"}"#).unwrap()],
        "own1",
        now,
    )
    .unwrap();
    f.f.handle_post_result("own1", Ok(()), now);
    f.recv(sync_error("s1", "own1", "Patient-open", "Dictation", now));
    f.recv(open("e2", "p2", now.add(Duration::from_secs(1))));
    f.f.decide("e2", Decision::Accept, now);
    f.drain();
    f.tick(Duration::from_secs(10));
    assert!(!f.drain().iter().any(|o| matches!(o, Output::Post(_))));
}

#[test]
fn req67_own_events_are_stamped_no_earlier_than_the_context_seen() {
    let mut f = follower();
    let future = f.now.add(Duration::from_secs(30));
    f.recv(open("e1", "p1", future));
    f.f.decide("e1", Decision::Accept, f.now);
    let e =
        f.f.prepare(
            EventName::parse("Patient-close").unwrap(),
            vec![ContextEntry::resource_raw("patient", r#"{"resourceType":"Patient","id":"p1"}"#).unwrap()],
            "c1",
            f.now,
        )
        .unwrap();
    assert_eq!(e.timestamp, future);
}

fn report_open(id: &str, v: &str) -> Value {
    json!({"timestamp": t0().to_rfc3339(), "id": id, "event": {"hub.topic":"T1","hub.event":"DiagnosticReport-open","context.versionId": v, "context":[
        {"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r1"}},{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}})
}

/// Get-current-context with report r1 current at version `v`, its content Bundle's entries `content`.
fn report_snapshot(v: &str, content: Value) -> CurrentContext {
    serde_json::from_value(json!({"context.type":"DiagnosticReport","context.versionId":v,"context":[
        {"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r1"}},
        {"key":"patient","resource":{"resourceType":"Patient","id":"p1"}},
        {"key":"content","resource":{"resourceType":"Bundle","type":"collection","entry":content}}]}))
    .unwrap()
}

fn report_update(id: &str, v: &str, prior: &str) -> Value {
    json!({"timestamp": t0().to_rfc3339(), "id": id, "event": {"hub.topic":"T1","hub.event":"DiagnosticReport-update","context.versionId": v, "context.priorVersionId": prior, "context":[
        {"key":"report","reference":{"reference":"DiagnosticReport/r1"}},
        {"key":"updates","resource":{"resourceType":"Bundle","type":"transaction","entry":[]}}]}})
}

#[test]
fn req110_req117_versions_are_tracked_and_a_gap_resyncs() {
    let mut f = follower();
    let now = f.now;
    f.open_report("o1", "v1", json!([]));
    f.recv(report_update("u1", "v2", "v1"));
    assert_eq!(delivered(&f.drain()), vec!["u1"]);
    f.f.decide("u1", Decision::Accept, now);
    let r1 = ResourceKey::new("DiagnosticReport", "r1");
    assert_eq!(f.f.version_of(&r1), Some("v2"));
    assert_eq!(f.f.current().unwrap().version_id.as_deref(), Some("v2"));
    f.drain();
    f.recv(report_update("u3", "v4", "v3"));
    let out = f.drain();
    assert!(delivered(&out).is_empty());
    assert_eq!(acks(&out), vec![("u3".to_owned(), 202)]);
    assert!(out.contains(&Output::FetchCurrentContext));
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { .. }), "not in sync before the re-read");
    let snap: CurrentContext =
        serde_json::from_value(json!({"context.type":"DiagnosticReport","context.versionId":"v4","context":[
        {"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r1"}}]}))
        .unwrap();
    f.f.handle_snapshot(&snap, now);
    assert_eq!(f.f.version_of(&r1), Some("v4"));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn req117_updates_carry_the_current_version_and_need_an_open_anchor() {
    let mut f = follower();
    let now = f.now;
    let name = EventName::parse("DiagnosticReport-update").unwrap();
    let ctx = || {
        vec![
            ContextEntry::reference("report", "DiagnosticReport", "r1"),
            ContextEntry::resource_raw("updates", r#"{"resourceType":"Bundle","type":"transaction","entry":[]}"#)
                .unwrap(),
        ]
    };
    assert!(matches!(f.f.prepare(name.clone(), ctx(), "u0", now), Err(PrepareError::UnknownVersion { .. })));
    f.recv(report_open("o1", "v1"));
    f.f.decide("o1", Decision::Accept, now);
    let e = f.f.prepare(name, ctx(), "u1", now).unwrap();
    assert_eq!(e.version_id.as_deref(), Some("v1"));
    f.f.handle_post_result("u1", Err((409, "stale version".into())), now);
    let out = f.drain();
    assert!(out.iter().any(|o| matches!(o, Output::PublishFailed { status: 409, .. })));
    assert!(out.contains(&Output::FetchCurrentContext), "resync after a refused update");
}

#[test]
fn req94_an_update_is_never_answered_with_a_syncerror() {
    let mut f = follower();
    let now = f.now;
    f.recv(report_open("o1", "v1"));
    f.f.decide("o1", Decision::Accept, now);
    f.recv(report_update("u1", "v2", "v1"));
    f.f.decide("u1", Decision::Defer, now);
    f.f.decide("u1", Decision::Refuse, now);
    assert!(!f.drain().iter().any(|o| matches!(o, Output::Post(_))));
}

#[test]
fn a_snapshot_that_raced_a_context_change_is_fetched_again() {
    let mut f = Follower::new("T1", None, FollowerConfig::default());
    let now = t0();
    f.handle_connecting(now);
    f.handle_text(
        r#"{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":60}"#,
        now,
    )
    .unwrap();
    f.handle_text(&open("e1", "p1", now).to_string(), now).unwrap();
    f.decide("e1", Decision::Accept, now);
    let _ = std::iter::from_fn(|| f.poll_output()).count();
    f.handle_snapshot(&CurrentContext::empty(), now);
    assert_eq!(f.poll_output(), Some(Output::FetchCurrentContext), "the snapshot may predate e1");
    assert_eq!(f.current().unwrap().anchor.to_string(), "Patient/p1", "not overwritten");
    assert_eq!(f.status(), &SyncStatus::Connecting);
}

#[test]
fn req48_a_denial_ends_the_subscription_and_asks_to_resubscribe() {
    let mut f = follower();
    f.recv(json!({"hub.mode":"denied","hub.topic":"T1","hub.events":"Patient-open","hub.reason":"lease expired"}));
    let out = f.drain();
    assert!(out.contains(&Output::Resubscribe { reason: "lease expired".into() }));
    assert!(matches!(f.f.status(), SyncStatus::Disconnected { .. }));
}

#[test]
fn a_disconnect_is_never_in_sync_and_a_failed_resync_is_retried() {
    let mut f = follower();
    f.f.handle_disconnected("connection lost (1006)", f.now);
    assert!(matches!(f.f.status(), SyncStatus::Disconnected { .. }));
    f.f.handle_connecting(f.now);
    f.recv(json!({"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":60}));
    f.drain();
    f.f.handle_snapshot_failed("HTTP 503", f.now);
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::ResyncFailed { .. } }));
    f.tick(Duration::from_secs(2));
    assert!(f.drain().contains(&Output::FetchCurrentContext));
}

#[test]
fn req70_an_unreadable_notification_is_answered_400() {
    let mut f = follower();
    assert!(f.f.handle_text(r#"{"id":"x1","timestamp":"soon","event":{}}"#, f.now).is_err());
    assert_eq!(acks(&f.drain()), vec![("x1".to_owned(), 400)]);
    assert!(f.f.handle_text("[1,2]", f.now).is_err());
}

// Found by the simulator (core/tests/simulator.rs): each test names the behaviour it keeps.

#[test]
fn a_context_change_the_app_has_not_decided_on_is_not_in_sync() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    assert_eq!(shown(&f), None);
    assert!(
        matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::Deciding { .. } }),
        "delivered but not followed yet: the app does not show what the hub holds"
    );
    f.f.decide("e1", Decision::Accept, now);
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn an_own_echo_makes_older_undecided_context_changes_moot() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.drain();
    let later = now.add(Duration::from_secs(1));
    let patient = ContextEntry::resource_raw("patient", r#"{"resourceType":"Patient","id":"p9"}"#).unwrap();
    let e = f.f.prepare(EventName::parse("Patient-open").unwrap(), vec![patient], "own1", later).unwrap();
    f.f.handle_post_result("own1", Ok(()), later);
    f.recv(serde_json::from_str(&e.to_json()).unwrap());
    assert_eq!(shown(&f).as_deref(), Some("Patient/p9"));
    assert!(acks(&f.drain()).contains(&("e1".to_owned(), 202)), "e1 is moot: answered 202 now");
    f.f.decide("e1", Decision::Accept, later);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p9"), "a late decision on an older event does nothing");
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn following_a_close_after_refusing_an_open_is_still_out_of_sync() {
    let mut f = follower();
    let now = f.now;
    let at = |s| now.add(Duration::from_secs(s));
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    f.recv(open("e2", "p2", at(1)));
    f.f.decide("e2", Decision::Refuse, at(1));
    // The app closes what it shows (p1); the hub still holds p2.
    let patient = ContextEntry::resource_raw("patient", r#"{"resourceType":"Patient","id":"p1"}"#).unwrap();
    let c = f.f.prepare(EventName::parse("Patient-close").unwrap(), vec![patient], "own-c", at(2)).unwrap();
    f.f.handle_post_result("own-c", Ok(()), at(2));
    f.recv(serde_json::from_str(&c.to_json()).unwrap());
    assert_eq!(shown(&f), None);
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { .. } }));
    // Another app's close of another anchor, followed: still not what the hub holds.
    f.recv(close("c3", "p3", at(3)));
    f.f.decide("c3", Decision::Accept, at(3));
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { .. }), "{:?}", f.f.status());
    // An open sets the whole context: in sync again.
    f.recv(open("e4", "p4", at(4)));
    f.f.decide("e4", Decision::Accept, at(4));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn a_close_that_makes_an_undecided_open_moot_resynchronises() {
    let mut f = follower();
    let now = f.now;
    let at = |s| now.add(Duration::from_secs(s));
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    f.recv(open("e2", "p2", at(1)));
    f.drain();
    // The hub now holds p2; the old p1 is closed before this app decided about p2.
    f.recv(close("c1", "p1", at(2)));
    let out = f.drain();
    assert!(acks(&out).contains(&("e2".to_owned(), 202)));
    assert!(out.contains(&Output::FetchCurrentContext), "what the hub holds is no longer known");
    f.f.decide("c1", Decision::Accept, at(2));
    assert_eq!(shown(&f), None);
    assert_ne!(f.f.status(), &SyncStatus::InSync, "the hub holds p2");
    let snap: CurrentContext = serde_json::from_value(json!({"context.type":"Patient","context.versionId":"v-p2",
        "context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p2"}}]}))
    .unwrap();
    f.f.handle_snapshot(&snap, at(3));
    assert_eq!(shown(&f).as_deref(), Some("Patient/p2"));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn a_snapshot_under_way_when_a_context_change_arrived_is_never_applied() {
    let mut f = follower();
    let now = f.now;
    f.recv(report_open("o1", "v1"));
    f.f.decide("o1", Decision::Accept, now);
    f.recv(report_update("u3", "v4", "v3"));
    assert!(f.drain().contains(&Output::FetchCurrentContext));
    // The GET is under way; a context change arrives, then another version gap.
    f.recv(open("e2", "p2", now.add(Duration::from_secs(1))));
    f.f.decide("e2", Decision::Accept, now);
    f.recv(report_update("u5", "v6", "v5"));
    f.drain();
    // The answer was taken before e2: it must not replace p2.
    let before_e2: CurrentContext = serde_json::from_value(json!({"context.type":"DiagnosticReport",
        "context.versionId":"v4","context":[{"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r1"}}]}))
    .unwrap();
    f.f.handle_snapshot(&before_e2, now);
    assert_eq!(f.drain(), vec![Output::FetchCurrentContext], "asked again");
    assert_eq!(shown(&f).as_deref(), Some("Patient/p2"));
}

#[test]
fn a_snapshot_while_the_app_decides_does_not_leave_the_follower_connecting() {
    let mut f = Follower::new("T1", None, FollowerConfig::default());
    let now = t0();
    f.handle_connecting(now);
    f.handle_text(
        r#"{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":60}"#,
        now,
    )
    .unwrap();
    // The replay arrives; the app takes its time.
    f.handle_text(&open("e1", "p1", now).to_string(), now).unwrap();
    let snap: CurrentContext = serde_json::from_value(json!({"context.type":"Patient","context.versionId":"v-p1",
        "context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}))
    .unwrap();
    f.handle_snapshot(&snap, now); // raced e1: asked again
    f.handle_snapshot(&snap, now);
    assert!(matches!(f.status(), SyncStatus::OutOfSync { reason: OutOfSyncReason::Deciding { .. } }));
    f.decide("e1", Decision::Accept, now);
    assert_eq!(f.status(), &SyncStatus::InSync, "not stuck in Connecting");
}

#[test]
fn no_snapshot_puts_a_follower_in_sync_before_the_hub_confirms_it() {
    let mut f = follower();
    let now = f.now;
    f.open_report("o1", "v1", json!([]));
    f.f.handle_disconnected("connection lost (1006)", now);
    f.f.handle_connecting(now);
    let ctx = vec![
        ContextEntry::reference("report", "DiagnosticReport", "r1"),
        ContextEntry::resource_raw("updates", r#"{"resourceType":"Bundle","type":"transaction","entry":[]}"#).unwrap(),
    ];
    f.f.prepare(EventName::parse("DiagnosticReport-update").unwrap(), ctx, "u1", now).unwrap();
    f.f.handle_post_result("u1", Err((409, "stale version".into())), now);
    assert!(!f.drain().contains(&Output::FetchCurrentContext), "the confirmation will ask");
    f.f.handle_snapshot(&CurrentContext::empty(), now);
    assert_eq!(f.f.status(), &SyncStatus::Connecting, "nothing is received before the confirmation");
}

#[test]
fn the_answer_to_a_get_of_an_ended_connection_is_not_taken_for_the_next_ones() {
    let mut f = Follower::new("T1", None, FollowerConfig::default());
    let now = t0();
    let confirm = r#"{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":60}"#;
    f.handle_connecting(now);
    f.handle_text(confirm, now).unwrap();
    let out: Vec<Output> = std::iter::from_fn(|| f.poll_output()).collect();
    assert!(out.contains(&Output::FetchCurrentContext));
    // GET 1 is under way when the socket breaks; the shell reconnects.
    f.handle_disconnected("connection lost (1006)", now);
    f.handle_connecting(now);
    f.handle_text(confirm, now).unwrap();
    let _ = std::iter::from_fn(|| f.poll_output()).count();
    // GET 1's answer, taken before the reconnection, arrives now.
    let old: CurrentContext = serde_json::from_value(json!({"context.type":"Patient","context.versionId":"v-p1",
        "context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}))
    .unwrap();
    f.handle_snapshot(&old, now);
    assert_eq!(f.current(), None, "discarded");
    assert_eq!(f.poll_output(), Some(Output::FetchCurrentContext), "GET 2, for this connection");
    assert_eq!(f.status(), &SyncStatus::Connecting);
    f.handle_snapshot(&CurrentContext::empty(), now);
    assert_eq!(f.status(), &SyncStatus::InSync);
}

#[test]
fn a_context_change_sent_again_still_makes_older_undecided_ones_moot() {
    let mut f = follower();
    let now = f.now;
    let at = |s| now.add(Duration::from_secs(s));
    f.recv(open("e2", "p2", at(2)));
    f.f.decide("e2", Decision::Defer, at(2));
    f.f.handle_disconnected("connection lost (1006)", at(3));
    f.f.handle_connecting(at(3));
    f.recv(json!({"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":60}));
    // The replay: the older, still open p1 (new to this app), then the current p2, which this
    // app answered (202) before its socket broke.
    f.recv(open("e1", "p1", now));
    f.recv(open("e2", "p2", at(2)));
    assert!(acks(&f.drain()).contains(&("e2".to_owned(), 202)), "answered as before");
    let snap: CurrentContext = serde_json::from_value(json!({"context.type":"Patient","context.versionId":"v-p2",
        "context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p2"}}]}))
    .unwrap();
    f.f.handle_snapshot(&snap, at(4)); // raced the replay: asked again
    f.f.handle_snapshot(&snap, at(4));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    f.f.decide("e1", Decision::Accept, at(5));
    assert_eq!(shown(&f).as_deref(), Some("Patient/p2"), "the older replayed open is moot");
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn req57_a_renewal_confirmation_on_the_same_connection_keeps_the_status_and_asks_for_nothing() {
    let mut f = follower();
    let now = f.now;
    f.recv(open("e1", "p1", now));
    f.f.decide("e1", Decision::Accept, now);
    f.drain();
    // The shell renewed the lease (subscribe with hub.channel.endpoint): the hub confirms again.
    f.recv(json!({"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open,Patient-close,SyncError","hub.lease_seconds":3600}));
    assert_eq!(f.drain(), vec![], "no status change, no get-current-context");
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    assert_eq!(shown(&f).as_deref(), Some("Patient/p1"));
    assert_eq!(f.f.granted_events().len(), 3, "the granted events are updated");
    // A new connection still resynchronises.
    f.f.handle_disconnected("connection lost (1006)", now);
    f.f.handle_connecting(now);
    f.recv(json!({"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open","hub.lease_seconds":3600}));
    assert!(f.drain().contains(&Output::FetchCurrentContext));
    assert_eq!(f.f.status(), &SyncStatus::Connecting);
}

#[test]
fn issue12_7_a_version_gap_on_a_non_current_anchor_is_read_again_when_it_becomes_current() {
    let mut f = follower();
    let now = f.now;
    f.open_report("o1", "v1", json!([]));
    f.recv(open("e2", "p2", now));
    f.f.decide("e2", Decision::Accept, now);
    f.drain();
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    // r1 is not current; an update of it was missed (v1 -> v2 never arrived).
    f.recv(report_update("u3", "v3", "v2"));
    let out = f.drain();
    assert_eq!(acks(&out), vec![("u3".to_owned(), 202)]);
    assert!(delivered(&out).is_empty(), "nothing to apply to content it does not have");
    assert_eq!(f.f.status(), &SyncStatus::InSync, "what the app shows (p2) is what the hub holds");
    f.recv(report_update("u4", "v4", "v3"));
    assert_eq!(acks(&f.drain()), vec![("u4".to_owned(), 200)]);
    // r1 becomes current again: its content is read again.
    f.recv(report_open("o5", "v4"));
    f.f.decide("o5", Decision::Accept, now);
    let out = f.drain();
    assert!(out.contains(&Output::FetchCurrentContext), "{out:?}");
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { .. }), "not in sync before the re-read");
    let snap: CurrentContext = serde_json::from_value(json!({"context.type":"DiagnosticReport","context.versionId":"v4","context":[
        {"key":"report","resource":{"resourceType":"DiagnosticReport","id":"r1"}},{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]})).unwrap();
    f.f.handle_snapshot(&snap, now);
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    assert_eq!(f.f.version_of(&ResourceKey::new("DiagnosticReport", "r1")), Some("v4"));
    f.recv(report_update("u6", "v6", "v4"));
    assert_eq!(delivered(&f.drain()), vec!["u6"], "updates flow again");
}

// ---- Content sharing kept for the app (issue 15: `currentContext().resources`) ----

fn bundles(f: &F, anchor: &ResourceKey) -> Option<Vec<Value>> {
    f.f.shared_of(anchor).map(|b| b.iter().map(|r| serde_json::from_str(r.get()).unwrap()).collect())
}

fn obs(id: &str) -> Value {
    json!({"resourceType":"Observation","id":id,"status":"preliminary"})
}

fn report_update_with(id: &str, v: &str, prior: &str, entries: Value) -> Value {
    json!({"timestamp": t0().to_rfc3339(), "id": id, "event": {"hub.topic":"T1","hub.event":"DiagnosticReport-update","context.versionId": v, "context.priorVersionId": prior, "context":[
        {"key":"report","reference":{"reference":"DiagnosticReport/r1"}},
        {"key":"updates","resource":{"resourceType":"Bundle","type":"transaction","entry":entries}}]}})
}

#[test]
fn req105_req111_content_is_the_snapshot_then_every_update_applied_in_order() {
    let mut f = follower();
    let now = f.now;
    let r1 = ResourceKey::new("DiagnosticReport", "r1");
    f.open_report("o1", "v1", json!([{"fullUrl":"Observation/o1","resource":obs("o1")}]));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    let b = bundles(&f, &r1).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["entry"][0]["resource"]["id"], "o1");
    let put = json!([{"request":{"method":"PUT","url":"Observation/o2"},"resource":obs("o2")},
                     {"fullUrl":"Observation/o1","request":{"method":"DELETE","url":"Observation/o1"}}]);
    f.recv(report_update_with("u1", "v2", "v1", put.clone()));
    f.f.decide("u1", Decision::Accept, now);
    let b = bundles(&f, &r1).unwrap();
    assert_eq!(b.len(), 2, "the update's Bundle follows the snapshot's");
    assert_eq!(b[1]["entry"], put);
    // A refused update is not applied.
    f.recv(report_update_with("u2", "v3", "v2", json!([{"resource":obs("o3")}])));
    f.f.decide("u2", Decision::Refuse, now);
    assert_eq!(bundles(&f, &r1).unwrap().len(), 2);
}

#[test]
fn req117_a_missed_update_makes_the_content_unknown_until_the_snapshot_reads_it() {
    let mut f = follower();
    let now = f.now;
    let r1 = ResourceKey::new("DiagnosticReport", "r1");
    f.open_report("o1", "v1", json!([]));
    f.recv(report_update("u3", "v3", "v2"));
    assert!(f.drain().contains(&Output::FetchCurrentContext));
    assert_eq!(bundles(&f, &r1), None, "not shown as known while it is not");
    f.f.handle_snapshot(&report_snapshot("v3", json!([{"resource":obs("o9")}])), now);
    let out = f.drain();
    assert!(out.iter().any(|o| matches!(o, Output::ContextChanged(_))), "the app is told the content");
    assert_eq!(bundles(&f, &r1).unwrap()[0]["entry"][0]["resource"]["id"], "o9");
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}

#[test]
fn req107_an_anchor_opened_again_at_the_version_followed_keeps_its_content_without_a_read() {
    let mut f = follower();
    let now = f.now;
    let r1 = ResourceKey::new("DiagnosticReport", "r1");
    f.open_report("o1", "v1", json!([{"resource":obs("o1")}]));
    f.recv(open("e2", "p2", now));
    f.f.decide("e2", Decision::Accept, now);
    f.drain();
    // r1 current again, at the version this app followed: no read, content kept.
    let mut again = report_open("o3", "v1");
    again["timestamp"] = json!(now.add(Duration::from_secs(1)).to_rfc3339());
    f.recv(again);
    f.f.decide("o3", Decision::Accept, now);
    assert!(!f.drain().contains(&Output::FetchCurrentContext));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    assert_eq!(bundles(&f, &r1).unwrap().len(), 1);
    // At a version it did not follow: read again, not in sync meanwhile.
    let mut moved = report_open("o4", "v7");
    moved["timestamp"] = json!(now.add(Duration::from_secs(2)).to_rfc3339());
    f.recv(moved);
    f.f.decide("o4", Decision::Accept, now);
    assert!(f.drain().contains(&Output::FetchCurrentContext));
    assert_eq!(bundles(&f, &r1), None);
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { .. }), "content unknown: not in sync");
    f.f.handle_snapshot(&report_snapshot("v7", json!([])), now);
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    assert_eq!(bundles(&f, &r1), Some(vec![json!({"resourceType":"Bundle","type":"collection","entry":[]})]));
    // Closed, or a logout: forgotten.
    f.recv(json!({"timestamp": now.add(Duration::from_secs(3)).to_rfc3339(), "id": "c1", "event": {"hub.topic":"T1","hub.event":"UserLogout","context":[]}}));
    f.f.decide("c1", Decision::Accept, now);
    f.drain();
    assert_eq!(bundles(&f, &r1), None);
}

#[test]
fn req107_an_app_that_does_not_follow_updates_keeps_no_content_and_reads_nothing_on_open() {
    let mut f = follower_with("DiagnosticReport-open,SyncError");
    let now = f.now;
    f.recv(report_open("o1", "v1"));
    f.f.decide("o1", Decision::Accept, now);
    assert!(!f.drain().contains(&Output::FetchCurrentContext));
    assert_eq!(f.f.status(), &SyncStatus::InSync);
    assert!(f.f.shared_of(&ResourceKey::new("DiagnosticReport", "r1")).is_none());
}

#[test]
fn req117_a_snapshot_shown_as_a_view_keeps_no_content_for_the_view() {
    // A patient-only app that follows Patient-update: the hub's current context is a report, so
    // the snapshot shows its patient; the report's content is not the patient's.
    let mut f = confirmed("Patient-open,Patient-update");
    let now = t0();
    f.handle_snapshot(&report_snapshot("v1", json!([{"resource":obs("o1")}])), now);
    assert_eq!(f.current().map(|c| c.anchor.to_string()).as_deref(), Some("Patient/p1"));
    assert!(f.shared_of(&ResourceKey::new("Patient", "p1")).is_none());
    assert!(f.shared_of(&ResourceKey::new("DiagnosticReport", "r1")).is_none());
}

#[test]
fn req117_past_64_updates_the_content_is_read_again_in_one_piece() {
    let mut f = follower();
    let now = f.now;
    let r1 = ResourceKey::new("DiagnosticReport", "r1");
    f.open_report("o1", "v0", json!([]));
    for i in 1..=63 {
        f.recv(report_update_with(
            &format!("u{i}"),
            &format!("v{i}"),
            &format!("v{}", i - 1),
            json!([{"resource":obs(&format!("o{i}"))}]),
        ));
        f.f.decide(&format!("u{i}"), Decision::Accept, now);
    }
    assert_eq!(bundles(&f, &r1).unwrap().len(), 64, "the snapshot's Bundle and 63 updates");
    assert!(!f.drain().contains(&Output::FetchCurrentContext));
    f.recv(report_update_with("u64", "v64", "v63", json!([{"resource":obs("o64")}])));
    f.f.decide("u64", Decision::Accept, now);
    assert!(f.drain().contains(&Output::FetchCurrentContext), "read again");
    assert!(bundles(&f, &r1).is_none());
    assert!(matches!(f.f.status(), SyncStatus::OutOfSync { .. }), "not in sync while it is read");
    f.f.handle_snapshot(&report_snapshot("v64", json!([{"resource":obs("o1")}])), now);
    assert_eq!(bundles(&f, &r1).unwrap().len(), 1);
    assert_eq!(f.f.status(), &SyncStatus::InSync);
}
