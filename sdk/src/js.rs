//! The few browser globals the shell uses, bound directly (no `window`, so the SDK also runs in
//! workers), and the conversion of serialisable views into plain JS objects.

use fhircast_core::Timestamp;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID, catch)]
    fn random_uuid() -> Result<String, JsValue>;
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(message: &str, detail: &JsValue);
}

/// The wall clock.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_unix_millis(js_sys::Date::now() as i64)
}

/// A random UUID: `crypto.randomUUID()`, or the same from `crypto.getRandomValues()` where
/// `randomUUID` is missing (pages that are not a secure context).
pub(crate) fn uuid() -> String {
    if let Ok(id) = random_uuid() {
        return id;
    }
    let mut b = [0u8; 16];
    get_random_values(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Written in one pass, dashes before bytes 4, 6, 8 and 10: 8-4-4-4-12 hex digits.
    let mut id = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(x >> 4)]));
        id.push(char::from(HEX[usize::from(x & 15)]));
    }
    id
}

/// A number in `[0, 1)`.
pub(crate) fn random() -> f64 {
    js_sys::Math::random()
}

/// `console.warn("fhircast-sdk: ...", detail)`: for what the app should see in development but
/// cannot act on (a handler that threw, an unreadable message).
pub(crate) fn warn(message: &str, detail: &JsValue) {
    console_warn(&format!("fhircast-sdk: {message}"), detail);
}

/// A plain JS value from JSON text.
pub(crate) fn from_json_text(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap_or(JsValue::NULL)
}

/// `JSON.stringify(value)`; `None` for what has no JSON text (`undefined`, functions) or
/// cannot be serialised (cycles).
pub(crate) fn json_text(value: &JsValue) -> Option<String> {
    if value.is_undefined() {
        return None;
    }
    js_sys::JSON::stringify(value).ok()?.as_string()
}

/// The items of a JS array mapped with `f`: `None` if `v` is not an array or an item does not
/// map; `undefined` is an empty list.
pub(crate) fn array_of<T>(v: &JsValue, f: impl Fn(&JsValue) -> Option<T>) -> Option<Vec<T>> {
    if v.is_undefined() {
        return Some(Vec::new());
    }
    if !js_sys::Array::is_array(v) {
        return None;
    }
    js_sys::Array::from(v).iter().map(|x| f(&x)).collect()
}

/// Reads a JS value into a Rust type through its JSON text.
pub(crate) fn from_js<T: DeserializeOwned>(value: &JsValue) -> Result<T, String> {
    let text = json_text(value).ok_or("is not JSON")?;
    // serde's message without its parser position ("at line 1 column 0"), which means
    // nothing to someone who passed a JS value.
    serde_json::from_str(&text).map_err(|e| {
        let m = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        m.strip_suffix(&position).map(str::to_owned).unwrap_or(m)
    })
}

/// `obj[name]`, `undefined` when absent or when `obj` is not an object.
pub(crate) fn get(obj: &JsValue, name: &str) -> JsValue {
    if !obj.is_object() {
        return JsValue::UNDEFINED;
    }
    js_sys::Reflect::get(obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Whether `v` is a promise or another thenable.
pub(crate) fn is_thenable(v: &JsValue) -> bool {
    v.is_object() && get(v, "then").is_function()
}
