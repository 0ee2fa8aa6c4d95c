//! The hub's topic state machine driven by an arbitrary sequence of inputs, exactly as the
//! Durable Object drives it: forms through `SubscriptionRequest::from_form`, event bodies
//! through `Event::parse_envelope`, socket text through `handle_message`, closes with any
//! code, time jumps with `handle_timeout`, and evictions (state through JSON and
//! `Topic::restore`).
//!
//! After every input the outputs are checked (the simulator and the proptest properties in
//! `core/tests` check the protocol's finer rules over well-formed traffic; this target's job
//! is hostile traffic):
//! - req 45, 88: a notification goes only to a subscriber whose last confirmation granted
//!   its event, and never before a confirmation;
//! - every `Send` goes to a live subscription, or is the denial right before its `Close`;
//!   nothing is sent to a socket after its `Close`, and a closed subscription is gone;
//! - req 78: a refused event request changes nothing and sends nothing, and is a 4xx;
//! - the state survives a JSON round trip unchanged at every step;
//! - `poll_timeout()` is `None` exactly when there is no subscription (idle topics need no
//!   alarm), and is never in the past after `handle_timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arbitrary::{Result, Unstructured};
use fhircast_core::hub::store::{MemoryStore, ROW_LIMIT_BYTES};
use fhircast_core::hub::{Auth, HubConfig, Outbound, Topic, TopicState};
use fhircast_core::scope::Scopes;
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::{Event, Timestamp};
use serde_json::Value;

use crate::gen::{self, pick, NAMES};

/// What the target reached, summed over every input of the process: evidence that inputs get
/// past the parsers into the state machine (printed by the seeded run).
pub static REACHED: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
/// Indexes into [`REACHED`].
pub const SUBSCRIBED: usize = 0;
/// Event requests accepted.
pub const ACCEPTED: usize = 1;
/// Event requests refused (4xx).
pub const REFUSED: usize = 2;
/// Notifications sent.
pub const NOTIFIED: usize = 3;

fn count(i: usize) {
    REACHED[i].fetch_add(1, Ordering::Relaxed);
}

const T: &str = "T1";
const PATIENTS: [&str; 3] = ["p1", "p2", "p3"];
const REPORTS: [&str; 2] = ["r1", "r2"];
const STATUSES: [u16; 9] = [200, 202, 204, 400, 409, 413, 500, 503, 599];
const CLOSE_CODES: [u16; 6] = [1000, 1001, 1005, 1006, 1011, 4000];
const ADVANCES_MS: [u64; 8] = [0, 100, 5_000, 9_999, 10_001, 61_000, 3_600_000, 90_000_000];

struct Driver {
    topic: Topic,
    /// The topic's stored rows, written at each eviction.
    store: MemoryStore,
    now: Timestamp,
    next: u32,
    /// Tokens ever issued, so inputs can name them.
    tokens: Vec<String>,
    /// The events each endpoint's last confirmation granted (lower case).
    granted: BTreeMap<String, BTreeSet<String>>,
    /// Notification ids sent to each endpoint, to ack.
    sent_ids: BTreeMap<String, Vec<String>>,
    /// Request ids posted, to retry.
    posted: Vec<String>,
    /// Version ids seen in outputs, to send back.
    versions: Vec<String>,
}

fn auth(u: &mut Unstructured<'_>, now: Timestamp) -> Result<Auth> {
    Ok(match u.int_in_range(0..=5u8)? {
        0..=2 => Auth::open(),
        3 => Auth {
            scopes: Some(Scopes::parse(pick(
                u,
                &["fhircast/Patient-open.read fhircast/Patient-open.write", "fhircast/*.read", "fhircast/*.*", ""],
            )?)),
            expires_at: None,
            topic: Some(T.into()),
            subject: Some("user-1".into()),
            client: Some("app-1".into()),
        },
        4 => Auth { expires_at: Some(now.add(Duration::from_secs(u.int_in_range(0..=120)?))), ..Auth::open() },
        _ => Auth { topic: Some("T2".into()), ..Auth::open() },
    })
}

impl Driver {
    fn new() -> Driver {
        let config = HubConfig {
            max_subscriptions: 8,
            max_open_contexts: 4,
            dedup_window: 8,
            record: true,
            ..HubConfig::default()
        };
        Driver {
            topic: Topic::new(T, "fz", config),
            store: MemoryStore::default(),
            now: Timestamp::from_unix_millis(1_767_261_600_000),
            next: 0,
            tokens: Vec::new(),
            granted: BTreeMap::new(),
            sent_ids: BTreeMap::new(),
            posted: Vec::new(),
            versions: Vec::new(),
        }
    }

    /// The issued endpoints that are subscriptions now.
    fn live_tokens(&self) -> BTreeSet<String> {
        self.tokens.iter().filter(|t| self.topic.has_endpoint(t)).cloned().collect()
    }

    fn token(&self, u: &mut Unstructured<'_>) -> Result<String> {
        if self.tokens.is_empty() || u.ratio(1, 10)? {
            return Ok(pick(u, &["", "nope", "e0", "../e1"])?.to_string());
        }
        Ok(pick(u, &self.tokens)?.clone())
    }

    fn subscription_form(&mut self, u: &mut Unstructured<'_>) -> Result<String> {
        let mut events = Vec::new();
        for _ in 0..u.int_in_range(1..=4u8)? {
            events.push(*pick(u, NAMES)?);
        }
        let mode = if u.ratio(1, 5)? { "unsubscribe" } else { "subscribe" };
        let mut form =
            format!("hub.channel.type=websocket&hub.mode={mode}&hub.topic={T}&hub.events={}", events.join(","));
        if u.arbitrary()? {
            form.push_str(&format!("&hub.lease_seconds={}", pick(u, &[1u64, 5, 30, 3600, 999_999])?));
        }
        if u.arbitrary()? {
            form.push_str("&subscriber.name=App%20");
            form.push_str(&self.next.to_string());
        }
        if mode == "unsubscribe" || u.ratio(1, 4)? {
            let t = self.token(u)?;
            form.push_str(&format!("&hub.channel.endpoint=wss%3A%2F%2Fh%2Fws%2FT1%2F{t}%0A"));
        }
        if u.ratio(1, 6)? {
            form = gen::mutate(u, form)?;
        }
        Ok(form)
    }

    fn event_text(&mut self, u: &mut Unstructured<'_>) -> Result<String> {
        let p = *pick(u, &PATIENTS)?;
        let r = *pick(u, &REPORTS)?;
        let patient = format!(r#"{{"key":"patient","resource":{{"resourceType":"Patient","id":"{p}"}}}}"#);
        let report = format!(r#"{{"key":"report","resource":{{"resourceType":"DiagnosticReport","id":"{r}"}}}}"#);
        let study = r#"{"key":"study","resource":{"resourceType":"ImagingStudy","id":"s1"}}"#;
        let report_ref = format!(r#"{{"key":"report","reference":{{"reference":"DiagnosticReport/{r}"}}}}"#);
        let entries = (0..u.int_in_range(0..=3u8)?)
            .map(|i| {
                if u.arbitrary().unwrap_or(true) {
                    format!(
                        r#"{{"request":{{"method":"PUT"}},"resource":{{"resourceType":"Observation","id":"o{i}"}}}}"#
                    )
                } else {
                    format!(r#"{{"request":{{"method":"DELETE"}},"fullUrl":"Observation/o{i}"}}"#)
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let bundle = format!(
            r#"{{"key":"updates","resource":{{"resourceType":"Bundle","type":"transaction","entry":[{entries}]}}}}"#
        );
        let oo = r#"{"key":"operationoutcome","resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","diagnostics":"x","details":{"coding":[{"system":"https://fhircast.hl7.org/events/syncerror/eventid","code":"e1"},{"system":"https://fhircast.hl7.org/events/syncerror/eventname","code":"Patient-open"},{"system":"https://fhircast.hl7.org/events/syncerror/subscribername","code":"X"}]}}]}}"#;
        let (name, context) = match u.int_in_range(0..=10u8)? {
            0 | 1 => ("Patient-open", format!("[{patient}]")),
            2 => ("Patient-close", format!("[{patient}]")),
            3 | 4 => ("DiagnosticReport-open", format!("[{report},{patient},{study}]")),
            5 => ("DiagnosticReport-close", format!("[{report},{patient}]")),
            6 | 7 => ("DiagnosticReport-update", format!("[{report_ref},{bundle}]")),
            8 => (
                "DiagnosticReport-select",
                format!(r#"[{report_ref},{{"key":"select","reference":{{"reference":"Observation/o1"}}}}]"#),
            ),
            9 => ("SyncError", format!("[{oo}]")),
            _ => (*pick(u, &["Home-open", "UserLogout", "org.example.thing", "ImagingStudy-open"])?, "[]".to_string()),
        };
        let id = if !self.posted.is_empty() && u.ratio(1, 5)? {
            pick(u, &self.posted)?.clone()
        } else {
            self.next += 1;
            format!("req-{}", self.next)
        };
        self.posted.push(id.clone());
        let skew_ms: i64 = u.int_in_range(-20_000..=20_000)?;
        let ts = Timestamp::from_unix_millis(self.now.unix_millis() + skew_ms).to_rfc3339();
        let version = match u.int_in_range(0..=3u8)? {
            0 if !self.versions.is_empty() => format!(r#","context.versionId":"{}""#, pick(u, &self.versions)?),
            1 if !self.versions.is_empty() => {
                format!(r#","context.versionId":"{}""#, self.versions.last().expect("non-empty"))
            }
            2 => r#","context.versionId":"bogus""#.into(),
            _ => String::new(),
        };
        let topic = if u.ratio(1, 20)? { "T2" } else { T };
        let mut text = format!(
            r#"{{"timestamp":"{ts}","id":"{id}","event":{{"hub.topic":"{topic}","hub.event":"{name}"{version},"context":{context}}}}}"#
        );
        if u.ratio(1, 8)? {
            text = gen::mutate(u, text)?;
        }
        Ok(text)
    }

    /// One input, then its outputs checked.
    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let before_subs: BTreeSet<String> = self.live_tokens();
        match u.int_in_range(0..=9u8)? {
            0 | 1 => {
                let form = self.subscription_form(u)?;
                let auth = auth(u, self.now)?;
                self.next += 1;
                let token = format!("e{}", self.next);
                if let Ok(req) = SubscriptionRequest::from_form(&form) {
                    match self.topic.handle_subscription(&req, &auth, &token, self.now) {
                        Ok(acc) => {
                            count(SUBSCRIBED);
                            // Most subscribers open their socket at once, as real ones do.
                            if acc.endpoint == token && u.ratio(3, 4)? {
                                let _ = self.topic.handle_connect(&token, self.now);
                            }
                            if !self.tokens.contains(&acc.endpoint) {
                                self.tokens.push(acc.endpoint);
                            }
                        }
                        Err(e) => assert!((400..500).contains(&e.http_status()), "{e}"),
                    }
                }
            }
            2 => {
                let t = self.token(u)?;
                let _ = self.topic.handle_connect(&t, self.now);
            }
            3..=5 => {
                let text = self.event_text(u)?;
                let auth = auth(u, self.now)?;
                if let Ok(event) = Event::parse_envelope(&text) {
                    let state = self.topic.state().clone();
                    let result = self.topic.handle_event(event, &auth, self.now);
                    count(if result.is_ok() { ACCEPTED } else { REFUSED });
                    if let Err(e) = result {
                        assert!((400..500).contains(&e.http_status()), "{e}");
                        assert_eq!(self.topic.state(), &state, "req 78: a refused request changed the state: {e}");
                        assert!(self.topic.poll_outbound().is_none(), "req 78: a refused request sent something: {e}");
                    }
                }
            }
            6 => {
                let t = self.token(u)?;
                let text = match self.sent_ids.get(&t).filter(|ids| !ids.is_empty()) {
                    Some(ids) if u.ratio(4, 5)? => {
                        let id = pick(u, ids)?.clone();
                        let status = pick(u, &STATUSES)?;
                        if u.arbitrary()? {
                            format!(r#"{{"id":"{id}","status":{status}}}"#)
                        } else {
                            format!(r#"{{"id":"{id}","status":"{status}"}}"#)
                        }
                    }
                    _ => gen::text(u, &[r#"{"id":"x","status":200}"#.into()])?,
                };
                let _ = self.topic.handle_message(&t, &text, self.now);
            }
            7 => {
                let t = self.token(u)?;
                let code = *pick(u, &CLOSE_CODES)?;
                self.topic.handle_close(&t, code, self.now);
            }
            8 => {
                let ms = *pick(u, &ADVANCES_MS)?;
                self.now = match (u.arbitrary()?, self.topic.poll_timeout()) {
                    (true, Some(t)) if t > self.now => t,
                    _ => self.now.add(Duration::from_millis(ms)),
                };
                self.topic.handle_timeout(self.now);
                if let Some(t) = self.topic.poll_timeout() {
                    assert!(t > self.now, "handle_timeout left something due");
                }
            }
            _ => {
                // Eviction: the Durable Object writes what changed to its rows and rebuilds the
                // topic from them; a change that was not marked for writing is lost here.
                let back = self.store.evict(&mut self.topic).expect("every row within the limits");
                assert_eq!(back.state(), self.topic.state(), "the stored rows restore the whole state");
                for (table, bytes) in self.store.sizes() {
                    assert!(bytes <= ROW_LIMIT_BYTES, "a {table:?} row of {bytes} bytes");
                }
                self.topic = back;
            }
        }
        self.check_outputs(&before_subs);
        Ok(())
    }

    fn check_outputs(&mut self, before_subs: &BTreeSet<String>) {
        // Issue 17: every fact serialises and makes an AuditEvent (or none) without panicking.
        for fact in self.topic.take_facts() {
            serde_json::to_string(&fact).expect("facts serialise");
            let _ = fhircast_core::audit::audit_event(&fact, T, None);
            let _ = fhircast_core::metrics::data_point(&fact, T);
        }
        let out: Vec<Outbound> = std::iter::from_fn(|| self.topic.poll_outbound()).collect();
        let live = self.live_tokens();
        let mut closed = BTreeSet::new();
        for (i, o) in out.iter().enumerate() {
            match o {
                Outbound::Send { to, text } => {
                    assert!(!closed.contains(to), "a send to {to} after its Close");
                    let denial_then_close = matches!(out.get(i + 1), Some(Outbound::Close { to: c, .. }) if c == to);
                    assert!(
                        live.contains(to) || (before_subs.contains(to) && denial_then_close),
                        "a send to {to}, which is no subscription: {text}"
                    );
                    let v: Value = serde_json::from_str(text).expect("the hub sends JSON");
                    if v["hub.mode"] == "subscribe" {
                        let events = v["hub.events"].as_str().expect("hub.events is text");
                        self.granted.insert(to.clone(), events.split(',').map(|e| e.trim().to_lowercase()).collect());
                    } else if let Some(name) = v["event"]["hub.event"].as_str() {
                        let granted = self
                            .granted
                            .get(to)
                            .unwrap_or_else(|| panic!("{name} sent to {to} before any confirmation"));
                        assert!(
                            granted.contains(&name.to_lowercase()),
                            "req 45: {name} sent to {to}, granted {granted:?}"
                        );
                        assert_eq!(v["event"]["hub.topic"], T, "an event of another topic");
                        count(NOTIFIED);
                        let id = v["id"].as_str().expect("notifications have an id").to_owned();
                        self.sent_ids.entry(to.clone()).or_default().push(id);
                        for k in ["context.versionId", "context.priorVersionId"] {
                            if let Some(ver) = v["event"][k].as_str() {
                                self.versions.push(ver.to_owned());
                            }
                        }
                    }
                }
                Outbound::Close { to, .. } => {
                    assert!(!live.contains(to), "{to} closed but still subscribed");
                    closed.insert(to.clone());
                }
            }
        }
        let json = serde_json::to_string(self.topic.state()).expect("state serialises");
        let back: TopicState = serde_json::from_str(&json).expect("state deserialises");
        assert_eq!(&back, self.topic.state(), "the state does not survive JSON");
        assert_eq!(
            self.topic.poll_timeout().is_none(),
            self.topic.subscription_count() == 0,
            "poll_timeout vs subscriptions"
        );
        if self.versions.len() > 64 {
            self.versions.drain(..32);
        }
        if self.posted.len() > 64 {
            self.posted.drain(..32);
        }
    }
}

/// Up to 64 inputs to one topic, checked after each.
pub fn topic_machine(u: &mut Unstructured<'_>) -> Result<()> {
    let mut d = Driver::new();
    for _ in 0..u.int_in_range(1..=64u8)? {
        d.step(u)?;
    }
    Ok(())
}
