//! Metrics (issue 17): each topic's counts and latencies ([`fhircast_core::metrics`]) written to
//! the Workers Analytics Engine dataset bound as `METRICS`, when one is bound (README
//! "Metrics"). Nothing is written otherwise.
//!
//! Written after the input's writes succeeded, without waiting (`writeDataPoint` returns
//! nothing), at most [`MAX_POINTS_PER_INPUT`] per input: the platform takes 250 per invocation,
//! and an input that ends many subscriptions at once (an alarm) would otherwise exceed it.

use fhircast_core::hub::Fact;
use fhircast_core::metrics::data_point;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{console_error, Env};

/// The most data points one input writes.
pub(crate) const MAX_POINTS_PER_INPUT: usize = 200;

/// The bound dataset, if any.
pub(crate) struct Metrics(Option<(JsValue, js_sys::Function)>);

impl Metrics {
    pub(crate) fn new(env: &Env) -> Metrics {
        let dataset = js_sys::Reflect::get(env, &JsValue::from_str("METRICS")).ok().filter(|d| d.is_object());
        Metrics(dataset.and_then(|d| {
            let write = js_sys::Reflect::get(&d, &JsValue::from_str("writeDataPoint")).ok()?;
            Some((d, write.dyn_into::<js_sys::Function>().ok()?))
        }))
    }

    /// Whether a dataset is bound (the core must record facts for it).
    pub(crate) fn bound(&self) -> bool {
        self.0.is_some()
    }

    /// Writes the data points of `facts` for `topic`.
    pub(crate) fn send(&self, facts: &[Fact], topic: &str) {
        let Some((dataset, write)) = &self.0 else { return };
        let points = facts.iter().filter_map(|f| data_point(f, topic));
        let mut dropped = 0usize;
        for (i, p) in points.enumerate() {
            if i >= MAX_POINTS_PER_INPUT {
                dropped += 1;
                continue;
            }
            let point = js_sys::Object::new();
            let blobs: js_sys::Array = p.blobs.iter().map(|b| JsValue::from_str(b)).collect();
            let doubles: js_sys::Array = p.doubles.iter().map(|d| JsValue::from_f64(*d)).collect();
            let indexes = js_sys::Array::of1(&JsValue::from_str(&p.index));
            let _ = js_sys::Reflect::set(&point, &JsValue::from_str("blobs"), &blobs);
            let _ = js_sys::Reflect::set(&point, &JsValue::from_str("doubles"), &doubles);
            let _ = js_sys::Reflect::set(&point, &JsValue::from_str("indexes"), &indexes);
            if let Err(e) = write.call1(dataset, &point) {
                console_error!("writing a metrics data point failed: {e:?}");
                return;
            }
        }
        if dropped > 0 {
            console_error!("metrics: {dropped} data points of one input not written (at most {MAX_POINTS_PER_INPUT})");
        }
    }
}
