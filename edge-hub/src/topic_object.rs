//! The Durable Object of one topic: a thin shell over [`fhircast_core::hub::Topic`].
//!
//! It only moves bytes. Inputs (internal requests from the Worker, WebSocket messages and
//! closes, the alarm) go to the core with the current time; the core's outbound messages go to
//! the sockets; its state is written to SQLite after every input, before any answer leaves
//! (a Durable Object's output gate holds responses and messages until the write is durable,
//! so nothing is answered that is not stored); the one alarm is set to `poll_timeout()`, and
//! deleted when there is none (an idle topic costs nothing and can hibernate).
//!
//! Sockets use the Hibernation API: each is accepted with its endpoint token as tag and as
//! attachment, so the object can be evicted between messages; `ping` is answered `pong` by the
//! runtime without waking it.

use std::cell::RefCell;

use fhircast_core::hub::{Auth, Outbound, Topic, TopicState};
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::wire::SubscribeResponse;
use fhircast_core::{Event, Timestamp};
use worker::*;

use crate::config::Settings;
use crate::respond::{json, outcome, text};

/// The Worker → object headers: the verified authorization, the topic, and the public
/// WebSocket base URL endpoints are built from.
pub(crate) const HDR_AUTH: &str = "x-fhircast-auth";
pub(crate) const HDR_TOPIC: &str = "x-fhircast-topic";
pub(crate) const HDR_WS_BASE: &str = "x-fhircast-ws-base";

/// One topic of the Hub.
#[durable_object]
pub struct TopicObject {
    state: State,
    settings: std::result::Result<Settings, String>,
    topic: RefCell<Option<Topic>>,
    /// The alarm last set (ms), to avoid rewriting it.
    alarm_at: RefCell<Option<i64>>,
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
    /// are treated as abnormally closed.
    fn load(&self, name: Option<&str>) -> std::result::Result<(), String> {
        if self.topic.borrow().is_some() {
            return Ok(());
        }
        let config = self.settings()?.hub.clone();
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct Row {
            json: String,
        }
        let rows: Vec<Row> = sql
            .exec("SELECT json FROM topic_state WHERE id = 1", None)
            .and_then(|c| c.to_array())
            .map_err(|e| format!("reading the topic's state: {e}"))?;
        let mut topic = match rows.into_iter().next() {
            Some(row) => {
                let state: TopicState =
                    serde_json::from_str(&row.json).map_err(|e| format!("the stored state is unreadable: {e}"))?;
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
        for token in gone {
            topic.handle_close(&token, 1006, t);
        }
        *self.topic.borrow_mut() = Some(topic);
        Ok(())
    }

    /// Sends what the core produced, writes its state, and returns the alarm it wants.
    fn flush(&self) -> Option<i64> {
        let mut guard = self.topic.borrow_mut();
        let topic = guard.as_mut()?;
        // Sockets by endpoint token, built once per flush: a fan-out is one lookup per recipient.
        let mut sockets: Option<std::collections::HashMap<String, WebSocket>> = None;
        while let Some(o) = topic.poll_outbound() {
            let by_token = sockets.get_or_insert_with(|| {
                self.state.get_websockets().into_iter().filter_map(|ws| Some((self.token_of(&ws)?, ws))).collect()
            });
            match o {
                Outbound::Send { to, text } => {
                    if let Some(ws) = by_token.get(&to) {
                        let _ = ws.send_with_str(&*text);
                    }
                }
                Outbound::Close { to, code, reason } => {
                    if let Some(ws) = by_token.get(&to) {
                        let _ = ws.close(Some(code), Some(reason.as_str()));
                    }
                }
            }
        }
        match serde_json::to_string(topic.state()) {
            Ok(json) => {
                let sql = self.state.storage().sql();
                if let Err(e) = sql.exec(
                    "INSERT INTO topic_state (id, json) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET json = excluded.json",
                    Some(vec![json.into()]),
                ) {
                    console_error!("writing the topic's state: {e}");
                }
            }
            Err(e) => console_error!("serialising the topic's state: {e}"),
        }
        topic.poll_timeout().map(|t| t.unix_millis())
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

    /// Runs `f` on the loaded topic, then flushes and reschedules.
    async fn with_topic<T>(
        &self,
        name: Option<&str>,
        f: impl FnOnce(&mut Topic, Timestamp) -> T,
    ) -> std::result::Result<T, String> {
        self.load(name)?;
        let out = {
            let mut guard = self.topic.borrow_mut();
            f(guard.as_mut().expect("loaded"), now())
        };
        let next = self.flush();
        if let Err(e) = self.schedule(next).await {
            console_error!("setting the alarm: {e}");
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
        let result = self.with_topic(Some(topic_name), |t, now| t.handle_subscription(&sub, &auth, &token, now)).await;
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
        let result = self.with_topic(Some(topic_name), |t, now| t.handle_event(event, &auth, now)).await;
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
        if self.topic.borrow().is_none() && self.load(None).is_err() {
            // A topic nobody has used has no context (req 103), and no state is created for it.
            let _ = topic_name;
            return json(200, r#"{"context.type":"","context":[]}"#, "application/json");
        }
        let answer = self.topic.borrow().as_ref().map(|t| t.current_context(&auth));
        match answer {
            Some(Ok(cc)) => json(200, &serde_json::to_string(&cc).expect("serialises"), "application/json"),
            Some(Err(e)) => outcome(e.http_status(), &e.to_string()),
            None => outcome(500, "topic not loaded"),
        }
    }

    /// The roster (`GET {hub}/{topic}/subscribers`). Read-only: an unused topic is answered
    /// from an empty topic that is never stored (the token is checked all the same).
    async fn roster(&self, topic_name: &str, auth: Auth) -> Result<Response> {
        let answer = if self.topic.borrow().is_none() && self.load(None).is_err() {
            match self.settings() {
                Ok(s) => Topic::new(topic_name, "", s.hub.clone()).roster(&auth),
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
        let token = token.to_owned();
        let result = self.with_topic(None, |t, now| t.handle_connect(&token, now)).await;
        match result {
            Ok(Ok(())) => Response::from_websocket(pair.client),
            Ok(Err(e)) => {
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
        if let Err(e) = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS topic_state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)",
            None,
        ) {
            console_error!("creating the state table: {e}");
        }
        let settings = Settings::from_lookup(|k| crate::entry::lookup(&env, k)).map_err(|e| e.to_string());
        TopicObject { state, settings, topic: RefCell::new(None), alarm_at: RefCell::new(None) }
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
        if let Err(e) = self.with_topic(None, |t, now| t.handle_timeout(now)).await {
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
        let _ = self.with_topic(None, |t, now| t.handle_message(&token, &text, now)).await;
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(1006);
        // Complete the closing handshake: with hibernatable sockets the object must answer the
        // subscriber's Close frame itself, else the client waits and sees 1006 (RFC 6455
        // §5.5.1). Fails harmlessly where the runtime already replied.
        let _ = ws.close(Some(crate::route::close_reply_code(code)), Some("closed"));
        let Some(token) = self.token_of(&ws) else { return Ok(()) };
        let _ = self.with_topic(None, |t, now| t.handle_close(&token, code, now)).await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        let Some(token) = self.token_of(&ws) else { return Ok(()) };
        let _ = self.with_topic(None, |t, now| t.handle_close(&token, 1006, now)).await;
        Ok(())
    }
}
