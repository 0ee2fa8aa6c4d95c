//! `fetch` for the three HTTP calls of a subscriber: the subscription form (req 24), event
//! JSON (req 76) and get-current-context (req 100). The global `fetch` is bound directly, so
//! pages and workers both work. The answer is followed up by `session::calls`.

use wasm_bindgen::prelude::*;
use web_sys::{Headers, RequestInit};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_init(url: &str, init: &RequestInit) -> js_sys::Promise;
}

/// The form content type (req 24).
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";
/// The content type of events (req 4).
pub(crate) const JSON: &str = "application/json";

/// An HTTP answer: status and body text.
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
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
/// The promise resolves with the `Response`.
pub(crate) fn fetch(
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
    token: Option<&str>,
) -> Result<js_sys::Promise, JsValue> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new()?;
    headers.set("Accept", "application/json")?;
    if let Some((content_type, text)) = body {
        headers.set("Content-Type", content_type)?;
        init.set_body(&JsValue::from_str(text));
    }
    if let Some(t) = token {
        headers.set("Authorization", &format!("Bearer {t}"))?;
    }
    init.set_headers(&headers);
    Ok(fetch_with_init(url, &init))
}
