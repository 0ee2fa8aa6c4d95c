//! The FHIRcast Hub on Cloudflare Workers: one Durable Object per topic over `fhircast_core::hub`.
//!
//! Toolchain spike (see `NOTES-toolchain.md`): the Worker routes
//! - `GET {hub}/.well-known/fhircast-configuration` (answered here, from `fhircast-core`),
//! - `GET {hub}/ping/{topic}` and the WebSocket upgrade `GET {hub}/ws/{topic}/{token}`
//!   (forwarded to the topic's Durable Object, `idFromName(topic)`),
//!
//! where `{hub}` is the `HUB_PATH` var (default `/api/hub`).

#[cfg(target_arch = "wasm32")]
mod topic_do;

#[cfg(target_arch = "wasm32")]
pub use topic_do::Topic;

/// A request the Worker understands, parsed from its path (pure, tested natively).
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET {hub}/.well-known/fhircast-configuration`
    WellKnown,
    /// `GET {hub}/ping/{topic}`: bump and return the topic's counter.
    Ping {
        /// The topic (Durable Object name).
        topic: &'a str,
    },
    /// `GET {hub}/ws/{topic}/{token}`: WebSocket upgrade.
    Ws {
        /// The topic (Durable Object name).
        topic: &'a str,
        /// The endpoint token, kept as the socket's tag and attachment.
        token: &'a str,
    },
}

/// Parses `path` below `hub_path`; `None` for anything else.
pub fn route<'a>(hub_path: &str, path: &'a str) -> Option<Route<'a>> {
    let rest = path.strip_prefix(hub_path.trim_end_matches('/'))?;
    if rest == fhircast_core::wellknown::WELL_KNOWN_PATH {
        return Some(Route::WellKnown);
    }
    let segs: Vec<&'a str> = rest.strip_prefix('/')?.split('/').collect();
    match segs.as_slice() {
        ["ping", topic] if !topic.is_empty() => Some(Route::Ping { topic }),
        ["ws", topic, token] if !topic.is_empty() && !token.is_empty() => Some(Route::Ws { topic, token }),
        _ => None,
    }
}

#[cfg(target_arch = "wasm32")]
mod worker_entry {
    use super::{route, Route};
    use fhircast_core::{wellknown::WellKnown, EventName};
    use worker::{event, Context, Env, Method, Request, Response, Result};

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let hub_path = env.var("HUB_PATH").map(|v| v.to_string()).unwrap_or_else(|_| "/api/hub".to_owned());
        if req.method() != Method::Get {
            return Response::error("method not allowed", 405);
        }
        let path = req.path();
        match route(&hub_path, &path) {
            Some(Route::WellKnown) => {
                let events: Vec<EventName> =
                    ["Patient-open", "Patient-close"].iter().filter_map(|s| EventName::parse(s).ok()).collect();
                Response::from_json(&WellKnown::for_hub(&events, false))
            }
            Some(Route::Ping { topic }) | Some(Route::Ws { topic, .. }) => {
                let stub = env.durable_object("TOPIC")?.id_from_name(topic)?.get_stub()?;
                stub.fetch_with_request(req).await
            }
            None => Response::error("not found", 404),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let h = "/api/hub";
        assert_eq!(route(h, "/api/hub/ping/t1"), Some(Route::Ping { topic: "t1" }));
        assert_eq!(route(h, "/api/hub/ws/t1/k"), Some(Route::Ws { topic: "t1", token: "k" }));
        assert_eq!(route(h, "/api/hub/.well-known/fhircast-configuration"), Some(Route::WellKnown));
        assert_eq!(route(h, "/api/hub/ping/"), None);
        assert_eq!(route(h, "/api/hubx/ping/t"), None);
        assert_eq!(route(h, "/other"), None);
    }
}
