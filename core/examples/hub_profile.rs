//! Where a topic's per-event time goes, natively: the work the Durable Object does for one
//! published event with N connected subscribers that all ack, split into its parts, on a topic
//! in steady use (its 1,024-id dedup window full).
//!
//! `cargo run --release -p fhircast-core --example hub_profile [N ...]` (default 10 100 1000).
//!
//! "before" is what the object stored until the storage split (the whole state after every
//! input, each ack included, and `poll_timeout` after each); "after" is what it stores now
//! (the meta part per event; the subscriptions part once per flush). The shell's own costs
//! (JS calls, SQLite commits, sockets) are not here; `make bench` measures the whole.

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
    // The dedup window (1,024 ids) full, as on a topic in steady use.
    for i in 0..1_100 {
        let ev = Event::parse_envelope(&event_body(topic_name, 1_000_000 + i)).expect("parses");
        topic.handle_event(ev, &auth, now).expect("accepted");
        while topic.poll_outbound().is_some() {}
        for tok in &tokens {
            topic.handle_message(tok, &format!(r#"{{"id":"ev-{}","status":200}}"#, 1_000_000 + i), now).expect("ack");
        }
    }
    let (mut parse, mut handle, mut drain, mut state_event, mut acks, mut state_acks, mut timeouts) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    let mut state_bytes = 0;
    let (mut meta_event, mut subs_once, mut meta_bytes, mut subs_bytes) = (0f64, 0f64, 0, 0);
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
        let meta = topic.state().meta_row();
        meta_event += t.elapsed().as_secs_f64();
        meta_bytes = meta.len();
        let t = Instant::now();
        subs_bytes = topic
            .take_writes(fhircast_core::hub::store::WriteScope::All)
            .rows
            .iter()
            .map(|w| match w {
                fhircast_core::hub::store::RowWrite::Put { json, .. } => json.len(),
                _ => 0,
            })
            .sum();
        subs_once += t.elapsed().as_secs_f64();
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
    println!("N={n}: per event, µs (native, release)");
    println!("  parse envelope (the Worker and the object each do it) {:10.1}", us(parse));
    println!("  handle_event                                           {:10.1}", us(handle));
    println!("  drain outbound ({sent_bytes} bytes fanned out)          {:10.1}", us(drain));
    println!("  N acks (handle_message)                                {:10.1}", us(acks));
    println!("  before: whole state JSON after each input:");
    println!("    after the event ({state_bytes} bytes)                 {:10.1}", us(state_event));
    println!("    after each of the N acks                             {:10.1}", us(state_acks));
    println!("    poll_timeout after each of the N acks                {:10.1}", us(timeouts));
    println!("  after: meta JSON after the event ({meta_bytes} bytes)    {:10.1}", us(meta_event));
    println!("         subscriptions JSON, once per flush ({subs_bytes} bytes) {:10.1}", us(subs_once));
}
