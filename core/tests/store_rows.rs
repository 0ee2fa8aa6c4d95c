//! Issue 13: every stored row of a topic stays under the platform's row limit (2 MB on
//! SQLite-backed Durable Objects), by construction, for any sequence of accepted input —
//! and the rows written restore the whole state.
//!
//! The Hub runs with every size setting at the largest the edge hub allows (`config.rs`:
//! `MAX_BODY_BYTES`, `MAX_CONTENT_BYTES`, `MAX_PENDING_ACKS`, `DEDUP_WINDOW`), and the inputs
//! are the worst the parsers accept: opens up to the body limit, update bundles that grow one
//! context's content, ids and names at their maximum length made of characters JSON escapes
//! six-fold, subscribers that never answer, many anchors. After every input the marked rows
//! are written to a [`MemoryStore`] that refuses a row over [`ROW_LIMIT_BYTES`]; at the end
//! the store is read back and must equal the live state.

use std::time::Duration;

use fhircast_core::hub::store::{MemoryStore, WriteScope, ROW_LIMIT_BYTES};
use fhircast_core::hub::{Auth, EventRejected, HubConfig, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::time::Timestamp;
use fhircast_core::Event;
use proptest::prelude::*;
use serde_json::json;

const T: &str = "T1";
/// The largest `MAX_BODY_BYTES` and `MAX_CONTENT_BYTES` the edge hub accepts.
const MAX_BODY: usize = 1_900_000;

fn config() -> HubConfig {
    HubConfig {
        max_event_bytes: MAX_BODY,
        max_content_bytes: MAX_BODY,
        max_topic_bytes: 64 << 20,
        max_pending_acks: 512,
        dedup_window: 100_000,
        max_open_contexts: 64,
        ..HubConfig::default()
    }
}

/// A string of `len` bytes that JSON escapes as `\u0001` (six bytes each) when `escaped`.
fn worst(seed: u32, len: usize, escaped: bool) -> String {
    let c = if escaped { '\u{1}' } else { 'x' };
    let prefix = format!("{seed}-");
    let mut s = prefix.clone();
    s.extend(std::iter::repeat_n(c, len.saturating_sub(prefix.len())));
    s
}

#[derive(Clone, Debug)]
enum Op {
    /// A subscriber with a long name that never answers (its pending answers pile up).
    Subscribe { escaped: bool },
    /// A Patient-open with `pad` bytes of narrative, an id of `id_len` bytes.
    OpenPatient { n: u32, pad: usize, id_len: usize, escaped: bool },
    /// A DiagnosticReport-open carrying its patient (the Hub derives a Patient-open).
    OpenReport { n: u32, pad: usize },
    /// An update of the current anchor adding one resource of `pad` bytes.
    Update { pad: usize, escaped: bool },
    /// Time passes (acks time out, subscribers are dropped).
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let pad = prop_oneof![Just(0usize), 1usize..5_000, 200_000usize..600_000, Just(MAX_BODY - 2_000), Just(MAX_BODY)];
    prop_oneof![
        2 => any::<bool>().prop_map(|escaped| Op::Subscribe { escaped }),
        4 => (0u32..80, pad.clone(), prop_oneof![Just(8usize), Just(256usize)], any::<bool>())
            .prop_map(|(n, pad, id_len, escaped)| Op::OpenPatient { n, pad, id_len, escaped }),
        2 => (0u32..10, pad.clone()).prop_map(|(n, pad)| Op::OpenReport { n, pad }),
        3 => (pad, any::<bool>()).prop_map(|(pad, escaped)| Op::Update { pad, escaped }),
        1 => prop_oneof![Just(100u64), Just(10_500u64)].prop_map(|ms| Op::Wait { ms }),
    ]
}

struct Run {
    topic: Topic,
    store: MemoryStore,
    now: Timestamp,
    seq: u32,
    current_version: Option<(String, String)>,
}

impl Run {
    fn id(&mut self, escaped: bool) -> String {
        self.seq += 1;
        worst(self.seq, 256, escaped && self.seq.is_multiple_of(3))
    }

    fn post(&mut self, ev: serde_json::Value) -> Result<(), EventRejected> {
        let e = Event::parse_envelope(&ev.to_string()).expect("the envelope parses");
        let a = self.topic.handle_event(e, &Auth::open(), self.now)?;
        if let (Some(v), Some(key)) = (a.version_id, self.topic.state().current()) {
            self.current_version = Some((key.to_string(), v));
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) {
        self.now = self.now.add(Duration::from_millis(5));
        let stamp = self.now.to_rfc3339();
        match op {
            Op::Subscribe { escaped } => {
                let name = worst(self.seq, 256 / if *escaped { 4 } else { 1 }, *escaped);
                let form = format!(
                    "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={T}&hub.events=Patient-open,Patient-close,DiagnosticReport-open,DiagnosticReport-update,SyncError&subscriber.name={}",
                    urlencode(&name)
                );
                let req = SubscriptionRequest::from_form(&form).expect("the form parses");
                self.seq += 1;
                let token = format!("tok{}", self.seq);
                if self.topic.handle_subscription(&req, &Auth::open(), &token, self.now).is_ok() {
                    self.topic.handle_connect(&token, self.now).expect("connects");
                }
            }
            Op::OpenPatient { n, pad, id_len, escaped } => {
                let pid = worst(*n, *id_len, false);
                let id = self.id(*escaped);
                let _ = self.post(
                    json!({"timestamp": stamp, "id": id, "event": {"hub.topic": T, "hub.event": "Patient-open",
                    "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": pid,
                        "text": {"div": worst(0, *pad, false)}}}]}}),
                );
            }
            Op::OpenReport { n, pad } => {
                let id = self.id(true);
                let _ = self.post(json!({"timestamp": stamp, "id": id, "event": {"hub.topic": T, "hub.event": "DiagnosticReport-open",
                    "context": [
                        {"key": "report", "resource": {"resourceType": "DiagnosticReport", "id": format!("r{n}")}},
                        {"key": "patient", "resource": {"resourceType": "Patient", "id": format!("rp{n}"), "text": {"div": worst(1, *pad, false)}}}
                    ]}}));
            }
            Op::Update { pad, escaped } => {
                // Only with a current report; otherwise nothing is posted, but what there is
                // is written all the same (a store is never left without its meta row).
                let Some((anchor, version)) = self.current_version.clone() else { return self.write(op) };
                let Some(report) = anchor.strip_prefix("DiagnosticReport/") else { return self.write(op) };
                self.seq += 1;
                let obs = format!("o{}", self.seq % 7);
                let id = self.id(*escaped);
                let _ = self.post(json!({"timestamp": stamp, "id": id, "event": {"hub.topic": T,
                    "hub.event": "DiagnosticReport-update", "context.versionId": version,
                    "context": [
                        {"key": "report", "reference": {"reference": format!("DiagnosticReport/{report}")}},
                        {"key": "updates", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [
                            {"request": {"method": "PUT", "url": format!("Observation/{obs}")},
                             "resource": {"resourceType": "Observation", "id": obs, "note": [{"text": worst(2, *pad, *escaped)}]}}
                        ]}}
                    ]}}));
            }
            Op::Wait { ms } => {
                self.now = self.now.add(Duration::from_millis(*ms));
                self.topic.handle_timeout(self.now);
            }
        }
        self.write(op);
    }

    /// Drains what the topic sends and writes what it changed, as the Durable Object does.
    fn write(&mut self, op: &Op) {
        while self.topic.poll_outbound().is_some() {}
        let w = self.topic.take_writes(WriteScope::All);
        assert!(w.largest_row() <= ROW_LIMIT_BYTES, "a row of {} bytes after {op:?}", w.largest_row());
        self.store.apply(&w, ROW_LIMIT_BYTES).expect("every row within the limit");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn issue13_every_stored_row_is_within_the_platform_limit_and_the_rows_restore_the_state(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        let mut run = Run {
            topic: Topic::new(T, "h", config()),
            store: MemoryStore::default(),
            now: Timestamp::from_unix_millis(1_700_000_000_000),
            seq: 0,
            current_version: None,
        };
        for op in &ops {
            run.step(op);
        }
        for (table, bytes) in run.store.sizes() {
            prop_assert!(bytes <= ROW_LIMIT_BYTES, "{table:?} row of {bytes} bytes");
        }
        let back = run.store.load().unwrap().expect("stored");
        prop_assert!(&back == run.topic.state(), "the rows restore the state");
    }
}

/// The worst case for one subscription row: a name of 256 escaped characters, and the most
/// unanswered notifications allowed, each with an id of 256 escaped characters, derived from
/// an event with such an id. One more notification and the subscriber is dropped.
#[test]
fn issue13_a_subscriber_that_never_answers_stays_within_one_row_and_is_dropped_past_the_limit() {
    let cfg = config();
    let mut run = Run {
        topic: Topic::new(T, "h", cfg.clone()),
        store: MemoryStore::default(),
        now: Timestamp::from_unix_millis(1_700_000_000_000),
        seq: 0,
        current_version: None,
    };
    run.step(&Op::Subscribe { escaped: true });
    run.step(&Op::Subscribe { escaped: false });
    for i in 0..cfg.max_pending_acks {
        run.step(&Op::OpenReport { n: i as u32 % 10, pad: 0 });
        if run.topic.subscription_count() < 2 {
            // Each report open sends a subscriber one notification; derived patients may add
            // one: the limit is reached before this many opens.
            break;
        }
    }
    for _ in 0..cfg.max_pending_acks {
        run.step(&Op::OpenPatient { n: 1, pad: 0, id_len: 256, escaped: true });
    }
    assert_eq!(run.topic.subscription_count(), 0, "both were dropped for not keeping up");
    let largest = run.store.sizes().map(|(_, n)| n).max().unwrap();
    assert!(largest <= ROW_LIMIT_BYTES);
}

/// Refusals at the limits: an open over the event limit, content over the content limit, a
/// topic whose contexts in use cannot fit; each 413 and nothing changed.
#[test]
fn issue13_limits_refuse_with_413_before_anything_changes() {
    let cfg = HubConfig { max_event_bytes: 10_000, max_content_bytes: 20_000, max_topic_bytes: 60_000, ..config() };
    let mut run = Run {
        topic: Topic::new(T, "h", cfg),
        store: MemoryStore::default(),
        now: Timestamp::from_unix_millis(1_700_000_000_000),
        seq: 0,
        current_version: None,
    };
    let open = |run: &mut Run, pad: usize, n: u32| {
        let stamp = run.now.to_rfc3339();
        let id = run.id(false);
        run.post(json!({"timestamp": stamp, "id": id, "event": {"hub.topic": T, "hub.event": "DiagnosticReport-open",
            "context": [
                {"key": "report", "resource": {"resourceType": "DiagnosticReport", "id": format!("r{n}"), "text": {"div": worst(0, pad, false)}}},
                {"key": "patient", "resource": {"resourceType": "Patient", "id": "p1"}}
            ]}}))
    };
    let e = open(&mut run, 12_000, 1).unwrap_err();
    assert_eq!(e.http_status(), 413, "{e}");
    assert!(e.to_string().contains("MAX_BODY_BYTES"), "{e}");
    assert!(run.topic.state().current().is_none());
    open(&mut run, 5_000, 1).unwrap();
    let before = run.topic.state().clone();
    run.step(&Op::Update { pad: 25_000, escaped: false });
    assert_eq!(run.topic.state(), &before, "content over its limit: refused, nothing changed");
    run.step(&Op::Update { pad: 15_000, escaped: false });
    assert_ne!(run.topic.state(), &before, "content within its limit: applied");
    // Older contexts are evicted to make room; the current one (with its content) is kept.
    for n in 2..8 {
        open(&mut run, 9_000, n).unwrap();
    }
    let total: usize = run.store.sizes().map(|(_, n)| n).sum();
    assert!(total < 60_000 + 10_000, "the topic stays near its limit: {total}");
    // A context that cannot fit even with every other one evicted (it and the patient it
    // implies): refused.
    let before = run.topic.state().clone();
    run.topic = Topic::restore(before.clone(), HubConfig { max_topic_bytes: 15_000, ..run.topic.config().clone() });
    let e = open(&mut run, 9_000, 9).unwrap_err();
    assert_eq!(e.http_status(), 413, "{e}");
    assert!(e.to_string().contains("MAX_TOPIC_BYTES"), "{e}");
    assert_eq!(run.topic.state(), &before);
}
