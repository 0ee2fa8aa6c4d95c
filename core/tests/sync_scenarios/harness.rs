//! A Hub [`Topic`] and several apps (a [`Follower`] each, with an app policy), wired together
//! synchronously: every message is delivered at once, in order, and the world is pumped until
//! nothing moves. Time moves only when a test says so. The multi-app situations of issue 12
//! are scripted on it, step by step, with the two invariants checked where a test asks.

use std::collections::VecDeque;
use std::time::Duration;

use fhircast_core::follower::{Decision, Follower, FollowerConfig, Output, SyncErrorNotice, SyncStatus};
use fhircast_core::hub::{Auth, HubConfig, Outbound, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::wire::{ContextEntry, CurrentContext};
use fhircast_core::{Event, EventName, Timestamp};
use serde_json::{json, Value};

/// How an app answers what it is given.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Follows everything.
    Accept,
    /// Refuses (409) context changes about these anchors (`Type/id`), follows the rest.
    Refuse(Vec<String>),
    /// Fails (500) context changes about these anchors.
    Fail(Vec<String>),
    /// Answers 202 to context changes about these anchors; [`World::decide`] decides later.
    Defer(Vec<String>),
    /// Never answers anything (its follower's own timers answer 202, then refuse).
    Undecided,
}

/// One app: its follower, its policy and what it was told.
pub struct App {
    pub name: String,
    pub f: Follower,
    pub policy: Policy,
    pub token: Option<String>,
    pub events: String,
    pub sync_errors: Vec<SyncErrorNotice>,
    pub publish_failures: Vec<(String, u16, String)>,
    /// Notifications delivered and not decided (Defer / Undecided).
    pub undecided: Vec<Event>,
    /// Every context the app was made to show, in order (`None`: no context).
    pub shown: Vec<Option<String>>,
}

pub struct World {
    pub hub: Topic,
    pub apps: Vec<App>,
    pub now: Timestamp,
    next_token: u64,
    next_id: u64,
    /// Every SyncError the Hub sent, per recipient app: (recipient, about event id, subscriber).
    pub hub_sync_errors: Vec<(String, String, String)>,
}

pub fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_800_000_000_000)
}

impl World {
    pub fn new() -> World {
        World::with_config(HubConfig::default())
    }

    pub fn with_config(config: HubConfig) -> World {
        World {
            hub: Topic::new("T1", "h", config),
            apps: Vec::new(),
            now: t0(),
            next_token: 0,
            next_id: 0,
            hub_sync_errors: Vec::new(),
        }
    }

    /// Adds an app subscribed to `events` (comma-separated) and connects it.
    pub fn join(&mut self, name: &str, events: &str, policy: Policy) -> usize {
        let f = Follower::new("T1", Some(name.to_owned()), FollowerConfig::default()).with_instance_id(name);
        self.apps.push(App {
            name: name.to_owned(),
            f,
            policy,
            token: None,
            events: events.to_owned(),
            sync_errors: Vec::new(),
            publish_failures: Vec::new(),
            undecided: Vec::new(),
            shown: Vec::new(),
        });
        let i = self.apps.len() - 1;
        self.connect(i);
        i
    }

    /// (Re)subscribes app `i` on a new endpoint and connects its socket.
    pub fn connect(&mut self, i: usize) {
        self.next_token += 1;
        let token = format!("tok{}", self.next_token);
        let form = format!(
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=T1&hub.events={}&subscriber.name={}",
            self.apps[i].events,
            self.apps[i].name.replace(' ', "+")
        );
        let req = SubscriptionRequest::from_form(&form).expect("valid form");
        let now = self.now;
        self.apps[i].f.handle_connecting(now);
        self.hub.handle_subscription(&req, &Auth::open(), &token, now).expect("subscribed");
        self.hub.handle_connect(&token, now).expect("connected");
        self.apps[i].token = Some(token);
        self.pump();
    }

    /// App `i`'s socket drops (code 1006 at the Hub, a disconnect at the app).
    pub fn drop_connection(&mut self, i: usize) {
        let now = self.now;
        if let Some(token) = self.apps[i].token.take() {
            self.hub.handle_close(&token, 1006, now);
        }
        self.apps[i].f.handle_disconnected("connection lost", now);
        self.pump();
    }

    /// The Hub restarts from its stored state (its sockets survive, as with hibernation).
    pub fn restart_hub(&mut self) {
        let json = serde_json::to_string(self.hub.state()).expect("serialises");
        let state = serde_json::from_str(&json).expect("reads back");
        self.hub = Topic::restore(state, self.hub.config().clone());
    }

    pub fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("ev{}", self.next_id)
    }

    /// App `i` publishes an event (through its follower, as the SDK does); the Hub's answer is
    /// returned (status, message).
    pub fn publish(&mut self, i: usize, name: &str, context: Value) -> Result<String, (u16, String)> {
        let id = self.fresh_id();
        // Time passes between a user's actions: events are stamped apart (req 67 matters).
        self.advance(Duration::from_millis(250));
        let now = self.now;
        self.publish_at(i, name, context, &id, now)
    }

    pub fn publish_at(
        &mut self,
        i: usize,
        name: &str,
        context: Value,
        id: &str,
        now: Timestamp,
    ) -> Result<String, (u16, String)> {
        let ctx: Vec<ContextEntry> = serde_json::from_value(context).expect("context entries");
        let event = self.apps[i].f.prepare(EventName::parse(name).expect("name"), ctx, id, now).expect("prepared");
        self.drain_app(i);
        let result = self.post(i, event);
        self.pump();
        result
    }

    /// A raw event POSTed by a client that is not one of the apps (curl, another vendor).
    pub fn post_raw(&mut self, event: Value) -> Result<(), (u16, String)> {
        let ev = Event::parse_envelope(&event.to_string()).expect("envelope");
        let r = self
            .hub
            .handle_event(ev, &Auth::open(), self.now)
            .map(|_| ())
            .map_err(|e| (e.http_status(), e.to_string()));
        self.pump();
        r
    }

    fn post(&mut self, i: usize, event: Event) -> Result<String, (u16, String)> {
        let id = event.id.clone();
        let result = self.hub.handle_event(event, &Auth::open(), self.now);
        let now = self.now;
        let r = match result {
            Ok(_) => Ok(id.clone()),
            Err(e) => Err((e.http_status(), e.to_string())),
        };
        self.apps[i].f.handle_post_result(&id, r.clone().map(|_| ()), now);
        r
    }

    /// The app decides about a deferred notification.
    pub fn decide(&mut self, i: usize, id: &str, d: Decision) {
        let now = self.now;
        self.apps[i].undecided.retain(|e| e.id != id);
        self.apps[i].f.decide(id, d, now);
        self.pump();
    }

    /// Moves the clock on, running every deadline that falls due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.add(d);
        loop {
            let hub_due = self.hub.poll_timeout();
            let app_due = self.apps.iter().filter_map(|a| a.f.poll_timeout()).min();
            let next = [hub_due, app_due].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    if hub_due.is_some_and(|h| h <= now) {
                        self.hub.handle_timeout(now);
                    }
                    for a in &mut self.apps {
                        if a.f.poll_timeout().is_some_and(|t| t <= now) {
                            a.f.handle_timeout(now);
                        }
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn app_of(&self, token: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.token.as_deref() == Some(token))
    }

    /// Delivers everything until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(out) = self.hub.poll_outbound() {
                moved = true;
                match out {
                    Outbound::Send { to, text } => {
                        let Some(i) = self.app_of(&to) else { continue };
                        if text.contains("\"SyncError\"") || text.contains("\"syncerror\"") {
                            if let Ok(e) = Event::parse_envelope(&text) {
                                if let Ok(d) = fhircast_core::syncerror::SyncErrorDetails::from_context(&e.context) {
                                    self.hub_sync_errors.push((
                                        self.apps[i].name.clone(),
                                        d.event_id,
                                        d.subscriber_name,
                                    ));
                                }
                            }
                        }
                        let now = self.now;
                        let _ = self.apps[i].f.handle_text(&text, now);
                    }
                    Outbound::Close { to, .. } => {
                        let Some(i) = self.app_of(&to) else { continue };
                        self.apps[i].token = None;
                        let now = self.now;
                        self.apps[i].f.handle_disconnected("closed by the hub", now);
                    }
                }
            }
            for i in 0..self.apps.len() {
                if self.drain_app(i) {
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the world does not settle");
    }

    /// Runs app `i`'s outputs; whether there were any.
    fn drain_app(&mut self, i: usize) -> bool {
        let mut outs: VecDeque<Output> = std::iter::from_fn(|| self.apps[i].f.poll_output()).collect();
        let any = !outs.is_empty();
        while let Some(out) = outs.pop_front() {
            let now = self.now;
            match out {
                Output::Send(text) => {
                    if let Some(token) = self.apps[i].token.clone() {
                        let _ = self.hub.handle_message(&token, &text, now);
                    }
                }
                Output::Deliver(event) => {
                    let anchor = event.anchor().map(|k| k.to_string()).unwrap_or_default();
                    let change =
                        matches!(event.name.kind(), fhircast_core::EventKind::Open | fhircast_core::EventKind::Close);
                    let decision = match &self.apps[i].policy {
                        Policy::Accept => Some(Decision::Accept),
                        Policy::Refuse(a) if change && a.contains(&anchor) => Some(Decision::Refuse),
                        Policy::Fail(a) if change && a.contains(&anchor) => Some(Decision::Fail),
                        Policy::Defer(a) if change && a.contains(&anchor) => Some(Decision::Defer),
                        Policy::Undecided => None,
                        _ => Some(Decision::Accept),
                    };
                    if decision != Some(Decision::Accept) {
                        self.apps[i].undecided.push(event.clone());
                    }
                    if let Some(d) = decision {
                        self.apps[i].f.decide(&event.id, d, now);
                    }
                    self.record_shown(i);
                }
                Output::Post(event) => {
                    let _ = self.post(i, event);
                }
                Output::FetchCurrentContext => {
                    let cc = self.hub.current_context(&Auth::open()).expect("open auth");
                    let json = serde_json::to_string(&cc).expect("serialises");
                    let cc = CurrentContext::parse(&json).expect("reads back");
                    self.apps[i].f.handle_snapshot(&cc, now);
                }
                Output::SyncError(n) => self.apps[i].sync_errors.push(n),
                Output::ContextChanged(_) => self.record_shown(i),
                Output::PublishFailed { id, status, message } => {
                    self.apps[i].publish_failures.push((id, status, message))
                }
                Output::Resubscribe { .. } => {
                    self.apps[i].token = None;
                    self.connect(i);
                }
                _ => {}
            }
            outs.extend(std::iter::from_fn(|| self.apps[i].f.poll_output()));
        }
        any
    }

    fn record_shown(&mut self, i: usize) {
        let s = self.apps[i].f.current().map(|c| c.anchor.to_string());
        if self.apps[i].shown.last() != Some(&s) {
            self.apps[i].shown.push(s);
        }
    }

    /// What app `i` shows (`Type/id`).
    pub fn shows(&self, i: usize) -> Option<String> {
        self.apps[i].f.current().map(|c| c.anchor.to_string())
    }

    pub fn status(&self, i: usize) -> &SyncStatus {
        self.apps[i].f.status()
    }

    pub fn in_sync(&self, i: usize) -> bool {
        matches!(self.status(i), SyncStatus::InSync)
    }

    /// What the Hub holds for app `i`'s events ([`fhircast_core::view`]).
    pub fn view(&self, i: usize) -> Option<String> {
        let granted: Vec<EventName> = self.apps[i].f.granted_events().to_vec();
        self.hub.view_for(&granted).map(|v| v.anchor.to_string())
    }

    /// The in-sync invariant: every app that says in-sync shows what the Hub holds for its
    /// events. Everything is delivered at once here, so there is no lag to allow for.
    pub fn check_in_sync(&self, step: &str) {
        for (i, a) in self.apps.iter().enumerate() {
            if self.in_sync(i) {
                assert_eq!(
                    self.shows(i),
                    self.view(i),
                    "{step}: {} says in-sync showing {:?}, but the hub holds {:?} for its events ({})",
                    a.name,
                    self.shows(i),
                    self.view(i),
                    a.events
                );
            }
        }
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

pub fn patient(id: &str) -> Value {
    json!({"key": "patient", "resource": {"resourceType": "Patient", "id": id}})
}

pub fn study(id: &str, patient_id: &str) -> Value {
    json!({"key": "study", "resource": {"resourceType": "ImagingStudy", "id": id, "subject": {"reference": format!("Patient/{patient_id}")}}})
}

pub fn report(id: &str, patient_id: &str, study_id: &str) -> Value {
    json!([
        {"key": "report", "resource": {"resourceType": "DiagnosticReport", "id": id, "status": "preliminary"}},
        patient(patient_id),
        study(study_id, patient_id),
    ])
}

/// A `Patient-open` as a client outside the apps would POST it, stamped `timestamp` (RFC 3339).
pub fn raw_patient_open(timestamp: impl std::fmt::Display, id: &str, patient_id: &str) -> Value {
    json!({"timestamp": timestamp.to_string(), "id": id, "event": {
        "hub.topic": "T1", "hub.event": "Patient-open", "context": [patient(patient_id)]}})
}

pub fn logout() -> Value {
    json!([{"key": "parameters", "resource": {"resourceType": "Parameters", "parameter": [{"name": "code",
        "valueCoding": {"system": "http://fhircast.hl7.org/CodeSystem/fhircast-codesystem", "code": "user-initiated"}}]}}])
}

pub const PATIENT_ONLY: &str = "Patient-open,Patient-close,SyncError";
pub const PATIENT_STUDY: &str = "Patient-open,Patient-close,ImagingStudy-open,ImagingStudy-close,SyncError";
pub const REPORTING: &str = "DiagnosticReport-open,DiagnosticReport-close,DiagnosticReport-update,Patient-open,Patient-close,ImagingStudy-open,ImagingStudy-close,UserLogout,Home-open,SyncError";
pub const EHR: &str = "Patient-open,Patient-close,ImagingStudy-open,ImagingStudy-close,DiagnosticReport-open,DiagnosticReport-close,UserLogout,Home-open,SyncError";
