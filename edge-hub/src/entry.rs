//! The Worker: routes, CORS, size limits, authorization; everything about a topic goes to that
//! topic's Durable Object (`idFromName(topic)`).

use fhircast_core::hub::Auth;
use fhircast_core::subscription::SubscriptionRequest;
use fhircast_core::wellknown::WellKnown;
use fhircast_core::{Event, Timestamp};
use std::rc::Rc;

use wasm_bindgen_futures::JsFuture;
use worker::*;

use crate::claims::{bearer, check_claims, parse_jws, AuthError};
use crate::config::{AuthMode, SettingError, Settings};
use crate::contract::{auth_header, InternalRoute, HDR_AUTH, HDR_REQUEST_ID, HDR_TOPIC, HDR_WS_BASE};
use crate::cors;
use crate::respond::{outcome, text, Answer};
use crate::route::{
    body_kind, looks_like_subscription, post_error_body, query_param, route, split_url, BodyKind, ErrorBody, Route,
};

/// A wrangler var or secret.
///
/// Read as the property's string value (vars and secrets are both strings). Not through
/// `Env::var`: workers-rs inspects the value's constructor, which throws for a null binding
/// (what workerd's `fromEnvironment` gives for an unset variable on a self-hosted hub), and
/// that throw left every request hanging. Numbers and booleans (`MAX_BODY_BYTES = 65536` without
/// quotes in wrangler.toml's [vars]) are read as their text.
pub(crate) fn lookup(env: &Env, name: &str) -> Option<String> {
    let v = js_sys::Reflect::get(env, &wasm_bindgen::JsValue::from_str(name)).ok()?;
    v.as_string().or_else(|| v.as_f64().map(|n| n.to_string())).or_else(|| v.as_bool().map(|b| b.to_string()))
}

thread_local! {
    /// The settings, read once per isolate. Vars and secrets cannot change under a running
    /// isolate (a deploy or a changed secret starts new ones), and reading some thirty of them
    /// through JS on every request was a measurable part of the Worker's time per event
    /// (BENCHMARKS.md).
    static SETTINGS: std::cell::OnceCell<Rc<std::result::Result<Settings, SettingError>>> =
        const { std::cell::OnceCell::new() };
}

pub(crate) fn settings(env: &Env) -> Rc<std::result::Result<Settings, SettingError>> {
    SETTINGS.with(|s| s.get_or_init(|| Rc::new(Settings::from_lookup(|k| lookup(env, k)))).clone())
}

fn auth_failure(e: &AuthError, as_outcome: bool, rid: &str) -> Result<Response> {
    if let AuthError::Keys(detail) = e {
        // The identity provider's answer is for the operator's log, not for the caller.
        console_error!("[{rid}] verification keys: {detail}");
    }
    let mut r =
        if as_outcome { outcome(e.http_status(), &e.to_string())? } else { text(e.http_status(), &e.to_string())? };
    if e.http_status() == 401 {
        r.headers_mut().set("WWW-Authenticate", r#"Bearer error="invalid_token""#)?;
    }
    Ok(r)
}

async fn authorize(headers: &Headers, settings: &Settings) -> std::result::Result<Auth, AuthError> {
    match &settings.auth {
        AuthMode::Open => Ok(Auth::open()),
        AuthMode::Jwt(jwt) => {
            let header = headers.get("Authorization").ok().flatten();
            let jws = parse_jws(bearer(header.as_deref())?)?;
            crate::webcrypto::verify(&jws, jwt).await?;
            let auth = check_claims(&jws.claims, &jwt.rules, Timestamp::from_unix_millis(js_sys::Date::now() as i64))?;
            if settings.require_topic_binding && auth.topic.is_none() {
                return Err(AuthError::Unbound);
            }
            Ok(auth)
        }
    }
}

/// Reads a body, refusing more than `max` bytes (413, neg 18): a declared length over it is
/// refused before reading, and a body without one (chunked) is read chunk by chunk and
/// refused as soon as it passes `max`, never held whole. A refusal is (status, message),
/// written by the caller as plain text or an OperationOutcome ([`post_error_body`]).
async fn body(req: &web_sys::Request, headers: &Headers, max: usize) -> std::result::Result<String, (u16, String)> {
    use futures_core::Stream;
    let too_large = || (413, format!("the body is larger than the hub's limit of {max} bytes (neg 18)"));
    let declared = headers.get("Content-Length").ok().flatten().and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > max) {
        return Err(too_large());
    }
    let unreadable = || (400, "the body could not be read (the connection ended early?)".to_owned());
    let bytes = if declared.is_some() {
        // A declared length is what the runtime reads (and no more): one call, no stream.
        let buffer = req.array_buffer().map_err(|_| unreadable())?;
        js_sys::Uint8Array::new(&JsFuture::from(buffer).await.map_err(|_| unreadable())?).to_vec()
    } else {
        let mut bytes = Vec::new();
        // No stream: no body at all.
        if let Some(stream) = req.body() {
            let mut stream = ByteStream::from(stream);
            while let Some(chunk) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await {
                let c = chunk.map_err(|_| unreadable())?;
                if bytes.len() + c.len() > max {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&c);
            }
        }
        bytes
    };
    if bytes.len() > max {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| (400, "the body is not UTF-8 (req 1)".to_owned()))
}

/// A request to the topic's object, built from scratch ([`crate::contract`]).
async fn to_topic(
    env: &Env,
    topic: &str,
    route: InternalRoute,
    body: Option<String>,
    auth: &Auth,
    ws_base: &str,
    rid: &str,
) -> Result<Response> {
    let stub = env.durable_object("TOPIC")?.id_from_name(topic)?.get_stub()?;
    let headers = Headers::new();
    headers.set(HDR_TOPIC, topic)?;
    headers.set(HDR_AUTH, &auth_header(auth))?;
    headers.set(HDR_WS_BASE, ws_base)?;
    headers.set(HDR_REQUEST_ID, rid)?;
    let mut init = RequestInit::new();
    init.with_method(if body.is_some() { Method::Post } else { Method::Get }).with_headers(headers);
    if let Some(b) = body {
        init.with_body(Some(b.into()));
    }
    stub.fetch_with_request(Request::new_with_init(&format!("https://topic{}", route.path()), &init)?).await
}

/// A subscription request (form or JSON): validated here, so the object gets a canonical form.
async fn subscribe(
    headers: &Headers,
    env: &Env,
    settings: &Settings,
    sub: SubscriptionRequest,
    ws_base: &str,
    rid: &str,
) -> Result<Response> {
    let auth = match authorize(headers, settings).await {
        Ok(a) => a,
        Err(e) => return auth_failure(&e, false, rid),
    };
    to_topic(env, &sub.topic.clone(), InternalRoute::Subscription, Some(sub.to_form()), &auth, ws_base, rid).await
}

async fn event(
    headers: &Headers,
    env: &Env,
    settings: &Settings,
    text_body: String,
    path_topic: Option<&str>,
    rid: &str,
) -> Result<Response> {
    let event = match Event::parse_envelope(&text_body) {
        Ok(e) => e,
        Err(e) => return outcome(400, &e.to_string()),
    };
    if let Some(c) = fhircast_core::subscription::topic_forbidden_char(&event.topic) {
        return outcome(
            400,
            &format!("hub.topic {:?} contains {c:?}; a topic is one URL path segment ({{hub.url}}/{{topic}}): no whitespace, control characters, '/', '?' or '#' (neg 4)", event.topic),
        );
    }
    if fhircast_core::subscription::is_dot_segment(&event.topic) {
        return outcome(
            400,
            &format!("hub.topic {:?} is a URL dot segment, which no URL can name (neg 4)", event.topic),
        );
    }
    let auth = match authorize(headers, settings).await {
        Ok(a) => a,
        Err(e) => return auth_failure(&e, true, rid),
    };
    // Routed by the path's topic when there is one: the core refuses a body naming another.
    let topic = path_topic.unwrap_or(&event.topic).to_owned();
    publish(env, &topic, &auth, rid, &text_body).await
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A topic object's stub, for its RPC method (`TopicObject` in edge-hub/js/entry.js).
    type TopicStub;
    /// `stub.publish(topic, auth, rid, body)`: a promise of `[status, content type, body]`.
    #[wasm_bindgen(method, catch)]
    fn publish(
        this: &TopicStub,
        topic: &str,
        auth: &str,
        rid: &str,
        body: &str,
    ) -> std::result::Result<js_sys::Promise, wasm_bindgen::JsValue>;
}

/// The error workerd throws when the object's class offers no RPC (it does not extend
/// `DurableObject`: this hub's objects before RPC, built by worker-build).
fn rpc_unsupported(e: &wasm_bindgen::JsValue) -> bool {
    let message = js_sys::Reflect::get(e, &"message".into()).ok().and_then(|m| m.as_string()).or_else(|| e.as_string());
    message.is_some_and(|m| m.contains("does not support RPC"))
}

/// An event request to the topic's object, over RPC ([`crate::contract`]): no Request or
/// Response between the Worker and the object, and the object handles it synchronously.
async fn publish(env: &Env, topic: &str, auth: &Auth, rid: &str, body: &str) -> Result<Response> {
    let stub: TopicStub = env.durable_object("TOPIC")?.id_from_name(topic)?.get_stub()?.into_rpc();
    let answer = match stub.publish(topic, &auth_header(auth), rid, body) {
        Ok(p) => JsFuture::from(p).await,
        Err(e) => Err(e),
    };
    let reply = match answer {
        Ok(a) => a,
        // An object of the release before (a deploy under way, or a gradual one) has no RPC:
        // nothing reached it, so the event goes over fetch as it did then.
        Err(e) if rpc_unsupported(&e) => {
            return to_topic(env, topic, InternalRoute::Event, Some(body.to_owned()), auth, "", rid).await;
        }
        Err(e) => return Err(e.into()),
    };
    match Answer::from_js(&reply) {
        Some(a) => a.into_response(),
        None => {
            console_error!("[{rid}] the topic object answered an event with {:?}", reply);
            text(500, &format!("internal error; request id {rid}"))
        }
    }
}

/// Takes the runtime's request as it is: wrapping it in a `worker::Request` reads its `cf`
/// properties (a JSON object parsed on first access), which only the assets branch needs.
async fn handle(req: web_sys::Request, env: &Env, settings: &Settings, rid: &str) -> Result<Response> {
    let url = req.url();
    let Some((scheme, authority, path)) = split_url(&url) else {
        return text(400, &format!("the request's URL {url:?} is not of the form scheme://host/path"));
    };
    let headers = Headers(req.headers());
    // Behind a proxy that terminates TLS (a self-hosted hub), requests arrive as http; the
    // proxy's X-Forwarded-Proto says what the client used, and a page served over https may
    // only open wss:// sockets. (A client setting it itself only changes its own answer.)
    let forwarded_https = headers
        .get("X-Forwarded-Proto")?
        .is_some_and(|p| p.split(',').next().unwrap_or_default().trim().eq_ignore_ascii_case("https"));
    let ws_scheme = if scheme == "https" || forwarded_https { "wss" } else { "ws" };
    let ws_base = format!("{ws_scheme}://{authority}{}/ws", settings.base_path);
    let method = req.method();
    match route(&method, path, &settings.base_path) {
        Route::Preflight => Ok(Response::empty()?.with_status(204)),
        Route::WellKnown => {
            let wk = WellKnown::standard_hub(settings.hub.non_current_updates);
            let mut r = Response::from_json(&wk)?;
            r.headers_mut().set("Content-Type", "application/json")?;
            Ok(r)
        }
        Route::WebSocket { topic, token } => {
            let upgrade = headers.get("Upgrade")?.unwrap_or_default();
            if !upgrade.eq_ignore_ascii_case("websocket") {
                return text(426, "this is a WebSocket endpoint: connect with a WebSocket client (req 2)");
            }
            // Built from scratch: none of the client's headers reaches the object.
            let stub = env.durable_object("TOPIC")?.id_from_name(&topic)?.get_stub()?;
            let headers = Headers::new();
            headers.set("Upgrade", "websocket")?;
            headers.set(HDR_TOPIC, &topic)?;
            headers.set(HDR_REQUEST_ID, rid)?;
            let mut init = RequestInit::new();
            init.with_method(Method::Get).with_headers(headers);
            let path = InternalRoute::WebSocket { token }.path();
            stub.fetch_with_request(Request::new_with_init(&format!("https://topic{path}"), &init)?).await
        }
        Route::GetContext { topic } => {
            let auth = match authorize(&headers, settings).await {
                Ok(a) => a,
                Err(e) => return auth_failure(&e, true, rid),
            };
            to_topic(env, &topic, InternalRoute::Context, None, &auth, "", rid).await
        }
        Route::Roster { topic } => {
            let auth = match authorize(&headers, settings).await {
                Ok(a) => a,
                Err(e) => return auth_failure(&e, true, rid),
            };
            to_topic(env, &topic, InternalRoute::Roster, None, &auth, "", rid).await
        }
        Route::Timeline { topic } => {
            let auth = match authorize(&headers, settings).await {
                Ok(a) => a,
                Err(e) => return auth_failure(&e, true, rid),
            };
            let number = |name: &str, default: u64, max: u64| match query_param(&url, name) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                    format!("the query parameter {name}={v:?} is not a whole number from 0 to {max}")
                }),
            };
            let (since, limit) = match (number("since", 0, i64::MAX as u64), number("limit", 500, 1000)) {
                (Ok(s), Ok(l)) => (s, l.max(1) as usize),
                (Err(e), _) | (_, Err(e)) => return outcome(400, &e),
            };
            to_topic(env, &topic, InternalRoute::Timeline { since, limit }, None, &auth, "", rid).await
        }
        Route::PostHub | Route::PostTopic { .. } => {
            let ct = headers.get("Content-Type")?;
            let kind = body_kind(ct.as_deref());
            let path_topic = match route(&method, path, &settings.base_path) {
                Route::PostTopic { topic } => Some(topic),
                _ => None,
            };
            // Errors found before the body is parsed (§5a-5): an OperationOutcome for event
            // requests (any POST to {base}/{topic}, any JSON POST), plain text for the rest.
            let refuse = |status: u16, message: &str| match post_error_body(kind, path_topic.is_some()) {
                ErrorBody::Outcome => outcome(status, message),
                ErrorBody::Text => text(status, message),
            };
            let text_body = match body(&req, &headers, settings.max_body_bytes).await {
                Ok(b) => b,
                Err((status, message)) => return refuse(status, &message),
            };
            match kind {
                // `curl -d` sends JSON as a form unless told otherwise: say so, rather than
                // read it as a subscription and complain about its hub.channel.type.
                BodyKind::Form if text_body.trim_start().starts_with('{') => outcome(
                    415,
                    "this body is JSON but was sent as application/x-www-form-urlencoded (what `curl -d` sends by default): send events with Content-Type: application/json (req 4); subscriptions are forms of hub.* fields (req 24)",
                ),
                BodyKind::Form if path_topic.is_none() => match SubscriptionRequest::from_form(&text_body) {
                    Ok(sub) => subscribe(&headers, env, settings, sub, &ws_base, rid).await,
                    Err(e) => text(e.http_status(), &e.to_string()),
                },
                // Lenient: subscription parameters sent as JSON (a JSON object with hub.mode).
                BodyKind::Json if path_topic.is_none() && looks_like_subscription(&text_body) => match SubscriptionRequest::from_json(&text_body) {
                    Ok(sub) => subscribe(&headers, env, settings, sub, &ws_base, rid).await,
                    Err(e) => text(e.http_status(), &e.to_string()),
                },
                BodyKind::Json => event(&headers, env, settings, text_body, path_topic.as_deref(), rid).await,
                _ if path_topic.is_some() => refuse(
                    415,
                    &format!("events are JSON: send Content-Type application/json or application/fhir+json, not {:?} (req 4, neg 1); subscriptions go to POST {}", ct.as_deref().unwrap_or("none"), settings.base_path),
                ),
                _ => refuse(
                    415,
                    &format!("Content-Type {:?} is not accepted: send subscriptions as application/x-www-form-urlencoded (req 24) and events as application/json or application/fhir+json (req 4) (neg 1)", ct.as_deref().unwrap_or("none")),
                ),
            }
        }
        Route::MethodNotAllowed { allow } => {
            let mut r = text(405, &format!("method {method} is not allowed here; allowed: {allow}"))?;
            r.headers_mut().set("Allow", allow)?;
            Ok(r)
        }
        Route::NotFound => text(
            404,
            &format!(
                "not found. The hub serves POST {b}, POST|GET {b}/{{topic}}, GET {b}/{{topic}}/subscribers, GET {b}/{{topic}}/timeline, GET {b}/.well-known/fhircast-configuration and WebSockets at the endpoints it hands out",
                b = settings.base_path
            ),
        ),
        Route::Outside => match env.assets("ASSETS") {
            Ok(assets) => assets.fetch_request(Request::from(req)).await,
            Err(_) => text(404, &format!("not found; the FHIRcast hub is at {}", settings.base_path)),
        },
    }
}

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<Response> {
    let settings = settings(&env);
    let settings = match settings.as_ref() {
        Ok(s) => s,
        Err(e) => return text(500, &format!("the hub is misconfigured: {e}")),
    };
    let headers = Headers(req.headers());
    let origin = headers.get("Origin")?;
    let allowed = settings.origins.allow(origin.as_deref());
    let is_ws = headers.get("Upgrade")?.is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let preflight = req.method() == "OPTIONS";
    // Every request gets an id: the log lines about it carry it, and so does any answer about
    // an internal failure, whose details stay in the log.
    let rid = crate::webcrypto::random_hex(8);
    let mut resp = match handle(req, &env, settings, &rid).await {
        Ok(r) => r,
        Err(e) => {
            console_error!("[{rid}] internal error: {e}");
            text(500, &format!("internal error; request id {rid}"))?
        }
    };
    if is_ws && resp.status_code() == 101 {
        return Ok(resp);
    }
    // A response from the topic's object has immutable headers ("Can't modify immutable
    // headers" would turn every answer to an allowed Origin into a 500): add to a copy.
    let copy = resp.headers().clone();
    resp = resp.with_headers(copy);
    resp.headers_mut().set("X-Request-Id", &rid)?;
    if let (Some(o), false) = (allowed, is_ws) {
        let headers = if preflight { cors::preflight_headers(&o) } else { cors::response_headers(&o) };
        for (k, v) in headers {
            resp.headers_mut().set(k, &v)?;
        }
    }
    // RFC 6750 §3: every 401 names the scheme, also the core's (an expired token on subscribe).
    if resp.status_code() == 401 && !resp.headers().has("WWW-Authenticate")? {
        resp.headers_mut().set("WWW-Authenticate", r#"Bearer error="invalid_token""#)?;
    }
    // Debug only (`DEBUG_MEMORY=1`, set by bench/soak.mjs): the wasm linear memory's size, so
    // a soak can tell memory the Rust code holds (it never shrinks) from the runtime's.
    if settings.debug_memory {
        resp.headers_mut().set("x-fhircast-wasm-bytes", &wasm_bytes().to_string())?;
    }
    Ok(resp)
}

/// The linear memory's size in bytes (one instance serves the Worker and its objects).
fn wasm_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}
