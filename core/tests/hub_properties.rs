//! Property tests of the Hub's per-topic state machine ([`Topic`]), through its public API.
//!
//! Each case drives one Topic with an arbitrary sequence of operations over a small universe:
//! up to a handful of subscriptions with random subsets of eight events, opens, closes,
//! updates (with the current, a stale or a bogus `context.versionId`) and selects of three
//! patients, two reports and two studies with skewed timestamps, Home-open, UserLogout and
//! posted SyncErrors, retries of the last request, acks with random statuses, garbage
//! messages, socket closes with random codes, re-subscribes, unsubscribes, and time advancing
//! past ack timeouts, connect timeouts and leases. A model alongside checks one property per
//! test; each test is named after the spec item it checks:
//!
//! - req 45/88: no subscriber is sent an event outside the events its last confirmation granted;
//! - req 108-111: a version id is never reused, and an update with a version that is not the
//!   anchor's current one is refused with 409 and changes neither version nor content;
//! - req 80: an accepted event reaches every connected subscriber of it once, with the
//!   request's id (opens and updates with their new version, updates with the prior one);
//! - req 124, §5a-9: the current context is empty exactly after a close of the current anchor,
//!   Home-open or UserLogout, and otherwise is the last anchor opened;
//! - req 97-99: derived contexts never outlive every context opened by a request;
//! - the state survives a JSON round trip at any step: the restored Topic then sends the same;
//! - `poll_timeout()` is `None` exactly when there is no subscription;
//! - every `Send` goes to a subscription (the denial to one that just ended), never after
//!   its `Close`, every denial is followed by its `Close`, and no socket is dropped silently;
//! - req 78: a refused request changes nothing and sends nothing;
//! - neg 24: garbage on a socket changes nothing and sends nothing;
//! - req 56, 85, 87: after `handle_timeout` nothing due remains, no subscriber outlives its
//!   lease or keeps an answer overdue, and every denial the Hub sends on its own is deserved.
//!
//! 256 cases of up to about 40 steps each; XorShift keeps that to a few seconds in debug.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fhircast_core::hub::store::MemoryStore;
use fhircast_core::hub::{Auth, EventAccepted, EventRejected, HubConfig, Outbound, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::syncerror::{IssueCode, SyncErrorDetails};
use fhircast_core::time::Timestamp;
use fhircast_core::wire::CurrentContext;
use fhircast_core::{Event, EventKind, EventName, ResourceKey};
use proptest::prelude::*;
use serde_json::{json, Value};

const T: &str = "T1";
const EVENTS: [&str; 8] = [
    "Patient-open",
    "Patient-close",
    "DiagnosticReport-open",
    "DiagnosticReport-close",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "SyncError",
    "ImagingStudy-open",
];
const PATIENTS: [&str; 3] = ["p1", "p2", "p3"];
const REPORTS: [&str; 2] = ["r1", "r2"];
const STUDIES: [&str; 2] = ["s1", "s2"];
const STATUSES: [u16; 8] = [200, 202, 204, 409, 404, 413, 500, 503];
const CLOSE_CODES: [u16; 5] = [1000, 1001, 1006, 1011, 4000];
const ADVANCES_MS: [u64; 9] = [100, 1_000, 5_000, 9_999, 10_000, 11_000, 30_000, 61_000, 3_600_000];
const LEASES: [Option<u64>; 6] = [None, None, Some(3600), Some(3600), Some(5), Some(30)];
const GARBAGE: [&str; 8] = [
    "not json",
    "",
    "{}",
    "[]",
    r#"{"id":"nope","status":409}"#,
    r#"{"id":"x","status":"abc"}"#,
    r#"{"status":500}"#,
    r#"{"id":"","status":500}"#,
];
const CASES: u32 = 256;

#[derive(Clone, Copy, Debug)]
enum VersionPick {
    Current,
    Stale(usize),
    Bogus,
}

#[derive(Clone, Copy, Debug)]
enum BundlePick {
    PutOne,
    PutTwo,
    DeleteOne,
    Empty,
    /// A POST entry: the whole bundle is refused (neg 17).
    Bad,
}

#[derive(Clone, Debug)]
enum Op {
    Subscribe { events: u8, lease: usize, named: bool, reuse: Option<usize>, connect: bool },
    Connect(usize),
    Unsubscribe(usize),
    OpenPatient { p: usize, skew: i64 },
    ClosePatient { p: usize, skew: i64 },
    OpenReport { r: usize, p: usize, study: Option<usize>, skew: i64 },
    CloseReport { r: usize, p: usize, skew: i64 },
    Update { r: usize, version: VersionPick, bundle: BundlePick, skew: i64 },
    Select { r: usize, items: usize, skew: i64 },
    OpenStudy { s: usize, p: Option<usize>, skew: i64 },
    HomeOpen { skew: i64 },
    Logout { skew: i64 },
    PostSyncError { skew: i64 },
    Retry,
    Ack { token: usize, pick: usize, status: usize, as_string: bool },
    Garbage { token: usize, text: usize },
    Close { token: usize, code: usize },
    Advance(usize),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly on time; sometimes late (a context change older than the current one: req 67).
    let skew = prop_oneof![8 => Just(0i64), 1 => 1i64..500, 1 => -3_000i64..0];
    prop_oneof![
        4 => (1u8.., 0..LEASES.len(), any::<bool>(), proptest::option::weighted(0.3, 0usize..8), proptest::bool::weighted(0.8))
            .prop_map(|(events, lease, named, reuse, connect)| Op::Subscribe { events, lease, named, reuse, connect }),
        1 => (0usize..8).prop_map(Op::Connect),
        1 => (0usize..8).prop_map(Op::Unsubscribe),
        3 => (0..PATIENTS.len(), skew.clone()).prop_map(|(p, skew)| Op::OpenPatient { p, skew }),
        1 => (0..PATIENTS.len(), skew.clone()).prop_map(|(p, skew)| Op::ClosePatient { p, skew }),
        4 => (0..REPORTS.len(), 0..PATIENTS.len(), proptest::option::of(0..STUDIES.len()), skew.clone())
            .prop_map(|(r, p, study, skew)| Op::OpenReport { r, p, study, skew }),
        2 => (0..REPORTS.len(), 0..PATIENTS.len(), skew.clone()).prop_map(|(r, p, skew)| Op::CloseReport { r, p, skew }),
        4 => (
            0..REPORTS.len(),
            prop_oneof![3 => Just(VersionPick::Current), 1 => (0usize..16).prop_map(VersionPick::Stale), 1 => Just(VersionPick::Bogus)],
            prop_oneof![Just(BundlePick::PutOne), Just(BundlePick::PutTwo), Just(BundlePick::DeleteOne), Just(BundlePick::Empty), Just(BundlePick::Bad)],
            skew.clone(),
        )
            .prop_map(|(r, version, bundle, skew)| Op::Update { r, version, bundle, skew }),
        2 => (0..REPORTS.len(), 0usize..3, skew.clone()).prop_map(|(r, items, skew)| Op::Select { r, items, skew }),
        2 => (0..STUDIES.len(), proptest::option::of(0..PATIENTS.len()), skew.clone())
            .prop_map(|(s, p, skew)| Op::OpenStudy { s, p, skew }),
        1 => skew.clone().prop_map(|skew| Op::HomeOpen { skew }),
        1 => skew.clone().prop_map(|skew| Op::Logout { skew }),
        1 => skew.prop_map(|skew| Op::PostSyncError { skew }),
        1 => Just(Op::Retry),
        8 => (0usize..8, any::<usize>(), prop_oneof![3 => Just(0usize), 1 => 0..STATUSES.len()], any::<bool>())
            .prop_map(|(token, pick, status, as_string)| Op::Ack { token, pick, status, as_string }),
        1 => (0usize..8, 0..GARBAGE.len()).prop_map(|(token, text)| Op::Garbage { token, text }),
        1 => (0usize..8, 0..CLOSE_CODES.len()).prop_map(|(token, code)| Op::Close { token, code }),
        3 => prop_oneof![4 => 0usize..4, 1 => 4..ADVANCES_MS.len()].prop_map(Op::Advance),
    ]
}

/// A few subscribers join first (so most steps have an audience), then anything happens.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let join = (1u8.., 0..LEASES.len(), any::<bool>()).prop_map(|(events, lease, named)| Op::Subscribe {
        events,
        lease,
        named,
        reuse: None,
        connect: true,
    });
    (proptest::collection::vec(join, 0..4), proptest::collection::vec(op(), 1..40)).prop_map(|(mut a, b)| {
        a.extend(b);
        a
    })
}

/// Which property a run checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Check {
    Granted,
    Versions,
    Delivery,
    Current,
    Derived,
    IdleAlarm,
    Endpoints,
    Refusals,
    Garbage,
    Timeouts,
    None,
}

/// The model: what the test knows from the outside, independent of the Topic's internals.
#[derive(Clone, Debug)]
struct Model {
    now: Timestamp,
    seq: u64,
    /// Every endpoint token issued, in order.
    tokens: Vec<String>,
    /// Granted events per connected endpoint, from the last confirmation it received.
    granted: BTreeMap<String, BTreeSet<String>>,
    /// Notifications received and not answered yet: (id, event name, when received).
    inbox: BTreeMap<String, Vec<(String, String, Timestamp)>>,
    /// Events accepted from posts (id, name): a SyncError about a refused derived event
    /// (req 97) names the event it was derived from, one of these.
    accepted: BTreeSet<(String, String)>,
    /// When each connected endpoint's lease ends, from its last confirmation (req 43).
    lease_until: BTreeMap<String, Timestamp>,
    /// What the current context should be (req 122-124, §5a-9).
    current: Option<ResourceKey>,
    /// Every version id ever seen, and the anchor it belonged to.
    versions_seen: BTreeMap<String, ResourceKey>,
    versions_list: Vec<String>,
    /// The versions of the open anchors after the last step.
    open_versions: BTreeMap<ResourceKey, String>,
    last_post: Option<String>,
    /// The anchors opened by a request and not closed since (derived ones are not in it).
    explicit: BTreeSet<ResourceKey>,
}

struct Sim {
    topic: Topic,
    m: Model,
    check: Check,
}

fn ts(m: &Model, skew: i64) -> String {
    let t = if skew >= 0 {
        m.now.add(Duration::from_millis(skew as u64))
    } else {
        m.now.sub(Duration::from_millis(skew.unsigned_abs()))
    };
    t.to_rfc3339()
}

fn patient(p: usize) -> Value {
    json!({"key":"patient","resource":{"resourceType":"Patient","id":PATIENTS[p],"identifier":[{"value":PATIENTS[p]}]}})
}

fn report(r: usize) -> Value {
    json!({"key":"report","resource":{"resourceType":"DiagnosticReport","id":REPORTS[r],"status":"preliminary"}})
}

fn study(s: usize) -> Value {
    json!({"key":"study","resource":{"resourceType":"ImagingStudy","id":STUDIES[s]}})
}

fn report_ref(r: usize) -> Value {
    json!({"key":"report","reference":{"reference":format!("DiagnosticReport/{}", REPORTS[r])}})
}

fn event_json(id: &str, timestamp: &str, name: &str, version: Option<&str>, context: Vec<Value>) -> String {
    let mut e = json!({"hub.topic": T, "hub.event": name, "context": context});
    if let Some(v) = version {
        e["context.versionId"] = json!(v);
    }
    json!({"timestamp": timestamp, "id": id, "event": e}).to_string()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn sends(out: &[Outbound]) -> impl Iterator<Item = (&str, Value)> {
    out.iter().filter_map(|o| match o {
        Outbound::Send { to, text } => Some((to.as_str(), parse(text))),
        Outbound::Close { .. } => None,
    })
}

fn event_name(v: &Value) -> Option<String> {
    let n = v.get("event")?.get("hub.event")?.as_str()?;
    Some(EventName::parse(n).unwrap().to_string())
}

/// The topic as a restarted Durable Object reads it back from its rows (all of them
/// written, as after a whole-state write).
fn restore(topic: &Topic) -> Topic {
    let (_, back) = MemoryStore::whole(topic).unwrap();
    assert_eq!(back.state(), topic.state(), "the stored rows restore the whole state");
    back
}

impl Sim {
    fn new(check: Check) -> Sim {
        Sim {
            topic: Topic::new(T, "h", HubConfig::default()),
            m: Model {
                now: Timestamp::from_unix_millis(1_700_000_000_000),
                seq: 0,
                tokens: Vec::new(),
                granted: BTreeMap::new(),
                inbox: BTreeMap::new(),
                accepted: BTreeSet::new(),
                lease_until: BTreeMap::new(),
                current: None,
                versions_seen: BTreeMap::new(),
                versions_list: Vec::new(),
                open_versions: BTreeMap::new(),
                last_post: None,
                explicit: BTreeSet::new(),
            },
            check,
        }
    }

    fn is(&self, c: Check) -> bool {
        self.check == c
    }

    fn drain(&mut self) -> Vec<Outbound> {
        std::iter::from_fn(|| self.topic.poll_outbound()).collect()
    }

    /// The `i`-th most recently issued endpoint (dead ones included: neg 10, neg 11).
    fn token(&self, i: usize) -> Option<String> {
        let n = self.m.tokens.len();
        (n > 0).then(|| self.m.tokens[n - 1 - i % n].clone())
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.m.seq += 1;
        format!("{prefix}{}", self.m.seq)
    }

    fn connected(&self) -> BTreeSet<String> {
        self.m.granted.keys().cloned().collect()
    }

    /// Runs one operation, checks the enabled property, and returns what the Topic sent.
    fn step(&mut self, op: &Op) -> Vec<Outbound> {
        let before_subs: BTreeSet<String> =
            self.m.tokens.iter().filter(|t| self.topic.has_endpoint(t)).cloned().collect();
        let before_connected = self.connected();
        // Cloning the state is the dearest part of a step: only when the property needs it.
        let before_state = self.is(Check::Garbage).then(|| self.topic.state().clone());
        let out = match op {
            Op::Subscribe { events, lease, named, reuse, connect } => {
                let names: Vec<&str> = (0..8).filter(|i| events & (1 << i) != 0).map(|i| EVENTS[i]).collect();
                let mut form = format!(
                    "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={T}&hub.events={}",
                    names.join(",")
                );
                if let Some(l) = LEASES[*lease] {
                    form.push_str(&format!("&hub.lease_seconds={l}"));
                }
                if *named {
                    form.push_str(&format!("&subscriber.name=App%20{}", self.m.seq));
                }
                let reused = reuse.and_then(|i| self.token(i));
                if let Some(t) = &reused {
                    form.push_str(&format!("&hub.channel.endpoint=wss%3A%2F%2Fhub.example%2Fws%2F{T}%2F{t}%0A"));
                }
                let req = SubscriptionRequest::from_form(&form).unwrap();
                let fresh = self.next_id("tok");
                let r = self.topic.handle_subscription(&req, &Auth::open(), &fresh, self.m.now);
                let out = self.drain();
                match (r, reused) {
                    (Ok(acc), Some(t)) => {
                        assert_eq!(acc.endpoint, t, "req 35: a re-subscribe keeps its endpoint");
                        if !before_connected.contains(&t) {
                            assert!(out.is_empty());
                        }
                    }
                    (Ok(acc), None) => {
                        assert_eq!(acc.endpoint, fresh);
                        assert!(out.is_empty(), "nothing is sent before the socket connects");
                        self.m.tokens.push(fresh.clone());
                        if *connect {
                            self.topic.handle_connect(&fresh, self.m.now).unwrap();
                            let out = self.drain();
                            assert!(matches!(out.first(), Some(Outbound::Send { to, .. }) if *to == fresh), "req 43");
                            // The endpoint was issued in this very step.
                            let mut subs = before_subs.clone();
                            subs.insert(fresh);
                            return self.finish(out, &subs, &before_connected);
                        }
                    }
                    (Err(e), reused) => {
                        assert!(reused.is_some_and(|t| !before_subs.contains(&t)), "{e}");
                        assert_eq!(e.http_status(), 404);
                        assert!(out.is_empty());
                    }
                }
                out
            }
            Op::Connect(i) => {
                let Some(t) = self.token(*i) else { return Vec::new() };
                let r = self.topic.handle_connect(&t, self.m.now);
                let out = self.drain();
                match r {
                    Ok(()) => {
                        let first = match out.first() {
                            Some(Outbound::Send { to, text }) if *to == t => parse(text),
                            other => panic!("req 43: the confirmation comes first, got {other:?}"),
                        };
                        assert_eq!(first["hub.mode"], "subscribe");
                        assert!(out.iter().all(|o| matches!(o, Outbound::Send { to, .. } if *to == t)));
                    }
                    Err(_) => assert!(out.is_empty()),
                }
                out
            }
            Op::Unsubscribe(i) => {
                let Some(t) = self.token(*i) else { return Vec::new() };
                let form = format!(
                    "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic={T}&hub.channel.endpoint=wss://hub.example/ws/{T}/{t}"
                );
                let req = SubscriptionRequest::from_form(&form).unwrap();
                let fresh = self.next_id("tok");
                let r = self.topic.handle_subscription(&req, &Auth::open(), &fresh, self.m.now);
                let out = self.drain();
                assert!(!self.topic.has_endpoint(&t), "req 54");
                match r {
                    Ok(_) if before_connected.contains(&t) => {
                        assert_eq!(out.len(), 2, "req 53: a denial, then the close");
                    }
                    Ok(_) => assert!(out.is_empty()),
                    Err(e) => {
                        assert_eq!(e.http_status(), 404);
                        assert!(out.is_empty());
                    }
                }
                out
            }
            Op::Retry => {
                let Some(text) = self.m.last_post.clone() else { return Vec::new() };
                self.post(text, None)
            }
            Op::Ack { token, pick, status, as_string } => {
                let waiting: Vec<String> =
                    self.m.inbox.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.clone()).collect();
                if waiting.is_empty() {
                    return Vec::new();
                }
                let t = waiting[token % waiting.len()].clone();
                let inbox = self.m.inbox.get_mut(&t).unwrap();
                let (id, name, _) = inbox.remove(pick % inbox.len());
                let status = STATUSES[*status];
                let text = if *as_string {
                    json!({"id": id, "status": status.to_string()})
                } else {
                    json!({"id": id, "status": status})
                };
                self.topic.handle_message(&t, &text.to_string(), self.m.now).unwrap();
                let out = self.drain();
                if (200..300).contains(&status) || name == "SyncError" {
                    assert!(out.is_empty(), "req 71: success raises nothing; no SyncError storm");
                } else if self.is(Check::Delivery) {
                    // req 72, 84, 88: a SyncError about it to every other subscriber of SyncError.
                    let targets: BTreeSet<String> = self
                        .connected()
                        .into_iter()
                        .filter(|s| *s != t && self.m.granted[s].contains("SyncError"))
                        .collect();
                    let got: BTreeSet<String> = sends(&out)
                        .map(|(to, v)| {
                            assert_eq!(event_name(&v).as_deref(), Some("SyncError"));
                            let ctx: Vec<fhircast_core::wire::ContextEntry> =
                                serde_json::from_value(v["event"]["context"].clone()).unwrap();
                            let d = SyncErrorDetails::from_context(&ctx).unwrap();
                            let about = (d.event_id.clone(), d.event_name.clone());
                            let derived = !self.m.accepted.contains(&(id.clone(), name.clone()));
                            assert!(
                                about == (id.clone(), name.clone()) || (derived && self.m.accepted.contains(&about)),
                                "req 84: a SyncError about {id} {name} names {about:?}"
                            );
                            assert_eq!(d.code == IssueCode::TooLong, status == 413, "req 96");
                            to.to_owned()
                        })
                        .collect();
                    assert_eq!(got, targets);
                }
                out
            }
            Op::Garbage { token, text } => {
                let Some(t) = self.token(*token) else { return Vec::new() };
                let _ = self.topic.handle_message(&t, GARBAGE[*text], self.m.now);
                let out = self.drain();
                if self.is(Check::Garbage) {
                    assert!(out.is_empty(), "neg 24: ignored");
                    assert_eq!(Some(self.topic.state()), before_state.as_ref(), "neg 24: nothing changes");
                }
                out
            }
            Op::Close { token, code } => {
                let Some(t) = self.token(*token) else { return Vec::new() };
                let code = CLOSE_CODES[*code];
                self.topic.handle_close(&t, code, self.m.now);
                let out = self.drain();
                assert!(!self.topic.has_endpoint(&t));
                self.m.granted.remove(&t);
                self.m.inbox.remove(&t);
                self.m.lease_until.remove(&t);
                if code == 1000 || code == 1001 || !before_connected.contains(&t) {
                    assert!(out.is_empty(), "req 86: no SyncError after a normal close");
                }
                for (to, v) in sends(&out) {
                    assert_ne!(to, t);
                    assert_eq!(event_name(&v).as_deref(), Some("SyncError"), "req 85");
                }
                out
            }
            Op::Advance(i) => {
                self.m.now = self.m.now.add(Duration::from_millis(ADVANCES_MS[*i]));
                if self.topic.poll_timeout().is_some_and(|t| t <= self.m.now) {
                    self.topic.handle_timeout(self.m.now);
                }
                let out = self.drain();
                if self.is(Check::Timeouts) {
                    assert!(
                        self.topic.poll_timeout().is_none_or(|t| t > self.m.now),
                        "req 56, 85, 87: everything due was handled"
                    );
                }
                out
            }
            post => {
                let (text, update_of) = self.build(post);
                self.post(text, update_of)
            }
        };
        self.finish(out, &before_subs, &before_connected)
    }

    fn finish(
        &mut self,
        out: Vec<Outbound>,
        before_subs: &BTreeSet<String>,
        before_connected: &BTreeSet<String>,
    ) -> Vec<Outbound> {
        self.observe(&out, before_subs, before_connected);
        out
    }

    /// The JSON of an event request, and for updates the report and the version sent.
    fn build(&mut self, op: &Op) -> (String, Option<(ResourceKey, String)>) {
        let id = self.next_id("e");
        let m = &self.m;
        match *op {
            Op::OpenPatient { p, skew } => {
                (event_json(&id, &ts(m, skew), "Patient-open", None, vec![patient(p)]), None)
            }
            Op::ClosePatient { p, skew } => {
                (event_json(&id, &ts(m, skew), "Patient-close", None, vec![patient(p)]), None)
            }
            Op::OpenReport { r, p, study: s, skew } => {
                let mut ctx = vec![report(r)];
                ctx.extend(s.map(study));
                ctx.push(patient(p));
                (event_json(&id, &ts(m, skew), "DiagnosticReport-open", None, ctx), None)
            }
            Op::CloseReport { r, p, skew } => {
                (event_json(&id, &ts(m, skew), "DiagnosticReport-close", None, vec![report(r), patient(p)]), None)
            }
            Op::Update { r, version, bundle, skew } => {
                let key = ResourceKey::new("DiagnosticReport", REPORTS[r]);
                let v = match version {
                    VersionPick::Current => self.topic.state().version_of(&key).unwrap_or("never-open").to_owned(),
                    VersionPick::Stale(i) if !m.versions_list.is_empty() => {
                        m.versions_list[i % m.versions_list.len()].clone()
                    }
                    _ => "bogus".to_owned(),
                };
                let put = |o: &str| json!({"request":{"method":"PUT"},"resource":{"resourceType":"Observation","id":o,"status":id}});
                let entries = match bundle {
                    BundlePick::PutOne => json!([put("o1")]),
                    BundlePick::PutTwo => json!([put("o1"), put("o2")]),
                    BundlePick::DeleteOne => json!([{"fullUrl":"Observation/o1","request":{"method":"DELETE"}}]),
                    BundlePick::Empty => json!([]),
                    BundlePick::Bad => {
                        json!([put("o2"), {"request":{"method":"POST"},"resource":{"resourceType":"Observation","id":"o3"}}])
                    }
                };
                let ctx = vec![
                    report_ref(r),
                    json!({"key":"updates","resource":{"resourceType":"Bundle","id":format!("b-{id}"),"type":"transaction","entry":entries}}),
                ];
                let text = event_json(&id, &ts(m, skew), "DiagnosticReport-update", Some(&v), ctx);
                (text, Some((key, v)))
            }
            Op::Select { r, items, skew } => {
                let mut ctx = vec![report_ref(r)];
                for i in 0..items {
                    ctx.push(json!({"key":"select","reference":{"reference":format!("Observation/o{i}")}}));
                }
                (event_json(&id, &ts(m, skew), "DiagnosticReport-select", None, ctx), None)
            }
            Op::OpenStudy { s, p, skew } => {
                let mut ctx = vec![study(s)];
                ctx.extend(p.map(patient));
                (event_json(&id, &ts(m, skew), "ImagingStudy-open", None, ctx), None)
            }
            Op::HomeOpen { skew } => (event_json(&id, &ts(m, skew), "Home-open", None, vec![]), None),
            Op::Logout { skew } => {
                let params = json!({"key":"parameters","resource":{"resourceType":"Parameters","parameter":[{"name":"code","valueCoding":{"code":"user-initiated"}}]}});
                (event_json(&id, &ts(m, skew), "UserLogout", None, vec![params]), None)
            }
            Op::PostSyncError { skew } => {
                let d = SyncErrorDetails {
                    event_id: "e1".into(),
                    event_name: "Patient-open".into(),
                    subscriber_name: "Poster".into(),
                    diagnostics: "cannot follow".into(),
                    code: IssueCode::Processing,
                    severity: fhircast_core::syncerror::Severity::Warning,
                };
                let oo: Value = parse(&d.to_operation_outcome_json());
                let ctx = vec![json!({"key":"operationoutcome","resource":oo})];
                (event_json(&id, &ts(m, skew), "SyncError", None, ctx), None)
            }
            _ => unreachable!("not a post"),
        }
    }

    fn post(&mut self, text: String, update_of: Option<(ResourceKey, String)>) -> Vec<Outbound> {
        let before_state = self.is(Check::Refusals).then(|| self.topic.state().clone());
        let before_connected = self.connected();
        let event = Event::parse_envelope(&text).unwrap();
        let version_of = |t: &Topic, k: &ResourceKey| t.state().version_of(k).map(str::to_owned);
        let content_of = |t: &Topic, k: &ResourceKey| t.state().content_of(k).cloned();
        let prior_version = update_of.as_ref().and_then(|(k, _)| version_of(&self.topic, k));
        let prior_content = update_of.as_ref().and_then(|(k, _)| content_of(&self.topic, k));
        let is_retry = self.m.last_post.as_deref() == Some(text.as_str());
        self.m.last_post = Some(text);
        let r = self.topic.handle_event(event.clone(), &Auth::open(), self.m.now);
        let out = self.drain();
        let fresh_accept = matches!(r, Ok(EventAccepted { duplicate: false, .. }));
        if !fresh_accept && self.is(Check::Refusals) {
            // req 78: a refused request (and a retry of an accepted one) changes nothing.
            assert!(out.is_empty(), "{r:?}");
            assert_eq!(Some(self.topic.state()), before_state.as_ref(), "{r:?}");
        }
        if let Some((key, sent)) = &update_of {
            if !is_retry && prior_version.as_deref() != Some(sent.as_str()) && self.is(Check::Versions) {
                // req 109, neg 15: a stale version is refused with 409 and changes nothing.
                let e = r.as_ref().expect_err("a stale update must be refused");
                assert_eq!(e.http_status(), 409, "{e}");
                assert!(matches!(e, EventRejected::VersionMismatch { .. } | EventRejected::NotOpen { .. }), "{e}");
                assert_eq!(version_of(&self.topic, key), prior_version);
                assert_eq!(content_of(&self.topic, key), prior_content);
            }
        }
        let Ok(acc) = r else { return out };
        self.m.accepted.insert((event.id.clone(), event.name.to_string()));
        if acc.duplicate {
            assert!(out.is_empty(), "req 139: a retry is not broadcast again");
            return out;
        }
        assert_eq!(acc.id, event.id);
        if self.is(Check::Delivery) {
            // req 80, 45: to every connected subscriber of the event, with the request's id.
            let name = event.name.to_string();
            for t in before_connected.iter().filter(|t| self.m.granted[*t].contains(&name)) {
                let got: Vec<Value> =
                    sends(&out).filter(|(to, v)| to == t && v["id"] == event.id.as_str()).map(|(_, v)| v).collect();
                assert_eq!(got.len(), 1, "req 80: {t} must get {name} {} once", event.id);
                assert_eq!(event_name(&got[0]).as_deref(), Some(name.as_str()));
                match event.name.kind() {
                    EventKind::Open => {
                        assert_eq!(got[0]["event"]["context.versionId"].as_str(), acc.version_id.as_deref(), "req 108");
                    }
                    EventKind::Update => {
                        assert_eq!(got[0]["event"]["context.versionId"].as_str(), acc.version_id.as_deref(), "req 110");
                        assert_eq!(got[0]["event"]["context.priorVersionId"].as_str(), prior_version.as_deref());
                    }
                    _ => {}
                }
            }
        }
        if let (Some((key, _)), Some(v)) = (&update_of, &acc.version_id) {
            if self.is(Check::Versions) {
                assert_ne!(Some(v.as_str()), prior_version.as_deref(), "req 110: a new version");
                assert_eq!(self.topic.state().version_of(key), Some(v.as_str()));
            }
        }
        match event.name.kind() {
            EventKind::Open => self.m.explicit.extend(event.anchor()),
            EventKind::Close => {
                self.m.explicit.remove(&event.anchor().unwrap());
            }
            EventKind::UserLogout => self.m.explicit.clear(),
            _ => {}
        }
        match event.name.kind() {
            EventKind::Open => self.m.current = event.anchor(),
            EventKind::Close if self.m.current == event.anchor() => self.m.current = None,
            EventKind::HomeOpen | EventKind::UserLogout => self.m.current = None,
            _ => {}
        }
        out
    }

    /// Updates the model from what was sent, and checks the properties that hold after any step.
    fn observe(&mut self, out: &[Outbound], before_subs: &BTreeSet<String>, before_connected: &BTreeSet<String>) {
        let mut closed: BTreeSet<String> = BTreeSet::new();
        for (i, o) in out.iter().enumerate() {
            match o {
                Outbound::Send { to, text } => {
                    let v = parse(text);
                    if self.is(Check::Endpoints) {
                        assert!(before_subs.contains(to.as_str()), "Send to {to}, which was no subscription");
                        assert!(!closed.contains(to.as_str()), "Send to {to} after its Close");
                        let denial = v["hub.mode"] == "denied";
                        assert!(
                            self.topic.has_endpoint(to) || denial,
                            "Send of {v} to {to}, which is no subscription any more"
                        );
                        if denial {
                            assert!(
                                matches!(out.get(i + 1), Some(Outbound::Close { to: c, code: 1000, .. }) if c == to),
                                "req 47: a denial is followed by the close"
                            );
                        }
                    }
                    match v["hub.mode"].as_str() {
                        Some("subscribe") => {
                            let events = v["hub.events"]
                                .as_str()
                                .unwrap()
                                .split(',')
                                .map(str::to_owned)
                                .collect::<BTreeSet<_>>();
                            self.m.granted.insert(to.clone(), events);
                            let lease = Duration::from_secs(v["hub.lease_seconds"].as_u64().unwrap());
                            self.m.lease_until.insert(to.clone(), self.m.now.add(lease));
                        }
                        Some(_) => {
                            if self.is(Check::Timeouts) {
                                self.check_denial(to, &v);
                            }
                        }
                        None => {
                            let name = event_name(&v).expect("every other message is an event");
                            if self.is(Check::Granted) {
                                let granted = self.m.granted.get(to.as_str());
                                assert!(
                                    granted.is_some_and(|g| g.contains(&name)),
                                    "req 45: {to} was sent {name} but was granted {granted:?}"
                                );
                            }
                            let id = v["id"].as_str().unwrap().to_owned();
                            self.m.inbox.entry(to.clone()).or_default().push((id, name, self.m.now));
                        }
                    }
                }
                Outbound::Close { to, .. } => {
                    if self.is(Check::Endpoints) {
                        assert!(before_connected.contains(to.as_str()), "Close of {to}, which was not connected");
                    }
                    closed.insert(to.clone());
                    self.m.granted.remove(to.as_str());
                    self.m.inbox.remove(to.as_str());
                    self.m.lease_until.remove(to.as_str());
                }
            }
        }
        if self.is(Check::Timeouts) {
            // req 56, 87: nobody stays subscribed past its lease or with an answer overdue.
            for t in self.connected() {
                assert!(self.m.lease_until[&t] > self.m.now, "req 56: {t} outlived its lease");
                let overdue = self
                    .m
                    .inbox
                    .get(&t)
                    .into_iter()
                    .flatten()
                    .find(|(_, _, at)| at.add(Duration::from_secs(10)) <= self.m.now);
                assert!(overdue.is_none(), "req 87: {t} is still subscribed with {overdue:?} unanswered");
            }
        }
        if self.is(Check::Endpoints) {
            // The model's connected endpoints are the Topic's: none is dropped without a Close.
            let topic: BTreeSet<String> = self.topic.connected_endpoints().map(str::to_owned).collect();
            assert_eq!(topic, self.connected());
        }
        if self.is(Check::IdleAlarm) {
            if self.topic.subscription_count() == 0 {
                assert_eq!(self.topic.poll_timeout(), None, "no subscription, nothing pending: no alarm");
            } else {
                assert!(self.topic.poll_timeout().is_some(), "a subscription always has a deadline");
            }
        }
        if self.is(Check::Versions) {
            let now: BTreeMap<ResourceKey, String> = self
                .topic
                .state()
                .open_contexts()
                .map(|k| (k.clone(), self.topic.state().version_of(k).unwrap().to_owned()))
                .collect();
            for (k, v) in &now {
                if self.m.open_versions.get(k) == Some(v) {
                    continue;
                }
                if let Some(owner) = self.m.versions_seen.get(v) {
                    panic!("req 108: version {v} of {k} was already used by {owner}");
                }
                self.m.versions_seen.insert(v.clone(), k.clone());
                self.m.versions_list.push(v.clone());
            }
            self.m.open_versions = now;
        } else {
            for k in self.topic.state().open_contexts() {
                let v = self.topic.state().version_of(k).unwrap().to_owned();
                if !self.m.versions_seen.contains_key(&v) {
                    self.m.versions_seen.insert(v.clone(), k.clone());
                    self.m.versions_list.push(v);
                }
            }
        }
        if self.is(Check::Derived) && self.m.explicit.is_empty() {
            let left: Vec<&ResourceKey> = self.topic.state().open_contexts().collect();
            assert!(left.is_empty(), "req 97-99: derived contexts {left:?} outlived every context that implied them");
        }
        if self.is(Check::Current) {
            let cc = self.topic.current_context(&Auth::open()).unwrap();
            assert_eq!(self.topic.state().current(), self.m.current.as_ref());
            match &self.m.current {
                None => assert_eq!(cc, CurrentContext::empty(), "req 104: empty, no fallback"),
                Some(k) => {
                    assert_eq!(cc.context_type, k.resource_type);
                    let anchor_key = EventName::of(&k.resource_type, EventKind::Open).unwrap().anchor_key().unwrap();
                    let anchor = cc.context.iter().find(|e| e.key == anchor_key).unwrap();
                    assert_eq!(anchor.resource_header().unwrap().id.as_deref(), Some(k.id.as_str()));
                    assert_eq!(cc.version_id.as_deref(), self.topic.state().version_of(k));
                }
            }
        }
    }
}

impl Sim {
    /// A denial the Hub sent on its own: only for a lease that ran out or an answer overdue.
    fn check_denial(&self, to: &str, v: &Value) {
        match v["hub.reason"].as_str().unwrap() {
            "unsubscribed" => {}
            "lease expired" => {
                assert!(self.m.lease_until.get(to).is_some_and(|l| *l <= self.m.now), "req 56: {to} denied early");
            }
            r if r.starts_with("unresponsive") => {
                let overdue = self
                    .m
                    .inbox
                    .get(to)
                    .into_iter()
                    .flatten()
                    .any(|(_, _, at)| at.add(Duration::from_secs(10)) <= self.m.now);
                assert!(overdue, "req 85, 87: {to} dropped as unresponsive with no answer overdue");
            }
            r => panic!("unexpected denial reason {r:?}"),
        }
    }
}

fn run(check: Check, ops: &[Op]) {
    let mut sim = Sim::new(check);
    for op in ops {
        sim.step(op);
    }
}

fn config() -> ProptestConfig {
    // XorShift: the default ChaCha generator is most of the run time in a debug build.
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn req45_req88_no_subscriber_gets_an_event_it_was_not_granted(ops in ops()) {
        run(Check::Granted, &ops);
    }

    #[test]
    fn req108_req109_req110_req111_versions_never_repeat_and_stale_updates_change_nothing(ops in ops()) {
        run(Check::Versions, &ops);
    }

    #[test]
    fn req80_accepted_events_reach_every_connected_subscriber_with_the_request_id(ops in ops()) {
        run(Check::Delivery, &ops);
    }

    #[test]
    fn req124_impl_5a9_current_context_is_the_last_open_unless_closed_or_cleared(ops in ops()) {
        run(Check::Current, &ops);
    }

    #[test]
    fn req97_req99_derived_contexts_do_not_outlive_the_contexts_that_imply_them(ops in ops()) {
        run(Check::Derived, &ops);
    }

    #[test]
    fn state_survives_a_json_round_trip_at_any_step(ops in ops(), at in any::<proptest::sample::Index>()) {
        let k = at.index(ops.len());
        let mut a = Sim::new(Check::None);
        for op in &ops[..k] {
            a.step(op);
        }
        let mut b = Sim { topic: restore(&a.topic), m: a.m.clone(), check: Check::None };
        prop_assert_eq!(b.topic.state(), a.topic.state());
        prop_assert_eq!(b.topic.poll_timeout(), a.topic.poll_timeout());
        for op in &ops[k..] {
            let oa = a.step(op);
            let ob = b.step(op);
            prop_assert_eq!(oa, ob, "outputs differ after {:?}", op);
            prop_assert_eq!(a.topic.state(), b.topic.state());
            prop_assert_eq!(a.topic.poll_timeout(), b.topic.poll_timeout());
            prop_assert_eq!(a.topic.current_context(&Auth::open()), b.topic.current_context(&Auth::open()));
        }
    }

    #[test]
    fn poll_timeout_is_none_without_subscriptions(ops in ops()) {
        run(Check::IdleAlarm, &ops);
    }

    #[test]
    fn req47_req54_every_send_goes_to_a_subscription_and_every_denial_is_closed(ops in ops()) {
        run(Check::Endpoints, &ops);
    }

    #[test]
    fn req78_refused_requests_change_nothing_and_send_nothing(ops in ops()) {
        run(Check::Refusals, &ops);
    }

    #[test]
    fn neg24_garbage_messages_are_ignored(ops in ops()) {
        run(Check::Garbage, &ops);
    }

    #[test]
    fn req56_req85_req87_handle_timeout_settles_everything_due(ops in ops()) {
        run(Check::Timeouts, &ops);
    }
}

/// Shares one serialisation between the recipients of a fan-out (a sanity check of the
/// `Arc<str>` in `Outbound::Send`, which the property tests compare by value).
#[test]
fn fan_out_shares_one_text() {
    let mut sim = Sim::new(Check::None);
    for _ in 0..2 {
        sim.step(&Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: true });
    }
    let out = sim.step(&Op::OpenPatient { p: 0, skew: 0 });
    let texts: Vec<&Arc<str>> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Send { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(Arc::ptr_eq(texts[0], texts[1]));
}

/// The minimal case `state_survives_a_json_round_trip_at_any_step` found in CI (2026-12-04),
/// restored at every step: the derived anchors an event recorded stayed marked after it, so a
/// later re-subscribe sent the recorded open where the restored topic minted a fresh id.
#[test]
fn regression_a_renewal_after_a_derived_open_survives_a_round_trip_at_every_step() {
    let ops = vec![
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::HomeOpen { skew: 0 },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::PostSyncError { skew: 0 },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::HomeOpen { skew: -2 },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Subscribe { events: 1, lease: 0, named: false, reuse: None, connect: false },
        Op::Logout { skew: 0 },
        Op::OpenReport { r: 0, p: 0, study: Some(0), skew: 0 },
        Op::Subscribe { events: 132, lease: 0, named: false, reuse: None, connect: true },
        Op::Subscribe { events: 170, lease: 0, named: true, reuse: Some(0), connect: false },
    ];
    for k in 0..=ops.len() {
        let mut a = Sim::new(Check::None);
        for op in &ops[..k] {
            a.step(op);
        }
        let mut b = Sim { topic: restore(&a.topic), m: a.m.clone(), check: Check::None };
        for op in &ops[k..] {
            assert_eq!(a.step(op), b.step(op), "restored at step {k}: outputs differ after {op:?}");
            assert_eq!(a.topic.state(), b.topic.state());
        }
    }
}
