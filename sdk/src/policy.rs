//! Timing and addressing decisions of the shell that are not protocol (the core has those):
//! reconnect backoff, lease renewal, and URLs. Pure, tested natively.

/// First reconnect delay, before jitter.
const BACKOFF_BASE_MS: f64 = 500.0;
/// Longest reconnect delay.
const BACKOFF_CAP_MS: f64 = 30_000.0;

/// The delay before reconnect attempt `attempt` (1, 2, ...): exponential from 0.5 s, capped at
/// 30 s, with "equal jitter" (between half and all of it) so that the apps of a restarted hub
/// do not all come back in the same millisecond. `random` is in `[0, 1)`.
pub(crate) fn reconnect_delay_ms(attempt: u32, random: f64) -> f64 {
    let exp = attempt.saturating_sub(1).min(16) as i32;
    let full = (BACKOFF_BASE_MS * 2f64.powi(exp)).min(BACKOFF_CAP_MS);
    full / 2.0 + full / 2.0 * random.clamp(0.0, 1.0)
}

/// When to renew a lease of `lease_seconds`: at 80% of it (req 57: resubscribe before expiry).
pub(crate) fn renew_after_ms(lease_seconds: u64) -> f64 {
    lease_seconds as f64 * 800.0
}

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
    fn backoff_grows_is_capped_and_jittered() {
        assert_eq!(reconnect_delay_ms(1, 0.0), 250.0);
        assert_eq!(reconnect_delay_ms(1, 1.0), 500.0);
        assert_eq!(reconnect_delay_ms(2, 1.0), 1000.0);
        assert_eq!(reconnect_delay_ms(4, 0.5), 3000.0);
        assert_eq!(reconnect_delay_ms(40, 1.0), 30_000.0);
        assert!(reconnect_delay_ms(40, 0.0) >= 15_000.0);
    }

    #[test]
    fn req57_renewal_before_expiry() {
        assert_eq!(renew_after_ms(3600), 2_880_000.0);
        assert_eq!(renew_after_ms(2), 1600.0);
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
