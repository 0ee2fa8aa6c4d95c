//! The Durable Object of one topic: a thin shell over [`fhircast_core::hub::Topic`].
//!
//! It only moves bytes. Inputs (internal requests from the Worker, read with
//! [`crate::contract`]; WebSocket messages and closes; the alarm) go to the core with the
//! current time; what the core changed goes to SQLite ([`crate::store`]) and only then do its
//! outbound messages go to the sockets (ARCHITECTURE.md: storage):
//!
//! - the context rows (meta, open events, content, recent ids) are written before any answer
//!   leaves whenever they changed: an accepted event is stored before its 2xx (a Durable
//!   Object's output gate holds responses and messages until the write is durable);
//! - subscription rows (with their pending acks) are written at once when subscriptions
//!   change (subscribe, connect, close, timeouts), but only within [`SUBSCRIPTIONS_FLUSH_MS`]
//!   when just pending acks changed (a notification sent, an answer received).
//!
//! A write that fails fails the input: nothing is sent, the request is answered 503, and the
//! topic is dropped from memory so the next input reads back what storage holds.
//!
//! The one alarm is set to the earlier of `poll_timeout()` and that flush, and deleted when
//! there is neither (an idle topic costs nothing and can hibernate).
//!
//! Sockets use the Hibernation API ([`crate::sockets`]); `ping` is answered `pong` by the
//! runtime without waking the object.

use std::cell::RefCell;

use fhircast_core::hub::store::{StoreError, WriteScope};
use fhircast_core::hub::stored_facts::StoredFacts;
use fhircast_core::hub::{Auth, Topic};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::wire::SubscribeResponse;
use fhircast_core::{Event, Timestamp};
use worker::*;

use crate::config::Settings;
use crate::contract::{read_auth, InternalRoute, HDR_AUTH, HDR_REQUEST_ID, HDR_TOPIC, HDR_WS_BASE};
use crate::respond::{json, outcome, text, Answer};
use crate::sockets::Sockets;
use crate::store::{TimelineAppend, TopicStore};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

/// The message (or event id) that makes the test build panic (Cargo feature `test-panic`).
#[cfg(feature = "test-panic")]
const TEST_PANIC_MESSAGE: &str = "fhircast-test: panic now";

/// How long pending-ack changes may stay unwritten (module docs; ARCHITECTURE.md: storage).
const SUBSCRIPTIONS_FLUSH_MS: i64 = 1_000;

/// What an input changed, and so what is written and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    /// Nothing (a refused request, an ignored message).
    Nothing,
    /// Only pending acks (an answer that settled a notification): written within the flush.
    Acks,
    /// The context rows (an accepted event, a minted SyncError): written now; the pending
    /// acks it added within the flush.
    Meta,
    /// The subscriptions themselves (subscribe, connect, close, timeouts): everything, now.
    All,
}

/// One topic of the Hub. `alarm` makes workers-rs export the constructor, `fetch` and `alarm`;
/// the WebSocket events are exported below, synchronously.
#[durable_object(alarm)]
pub struct TopicObject {
    state: State,
    settings: std::rc::Rc<std::result::Result<Settings, crate::config::SettingError>>,
    store: std::result::Result<TopicStore, String>,
    topic: RefCell<Option<Topic>>,
    /// The alarm last set (ms), to avoid rewriting it.
    alarm_at: RefCell<Option<i64>>,
    /// When the unwritten subscriptions part must be written by (ms), if it is unwritten.
    flush_by: RefCell<Option<i64>>,
    /// The topic's WebSockets ([`crate::sockets`]).
    sockets: Sockets,
    /// Loading changed the state (sockets found gone) and that is not written yet.
    loaded_unsaved: RefCell<bool>,
    /// Timeline facts not written yet (the answers to a notification grouped: recording's
    /// cost, [`fhircast_core::hub::stored_facts`]): written with the next write of the topic,
    /// at the latest by the flush alarm, or before a read of the timeline.
    unwritten: RefCell<StoredFacts>,
    /// The audit trail's sink ([`crate::audit`]).
    audit: crate::audit::Audit,
    /// The metrics dataset, if bound ([`crate::metrics`]).
    metrics: crate::metrics::Metrics,
}

/// Why an input could not be handled: the hub's problem, never the caller's. Its text goes
/// to the log only; the caller is told what happened and the request id.
enum Failure {
    /// The settings are invalid (the Worker reports them too).
    Config(String),
    /// Storage refused a read or a write.
    Store(StoreError),
}

impl Failure {
    /// Logs the details and answers with `body` (plain text or an OperationOutcome).
    fn respond(&self, request_id: &str, body: fn(u16, &str) -> Result<Response>) -> Result<Response> {
        let (status, message) = self.answer(request_id);
        body(status, &message)
    }

    /// Logs the details with the request id; returns what the caller may be told.
    fn answer(&self, request_id: &str) -> (u16, String) {
        match self {
            Failure::Config(e) => console_error!("[{request_id}] settings: {e}"),
            Failure::Store(e) => console_error!("[{request_id}] {e}"),
        }
        match self {
            Failure::Config(_) => (500, format!("the hub is misconfigured; its operator can find the details in its log under request id {request_id}")),
            Failure::Store(_) => (503, format!("the hub could not store this request, so it did not apply it and sent nothing; retry it (an event with the same id). Request id {request_id}")),
        }
    }
}

impl TopicObject {
    fn settings(&self) -> std::result::Result<&Settings, Failure> {
        self.settings.as_ref().as_ref().map_err(|e| Failure::Config(e.to_string()))
    }

    fn store(&self) -> std::result::Result<&TopicStore, Failure> {
        self.store.as_ref().map_err(|e| Failure::Store(StoreError::Storage(e.clone())))
    }

    /// Loads the topic from SQLite on first use after construction (a new object, a wake-up
    /// from hibernation, a restart, or a failed write). Subscriptions whose socket is gone are
    /// treated as abnormally closed, and the next input writes that. `Ok(false)`: nothing is
    /// stored and no name was given to create the topic with.
    fn load(&self, name: Option<&str>) -> std::result::Result<bool, Failure> {
        if self.topic.borrow().is_some() {
            return Ok(true);
        }
        let mut config = self.settings()?.hub.clone();
        // Facts are recorded for the timeline and the audit (the settings say), and for metrics
        // when a dataset is bound.
        config.record |= self.metrics.bound();
        let mut topic = match self.store()?.load().map_err(Failure::Store)? {
            Some(state) => Topic::restore(state, config),
            None => match name {
                Some(name) => Topic::new(name, &crate::webcrypto::random_hex(8), config),
                None => return Ok(false),
            },
        };
        let live = Sockets::live_tokens(&self.state);
        let gone: Vec<String> =
            topic.connected_endpoints().filter(|t| !live.iter().any(|l| l == t)).map(str::to_owned).collect();
        let t = now();
        if !gone.is_empty() {
            *self.loaded_unsaved.borrow_mut() = true;
        }
        for token in gone {
            topic.handle_close(&token, 1006, t);
        }
        *self.topic.borrow_mut() = Some(topic);
        Ok(true)
    }

    /// Writes what `store` says, then sends what the core produced, and returns the alarm
    /// wanted: `None` to keep the one set (an answer only removes deadlines, so the alarm set
    /// is never late; firing early is harmless), else the earlier of the core's deadline and
    /// the flush. A failed write sends nothing and drops the topic from memory: its marks of
    /// what to write are gone, so only a reload from storage is consistent.
    fn flush(&self, store: Store) -> std::result::Result<Option<Option<i64>>, Failure> {
        let mut guard = self.topic.borrow_mut();
        let Some(topic) = guard.as_mut() else { return Ok(None) };
        let scope = match store {
            Store::Meta => Some(WriteScope::Context),
            Store::All => Some(WriteScope::All),
            Store::Acks | Store::Nothing => None,
        };
        if let Some(scope) = scope {
            let writes = topic.take_writes(scope);
            let keep = self.settings()?.timeline_limit;
            let elements = self.unwritten.borrow_mut().take();
            let written = self.store()?.write(writes, TimelineAppend { elements, keep });
            if let Err(e) = written {
                *guard = None;
                *self.flush_by.borrow_mut() = None;
                return Err(Failure::Store(e));
            }
        }
        self.sockets.send_outbound(&self.state, topic);
        match store {
            Store::All => *self.flush_by.borrow_mut() = None,
            Store::Acks | Store::Meta => {
                let mut by = self.flush_by.borrow_mut();
                if by.is_none() {
                    *by = Some(js_sys::Date::now() as i64 + SUBSCRIPTIONS_FLUSH_MS);
                }
            }
            // A refused request changes nothing but the timeline: its fact is written by
            // the flush alarm, with whatever else is pending.
            Store::Nothing if !self.unwritten.borrow().is_empty() => {
                let mut by = self.flush_by.borrow_mut();
                if by.is_none() {
                    *by = Some(js_sys::Date::now() as i64 + SUBSCRIPTIONS_FLUSH_MS);
                }
            }
            Store::Nothing => {}
        }
        let flush_by = *self.flush_by.borrow();
        let deadline = match store {
            Store::Nothing | Store::Acks => {
                let set = *self.alarm_at.borrow();
                return Ok(match (set, flush_by) {
                    (Some(a), Some(f)) if f < a => Some(Some(f)),
                    (None, Some(f)) => Some(Some(f)),
                    _ => None,
                });
            }
            Store::Meta | Store::All => topic.poll_timeout().map(|t| t.unix_millis()),
        };
        Ok(Some(match (deadline, flush_by) {
            (Some(d), Some(f)) => Some(d.min(f)),
            (d, f) => d.or(f),
        }))
    }

    /// Sets the one alarm to the core's next deadline, or deletes it.
    fn schedule(&self, next: Option<i64>) -> std::result::Result<(), Failure> {
        if *self.alarm_at.borrow() == next {
            return Ok(());
        }
        self.store()?.set_alarm(next).map_err(Failure::Store)?;
        *self.alarm_at.borrow_mut() = next;
        Ok(())
    }

    /// Runs `f` on the loaded topic, then stores what `f` says changed, sends, and
    /// reschedules. `Ok(None)`: no topic is stored and `name` is `None`.
    fn with_topic<T>(
        &self,
        name: Option<&str>,
        f: impl FnOnce(&mut Topic, Timestamp) -> (T, Store),
    ) -> std::result::Result<Option<T>, Failure> {
        if !self.load(name)? {
            return Ok(None);
        }
        let sends = self.audit.on() || self.metrics.bound();
        let (out, store, facts, topic_name) = {
            let mut guard = self.topic.borrow_mut();
            let topic = guard.as_mut().expect("loaded");
            let (out, store) = f(topic, now());
            let facts = topic.take_facts();
            // Only facts the audit or metrics send need the topic's name.
            let name = (sends && !facts.is_empty()).then(|| topic.topic().to_owned());
            (out, store, facts, name)
        };
        // The timeline takes the facts; the audit and metrics, when they send, get a copy.
        let facts = if facts.is_empty() || self.settings()?.timeline_limit == 0 {
            facts
        } else {
            let sent = if topic_name.is_some() { facts.clone() } else { Vec::new() };
            let mut unwritten = self.unwritten.borrow_mut();
            for fact in facts {
                unwritten.push(fact);
            }
            sent
        };
        let store = if self.loaded_unsaved.replace(false) { Store::All } else { store };
        if let Some(next) = self.flush(store)? {
            if let Err(f) = self.schedule(next) {
                f.answer("alarm");
            }
        }
        // Audited once what the facts describe is stored (a request answered 503 is not).
        if let Some(topic_name) = topic_name {
            self.audit.send(&facts, &topic_name, self.settings()?.audit_site.as_deref());
            self.metrics.send(&facts, &topic_name);
        }
        Ok(Some(out))
    }

    async fn subscription(&self, mut req: Request, topic_name: &str, auth: Auth, rid: &str) -> Result<Response> {
        let body = req.text().await?;
        let sub = match SubscriptionRequest::from_form(&body) {
            Ok(s) => s,
            Err(e) => return text(e.http_status(), &e.to_string()),
        };
        let ws_base = req.headers().get(HDR_WS_BASE)?.unwrap_or_default();
        let token = crate::webcrypto::random_hex(24);
        let result = self.with_topic(Some(topic_name), |t, now| {
            let r = t.handle_subscription(&sub, &auth, &token, now);
            let store = if r.is_ok() { Store::All } else { Store::Nothing };
            (r, store)
        });
        match result {
            Err(f) => f.respond(rid, text),
            Ok(None) => unreachable_topic(rid).into_response(),
            Ok(Some(Err(e))) => text(e.http_status(), &e.to_string()),
            Ok(Some(Ok(acc))) => {
                let endpoint = format!("{ws_base}/{}/{}", crate::contract::encode_segment(topic_name), acc.endpoint);
                let body = serde_json::to_string(&SubscribeResponse { endpoint }).expect("serialises");
                json(202, &body, "application/json")
            }
        }
    }

    /// An event request (its body as received): what the Worker is answered, as status,
    /// content type and body. Synchronous: it comes over RPC ([`TopicObject::publish`]).
    fn event(&self, body: &str, topic_name: &str, auth: Auth, rid: &str) -> Answer {
        let event = match Event::parse_envelope(body) {
            Ok(e) => e,
            Err(e) => return Answer::outcome(400, &e.to_string()),
        };
        let result = self.with_topic(Some(topic_name), |t, now| {
            // Only in the test build (Cargo feature `test-panic`): an event with this id panics.
            #[cfg(feature = "test-panic")]
            if event.id == TEST_PANIC_MESSAGE {
                panic!("test-panic: an event with id {TEST_PANIC_MESSAGE:?}, panicking on purpose");
            }
            // A refused event changes nothing (the core's contract); an accepted one is
            // stored before its 2xx leaves, and sent only once stored.
            let r = t.handle_event(event, &auth, now);
            let store = if r.is_ok() { Store::Meta } else { Store::Nothing };
            (r, store)
        });
        match result {
            Err(f) => {
                let (status, message) = f.answer(rid);
                Answer::outcome(status, &message)
            }
            Ok(None) => unreachable_topic(rid),
            Ok(Some(Err(e))) => Answer::outcome(e.http_status(), &e.to_string()),
            Ok(Some(Ok(acc))) => {
                let mut body = serde_json::json!({ "id": acc.id });
                if let Some(v) = acc.version_id {
                    body["context.versionId"] = v.into();
                }
                if acc.duplicate {
                    body["duplicate"] = true.into();
                }
                Answer::json(202, body.to_string(), "application/json")
            }
        }
    }

    /// Runs a read on the topic, or on an empty topic that is never stored when nobody has
    /// used this one (a topic nobody used has no context, req 103): the token is checked all
    /// the same, so a token bound to another topic gets 403 and cannot tell which topics
    /// exist (issue 13).
    fn read<T>(&self, topic_name: &str, f: impl FnOnce(&Topic) -> T) -> std::result::Result<T, Failure> {
        if self.load(None)? {
            let guard = self.topic.borrow();
            return Ok(f(guard.as_ref().expect("loaded")));
        }
        let unused = Topic::new(topic_name, "", self.settings()?.hub.clone());
        Ok(f(&unused))
    }

    async fn context(&self, topic_name: &str, auth: Auth, rid: &str) -> Result<Response> {
        match self.read(topic_name, |t| t.current_context(&auth)) {
            Ok(Ok(cc)) => json(200, &serde_json::to_string(&cc).expect("serialises"), "application/json"),
            Ok(Err(e)) => outcome(e.http_status(), &e.to_string()),
            Err(f) => f.respond(rid, outcome),
        }
    }

    /// The roster (`GET {hub}/{topic}/subscribers`). Read-only.
    async fn roster(&self, topic_name: &str, auth: Auth, rid: &str) -> Result<Response> {
        match self.read(topic_name, |t| t.roster(&auth)) {
            Ok(Ok(r)) => json(200, &serde_json::to_string(&r).expect("serialises"), "application/json"),
            Ok(Err(e)) => outcome(e.http_status(), &e.to_string()),
            Err(f) => f.respond(rid, outcome),
        }
    }

    /// The timeline (`GET {hub}/{topic}/timeline`; issue 17): the facts after `since`, with
    /// the same access rules as the roster. What is not written yet is written first, so a
    /// reader never misses a fact it could see later under an earlier number.
    async fn timeline(&self, topic_name: &str, auth: Auth, since: u64, limit: usize, rid: &str) -> Result<Response> {
        match self.read(topic_name, |t| t.may_observe(&auth)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return outcome(e.http_status(), &e.to_string()),
            Err(f) => return f.respond(rid, outcome),
        }
        let read = || -> std::result::Result<_, Failure> {
            let keep = self.settings()?.timeline_limit;
            let store = self.store()?;
            let elements = self.unwritten.borrow_mut().take();
            // Not written: kept for the next write (what they record did happen).
            if let Err(e) = store.append_timeline(TimelineAppend { elements: elements.clone(), keep }) {
                self.unwritten.borrow_mut().restore(elements);
                return Err(Failure::Store(e));
            }
            store.timeline(since, limit, keep).map_err(Failure::Store)
        };
        let facts = match read() {
            Ok(f) => f,
            Err(f) => return f.respond(rid, outcome),
        };
        // Each stored fact is a JSON object: its seq is put first without re-parsing it.
        let mut body = format!("{{\"hub.topic\":{},\"facts\":[", serde_json::to_string(topic_name).expect("a string"));
        let mut last = since;
        for (i, f) in facts.iter().enumerate() {
            let seq = f.seq;
            last = last.max(seq);
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("{{\"seq\":{seq},"));
            body.push_str(f.fact.strip_prefix('{').unwrap_or("}"));
        }
        body.push_str(&format!("],\"next\":{last}}}"));
        json(200, &body, "application/json")
    }

    async fn websocket(&self, token: &str, rid: &str) -> Result<Response> {
        let known = match self.read("", |t| (t.has_endpoint(token), t.connected_endpoints().any(|e| e == token))) {
            Ok(k) => k,
            Err(f) => return f.respond(rid, text),
        };
        match known {
            (false, _) => return text(404, &fhircast_core::hub::ConnectError::UnknownEndpoint.to_string()),
            (true, true) => return text(403, &fhircast_core::hub::ConnectError::AlreadyConnected.to_string()),
            (true, false) => {}
        }
        let pair = self.sockets.accept(&self.state, token)?;
        let token = token.to_owned();
        let result = self.with_topic(None, |t, now| (t.handle_connect(&token, now), Store::All));
        match result {
            Ok(Some(Ok(()))) => Response::from_websocket(pair.client),
            Ok(Some(Err(e))) => {
                self.sockets.forget(&token);
                let _ = pair.server.close(Some(1008), Some(e.to_string()));
                text(e.http_status(), &e.to_string())
            }
            Ok(None) => {
                self.sockets.forget(&token);
                let _ = pair.server.close(Some(1011), Some("the topic is gone"));
                unreachable_topic(rid).into_response()
            }
            Err(f) => {
                self.sockets.forget(&token);
                let _ = pair.server.close(Some(1011), Some("the hub could not store the connection"));
                f.respond(rid, text)
            }
        }
    }
}

/// A topic that was there a moment ago is not (it was stored and is now unreadable, or
/// storage was emptied underneath): logged, answered 500 with the request id.
fn unreachable_topic(rid: &str) -> Answer {
    console_error!("[{rid}] the topic's state vanished between reads");
    Answer::text(500, format!("the hub lost this topic's state; request id {rid}"))
}

/// The current time, as the core takes it: `Date.now()`, not `worker::Date::now()`, which
/// builds a `Date` object per call (1.8% of the JS/wasm time at 100 subscribers: one per answer).
fn now() -> Timestamp {
    Timestamp::from_unix_millis(js_sys::Date::now() as i64)
}

impl DurableObject for TopicObject {
    fn new(state: State, env: Env) -> Self {
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        let settings = crate::entry::settings(&env);
        let row_limit = settings
            .as_ref()
            .as_ref()
            .map(|s| s.storage_row_limit)
            .unwrap_or(fhircast_core::hub::store::ROW_LIMIT_BYTES);
        let store = TopicStore::open(&state, row_limit).map_err(|e| {
            console_error!("opening the topic's storage: {e}");
            e.to_string()
        });
        let audit = crate::audit::Audit::new(&env, settings.as_ref().as_ref().ok());
        let metrics = crate::metrics::Metrics::new(&env);
        TopicObject {
            state,
            settings,
            store,
            topic: RefCell::new(None),
            alarm_at: RefCell::new(None),
            flush_by: RefCell::new(None),
            sockets: Sockets::default(),
            loaded_unsaved: RefCell::new(false),
            unwritten: RefCell::new(StoredFacts::default()),
            audit,
            metrics,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let rid = req.headers().get(HDR_REQUEST_ID)?.unwrap_or_else(|| crate::webcrypto::random_hex(8));
        let Some(route) = InternalRoute::parse(&req.path()) else {
            console_error!("[{rid}] {}", crate::contract::ContractError::UnknownRoute(req.path()));
            return text(500, &format!("internal error; request id {rid}"));
        };
        let auth = match read_auth(&route, req.headers().get(HDR_AUTH)?.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                console_error!("[{rid}] {e}");
                return text(500, &format!("internal error; request id {rid}"));
            }
        };
        let topic_name = req.headers().get(HDR_TOPIC)?.unwrap_or_default();
        match (route, auth) {
            (InternalRoute::Subscription, Some(auth)) => self.subscription(req, &topic_name, auth, &rid).await,
            // Events come over RPC (`publish`); over fetch only from a Worker of the release
            // before, while a deploy replaces one with the other (contract.rs).
            (InternalRoute::Event, Some(auth)) => {
                let body = req.text().await?;
                self.event(&body, &topic_name, auth, &rid).into_response()
            }
            (InternalRoute::Context, Some(auth)) => self.context(&topic_name, auth, &rid).await,
            (InternalRoute::Roster, Some(auth)) => self.roster(&topic_name, auth, &rid).await,
            (InternalRoute::Timeline { since, limit }, Some(auth)) => {
                self.timeline(&topic_name, auth, since, limit, &rid).await
            }
            (InternalRoute::WebSocket { token }, _) => self.websocket(&token, &rid).await,
            (_, None) => text(500, &format!("internal error; request id {rid}")),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        *self.alarm_at.borrow_mut() = None;
        // Also the flush of pending-ack changes: the alarm writes everything. A failed write
        // fails the alarm, which the runtime retries.
        if let Err(f) = self.with_topic(None, |t, now| (t.handle_timeout(now), Store::All)) {
            f.answer("alarm");
            return Err(Error::RustError("the alarm's write failed".into()));
        }
        Response::ok("")
    }
}

/// The WebSocket events, as synchronous exports of the Durable Object class (`webSocketMessage`,
/// `webSocketClose`, `webSocketError`), not through workers-rs's `DurableObject` trait: there
/// every input is an async call (a Promise, a task on wasm-bindgen's executor, a microtask),
/// which a subscriber's answer — N of them per event — never needs: the core, the SQLite
/// writes and the sends are synchronous, and the alarm is set without waiting
/// (ARCHITECTURE.md: the per-event path; issue 14).
#[wasm_bindgen]
impl TopicObject {
    /// A message from a subscriber: its answer to a notification (anything else is ignored,
    /// neg 24; binary frames too).
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn web_socket_message(&self, ws: worker::worker_sys::web_sys::WebSocket, message: JsValue) {
        let ws: WebSocket = ws.into();
        let Some(text) = message.as_string() else { return };
        let Some(token) = Sockets::token_of(&self.state, &ws) else { return };
        let max = self.settings.as_ref().as_ref().map(|s| s.max_message_bytes).unwrap_or(64 << 10);
        if text.len() > max {
            return; // neg 24: ignored, never fatal
        }
        let r = self.with_topic(None, |t, now| {
            // Only in the test build (Cargo feature `test-panic`): a panic while the topic is
            // borrowed, the worst moment for one.
            #[cfg(feature = "test-panic")]
            if text == TEST_PANIC_MESSAGE {
                panic!("test-panic: {TEST_PANIC_MESSAGE:?} received, panicking on purpose");
            }
            let minted = t.state().minted();
            let r = t.handle_message(&token, &text, now);
            // An answer that settles a notification changes only pending acks; one that
            // leads to a SyncError also mints an id (meta). Anything else is ignored.
            let store = match r {
                Err(_) => Store::Nothing,
                Ok(()) if t.state().minted() != minted => Store::Meta,
                Ok(()) => Store::Acks,
            };
            (r, store)
        });
        if let Err(f) = r {
            f.answer("websocket message");
        }
    }

    /// An event request from the Worker, over RPC (`edge-hub/js/entry.js` forwards the
    /// stub's `publish` here): the topic as routed, the verified authorization
    /// ([`crate::contract::auth_header`]), the request id, the body as received. Returns
    /// `[status, content type, body]` for the Worker to answer with. Synchronous like the
    /// WebSocket events: over HTTP (fetch) an event built a Request and a Response, read its
    /// body again as a stream, and ran on wasm-bindgen's executor (ARCHITECTURE.md). The reply
    /// waits on the output gate as a fetch response does: the event is stored before its 2xx.
    pub fn publish(&self, topic: String, auth: String, rid: String, body: String) -> js_sys::Array {
        let answer = match read_auth(&InternalRoute::Event, Some(&auth)) {
            Ok(Some(auth)) => self.event(&body, &topic, auth, &rid),
            Ok(None) | Err(_) => {
                console_error!("[{rid}] an event over RPC without a readable authorization");
                Answer::text(500, format!("internal error; request id {rid}"))
            }
        };
        answer.into_js()
    }

    /// A subscriber closed its socket (req 85-86).
    #[wasm_bindgen(js_name = webSocketClose)]
    pub fn web_socket_close(
        &self,
        ws: worker::worker_sys::web_sys::WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) {
        let ws: WebSocket = ws.into();
        let code = u16::try_from(code).unwrap_or(1006);
        // Complete the closing handshake: with hibernatable sockets the object must answer the
        // subscriber's Close frame itself, else the client waits and sees 1006 (RFC 6455
        // §5.5.1). Fails harmlessly where the runtime already replied.
        let _ = ws.close(Some(crate::route::close_reply_code(code)), Some("closed"));
        let Some(token) = Sockets::token_of(&self.state, &ws) else { return };
        self.sockets.forget(&token);
        if let Err(f) = self.with_topic(None, |t, now| (t.handle_close(&token, code, now), Store::All)) {
            f.answer("websocket close");
        }
    }

    /// A socket failed: as a close with 1006.
    #[wasm_bindgen(js_name = webSocketError)]
    pub fn web_socket_error(&self, ws: worker::worker_sys::web_sys::WebSocket, _error: JsValue) {
        let ws: WebSocket = ws.into();
        let Some(token) = Sockets::token_of(&self.state, &ws) else { return };
        self.sockets.forget(&token);
        if let Err(f) = self.with_topic(None, |t, now| (t.handle_close(&token, 1006, now), Store::All)) {
            f.answer("websocket error");
        }
    }
}
