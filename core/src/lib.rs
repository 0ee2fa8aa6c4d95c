//! # fhircast-core
//!
//! The FHIRcast 3.0.0 (STU3) protocol, with no I/O: no sockets, no clock, no async runtime, no
//! JavaScript. Two shells drive it: the Hub on Cloudflare Workers (one [`hub::Topic`] per
//! Durable Object) and the browser SDK (one [`follower::Follower`] per subscription).
//!
//! The state machines follow quinn-proto's shape: `handle_*` methods take inputs and the
//! current time, `poll_*` methods yield what to send, and `poll_timeout` says when to call
//! `handle_timeout` next. Requirement numbers (`req 80`, `neg 15`, `§5a-9`) refer to the
//! project's STU3 requirements digest; tests are named after them.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod audit;
pub mod bundle;
pub mod catalog;
pub mod event;
pub mod follower;
pub mod hub;
pub mod metrics;
pub mod outcome;
pub mod scope;
pub mod sharing;
pub mod subscriber;
pub mod subscription;
pub mod syncerror;
pub mod time;
mod vecmap;

/// Where `needle` first occurs in `hay` (`hay.find(needle)`). The standard library's substring
/// search (the two-way `StrSearcher`) costs the browser SDK about half a kilobyte gzipped; the
/// needles here are short and the haystacks ids and URLs.
pub(crate) fn find(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes().windows(needle.len()).position(|w| w == needle.as_bytes())
}

/// The part of `hay` before the first `needle`, or all of it.
pub(crate) fn before<'a>(hay: &'a str, needle: &str) -> &'a str {
    // A match is at a char boundary: `needle` is UTF-8 and starts with a char's first byte.
    find(hay, needle).map_or(hay, |i| &hay[..i])
}

/// A word with its indefinite article, for messages: `an Encounter`, `a Patient`.
pub(crate) struct A<'a>(pub &'a str);

impl std::fmt::Display for A<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let an = self.0.starts_with(['A', 'E', 'I', 'O', 'U', 'a', 'e', 'i', 'o', 'u']);
        write!(f, "{} {}", if an { "an" } else { "a" }, self.0)
    }
}
pub mod view;
pub mod wellknown;
pub mod wire;

pub use catalog::{EventKind, EventName};
pub use event::{Event, EventError};
pub use time::Timestamp;
pub use wire::ResourceKey;

#[cfg(test)]
mod tests {
    #[test]
    fn find_and_before_agree_with_the_standard_library() {
        for (hay, needle) in [
            ("Patient/p1/_history/3", "/_history/"),
            ("a-resend-2-resend-3", "-resend-"),
            ("x", "xy"),
            ("", "a"),
            ("aaab", "ab"),
            ("é-syncerror", "-syncerror"),
        ] {
            assert_eq!(super::find(hay, needle), hay.find(needle), "{hay} {needle}");
            assert_eq!(super::before(hay, needle), hay.split(needle).next().unwrap(), "{hay} {needle}");
        }
    }
}
