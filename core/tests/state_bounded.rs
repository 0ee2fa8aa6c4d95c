//! The stored state does not grow with history (issue #7, the soak): after any number of
//! subscribers joining and leaving and of events accepted, the two stored parts and the request
//! ids are no bigger than after the first round. A topic that remembered every endpoint or
//! token it ever issued, a roster history, or request ids beyond the dedup window would fail.

use fhircast_core::hub::store::{MemoryStore, Table};
use fhircast_core::hub::{Auth, HubConfig, Outbound, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::time::Timestamp;
use fhircast_core::wire::Ack;
use fhircast_core::Event;
use serde_json::{json, Value};

const T: &str = "T1";

fn request(form: &str) -> SubscriptionRequest {
    SubscriptionRequest::from_form(&format!("hub.channel.type=websocket&hub.topic={T}&{form}")).unwrap()
}

/// Everything the Durable Object writes for this topic, in bytes, and the request ids kept.
fn stored(topic: &Topic) -> (usize, usize, usize) {
    let (store, _) = MemoryStore::whole(topic).unwrap();
    let bytes = |t: Table| store.sizes().filter(|(table, _)| *table == t).map(|(_, n)| n).sum::<usize>();
    (bytes(Table::Meta) + bytes(Table::Open) + bytes(Table::Content), bytes(Table::Subscription), store.recent.len())
}

/// Answers every notification with 200, as a live subscriber does.
fn ack_all(topic: &mut Topic, now: Timestamp) {
    let out: Vec<Outbound> = std::iter::from_fn(|| topic.poll_outbound()).collect();
    for o in out {
        if let Outbound::Send { to, text } = o {
            let v: Value = serde_json::from_str(&text).unwrap();
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                topic.handle_ack(&to, &Ack { id: id.into(), status: 200 }, now);
            }
        }
    }
}

/// One round: 30 subscribers come and go (unsubscribed without a socket, closed with 1000,
/// dropped with 1006, so SyncErrors are minted too) while two steady subscribers receive 30
/// events with fresh ids.
fn round(topic: &mut Topic, r: u32, now: Timestamp) {
    for i in 0..30 {
        let token = format!("r{r}t{i}");
        topic
            .handle_subscription(&request("hub.mode=subscribe&hub.events=Patient-open"), &Auth::open(), &token, now)
            .unwrap();
        match i % 3 {
            0 => {
                let unsub = request(&format!("hub.mode=unsubscribe&hub.channel.endpoint=wss://h/ws/{T}/{token}"));
                topic.handle_subscription(&unsub, &Auth::open(), "x", now).unwrap();
            }
            code => {
                topic.handle_connect(&token, now).unwrap();
                topic.handle_close(&token, if code == 1 { 1000 } else { 1006 }, now);
            }
        }
        ack_all(topic, now);
        let ev = json!({"timestamp": now.to_rfc3339(), "id": format!("r{r}e{i}"), "event": {"hub.topic": T,
            "hub.event": "Patient-open", "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": format!("p{}", i % 5)}}]}});
        topic.handle_event(Event::parse_envelope(&ev.to_string()).unwrap(), &Auth::open(), now).unwrap();
        ack_all(topic, now);
    }
}

#[test]
fn stored_state_is_bounded_after_subscribers_join_and_leave() {
    let mut topic = Topic::new(T, "h", HubConfig { dedup_window: 20, ..HubConfig::default() });
    let now = Timestamp::from_unix_millis(1_700_000_000_000);
    for (i, events) in ["Patient-open,SyncError", "Patient-open"].into_iter().enumerate() {
        let token = format!("steady{i}");
        topic
            .handle_subscription(
                &request(&format!("hub.mode=subscribe&hub.events={events}")),
                &Auth::open(),
                &token,
                now,
            )
            .unwrap();
        topic.handle_connect(&token, now).unwrap();
    }
    round(&mut topic, 0, now);
    let after_first = stored(&topic);
    for r in 1..40 {
        round(&mut topic, r, now);
        let (meta, subs, ids) = stored(&topic);
        // Ids and patient ids in the text differ by a few digits from round to round.
        assert!(
            meta <= after_first.0 + 64,
            "round {r}: meta part {meta} bytes, {} after the first round",
            after_first.0
        );
        assert!(
            subs <= after_first.1 + 64,
            "round {r}: subscriptions part {subs} bytes, {} after the first round",
            after_first.1
        );
        assert!(ids <= 20, "round {r}: {ids} request ids kept, the window is 20");
    }
    assert!(topic.connected_endpoints().count() == 2, "only the steady subscribers remain");
}
