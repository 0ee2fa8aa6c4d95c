//! Issue 12's multi-app situations, one test each, named after the scenario: several apps
//! (each a [`fhircast_core::follower::Follower`] with an app policy) around one Hub
//! [`fhircast_core::hub::Topic`], delivered synchronously (`sync_scenarios/harness.rs`). Each
//! failed on the code before the fix it names; the promise they check is the product's: every
//! app shows the same context, or the user is told at once that it does not.
//!
//! The two invariants: *in-sync* (`World::check_in_sync`: an app that says in-sync shows
//! exactly what the Hub holds for the events it follows, `fhircast_core::view`) and *told*
//! (every refusal reaches every other subscriber of SyncError as its own SyncError, and the
//! app whose event it was recognises it).

#[path = "sync_scenarios/harness.rs"]
mod harness;

use std::time::Duration;

use fhircast_core::follower::{Decision, OutOfSyncReason, SyncStatus};
use fhircast_core::syncerror::{Severity, SyncErrorDetails};
use harness::*;
use serde_json::json;

fn open_patient(w: &mut World, by: usize, id: &str) {
    w.publish(by, "Patient-open", json!([patient(id)])).expect("Patient-open accepted");
}

// ---- 1. Two refusals, one told --------------------------------------------------------------

#[test]
fn issue12_1_two_apps_refuse_after_202_and_every_other_app_is_told_twice() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let a = w.join("Dictation", PATIENT_ONLY, Policy::Defer(vec!["Patient/p1".into()]));
    let b = w.join("Viewer", PATIENT_ONLY, Policy::Defer(vec!["Patient/p1".into()]));
    let c = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    open_patient(&mut w, ehr, "p1");
    let id = w.apps[a].undecided[0].id.clone();
    w.decide(a, &id, Decision::Refuse);
    w.decide(b, &id, Decision::Refuse);
    // Each refusal is its own SyncError, named after its app, to every other subscriber (a
    // subscriber's own SyncError is echoed to it too, as every event is: req 80).
    for who in [ehr, a, b, c] {
        let mut about: Vec<&str> = w.apps[who]
            .sync_errors
            .iter()
            .filter(|s| s.details.event_id == id)
            .map(|s| s.details.subscriber_name.as_str())
            .collect();
        about.sort();
        assert_eq!(about, ["Dictation", "Viewer"], "{} was told of these refusals", w.apps[who].name);
    }
    let names: Vec<&str> = w.apps[ehr].sync_errors.iter().map(|s| s.details.subscriber_name.as_str()).collect();
    assert!(names.contains(&"Dictation") && names.contains(&"Viewer"), "{names:?}");
    assert!(w.apps[ehr].sync_errors.iter().all(|s| s.own_event), "the EHR recognises its own event");
    for app in [a, b] {
        assert!(w.apps[app].publish_failures.is_empty(), "{:?}", w.apps[app].publish_failures);
    }
    w.check_in_sync("after two refusals");
}

#[test]
fn issue12_1_a_409_a_500_a_202_then_refusal_and_a_silent_app_on_one_event_are_four_syncerrors() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let p1 = || vec!["Patient/p1".to_owned()];
    w.join("Refuser", PATIENT_ONLY, Policy::Refuse(p1()));
    w.join("Failer", PATIENT_ONLY, Policy::Fail(p1()));
    let decider = w.join("Decider", PATIENT_ONLY, Policy::Defer(p1()));
    w.join("Silent", PATIENT_ONLY, Policy::Undecided);
    open_patient(&mut w, ehr, "p1");
    let id = w.apps[decider].undecided[0].id.clone();
    w.decide(decider, &id, Decision::Refuse);
    // The silent app's follower answers 202 after 5 s, then refuses after 10 s (req 75).
    w.advance(Duration::from_secs(11));
    let mut names: Vec<&str> = w.apps[ehr]
        .sync_errors
        .iter()
        .filter(|s| s.details.event_id == id)
        .map(|s| s.details.subscriber_name.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["Decider", "Failer", "Refuser", "Silent"]);
    assert!(w.apps[ehr].sync_errors.iter().all(|s| s.own_event));
    w.check_in_sync("after four failures");
}

#[test]
fn issue12_1_a_syncerror_post_that_fails_is_retried_until_the_hub_has_it() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let a = w.join("Dictation", PATIENT_ONLY, Policy::Defer(vec!["Patient/p1".into()]));
    open_patient(&mut w, ehr, "p1");
    let id = w.apps[a].undecided[0].id.clone();
    // The app refuses; its POST is lost on the way (the harness reports a network failure).
    let now = w.now;
    w.apps[a].f.decide(&id, Decision::Refuse, now);
    let post = std::iter::from_fn(|| w.apps[a].f.poll_output())
        .find_map(|o| if let fhircast_core::follower::Output::Post(e) = o { Some(e) } else { None })
        .expect("a SyncError POST");
    w.apps[a].f.handle_post_result(&post.id, Err((0, "network down".into())), now);
    assert!(w.apps[ehr].sync_errors.is_empty());
    w.advance(Duration::from_secs(3));
    let told: Vec<_> = w.apps[ehr].sync_errors.iter().filter(|s| s.details.event_id == id).collect();
    assert_eq!(told.len(), 1, "the retry reached the hub and the EHR was told");
}

// ---- 8. SyncError content as seed 003 -------------------------------------------------------

#[test]
fn issue12_8_syncerror_severity_and_codings_follow_seed_003() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let _refuser = w.join("Viewer", PATIENT_ONLY, Policy::Refuse(vec!["Patient/p1".into()]));
    let decider = w.join("Dictation", PATIENT_ONLY, Policy::Defer(vec!["Patient/p1".into()]));
    open_patient(&mut w, ehr, "p1");
    let id = w.apps[decider].undecided[0].id.clone();
    w.decide(decider, &id, Decision::Refuse);
    let by = |name: &str| w.apps[ehr].sync_errors.iter().find(|s| s.details.subscriber_name == name).cloned();
    // 409: generated by the hub → information. 202 then refuse: the subscriber's → warning.
    assert_eq!(by("Viewer").expect("told of the 409").details.severity, Severity::Information);
    assert_eq!(by("Dictation").expect("told of the refusal").details.severity, Severity::Warning);
    // Both subscriber codings, the seed's first.
    let json = SyncErrorDetails { ..by("Viewer").unwrap().details }.to_operation_outcome_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let systems: Vec<&str> =
        v["issue"][0]["details"]["coding"].as_array().unwrap().iter().map(|c| c["system"].as_str().unwrap()).collect();
    assert_eq!(
        systems,
        [
            "https://fhircast.hl7.org/events/syncerror/eventid",
            "https://fhircast.hl7.org/events/syncerror/eventname",
            "https://fhircast.hl7.org/events/syncerror/subscriber",
            "https://fhircast.hl7.org/events/syncerror/subscribername",
        ]
    );
    assert!(matches!(w.status(ehr), SyncStatus::OutOfSync { reason: OutOfSyncReason::OwnEventNotFollowed { .. } }));
}

// ---- 2. A patient-only app joining while a report is current ---------------------------------

#[test]
fn issue12_2_a_patient_only_app_joining_on_a_report_shows_its_patient_and_leaves_it_when_the_report_closes() {
    let mut w = World::new();
    let rep = w.join("Reporting", REPORTING, Policy::Accept);
    w.publish(rep, "DiagnosticReport-open", report("r1", "p1", "s1")).unwrap();
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    assert!(w.in_sync(chart));
    assert_eq!(w.shows(chart).as_deref(), Some("Patient/p1"), "the report's patient, never the report");
    w.check_in_sync("joined");
    w.publish(rep, "DiagnosticReport-close", report("r1", "p1", "s1")).unwrap();
    assert_eq!(w.shows(chart), None, "the report closed: no current context (req 124)");
    w.check_in_sync("report closed");
}

// ---- 3. Logout ------------------------------------------------------------------------------

#[test]
fn issue12_3_logout_clears_the_patient_of_apps_that_do_not_follow_logout() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    let viewer = w.join("Viewer", PATIENT_STUDY, Policy::Accept);
    w.publish(ehr, "DiagnosticReport-open", report("r1", "p1", "s1")).unwrap();
    assert_eq!(w.shows(viewer).as_deref(), Some("ImagingStudy/s1"));
    w.publish(ehr, "UserLogout", logout()).unwrap();
    for app in [ehr, chart, viewer] {
        assert_eq!(w.shows(app), None, "{} still shows a context after logout", w.apps[app].name);
        assert!(w.in_sync(app), "{}: {:?}", w.apps[app].name, w.status(app));
    }
    w.check_in_sync("after logout");
    // The next session opens normally.
    open_patient(&mut w, ehr, "p2");
    assert_eq!(w.shows(chart).as_deref(), Some("Patient/p2"));
    w.check_in_sync("next session");
}

#[test]
fn issue12_3_home_open_clears_the_view_of_apps_that_do_not_follow_it() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    open_patient(&mut w, ehr, "p1");
    w.publish(ehr, "Home-open", json!([])).unwrap();
    assert_eq!(w.shows(chart), None);
    w.check_in_sync("home");
    // Back to the patient's tab: the chart follows again.
    open_patient(&mut w, ehr, "p1");
    assert_eq!(w.shows(chart).as_deref(), Some("Patient/p1"));
    w.check_in_sync("back");
}

// ---- 4. Different event sets -----------------------------------------------------------------

#[test]
fn issue12_4_apps_with_different_event_sets_never_say_in_sync_on_a_context_the_hub_no_longer_holds() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let _chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    let _viewer = w.join("Viewer", PATIENT_STUDY, Policy::Accept);
    let rep = w.join("Reporting", REPORTING, Policy::Accept);
    // A seeded walk through opens and closes of patients, studies and reports, several open.
    let mut seed: u64 = 12;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for step in 0..300 {
        let p = format!("p{}", next(3));
        let s = format!("s{}", next(3));
        let r = format!("r{}", next(3));
        let by = if next(2) == 0 { ehr } else { rep };
        let _ = match next(7) {
            0 => w.publish(by, "Patient-open", json!([patient(&p)])),
            1 => w.publish(by, "Patient-close", json!([patient(&p)])),
            2 => w.publish(ehr, "ImagingStudy-open", json!([study(&s, &p), patient(&p)])),
            3 => w.publish(ehr, "ImagingStudy-close", json!([study(&s, &p), patient(&p)])),
            4 => w.publish(by, "DiagnosticReport-open", report(&r, &p, &s)),
            5 => w.publish(by, "DiagnosticReport-close", report(&r, &p, &s)),
            _ => w.publish(ehr, "Home-open", json!([])),
        };
        w.check_in_sync(&format!("step {step}"));
        for i in 0..w.apps.len() {
            assert!(w.in_sync(i), "step {step}: {} {:?}", w.apps[i].name, w.status(i));
        }
    }
}

// ---- 5. A clock far ahead -------------------------------------------------------------------

#[test]
fn issue12_5_an_event_stamped_in_2200_is_refused_and_cannot_lock_the_topic() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    let bogus = raw_patient_open("2200-01-01T00:00:00Z", "future-1", "p9");
    let (status, message) = w.post_raw(bogus).unwrap_err();
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("ahead of the hub's clock"), "{message}");
    // Every app goes on with correctly stamped changes.
    open_patient(&mut w, ehr, "p1");
    assert_eq!(w.shows(chart).as_deref(), Some("Patient/p1"));
    // A clock a little ahead (within the allowance) is accepted, and the SDK's own stamps
    // (never before the newest context) keep working after it.
    let ahead = w.now.add(Duration::from_secs(30));
    let id = w.fresh_id();
    w.publish_at(chart, "Patient-open", json!([patient("p2")]), &id, ahead).unwrap();
    open_patient(&mut w, ehr, "p3");
    assert_eq!(w.shows(chart).as_deref(), Some("Patient/p3"));
    w.check_in_sync("after the skewed clock");
}

#[test]
fn issue12_5_a_stored_future_context_timestamp_does_not_lock_a_restarted_topic() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    open_patient(&mut w, ehr, "p1");
    // State written before the rule: the current context stamped in 2200.
    let mut state: serde_json::Value = serde_json::to_value(w.hub.state()).unwrap();
    state["context_timestamp"] = json!(fhircast_core::Timestamp::parse("2200-01-01T00:00:00Z").unwrap());
    w.hub = fhircast_core::hub::Topic::restore(serde_json::from_value(state).unwrap(), w.hub.config().clone());
    let r = w.post_raw(raw_patient_open(w.now.add(Duration::from_secs(120)).to_rfc3339(), "later", "p2"));
    assert_eq!(r.unwrap_err().0, 400, "still too far ahead of the hub's clock");
    let r = w.post_raw(raw_patient_open(w.now.add(Duration::from_secs(1)).to_rfc3339(), "ok", "p2"));
    assert!(r.is_ok(), "{r:?}: a correctly stamped change is accepted at once");
    let r = w.post_raw(raw_patient_open(w.now.to_rfc3339(), "older", "p3"));
    assert_eq!(r.unwrap_err().0, 409, "and ordering holds again from it (req 67)");
}

// ---- 6. A refused derived open ---------------------------------------------------------------

#[test]
fn issue12_6_a_refused_derived_open_names_the_source_event_and_its_sender_resends_it() {
    let mut w = World::new();
    let rep = w.join("Reporting", REPORTING, Policy::Accept);
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Refuse(vec!["Patient/p1".into()]));
    let id = w.publish(rep, "DiagnosticReport-open", report("r1", "p1", "s1")).unwrap();
    let told: Vec<_> = w.apps[rep].sync_errors.iter().map(|s| (s.details.event_id.clone(), s.own_event)).collect();
    assert_eq!(told, [(id.clone(), true)], "the SyncError names the report app's own event");
    assert!(w.apps[rep].sync_errors[0].details.diagnostics.contains("derived from DiagnosticReport-open"));
    assert!(matches!(w.status(rep), SyncStatus::OutOfSync { reason: OutOfSyncReason::OwnEventNotFollowed { .. } }));
    assert!(!w.in_sync(chart));
    // req 81: the report app resends after 10 s (the chart refuses again: still out of sync).
    let before = w.hub_sync_errors.len();
    w.advance(Duration::from_secs(11));
    assert!(w.hub_sync_errors.len() > before, "the resend was sent and refused again");
    w.check_in_sync("after the resend");
}

// ---- 7. Reconnect after a refusal, eviction, non-current versions ----------------------------

#[test]
fn issue12_7_a_reconnect_after_a_refusal_does_not_switch_the_app_nor_say_in_sync() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let dictation = w.join("Dictation", PATIENT_ONLY, Policy::Refuse(vec!["Patient/p2".into()]));
    open_patient(&mut w, ehr, "p1");
    open_patient(&mut w, ehr, "p2");
    assert_eq!(w.shows(dictation).as_deref(), Some("Patient/p1"), "kept its unsaved work");
    assert!(!w.in_sync(dictation));
    w.drop_connection(dictation);
    w.connect(dictation);
    assert_eq!(w.shows(dictation).as_deref(), Some("Patient/p1"), "a reconnect must not switch it");
    assert!(
        matches!(w.status(dictation), SyncStatus::OutOfSync { reason: OutOfSyncReason::Refused { .. } }),
        "{:?}",
        w.status(dictation)
    );
    w.check_in_sync("after the reconnect");
    // When the user goes back to p1, the app is in sync again without being switched.
    open_patient(&mut w, ehr, "p1");
    assert!(w.in_sync(dictation), "{:?}", w.status(dictation));
    w.check_in_sync("back to p1");
}

#[test]
fn issue12_7_eviction_never_drops_what_the_current_context_carries() {
    let config = fhircast_core::hub::HubConfig { max_open_contexts: 3, ..Default::default() };
    let mut w = World::with_config(config);
    let ehr = w.join("EHR", EHR, Policy::Accept);
    w.publish(ehr, "DiagnosticReport-open", report("r1", "p1", "s1")).unwrap();
    for i in 2..8 {
        open_patient(&mut w, ehr, &format!("p{i}"));
    }
    w.publish(ehr, "DiagnosticReport-open", report("r1", "p1", "s1")).unwrap();
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    let viewer = w.join("Viewer", PATIENT_STUDY, Policy::Accept);
    assert_eq!(w.shows(chart).as_deref(), Some("Patient/p1"));
    assert_eq!(w.shows(viewer).as_deref(), Some("ImagingStudy/s1"));
    w.check_in_sync("after eviction");
    let open: Vec<String> = w.hub.state().open_contexts().map(|k| k.to_string()).collect();
    assert!(open.len() <= 3, "{open:?}");
}

#[test]
fn issue12_restart_of_the_hub_keeps_every_view() {
    let mut w = World::new();
    let ehr = w.join("EHR", EHR, Policy::Accept);
    let chart = w.join("Chart", PATIENT_ONLY, Policy::Accept);
    w.publish(ehr, "DiagnosticReport-open", report("r1", "p1", "s1")).unwrap();
    w.restart_hub();
    w.publish(ehr, "DiagnosticReport-close", report("r1", "p1", "s1")).unwrap();
    assert_eq!(w.shows(chart), None, "the restarted hub still knew what the chart showed");
    w.check_in_sync("after restart");
}
