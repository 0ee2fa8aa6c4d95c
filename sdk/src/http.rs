//! `fetch` for the three HTTP calls of a subscriber: the subscription form (req 24), event
//! JSON (req 76) and get-current-context (req 100). The global `fetch` is bound directly, so
//! pages and workers both work.

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use crate::error::SdkError;

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

fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "network error".into())
}

/// Sends a request; `body` with its content type; `token` as `Authorization: Bearer` (req 19).
/// `what` names the call in errors.
pub(crate) async fn request(
    what: &'static str,
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
    token: Option<&str>,
) -> Result<Reply, SdkError> {
    let net = |e: JsValue| SdkError::Network { what, message: js_message(&e) };
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(net)?;
    headers.set("Accept", "application/json").map_err(net)?;
    if let Some((content_type, text)) = body {
        headers.set("Content-Type", content_type).map_err(net)?;
        init.set_body(&JsValue::from_str(text));
    }
    if let Some(t) = token {
        headers.set("Authorization", &format!("Bearer {t}")).map_err(net)?;
    }
    init.set_headers(&headers);
    let response: Response = JsFuture::from(fetch_with_init(url, &init)).await.map_err(net)?.unchecked_into();
    let status = response.status();
    let text = response.text().map_err(net)?;
    let body = JsFuture::from(text).await.map_err(net)?.as_string().unwrap_or_default();
    Ok(Reply { status, body })
}
