//! Addressing and timer limits of the shell. The protocol's timing (reconnect backoff, lease
//! renewal) is the core's (`fhircast_core::subscriber::SubscriberPolicy`). Pure, tested
//! natively.

/// `setTimeout` takes at most 2^31 - 1 ms.
pub(crate) fn clamp_timeout_ms(ms: f64) -> f64 {
    ms.clamp(0.0, 2_147_483_647.0)
}

/// The hub URL without a trailing slash.
pub(crate) fn normalise_hub_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// `GET {hub}/{topic}`: the current context (req 100), the topic percent-encoded as one path
/// segment.
pub(crate) fn context_url(hub_url: &str, topic: &str) -> String {
    let mut out = String::with_capacity(hub_url.len() + topic.len() + 1);
    out.push_str(hub_url);
    out.push('/');
    for b in topic.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_clamped_to_what_set_timeout_takes() {
        assert_eq!(clamp_timeout_ms(1e12), 2_147_483_647.0);
        assert_eq!(clamp_timeout_ms(-5.0), 0.0);
    }

    #[test]
    fn req100_context_url_encodes_the_topic() {
        assert_eq!(normalise_hub_url(" https://h.example/api/hub/ "), "https://h.example/api/hub");
        assert_eq!(context_url("https://h/api/hub", "T1"), "https://h/api/hub/T1");
        assert_eq!(context_url("https://h/api/hub", "a b/c?é"), "https://h/api/hub/a%20b%2Fc%3F%C3%A9");
    }
}
