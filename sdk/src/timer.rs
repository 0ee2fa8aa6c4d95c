//! `setTimeout` as a value: dropping a [`Timer`] cancels it.

use wasm_bindgen::prelude::*;

use crate::policy::clamp_timeout_ms;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(cb: &js_sys::Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
}

/// One armed `setTimeout`; cancelled when dropped.
pub(crate) struct Timer {
    handle: JsValue,
    /// `FnMut(JsValue)`, the SDK's one closure type (see socket.rs).
    _callback: Closure<dyn FnMut(JsValue)>,
}

impl Timer {
    /// Calls `f` once after `ms` milliseconds, unless the timer is dropped first.
    pub(crate) fn after(ms: f64, f: impl Fn() + 'static) -> Timer {
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| f());
        let handle = set_timeout(callback.as_ref().unchecked_ref(), clamp_timeout_ms(ms));
        Timer { handle, _callback: callback }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.handle);
    }
}
