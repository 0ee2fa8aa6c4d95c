//! [`TestHub`]: the topics of one in-process hub, and the HTTP and WebSocket semantics the
//! Worker and the Durable Object give them (`edge-hub`), reduced to what an app's client
//! calls: subscribe, publish, get current context, the roster, and the endpoint's socket.

use std::collections::BTreeMap;
use std::time::Duration;

use fhircast_core::hub::{Auth, HubConfig, Outbound, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::syncerror::{IssueCode, Severity, SyncErrorDetails};
use fhircast_core::{Event, Timestamp};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

/// The hub: its topics by name, and which topic each endpoint token belongs to.
#[wasm_bindgen]
pub struct TestHub {
    config: HubConfig,
    topics: BTreeMap<String, Topic>,
    endpoints: BTreeMap<String, String>,
    /// Random text from the JavaScript side (crypto): endpoint tokens and each topic's id
    /// prefix start with it, so ids stay unique across hubs and restarts (req 137).
    prefix: String,
    minted: u64,
}

fn time(ms: f64) -> Timestamp {
    Timestamp::from_unix_millis(ms as i64)
}

/// A refusal as the Hub writes it: the status, and the message of the core's typed error.
fn refused(status: u16, message: impl ToString) -> String {
    json!({ "status": status, "message": message.to_string() }).to_string()
}

#[wasm_bindgen]
impl TestHub {
    /// A hub whose subscribers must answer within `ack_timeout_ms` (the Hub's default is
    /// 10 000: req 85); every other setting is the Hub's default.
    #[wasm_bindgen(constructor)]
    pub fn new(prefix: &str, ack_timeout_ms: u32) -> TestHub {
        let config = HubConfig {
            ack_timeout: Duration::from_millis(ack_timeout_ms.into()),
            record: true,
            ..HubConfig::default()
        };
        TestHub { config, topics: BTreeMap::new(), endpoints: BTreeMap::new(), prefix: prefix.to_owned(), minted: 0 }
    }

    fn mint(&mut self) -> String {
        self.minted += 1;
        format!("{}{:x}", self.prefix, self.minted)
    }

    fn topic_mut(&mut self, name: &str) -> &mut Topic {
        if !self.topics.contains_key(name) {
            let prefix = self.mint();
            self.topics.insert(name.to_owned(), Topic::new(name, &prefix, self.config.clone()));
        }
        self.topics.get_mut(name).expect("inserted above")
    }

    fn topic_of(&mut self, token: &str) -> Option<&mut Topic> {
        let name = self.endpoints.get(token)?;
        self.topics.get_mut(name)
    }

    /// `POST {hub}` with a form (req 24-55). Answers `{"status":202,"endpoint":token}` (the
    /// JavaScript side builds the WebSocket URL from it) or `{"status":4xx,"message":…}`, the
    /// Hub's plain-text refusal.
    pub fn subscribe(&mut self, form: &str, now: f64) -> String {
        let req = match SubscriptionRequest::from_form(form) {
            Ok(r) => r,
            Err(e) => return refused(e.http_status(), e),
        };
        let token = self.mint();
        let topic = req.topic.clone();
        match self.topic_mut(&topic).handle_subscription(&req, &Auth::open(), &token, time(now)) {
            Ok(acc) => {
                self.endpoints.insert(acc.endpoint.clone(), topic.clone());
                json!({ "status": 202, "endpoint": acc.endpoint, "topic": topic }).to_string()
            }
            Err(e) => refused(e.http_status(), e),
        }
    }

    /// `POST {hub}` with an event (req 76-83). Answers `{"status":202,"body":{…}}` with the
    /// id and the new version, as the Hub does, or `{"status":4xx,"message":…}` (the
    /// JavaScript side answers it as the Hub's OperationOutcome, [`operation_outcome`]).
    pub fn event(&mut self, body: &str, now: f64) -> String {
        let event = match Event::parse_envelope(body) {
            Ok(e) => e,
            Err(e) => return refused(400, e),
        };
        let topic = event.topic.clone();
        match self.topic_mut(&topic).handle_event(event, &Auth::open(), time(now)) {
            Ok(acc) => {
                let mut body = json!({ "id": acc.id });
                if let Some(v) = acc.version_id {
                    body["context.versionId"] = v.into();
                }
                if acc.duplicate {
                    body["duplicate"] = true.into();
                }
                json!({ "status": 202, "body": body }).to_string()
            }
            Err(e) => refused(e.http_status(), e),
        }
    }

    /// `GET {hub}/{topic}` (req 100-103): `{"status":200,"body":{…}}`.
    pub fn context(&self, topic: &str) -> String {
        let Some(t) = self.topics.get(topic) else {
            return json!({ "status": 200, "body": { "context.type": "", "context": [] } }).to_string();
        };
        match t.current_context(&Auth::open()) {
            Ok(cc) => json!({ "status": 200, "body": cc }).to_string(),
            Err(e) => refused(e.http_status(), e),
        }
    }

    /// `GET {hub}/{topic}/subscribers`: the roster, `{"status":200,"body":{…}}`.
    pub fn roster(&self, topic: &str) -> String {
        let Some(t) = self.topics.get(topic) else {
            return json!({ "status": 200, "body": { "hub.topic": topic, "subscribers": [] } }).to_string();
        };
        match t.roster(&Auth::open()) {
            Ok(r) => json!({ "status": 200, "body": r }).to_string(),
            Err(e) => refused(e.http_status(), e),
        }
    }

    /// A WebSocket opened on an endpoint (req 43): `{"status":101}`, or the refusal.
    pub fn connect(&mut self, token: &str, now: f64) -> String {
        let Some(topic) = self.topic_of(token) else {
            return refused(404, fhircast_core::hub::ConnectError::UnknownEndpoint);
        };
        match topic.handle_connect(token, time(now)) {
            Ok(()) => json!({ "status": 101 }).to_string(),
            Err(e) => refused(e.http_status(), e),
        }
    }

    /// A text message on an endpoint's socket: an answer (req 70-75); anything else is
    /// ignored, as the Hub does (neg 24).
    pub fn message(&mut self, token: &str, text: &str, now: f64) {
        if let Some(topic) = self.topic_of(token) {
            let _ = topic.handle_message(token, text, time(now));
        }
    }

    /// An endpoint's socket closed with `code` (req 85-86).
    pub fn close(&mut self, token: &str, code: u16, now: f64) {
        if let Some(topic) = self.topic_of(token) {
            topic.handle_close(token, code, time(now));
        }
        self.forget_closed();
    }

    /// Ends the lease of an endpoint's subscription now (the "expire the lease" fault).
    #[wasm_bindgen(js_name = expireLease)]
    pub fn expire_lease(&mut self, token: &str, now: f64) -> bool {
        let done = self.topic_of(token).is_some_and(|t| t.expire_lease(token, time(now)));
        self.forget_closed();
        done
    }

    /// Runs whatever is due at `now` on every topic (ack timeouts, leases, unconnected
    /// endpoints).
    pub fn timeout(&mut self, now: f64) {
        for t in self.topics.values_mut() {
            if t.poll_timeout().is_some_and(|d| d <= time(now)) {
                t.handle_timeout(time(now));
            }
        }
        self.forget_closed();
    }

    /// The earliest deadline of any topic, in milliseconds since the epoch; -1 when none.
    #[wasm_bindgen(js_name = nextDeadline)]
    pub fn next_deadline(&self) -> f64 {
        self.topics.values().filter_map(Topic::poll_timeout).min().map_or(-1.0, |t| t.unix_millis() as f64)
    }

    /// Everything to put on the wire, as a JSON array of `{"to":token,"text":…}` and
    /// `{"to":token,"close":code,"reason":…}`.
    pub fn outbound(&mut self) -> String {
        let mut out = Vec::new();
        for t in self.topics.values_mut() {
            while let Some(o) = t.poll_outbound() {
                out.push(match o {
                    Outbound::Send { to, text } => json!({ "to": to, "text": &*text }),
                    Outbound::Close { to, code, reason } => json!({ "to": to, "close": code, "reason": reason }),
                });
            }
        }
        Value::Array(out).to_string()
    }

    /// The protocol facts recorded since the last call (the Hub's timeline, issue 17), each
    /// with its `topic`, as a JSON array.
    #[wasm_bindgen(js_name = takeFacts)]
    pub fn take_facts(&mut self) -> String {
        let mut all = Vec::new();
        for (name, t) in self.topics.iter_mut() {
            for f in t.take_facts() {
                let mut v = serde_json::to_value(&f).expect("facts serialise");
                v["topic"] = name.as_str().into();
                all.push(v);
            }
        }
        Value::Array(all).to_string()
    }

    /// A restart, as the Hub's Durable Object goes through one: every topic is rebuilt from
    /// its persisted state (a JSON round trip, as storage would), and each subscription whose
    /// socket was open is treated as closed abnormally (1006), which is what the Hub does when
    /// it finds a subscription's socket gone. Returns the endpoint tokens whose sockets the
    /// JavaScript side must drop, as a JSON array.
    pub fn restart(&mut self, now: f64) -> String {
        let mut dropped = Vec::new();
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let old = self.topics.remove(&name).expect("listed");
            let stored = serde_json::to_string(old.state()).expect("state serialises");
            let state = serde_json::from_str(&stored).expect("state reads back");
            let mut topic = Topic::restore(state, self.config.clone());
            let gone: Vec<String> = topic.connected_endpoints().map(str::to_owned).collect();
            for token in &gone {
                topic.handle_close(token, 1006, time(now));
            }
            dropped.extend(gone);
            self.topics.insert(name, topic);
        }
        self.forget_closed();
        Value::from(dropped).to_string()
    }

    /// Forgets the endpoints whose subscription ended (the topic no longer knows them).
    fn forget_closed(&mut self) {
        let topics = &self.topics;
        self.endpoints.retain(|token, name| topics.get(name).is_some_and(|t| t.has_endpoint(token)));
    }
}

/// The OperationOutcome the Hub answers a refused event or read with (§5a-5): the deployed
/// Worker's own body (`fhircast_core::outcome`).
#[wasm_bindgen(js_name = operationOutcome)]
pub fn operation_outcome(status: u16, diagnostics: &str) -> String {
    fhircast_core::outcome::operation_outcome(status, diagnostics)
}

/// `GET {hub}/.well-known/fhircast-configuration` (req 11-15): what the deployed hub serves.
#[wasm_bindgen(js_name = wellKnown)]
pub fn well_known() -> String {
    let wk = fhircast_core::wellknown::WellKnown::standard_hub(HubConfig::default().non_current_updates);
    serde_json::to_string(&wk).expect("serialises")
}

/// The OperationOutcome of a SyncError an app sends about an event it accepted and then could
/// not follow (req 75, 92): severity `warning`, the event's id and name, the app's name.
#[wasm_bindgen(js_name = syncErrorOutcome)]
pub fn sync_error_outcome(event_id: &str, event_name: &str, subscriber: &str, diagnostics: &str) -> String {
    SyncErrorDetails {
        event_id: event_id.to_owned(),
        event_name: event_name.to_owned(),
        subscriber_name: subscriber.to_owned(),
        diagnostics: diagnostics.to_owned(),
        code: IssueCode::Processing,
        severity: Severity::Warning,
    }
    .to_operation_outcome_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    const NOW: f64 = 1_800_000_000_000.0;

    fn open(id: &str) -> String {
        json!({
            "timestamp": "2027-01-15T08:00:00Z", "id": id,
            "event": { "hub.topic": "t", "hub.event": "Patient-open",
              "context": [{ "key": "patient", "resource": { "resourceType": "Patient", "id": "p1" } }] }
        })
        .to_string()
    }

    #[test]
    fn a_subscriber_connects_gets_events_and_a_refusal_makes_a_sync_error() {
        let mut hub = TestHub::new("x", 10_000);
        let form = "hub.mode=subscribe&hub.topic=t&hub.events=Patient-open,SyncError&hub.channel.type=websocket&subscriber.name=A";
        let a = v(&hub.subscribe(form, NOW));
        assert_eq!(a["status"], 202);
        let a = a["endpoint"].as_str().unwrap().to_owned();
        let b = v(&hub.subscribe(&form.replace("name=A", "name=B"), NOW))["endpoint"].as_str().unwrap().to_owned();
        assert_eq!(v(&hub.connect(&a, NOW))["status"], 101);
        assert_eq!(v(&hub.connect(&b, NOW))["status"], 101);
        assert_eq!(v(&hub.connect(&a, NOW))["status"], 403, "one socket per endpoint");
        hub.outbound();
        let r = v(&hub.event(&open("e1"), NOW));
        assert_eq!(r["status"], 202);
        assert_eq!(r["body"]["id"], "e1");
        let out = v(&hub.outbound());
        assert_eq!(out.as_array().unwrap().len(), 2);
        hub.message(&a, r#"{"id":"e1","status":"409"}"#, NOW + 5.0);
        let out = v(&hub.outbound());
        let to_b: Vec<&Value> = out.as_array().unwrap().iter().filter(|o| o["to"] == b.as_str()).collect();
        assert_eq!(to_b.len(), 1);
        assert!(to_b[0]["text"].as_str().unwrap().contains("SyncError"));
        let facts = v(&hub.take_facts());
        assert!(facts.as_array().unwrap().iter().any(|f| f["fact"] == "syncError" && f["topic"] == "t"));
        assert_eq!(v(&hub.context("t"))["body"]["context.type"], "Patient");
    }

    #[test]
    fn refusals_carry_the_hub_status_and_message() {
        let mut hub = TestHub::new("x", 10_000);
        let r = v(&hub.subscribe("hub.mode=subscribe&hub.topic=t&hub.channel.type=websocket", NOW));
        assert_eq!(r["status"], 400);
        assert!(r["message"].as_str().unwrap().contains("hub.events"), "{r}");
        assert_eq!(v(&hub.event("{", NOW))["status"], 400);
        assert_eq!(v(&hub.connect("nope", NOW))["status"], 404);
        assert_eq!(v(&hub.context("unused"))["body"]["context"], json!([]));
    }

    #[test]
    fn a_restart_keeps_the_context_and_drops_every_socket() {
        let mut hub = TestHub::new("x", 10_000);
        let form = "hub.mode=subscribe&hub.topic=t&hub.events=Patient-open&hub.channel.type=websocket";
        let a = v(&hub.subscribe(form, NOW))["endpoint"].as_str().unwrap().to_owned();
        hub.connect(&a, NOW);
        hub.event(&open("e1"), NOW);
        hub.message(&a, r#"{"id":"e1","status":200}"#, NOW);
        hub.outbound();
        assert_eq!(v(&hub.restart(NOW + 1.0)), json!([a]));
        assert_eq!(v(&hub.context("t"))["body"]["context.type"], "Patient");
        assert_eq!(v(&hub.connect(&a, NOW + 2.0))["status"], 404, "the old endpoint is gone");
    }

    #[test]
    fn an_expired_lease_is_denied_and_closed_and_an_unanswered_event_times_out() {
        let mut hub = TestHub::new("x", 1_000);
        let form = "hub.mode=subscribe&hub.topic=t&hub.events=Patient-open,SyncError&hub.channel.type=websocket&subscriber.name=";
        let a = v(&hub.subscribe(&format!("{form}A"), NOW))["endpoint"].as_str().unwrap().to_owned();
        let b = v(&hub.subscribe(&format!("{form}B"), NOW))["endpoint"].as_str().unwrap().to_owned();
        hub.connect(&a, NOW);
        hub.connect(&b, NOW);
        hub.outbound();
        assert!(hub.expire_lease(&a, NOW));
        let out = v(&hub.outbound());
        assert!(out.as_array().unwrap().iter().any(|o| o["to"] == a.as_str() && o["close"] == 1000));
        hub.event(&open("e1"), NOW);
        hub.outbound();
        assert_eq!(hub.next_deadline(), NOW + 1_000.0);
        hub.timeout(NOW + 1_000.0);
        let out = v(&hub.outbound());
        assert!(out.as_array().unwrap().iter().any(|o| o["to"] == b.as_str() && o.get("close").is_some()));
        assert_eq!(hub.next_deadline(), -1.0);
    }
}
