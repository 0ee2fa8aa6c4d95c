//! The options of `FhircastClient.connect()`, read and checked before anything is sent.

use fhircast_core::catalog::EventName;
use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::error::SdkError;
use crate::js;
use crate::policy::normalise_hub_url;
use crate::token::Token;

/// The kinds of listeners an app can register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// `onSyncError`.
    SyncError,
    /// `onStatusChange`.
    Status,
    /// `onContextChange`.
    Context,
}

impl Listener {
    /// From the option / method name.
    pub(crate) fn parse(s: &str) -> Option<Listener> {
        match s {
            "syncerror" | "onSyncError" => Some(Listener::SyncError),
            "status" | "onStatusChange" => Some(Listener::Status),
            "context" | "onContextChange" => Some(Listener::Context),
            _ => None,
        }
    }
}

/// Connect options, checked.
pub(crate) struct Options {
    pub hub_url: String,
    pub topic: String,
    pub events: Vec<EventName>,
    pub subscriber_name: Option<String>,
    pub lease_seconds: Option<u64>,
    pub token: Token,
    /// `on: {eventName: handler}`, registered before the subscription starts, so that no
    /// replayed event (req 44) can arrive before its handler.
    pub handlers: Vec<(String, Function)>,
    pub listeners: Vec<(Listener, Function)>,
}

fn string_option(o: &JsValue, name: &'static str, required: bool) -> Result<Option<String>, SdkError> {
    let v = js::get(o, name);
    if v.is_undefined() || v.is_null() {
        if required {
            return Err(SdkError::Option { name, reason: "is required".into() });
        }
        return Ok(None);
    }
    match v.as_string() {
        Some(s) if !s.trim().is_empty() => Ok(Some(s)),
        Some(_) => Err(SdkError::Option { name, reason: "is empty".into() }),
        None => Err(SdkError::Option { name, reason: "must be a string".into() }),
    }
}

/// Checks the hub URL: absolute http(s).
pub(crate) fn check_hub_url(url: &str) -> Result<String, SdkError> {
    let u = normalise_hub_url(url);
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(SdkError::Option {
            name: "hubUrl",
            reason: format!("must be an absolute http(s) URL, e.g. \"https://ehr.example/api/hub\" (got {u:?})"),
        });
    }
    Ok(u)
}

/// Parses the event names, in order, without repetitions (req 25, 29, 34).
pub(crate) fn parse_events(names: &[String]) -> Result<Vec<EventName>, SdkError> {
    let mut events: Vec<EventName> = Vec::new();
    for n in names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        let e = EventName::parse(n).map_err(|e| SdkError::Option { name: "events", reason: format!("has {e}") })?;
        if !events.contains(&e) {
            events.push(e);
        }
    }
    if events.is_empty() {
        return Err(SdkError::Option {
            name: "events",
            reason: "must name at least one event, e.g. ['Patient-open', 'Patient-close'] (req 29)".into(),
        });
    }
    Ok(events)
}

impl Options {
    /// Reads `{hubUrl, topic, events, subscriberName, accessToken, leaseSeconds, on,
    /// onStatusChange, onSyncError, onContextChange}`.
    pub(crate) fn from_js(o: &JsValue) -> Result<Options, SdkError> {
        if !o.is_object() {
            return Err(SdkError::Argument(
                "connect(options): options must be an object {hubUrl, topic, events, ...}".into(),
            ));
        }
        let hub_url = check_hub_url(&string_option(o, "hubUrl", true)?.expect("required"))?;
        let topic = string_option(o, "topic", true)?.expect("required");
        let ev = js::get(o, "events");
        let names: Vec<String> = if let Some(s) = ev.as_string() {
            vec![s]
        } else if js_sys::Array::is_array(&ev) {
            let arr: js_sys::Array = ev.unchecked_into();
            arr.iter()
                .map(|v| v.as_string().ok_or(SdkError::Option { name: "events", reason: "must hold strings".into() }))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let mut handlers = Vec::new();
        let on = js::get(o, "on");
        if on.is_object() {
            for key in js_sys::Object::keys(on.unchecked_ref::<js_sys::Object>()).iter() {
                let name = key.as_string().unwrap_or_default();
                let h = js::get(&on, &name);
                let f = h.dyn_into::<Function>().map_err(|_| SdkError::Option {
                    name: "on",
                    reason: format!("must map event names to functions ({name:?} does not)"),
                })?;
                // A typo here would otherwise subscribe to nothing, silently, where on() throws.
                if name.trim() != "*" {
                    EventName::parse(&name).map_err(|e| SdkError::Option {
                        name: "on",
                        reason: format!("has a key that is not an event: {e}"),
                    })?;
                }
                handlers.push((name, f));
            }
        }
        // `events` defaults to the events given handlers in `on`.
        let names = if names.is_empty() {
            handlers.iter().map(|(n, _)| n.clone()).filter(|n| n != "*").collect()
        } else {
            names
        };
        let events = parse_events(&names)?;
        let lease = js::get(o, "leaseSeconds");
        let lease_seconds = if lease.is_undefined() || lease.is_null() {
            None
        } else {
            match lease.as_f64() {
                Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Some(n as u64),
                _ => {
                    return Err(SdkError::Option {
                        name: "leaseSeconds", reason: "must be a whole number ≥ 1".into()
                    })
                }
            }
        };
        let mut listeners = Vec::new();
        for name in ["onSyncError", "onStatusChange", "onContextChange"] {
            let v = js::get(o, name);
            if v.is_undefined() || v.is_null() {
                continue;
            }
            let f = v.dyn_into::<Function>().map_err(|_| SdkError::Option {
                name: match name {
                    "onSyncError" => "onSyncError",
                    "onStatusChange" => "onStatusChange",
                    _ => "onContextChange",
                },
                reason: "must be a function".into(),
            })?;
            listeners.push((Listener::parse(name).expect("listed"), f));
        }
        Ok(Options {
            hub_url,
            topic,
            events,
            subscriber_name: string_option(o, "subscriberName", false)?,
            lease_seconds,
            token: Token::from_option(js::get(o, "accessToken"))?,
            handlers,
            listeners,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn req29_req34_events_are_parsed_deduplicated_and_canonical() {
        let names = |v: &[&str]| {
            parse_events(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(names(&["patient-open", "Patient-OPEN", "syncerror"]).unwrap(), ["Patient-open", "SyncError"]);
        assert_eq!(names(&["Patient-open, Patient-close"]).unwrap(), ["Patient-open", "Patient-close"]);
        assert!(names(&[]).unwrap_err().to_string().contains("at least one event"));
        assert!(names(&["Patient-*"]).unwrap_err().to_string().contains("wildcards"));
    }

    #[test]
    fn hub_urls_are_absolute_http() {
        assert_eq!(check_hub_url("https://ehr.example/api/hub/").unwrap(), "https://ehr.example/api/hub");
        assert!(check_hub_url("/api/hub").unwrap_err().to_string().contains("hubUrl"));
        assert!(check_hub_url("ws://x").is_err());
    }
}
