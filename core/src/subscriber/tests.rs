//! The lifecycle's decisions, one test each (the SDK runs exactly these; its Chromium tests
//! check the I/O around them).

use std::time::Duration;

use super::*;
use crate::wire::CurrentContext;

type S = Subscriber<String>;

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000)
}

fn config() -> SubscriberConfig {
    SubscriberConfig {
        topic: "T1".into(),
        events: vec![EventName::parse("Patient-open").unwrap(), EventName::parse("SyncError").unwrap()],
        subscriber_name: Some("Viewer".into()),
        lease_seconds: Some(100),
        follower: FollowerConfig::default(),
        policy: SubscriberPolicy::default(),
    }
}

/// The actions, without status changes (checked through `follower().status()`).
fn drain(s: &mut S, now: Timestamp) -> Vec<Action<String>> {
    std::iter::from_fn(|| s.poll_action(now)).filter(|a| !matches!(a, Action::Follower(Output::Status(_)))).collect()
}

fn confirmation(lease: u64) -> String {
    format!(
        r#"{{"hub.mode":"subscribe","hub.topic":"T1","hub.events":"Patient-open,SyncError","hub.lease_seconds":{lease}}}"#
    )
}

/// Started and confirmed: returns the socket tag.
fn live(s: &mut S, now: Timestamp) -> u64 {
    s.start(now);
    let req = match drain(s, now).as_slice() {
        [Action::Subscribe { request, form }] => {
            assert!(form.contains("hub.mode=subscribe") && form.contains("subscriber.name=Viewer"), "{form}");
            *request
        }
        other => panic!("{other:?}"),
    };
    s.handle_subscribed(req, Ok("wss://hub/ws/abc".into()), now);
    let sock = match drain(s, now).as_slice() {
        [Action::OpenSocket { endpoint, socket }] => {
            assert_eq!(endpoint, "wss://hub/ws/abc");
            *socket
        }
        other => panic!("{other:?}"),
    };
    s.handle_socket_text(sock, &confirmation(100), now).unwrap();
    let out = drain(s, now);
    // Confirmed, but the current context is not known yet: connect() has not resolved.
    assert!(!out.contains(&Action::Started), "{out:?}");
    assert!(out.contains(&Action::Follower(Output::FetchCurrentContext)));
    s.follower_mut().handle_snapshot(&CurrentContext::empty(), now);
    let out = drain(s, now);
    assert_eq!(out.last(), Some(&Action::Started), "started once the current context is known: {out:?}");
    sock
}

#[test]
fn req57_renews_at_80_percent_of_the_lease_on_the_same_endpoint() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    live(&mut s, now);
    assert_eq!(s.poll_timeout(), Some(now.add(Duration::from_secs(80))));
    let at = now.add(Duration::from_secs(80));
    s.handle_timeout(at);
    match drain(&mut s, at).as_slice() {
        [Action::Renew { form, .. }] => {
            assert!(form.contains("hub.channel.endpoint=wss%3A%2F%2Fhub%2Fws%2Fabc"), "{form}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn req48_a_refused_renewal_starts_afresh_and_a_failed_one_is_retried() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    live(&mut s, now);
    let at = now.add(Duration::from_secs(80));
    s.handle_timeout(at);
    let Some(Action::Renew { request, .. }) = drain(&mut s, at).pop() else { panic!() };
    s.handle_renewed(request, Err((503, "down".into())), at);
    assert_eq!(s.poll_timeout(), Some(at.add(Duration::from_secs(5))), "retried after 5 s");
    let again = at.add(Duration::from_secs(5));
    s.handle_timeout(again);
    let Some(Action::Renew { request, .. }) = drain(&mut s, again).pop() else { panic!() };
    s.handle_renewed(request, Err((404, "unknown endpoint".into())), again);
    let out = drain(&mut s, again);
    assert!(out.contains(&Action::DropSocket), "{out:?}");
    assert!(matches!(s.follower().status(), crate::follower::SyncStatus::Disconnected { .. }));
    let t = s.poll_timeout().expect("a reconnect is scheduled");
    assert!(t > again && t <= again.add(Duration::from_millis(500)), "first backoff: 0.25-0.5 s");
}

#[test]
fn req48_a_lost_connection_reconnects_with_growing_capped_jittered_backoff() {
    let p = SubscriberPolicy::default();
    assert_eq!(p.reconnect_delay(1, 0.0), Duration::from_millis(250));
    assert_eq!(p.reconnect_delay(1, 1.0), Duration::from_millis(500));
    assert_eq!(p.reconnect_delay(4, 0.5), Duration::from_millis(3000));
    assert_eq!(p.reconnect_delay(40, 1.0), Duration::from_secs(30));
    let mut s = S::new(config(), "i", 7);
    let mut now = t0();
    let sock = live(&mut s, now);
    s.handle_socket_closed(sock, 1006, "", now);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let due = s.poll_timeout().unwrap();
        delays.push(due.unix_nanos() - now.unix_nanos());
        now = due;
        s.handle_timeout(now);
        let Some(Action::Subscribe { request, .. }) = drain(&mut s, now).pop() else { panic!() };
        s.handle_subscribed(request, Err("network down".into()), now);
        assert!(drain(&mut s, now).is_empty());
    }
    assert!(delays.windows(2).take(5).all(|w| w[1] >= w[0] / 2 * 2 / 2), "{delays:?}");
    assert!(delays.iter().all(|d| *d <= 30_000_000_000), "capped: {delays:?}");
    assert!(delays[7] >= 15_000_000_000, "{delays:?}");
}

#[test]
fn req48_a_denial_resubscribes_on_a_new_endpoint_and_the_next_confirmation_resets_the_backoff() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    let sock = live(&mut s, now);
    s.handle_socket_text(
        sock,
        r#"{"hub.mode":"denied","hub.topic":"T1","hub.events":"Patient-open","hub.reason":"lease expired"}"#,
        now,
    )
    .unwrap();
    let out = drain(&mut s, now);
    assert!(out.contains(&Action::DropSocket), "{out:?}");
    let due = s.poll_timeout().unwrap();
    s.handle_timeout(due);
    let Some(Action::Subscribe { request, .. }) = drain(&mut s, due).pop() else { panic!() };
    s.handle_subscribed(request, Ok("wss://hub/ws/new".into()), due);
    let Some(Action::OpenSocket { socket, .. }) = drain(&mut s, due).pop() else { panic!() };
    // Messages of the abandoned socket are ignored.
    s.handle_socket_text(sock, &confirmation(100), due).unwrap();
    assert!(drain(&mut s, due).is_empty());
    s.handle_socket_text(socket, &confirmation(100), due).unwrap();
    let out = drain(&mut s, due);
    assert!(!out.contains(&Action::Started), "started once only");
    assert!(s.is_connected());
}

#[test]
fn the_first_connection_failing_ends_the_subscriber_with_the_reason() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    s.start(now);
    let Some(Action::Subscribe { request, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_subscribed(request, Err("403: missing scope".into()), now);
    assert_eq!(drain(&mut s, now), vec![Action::StartFailed(StartFailure::Shell("403: missing scope".into()))]);
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None, "no reconnect");

    let mut s = S::new(config(), "i", 7);
    s.start(now);
    let Some(Action::Subscribe { request, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_subscribed(request, Ok("wss://x".into()), now);
    let Some(Action::OpenSocket { socket, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_socket_closed(socket, 1011, "boom", now);
    assert_eq!(
        drain(&mut s, now),
        vec![Action::StartFailed(StartFailure::ClosedEarly { code: 1011, reason: "boom".into() })]
    );
}

#[test]
fn req49_close_unsubscribes_then_closes_the_socket_and_stops_every_timer() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    live(&mut s, now);
    s.close(now);
    match drain(&mut s, now).as_slice() {
        [Action::Unsubscribe { form }] => assert!(form.contains("hub.mode=unsubscribe"), "{form}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.poll_timeout(), None);
    s.handle_unsubscribed(Err("offline".into()), now);
    let out = drain(&mut s, now);
    assert!(out.contains(&Action::CloseSocket));
    assert!(out.contains(&Action::Closed { problem: Some("offline".into()) }));
}

#[test]
fn req80_an_accepted_publish_is_done_when_no_echo_can_come() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    let sock = live(&mut s, now);
    let ctx = serde_json::from_str(r#"[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]"#).unwrap();
    s.follower_mut().prepare(EventName::parse("Patient-open").unwrap(), ctx, "e1", now).unwrap();
    drain(&mut s, now);
    s.follower_mut().handle_post_result("e1", Ok(()), now);
    assert!(drain(&mut s, now).is_empty(), "the echo is awaited");
    s.handle_socket_closed(sock, 1006, "", now);
    let out = drain(&mut s, now);
    assert!(out.contains(&Action::Follower(Output::Published { id: "e1".into() })), "{out:?}");
}

#[test]
fn a_socket_failing_while_closing_schedules_nothing() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    let sock = live(&mut s, now);
    s.close(now);
    drain(&mut s, now);
    s.handle_socket_failed(sock, "gone".into(), now);
    assert_eq!(s.poll_timeout(), None, "no reconnect after close()");
    s.handle_timeout(now.add(Duration::from_secs(60)));
    assert!(drain(&mut s, now).iter().all(|a| !matches!(a, Action::Subscribe { .. })));
}

fn patient_open(id: &str, patient: &str) -> String {
    format!(
        r#"{{"timestamp":"2023-11-14T22:13:20Z","id":"{id}","event":{{"hub.topic":"T1","hub.event":"Patient-open","context":[{{"key":"patient","resource":{{"resourceType":"Patient","id":"{patient}"}}}}]}}}}"#
    )
}

#[test]
fn req44_started_comes_after_the_replayed_context_is_decided_and_the_snapshot_read() {
    // connect() resolves at Started: by then the app's handler has run for the replay and
    // currentContext() is what the hub holds (issue 15: it was null at first).
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    s.start(now);
    let Some(Action::Subscribe { request, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_subscribed(request, Ok("wss://hub/ws/abc".into()), now);
    let Some(Action::OpenSocket { socket, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_socket_text(socket, &confirmation(100), now).unwrap();
    s.handle_socket_text(socket, &patient_open("e1", "p1"), now).unwrap();
    let out = drain(&mut s, now);
    assert!(!out.contains(&Action::Started), "{out:?}");
    assert!(out.iter().any(|a| matches!(a, Action::Follower(Output::Deliver(e)) if e.id == "e1")), "{out:?}");
    s.follower_mut().decide("e1", crate::follower::Decision::Accept, now);
    let snapshot = CurrentContext::parse(
        r#"{"context.type":"Patient","context":[{"key":"patient","resource":{"resourceType":"Patient","id":"p1"}}]}"#,
    )
    .unwrap();
    s.follower_mut().handle_snapshot(&snapshot, now);
    // The replay arrived while the first snapshot was under way: it may be older, so it is
    // asked for again (and connect() still waits).
    let out = drain(&mut s, now);
    assert_eq!(out.last(), Some(&Action::Follower(Output::FetchCurrentContext)), "{out:?}");
    s.follower_mut().handle_snapshot(&snapshot, now);
    let out = drain(&mut s, now);
    assert_eq!(out.last(), Some(&Action::Started), "{out:?}");
    // The snapshot names what the replay already showed: no second context change.
    assert!(!out.iter().any(|a| matches!(a, Action::Follower(Output::ContextChanged(_)))), "{out:?}");
    let current = s.follower().current().expect("the patient is shown");
    assert_eq!(current.anchor.to_string(), "Patient/p1");
    assert_eq!(current.event_id.as_deref(), Some("e1"), "what only the notification carried is kept");
    assert_eq!(*s.follower().status(), crate::follower::SyncStatus::InSync);
}

#[test]
fn started_also_when_the_connection_is_lost_before_the_context_is_known() {
    let mut s = S::new(config(), "i", 7);
    let now = t0();
    s.start(now);
    let Some(Action::Subscribe { request, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_subscribed(request, Ok("wss://hub/ws/abc".into()), now);
    let Some(Action::OpenSocket { socket, .. }) = drain(&mut s, now).pop() else { panic!() };
    s.handle_socket_text(socket, &confirmation(100), now).unwrap();
    assert!(!drain(&mut s, now).contains(&Action::Started));
    s.handle_socket_closed(socket, 1006, "", now);
    let out = drain(&mut s, now);
    assert!(out.contains(&Action::Started), "connect() resolves; the status says disconnected: {out:?}");
    assert!(matches!(s.follower().status(), crate::follower::SyncStatus::Disconnected { .. }));
}
