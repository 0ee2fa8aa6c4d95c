//! The Durable Object of one topic: a thin shell over [`fhircast_core::hub::Topic`].
//!
//! It only moves bytes. Inputs (internal requests from the Worker, WebSocket messages and
//! closes, the alarm) go to the core with the current time; the core's outbound messages go to
//! the sockets; its state goes to SQLite in two parts (ARCHITECTURE.md: storage):
//!
//! - the meta part (context, versions, ids) is written before any answer leaves whenever it
//!   changed: an accepted event is stored before its 2xx (a Durable Object's output gate holds
//!   responses and messages until the write is durable);
//! - the subscriptions part (with every pending ack) is written at once when subscriptions
//!   change (subscribe, connect, close, timeouts), but only within [`SUBSCRIPTIONS_FLUSH_MS`]
//!   when just pending acks changed (a notification sent, an answer received): writing every
//!   subscription after every ack made a fan-out to N subscribers cost N writes of O(N) bytes.
//!
//! The one alarm is set to the earlier of `poll_timeout()` and that flush, and deleted when
//! there is neither (an idle topic costs nothing and can hibernate).
//!
//! Sockets use the Hibernation API: each is accepted with its endpoint token as tag and as
//! attachment, so the object can be evicted between messages; `ping` is answered `pong` by the
//! runtime without waking it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use fhircast_core::hub::{Auth, Outbound, Topic, TopicState};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::wire::SubscribeResponse;
use fhircast_core::{Event, Timestamp};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::*;

use crate::config::Settings;
use crate::respond::{json, outcome, text};

/// The Worker → object headers: the verified authorization, the topic, and the public
/// WebSocket base URL endpoints are built from.
pub(crate) const HDR_AUTH: &str = "x-fhircast-auth";
pub(crate) const HDR_TOPIC: &str = "x-fhircast-topic";
pub(crate) const HDR_WS_BASE: &str = "x-fhircast-ws-base";

/// How long pending-ack changes may stay unwritten (module docs; ARCHITECTURE.md: storage).
const SUBSCRIPTIONS_FLUSH_MS: i64 = 1_000;

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen only for `send`.
    type Sendable;
    /// `WebSocket.send` with a JS string made once per fan-out: `send_with_str` would convert
    /// the same Rust text to a new JS string for every recipient.
    #[wasm_bindgen(method, js_name = send, catch)]
    fn send_js(this: &Sendable, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// What an input changed, and so what is written and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    /// Nothing (a refused request, an ignored message).
    Nothing,
    /// Only pending acks (an answer that settled a notification): written within the flush.
    Acks,
    /// The meta part (an accepted event, a minted SyncError): written now; the pending acks it
    /// added within the flush.
    Meta,
    /// The subscriptions themselves (subscribe, connect, close, timeouts): everything, now.
    All,
}

/// One topic of the Hub.
#[durable_object]
pub struct TopicObject {
    state: State,
    settings: std::result::Result<Settings, String>,
    topic: RefCell<Option<Topic>>,
    /// The alarm last set (ms), to avoid rewriting it.
    alarm_at: RefCell<Option<i64>>,
    /// When the unwritten subscriptions part must be written by (ms), if it is unwritten.
    flush_by: RefCell<Option<i64>>,
    /// Sockets by endpoint token, built on the first fan-out after the object starts (or
    /// wakes) and kept up to date as sockets come and go: a fan-out is then one lookup per
    /// recipient, not a walk over every socket's attachment.
    sockets: RefCell<Option<HashMap<String, WebSocket>>>,
    /// Loading changed the state (sockets found gone) and that is not written yet.
    loaded_unsaved: RefCell<bool>,
    /// Which recent request ids are stored (table `recent_ids`).
    recent_written: RefCell<RecentWritten>,
}

/// The stored rows of recent request ids (req 139), against the core's list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RecentWritten {
    /// The stored list ends with this id (`None`: empty): an accepted event adds one row.
    Newest(Option<String>),
    /// None of them is stored (a topic read from an earlier version's single row).
    Rewrite,
}

fn now() -> Timestamp {
    Timestamp::from_unix_millis(Date::now().as_millis() as i64)
}

impl TopicObject {
    fn settings(&self) -> std::result::Result<&Settings, String> {
        self.settings.as_ref().map_err(Clone::clone)
    }

    /// Loads the topic from SQLite on first use after construction (a new object, a wake-up
    /// from hibernation, or a restart). After a restart, subscriptions whose socket is gone
    /// are treated as abnormally closed, and the next input writes everything.
    fn load(&self, name: Option<&str>) -> std::result::Result<(), String> {
        if self.topic.borrow().is_some() {
            return Ok(());
        }
        let config = self.settings()?.hub.clone();
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct Part {
            part: String,
            json: String,
        }
        let parts: Vec<Part> = sql
            .exec("SELECT part, json FROM topic_parts", None)
            .and_then(|c| c.to_array())
            .map_err(|e| format!("reading the topic's state: {e}"))?;
        let part = |name: &str| parts.iter().find(|p| p.part == name).map(|p| p.json.as_str());
        let stored = match (part("meta"), part("subscriptions")) {
            // Every subscription change writes both parts at once: no subscriptions part
            // means this topic never had a subscription.
            (Some(meta), subs) => {
                #[derive(serde::Deserialize)]
                struct Recent {
                    id: String,
                    fingerprint: String,
                }
                let recent: Vec<Recent> = sql
                    .exec("SELECT id, fingerprint FROM recent_ids ORDER BY seq", None)
                    .and_then(|c| c.to_array())
                    .map_err(|e| format!("reading the topic's recent ids: {e}"))?;
                let recent = recent.into_iter().map(|r| (r.id, r.fingerprint));
                Some(TopicState::from_parts(meta, subs.unwrap_or("{}"), recent))
            }
            // A topic stored by an earlier version: the whole state in one row, rewritten in
            // parts by the next input.
            _ => self.legacy_state()?.map(|json| {
                *self.loaded_unsaved.borrow_mut() = true;
                *self.recent_written.borrow_mut() = RecentWritten::Rewrite;
                serde_json::from_str(&json)
            }),
        };
        let mut topic = match stored {
            Some(state) => {
                let state = state.map_err(|e| format!("the stored state is unreadable: {e}"))?;
                Topic::restore(state, config)
            }
            None => {
                let Some(name) = name else { return Err("this topic has no state".into()) };
                Topic::new(name, &crate::webcrypto::random_hex(8), config)
            }
        };
        let live: Vec<String> = self.state.get_websockets().iter().flat_map(|ws| self.state.get_tags(ws)).collect();
        let gone: Vec<String> =
            topic.connected_endpoints().filter(|t| !live.iter().any(|l| l == t)).map(str::to_owned).collect();
        let t = now();
        if !gone.is_empty() {
            *self.loaded_unsaved.borrow_mut() = true;
        }
        if *self.recent_written.borrow() != RecentWritten::Rewrite {
            let newest = topic.state().recent_ids().next_back().map(|(id, _)| id.to_owned());
            *self.recent_written.borrow_mut() = RecentWritten::Newest(newest);
        }
        for token in gone {
            topic.handle_close(&token, 1006, t);
        }
        *self.topic.borrow_mut() = Some(topic);
        Ok(())
    }

    /// The whole state as an earlier version stored it (table `topic_state`), if any.
    fn legacy_state(&self) -> std::result::Result<Option<String>, String> {
        #[derive(serde::Deserialize)]
        struct Row {
            json: String,
        }
        let sql = self.state.storage().sql();
        let tables: Vec<serde_json::Value> = sql
            .exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'topic_state'", None)
            .and_then(|c| c.to_array())
            .map_err(|e| format!("reading the schema: {e}"))?;
        if tables.is_empty() {
            return Ok(None);
        }
        let rows: Vec<Row> = sql
            .exec("SELECT json FROM topic_state WHERE id = 1", None)
            .and_then(|c| c.to_array())
            .map_err(|e| format!("reading the topic's state: {e}"))?;
        Ok(rows.into_iter().next().map(|r| r.json))
    }

    /// Sends what the core produced, writes what `store` says, and returns the alarm wanted:
    /// `None` to keep the one set (an answer only removes deadlines, so the alarm set is never
    /// late; firing early is harmless), else the earlier of the core's deadline and the flush.
    fn flush(&self, store: Store) -> Option<Option<i64>> {
        let mut guard = self.topic.borrow_mut();
        let topic = guard.as_mut()?;
        self.send_outbound(topic);
        // Storage is reached only when something is written (not for an answer).
        let write = |part: &str, json: String| {
            if let Err(e) = self.state.storage().sql().exec(
                "INSERT INTO topic_parts (part, json) VALUES (?, ?) ON CONFLICT(part) DO UPDATE SET json = excluded.json",
                Some(vec![part.into(), json.into()]),
            ) {
                console_error!("writing the topic's {part}: {e}");
            }
        };
        if matches!(store, Store::Meta | Store::All) {
            write("meta", topic.state().meta_json());
            self.write_recent_ids(topic);
        }
        match store {
            Store::All => {
                write("subscriptions", topic.state().subscriptions_json());
                *self.flush_by.borrow_mut() = None;
            }
            Store::Acks | Store::Meta => {
                let mut by = self.flush_by.borrow_mut();
                if by.is_none() {
                    *by = Some(Date::now().as_millis() as i64 + SUBSCRIPTIONS_FLUSH_MS);
                }
            }
            Store::Nothing => {}
        }
        let flush_by = *self.flush_by.borrow();
        let deadline = match store {
            Store::Nothing | Store::Acks => {
                let set = *self.alarm_at.borrow();
                return match (set, flush_by) {
                    (Some(a), Some(f)) if f < a => Some(Some(f)),
                    (None, Some(f)) => Some(Some(f)),
                    _ => None,
                };
            }
            Store::Meta | Store::All => topic.poll_timeout().map(|t| t.unix_millis()),
        };
        Some(match (deadline, flush_by) {
            (Some(d), Some(f)) => Some(d.min(f)),
            (d, f) => d.or(f),
        })
    }

    /// Puts the core's outbound messages on the sockets. A fan-out's text is one `Arc<str>`:
    /// it becomes one JS string, sent to every recipient.
    fn send_outbound(&self, topic: &mut Topic) {
        let mut cache = self.sockets.borrow_mut();
        let mut last: Option<(Arc<str>, JsValue)> = None;
        while let Some(o) = topic.poll_outbound() {
            let by_token = cache.get_or_insert_with(|| {
                self.state.get_websockets().into_iter().filter_map(|ws| Some((self.token_of(&ws)?, ws))).collect()
            });
            match o {
                Outbound::Send { to, text } => {
                    let Some(ws) = by_token.get(&to) else { continue };
                    let js = match &last {
                        Some((t, js)) if Arc::ptr_eq(t, &text) => js.clone(),
                        _ => {
                            let js = JsValue::from_str(&text);
                            last = Some((text, js.clone()));
                            js
                        }
                    };
                    let _ = AsRef::<web_sys::WebSocket>::as_ref(ws).unchecked_ref::<Sendable>().send_js(&js);
                }
                Outbound::Close { to, code, reason } => {
                    if let Some(ws) = by_token.remove(&to) {
                        let _ = ws.close(Some(code), Some(reason.as_str()));
                    }
                }
            }
        }
    }

    /// Stores the request id an accepted event added (one row; rows beyond the dedup window
    /// are dropped), or all of them after a load from the single-row format.
    fn write_recent_ids(&self, topic: &Topic) {
        let sql = self.state.storage().sql();
        let mut written = self.recent_written.borrow_mut();
        let state = topic.state();
        let insert = |id: &str, fingerprint: &str| {
            sql.exec(
                "INSERT INTO recent_ids (id, fingerprint) VALUES (?, ?)",
                Some(vec![id.into(), fingerprint.into()]),
            )
        };
        let result = match &*written {
            RecentWritten::Rewrite => sql
                .exec("DELETE FROM recent_ids", None)
                .and_then(|_| state.recent_ids().try_for_each(|(id, f)| insert(id, f).map(|_| ()))),
            RecentWritten::Newest(last) => match state.recent_ids().next_back() {
                Some((id, f)) if last.as_deref() != Some(id) => insert(id, f).and_then(|_| {
                    sql.exec(
                        "DELETE FROM recent_ids WHERE seq <= (SELECT MAX(seq) FROM recent_ids) - ?",
                        Some(vec![(topic.config().dedup_window as i64).into()]),
                    )
                    .map(|_| ())
                }),
                _ => Ok(()),
            },
        };
        match result {
            Ok(()) => *written = RecentWritten::Newest(state.recent_ids().next_back().map(|(id, _)| id.to_owned())),
            Err(e) => console_error!("writing the topic's recent ids: {e}"),
        }
    }

    /// Forgets a socket that closed.
    fn forget_socket(&self, token: &str) {
        if let Some(map) = self.sockets.borrow_mut().as_mut() {
            map.remove(token);
        }
    }

    /// Sets the one alarm to the core's next deadline, or deletes it.
    async fn schedule(&self, next: Option<i64>) -> Result<()> {
        if *self.alarm_at.borrow() == next {
            return Ok(());
        }
        let storage = self.state.storage();
        match next {
            Some(ms) => storage.set_alarm(ScheduledTime::new(js_sys::Date::new(&(ms as f64).into()))).await?,
            None => storage.delete_alarm().await?,
        }
        *self.alarm_at.borrow_mut() = next;
        Ok(())
    }

    /// Runs `f` on the loaded topic, then sends, stores what `f` says changed, and
    /// reschedules.
    async fn with_topic<T>(
        &self,
        name: Option<&str>,
        f: impl FnOnce(&mut Topic, Timestamp) -> (T, Store),
    ) -> std::result::Result<T, String> {
        self.load(name)?;
        let (out, store) = {
            let mut guard = self.topic.borrow_mut();
            f(guard.as_mut().expect("loaded"), now())
        };
        let store = if self.loaded_unsaved.replace(false) { Store::All } else { store };
        if let Some(next) = self.flush(store) {
            if let Err(e) = self.schedule(next).await {
                console_error!("setting the alarm: {e}");
            }
        }
        Ok(out)
    }

    fn token_of(&self, ws: &WebSocket) -> Option<String> {
        ws.deserialize_attachment::<String>().ok().flatten().or_else(|| self.state.get_tags(ws).into_iter().next())
    }

    async fn subscription(&self, mut req: Request, topic_name: &str, auth: Auth) -> Result<Response> {
        let body = req.text().await?;
        let sub = match SubscriptionRequest::from_form(&body) {
            Ok(s) => s,
            Err(e) => return text(e.http_status(), &e.to_string()),
        };
        let ws_base = req.headers().get(HDR_WS_BASE)?.unwrap_or_default();
        let token = crate::webcrypto::random_hex(24);
        let result = self
            .with_topic(Some(topic_name), |t, now| {
                let r = t.handle_subscription(&sub, &auth, &token, now);
                let store = if r.is_ok() { Store::All } else { Store::Nothing };
                (r, store)
            })
            .await;
        match result {
            Err(e) => text(500, &e),
            Ok(Err(e)) => text(e.http_status(), &e.to_string()),
            Ok(Ok(acc)) => {
                let endpoint = format!("{ws_base}/{}/{}", crate::entry::encode_segment(topic_name), acc.endpoint);
                let body = serde_json::to_string(&SubscribeResponse { endpoint }).expect("serialises");
                json(202, &body, "application/json")
            }
        }
    }

    async fn event(&self, mut req: Request, topic_name: &str, auth: Auth) -> Result<Response> {
        let body = req.text().await?;
        let event = match Event::parse_envelope(&body) {
            Ok(e) => e,
            Err(e) => return outcome(400, &e.to_string()),
        };
        let result = self
            .with_topic(Some(topic_name), |t, now| {
                // A refused event changes nothing (the core's contract); an accepted one is
                // stored before its 2xx leaves.
                let r = t.handle_event(event, &auth, now);
                let store = if r.is_ok() { Store::Meta } else { Store::Nothing };
                (r, store)
            })
            .await;
        match result {
            Err(e) => outcome(500, &e),
            Ok(Err(e)) => outcome(e.http_status(), &e.to_string()),
            Ok(Ok(acc)) => {
                let mut body = serde_json::json!({ "id": acc.id });
                if let Some(v) = acc.version_id {
                    body["context.versionId"] = v.into();
                }
                if acc.duplicate {
                    body["duplicate"] = true.into();
                }
                json(202, &body.to_string(), "application/json")
            }
        }
    }

    async fn context(&self, topic_name: &str, auth: Auth) -> Result<Response> {
        let answer = if self.topic.borrow().is_none() && self.load(None).is_err() {
            // A topic nobody has used has no context (req 103), and no state is created for it;
            // the token is checked all the same (a token bound to another topic gets 403, so it
            // cannot tell which topics exist; issue 13).
            match self.unused_topic(topic_name) {
                Ok(t) => Some(t.current_context(&auth)),
                Err(e) => return outcome(500, &e),
            }
        } else {
            self.topic.borrow().as_ref().map(|t| t.current_context(&auth))
        };
        match answer {
            Some(Ok(cc)) => json(200, &serde_json::to_string(&cc).expect("serialises"), "application/json"),
            Some(Err(e)) => outcome(e.http_status(), &e.to_string()),
            None => outcome(500, "topic not loaded"),
        }
    }

    /// An empty topic that is never stored: reads of a topic nobody has used are answered from
    /// it, with the token checked as for any topic.
    fn unused_topic(&self, topic_name: &str) -> std::result::Result<Topic, String> {
        self.settings().map(|s| Topic::new(topic_name, "", s.hub.clone()))
    }

    /// The roster (`GET {hub}/{topic}/subscribers`). Read-only: an unused topic is answered
    /// from an empty topic that is never stored (the token is checked all the same).
    async fn roster(&self, topic_name: &str, auth: Auth) -> Result<Response> {
        let answer = if self.topic.borrow().is_none() && self.load(None).is_err() {
            match self.unused_topic(topic_name) {
                Ok(t) => t.roster(&auth),
                Err(e) => return outcome(500, &e),
            }
        } else {
            match self.topic.borrow().as_ref() {
                Some(t) => t.roster(&auth),
                None => return outcome(500, "topic not loaded"),
            }
        };
        match answer {
            Ok(r) => json(200, &serde_json::to_string(&r).expect("serialises"), "application/json"),
            Err(e) => outcome(e.http_status(), &e.to_string()),
        }
    }

    async fn websocket(&self, token: &str) -> Result<Response> {
        if self.load(None).is_err() || !self.topic.borrow().as_ref().is_some_and(|t| t.has_endpoint(token)) {
            return text(404, &fhircast_core::hub::ConnectError::UnknownEndpoint.to_string());
        }
        if self.topic.borrow().as_ref().is_some_and(|t| t.connected_endpoints().any(|e| e == token)) {
            return text(403, &fhircast_core::hub::ConnectError::AlreadyConnected.to_string());
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_websocket_with_tags(&pair.server, &[token]);
        pair.server.serialize_attachment(token)?;
        if let Some(map) = self.sockets.borrow_mut().as_mut() {
            map.insert(token.to_owned(), pair.server.clone());
        }
        let token = token.to_owned();
        let result = self.with_topic(None, |t, now| (t.handle_connect(&token, now), Store::All)).await;
        match result {
            Ok(Ok(())) => Response::from_websocket(pair.client),
            Ok(Err(e)) => {
                self.forget_socket(&token);
                let _ = pair.server.close(Some(1008), Some(e.to_string()));
                text(e.http_status(), &e.to_string())
            }
            Err(e) => text(500, &e),
        }
    }
}

impl DurableObject for TopicObject {
    fn new(state: State, env: Env) -> Self {
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        for ddl in [
            "CREATE TABLE IF NOT EXISTS topic_parts (part TEXT PRIMARY KEY, json TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS recent_ids (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, fingerprint TEXT NOT NULL)",
        ] {
            if let Err(e) = state.storage().sql().exec(ddl, None) {
                console_error!("creating the state tables: {e}");
            }
        }
        let settings = Settings::from_lookup(|k| crate::entry::lookup(&env, k)).map_err(|e| e.to_string());
        TopicObject {
            state,
            settings,
            topic: RefCell::new(None),
            alarm_at: RefCell::new(None),
            flush_by: RefCell::new(None),
            sockets: RefCell::new(None),
            loaded_unsaved: RefCell::new(false),
            recent_written: RefCell::new(RecentWritten::Newest(None)),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let topic_name = req.headers().get(HDR_TOPIC)?.unwrap_or_default();
        let auth: Auth = match req.headers().get(HDR_AUTH)? {
            Some(a) => serde_json::from_str(&a).map_err(|e| Error::RustError(e.to_string()))?,
            None => Auth::open(),
        };
        let path = req.path();
        match path.as_str() {
            "/internal/subscription" => self.subscription(req, &topic_name, auth).await,
            "/internal/event" => self.event(req, &topic_name, auth).await,
            "/internal/context" => self.context(&topic_name, auth).await,
            "/internal/roster" => self.roster(&topic_name, auth).await,
            p => match p.strip_prefix("/internal/ws/") {
                Some(token) => self.websocket(token).await,
                None => text(404, "unknown internal route"),
            },
        }
    }

    async fn alarm(&self) -> Result<Response> {
        *self.alarm_at.borrow_mut() = None;
        // Also the flush of pending-ack changes: the alarm writes everything.
        if let Err(e) = self.with_topic(None, |t, now| (t.handle_timeout(now), Store::All)).await {
            console_error!("alarm: {e}");
        }
        Response::ok("")
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let Some(token) = self.token_of(&ws) else { return Ok(()) };
        let WebSocketIncomingMessage::String(text) = message else { return Ok(()) };
        let max = self.settings().map(|s| s.max_message_bytes).unwrap_or(64 << 10);
        if text.len() > max {
            return Ok(()); // neg 24: ignored, never fatal
        }
        let _ = self
            .with_topic(None, |t, now| {
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
            })
            .await;
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(1006);
        // Complete the closing handshake: with hibernatable sockets the object must answer the
        // subscriber's Close frame itself, else the client waits and sees 1006 (RFC 6455
        // §5.5.1). Fails harmlessly where the runtime already replied.
        let _ = ws.close(Some(crate::route::close_reply_code(code)), Some("closed"));
        let Some(token) = self.token_of(&ws) else { return Ok(()) };
        self.forget_socket(&token);
        let _ = self.with_topic(None, |t, now| (t.handle_close(&token, code, now), Store::All)).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        let Some(token) = self.token_of(&ws) else { return Ok(()) };
        self.forget_socket(&token);
        let _ = self.with_topic(None, |t, now| (t.handle_close(&token, 1006, now), Store::All)).await;
        Ok(())
    }
}
