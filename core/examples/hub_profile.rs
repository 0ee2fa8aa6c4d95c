//! Where a topic's per-event time goes, natively: the work the Durable Object does for one
//! published event with N connected subscribers that all ack, split into its parts.
//!
//! `cargo run --release -p fhircast-core --example hub_profile [N ...]` (default 10 100 1000).
//! The shell's own costs (JS calls, SQLite, sockets) are not here; the parts that grow with N
//! are, and the shell's share of them is "state JSON written per input" (what it stores).

use std::time::Instant;

use fhircast_core::hub::{Auth, HubConfig, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::{Event, Timestamp};

fn event_body(topic: &str, i: usize) -> String {
    format!(
        r#"{{"timestamp":"2026-11-22T07:00:00.000Z","id":"ev-{i}","event":{{"hub.topic":"{topic}","hub.event":"Patient-open","context":[{{"key":"patient","resource":{{"resourceType":"Patient","id":"p{}","identifier":[{{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"p{}"}}]}}}}]}}}}"#,
        i % 8,
        i % 8
    )
}

fn main() {
    let ns: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let ns = if ns.is_empty() { vec![10, 100, 1000] } else { ns };
    for n in ns {
        profile(n);
    }
}

fn profile(n: usize) {
    let topic_name = "profile";
    let mut topic = Topic::new(topic_name, "p0", HubConfig { max_subscriptions: n + 10, ..HubConfig::default() });
    let auth = Auth::open();
    let now = Timestamp::from_unix_millis(1_800_000_000_000);
    let form = format!("hub.channel.type=websocket&hub.mode=subscribe&hub.topic={topic_name}&hub.events=Patient-open");
    let req = SubscriptionRequest::from_form(&form).expect("form");
    let tokens: Vec<String> = (0..n).map(|i| format!("tok{i:06}")).collect();
    for t in &tokens {
        topic.handle_subscription(&req, &auth, t, now).expect("subscribe");
        topic.handle_connect(t, now).expect("connect");
    }
    while topic.poll_outbound().is_some() {}

    let rounds = if n >= 1000 { 20 } else { 200 };
    let (mut parse, mut handle, mut drain, mut state_event, mut acks, mut state_acks, mut timeouts) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    let mut state_bytes = 0;
    let mut sent_bytes = 0;
    for i in 0..rounds {
        let body = event_body(topic_name, i);
        let t = Instant::now();
        let ev = Event::parse_envelope(&body).expect("parses");
        let ev2 = Event::parse_envelope(&body).expect("parses");
        parse += t.elapsed().as_secs_f64() / 2.0;
        drop(ev2);
        let t = Instant::now();
        topic.handle_event(ev, &auth, now).expect("accepted");
        handle += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut sent = 0;
        while let Some(o) = topic.poll_outbound() {
            if let fhircast_core::hub::Outbound::Send { text, .. } = o {
                sent += text.len();
            }
        }
        drain += t.elapsed().as_secs_f64();
        sent_bytes = sent;
        let t = Instant::now();
        let json = serde_json::to_string(topic.state()).expect("state");
        state_event += t.elapsed().as_secs_f64();
        state_bytes = json.len();
        let t = Instant::now();
        let mut per_ack_state = 0f64;
        let mut per_ack_timeout = 0f64;
        for tok in &tokens {
            let a = Instant::now();
            topic.handle_message(tok, &format!(r#"{{"id":"ev-{i}","status":200}}"#), now).expect("ack");
            let b = Instant::now();
            let _ = serde_json::to_string(topic.state()).expect("state");
            per_ack_state += b.elapsed().as_secs_f64();
            let c = Instant::now();
            let _ = topic.poll_timeout();
            per_ack_timeout += c.elapsed().as_secs_f64();
            let _ = a;
        }
        let total_acks = t.elapsed().as_secs_f64();
        acks += total_acks - per_ack_state - per_ack_timeout;
        state_acks += per_ack_state;
        timeouts += per_ack_timeout;
    }
    let us = |x: f64| x / rounds as f64 * 1e6;
    println!(
        "N={n:5}: per event (µs): parse envelope {:8.1} (the Worker and the object each do it) | handle_event {:8.1} | drain outbound {:8.1} | state JSON after event {:8.1} ({state_bytes} bytes) | N acks {:9.1} | state JSON after each ack {:10.1} | poll_timeout after each input {:8.1} | fan-out bytes {sent_bytes}",
        us(parse),
        us(handle),
        us(drain),
        us(state_event),
        us(acks),
        us(state_acks),
        us(timeouts),
    );
}
