//! The Durable Object for one topic (spike): a SQLite counter, hibernatable WebSockets with
//! tags and attachments, a `ping`/`pong` auto-response and one alarm.

use serde::{Deserialize, Serialize};
use worker::{
    durable_object, worker_sys::WebSocketRequestResponsePair, DurableObject, Env, Error, Request, Response, Result,
    Socket, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::{route, Route};

/// What each hibernatable socket carries across hibernation (≤ 16 KiB serialised).
#[derive(Serialize, Deserialize)]
struct Attachment {
    token: String,
    topic: String,
}

#[derive(Deserialize)]
struct CountRow {
    n: i64,
}

/// One topic: the future home of `fhircast_core::hub` for that topic.
#[durable_object]
pub struct Topic {
    state: State,
    env: Env,
}

impl Topic {
    fn hub_path(&self) -> String {
        self.env.var("HUB_PATH").map(|v| v.to_string()).unwrap_or_else(|_| "/api/hub".to_owned())
    }

    /// Creates the table if needed, bumps the counter and returns it (one statement each;
    /// `exec` runs synchronously against the object's SQLite database).
    fn bump(&self) -> Result<i64> {
        let sql = self.state.storage().sql();
        sql.exec("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)", None)?;
        sql.exec("INSERT INTO counter (id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1", None)?;
        let row: CountRow = sql.exec("SELECT n FROM counter WHERE id = 1", None)?.one()?;
        Ok(row.n)
    }

    fn upgrade(&self, topic: &str, token: &str) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        self.state.accept_websocket_with_tags(&pair.server, &[token]);
        pair.server.serialize_attachment(Attachment { token: token.to_owned(), topic: topic.to_owned() })?;
        Response::from_websocket(pair.client)
    }
}

/// Close codes a server may send: 1005/1006/1015 are reserved for "no code" / abnormal.
fn sendable_close_code(code: usize) -> u16 {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => code as u16,
        _ => 1000,
    }
}

impl DurableObject for Topic {
    fn new(state: State, env: Env) -> Self {
        // Answered by the runtime without waking the object (or billing it).
        match WebSocketRequestResponsePair::new("ping", "pong") {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => worker::console_error!("auto-response: {e:?}"),
        }
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let hub_path = self.hub_path();
        let path = req.path();
        match route(&hub_path, &path) {
            Some(Route::Ping { topic }) => {
                let n = self.bump()?;
                Response::from_json(&serde_json::json!({ "topic": topic, "count": n }))
            }
            Some(Route::Ws { topic, token }) => {
                let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
                if !upgrade.eq_ignore_ascii_case("websocket") {
                    return Response::error("expected a WebSocket upgrade", 426);
                }
                self.upgrade(topic, token)
            }
            _ => Response::error("not found", 404),
        }
    }

    async fn connect(&self, mut socket: Socket) -> Result<()> {
        // No raw TCP into a topic: close at once.
        socket.close().await
    }

    async fn alarm(&self) -> Result<Response> {
        for ws in self.state.get_websockets() {
            if let Err(e) = ws.send_with_str("alarm fired") {
                worker::console_warn!("alarm: send failed: {e}");
            }
        }
        Response::ok("alarm fired")
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let att: Attachment =
            ws.deserialize_attachment()?.ok_or_else(|| Error::RustError("socket without attachment".into()))?;
        match message {
            WebSocketIncomingMessage::String(text) => {
                if let Some(ms) = text.strip_prefix("alarm:") {
                    let ms: i64 = ms.trim().parse().map_err(|_| Error::RustError(format!("bad alarm delay {ms:?}")))?;
                    self.state.storage().set_alarm(ms).await?;
                    ws.send_with_str(format!("{}: alarm set in {ms} ms", att.token))
                } else {
                    ws.send_with_str(format!("{}: {text}", att.token))
                }
            }
            WebSocketIncomingMessage::Binary(bytes) => ws.send_with_bytes(bytes),
        }
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, reason: String, _was_clean: bool) -> Result<()> {
        // Complete the closing handshake (harmless if the runtime already replied).
        let _ = ws.close(Some(sendable_close_code(code)), Some(reason));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        worker::console_warn!("websocket error: {error}");
        let _ = ws.close(Some(1011), Some("internal error"));
        Ok(())
    }
}
