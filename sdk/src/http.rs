//! `fetch` for the three HTTP calls of a subscriber: the subscription form (req 24), event
//! JSON (req 76) and get-current-context (req 100). The global `fetch` is bound directly, so
//! pages and workers both work. The answer is followed up by `session::calls`.

use wasm_bindgen::prelude::*;

use crate::shapes::quoted;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_init(url: &str, init: &JsValue) -> js_sys::Promise;
}

/// The form content type (req 24).
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";
/// The content type of events (req 4).
pub(crate) const JSON: &str = "application/json";

/// An HTTP answer: status and body text, and the URL asked (for messages).
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub url: String,
}

impl Reply {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The message of a JS error value.
pub(crate) fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "network error".into())
}

/// Starts a request; `body` with its content type; `token` as `Authorization: Bearer` (req 19).
/// The promise resolves with the `Response`. The init object is written as JSON and parsed
/// (one `JSON.parse`), which needs no `Headers`/`RequestInit` bindings.
pub(crate) fn fetch(
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
    token: Option<&str>,
) -> Result<js_sys::Promise, JsValue> {
    let mut init = format!("{{\"method\":{},\"headers\":{{\"Accept\":\"application/json\"", quoted(method));
    if let Some(t) = token {
        init.push_str(&format!(",\"Authorization\":{}", quoted(&format!("Bearer {t}"))));
    }
    if let Some((content_type, _)) = body {
        init.push_str(&format!(",\"Content-Type\":{}", quoted(content_type)));
    }
    init.push('}');
    if let Some((_, text)) = body {
        init.push_str(&format!(",\"body\":{}", quoted(text)));
    }
    init.push('}');
    Ok(fetch_with_init(url, &js_sys::JSON::parse(&init)?))
}
