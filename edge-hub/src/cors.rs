//! CORS for browser apps (§5a-24): pure decisions, tested natively.
//!
//! The allow-list is a setting: `*` allows any origin (local development), otherwise a
//! comma-separated list of exact origins. Responses to allowed origins carry
//! `Access-Control-Allow-Origin` with that origin (never `*` together with credentials) and
//! `Vary: Origin`. Bearer tokens travel in `Authorization`, so preflights allow that header.

/// The allowed origins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin.
    Any,
    /// Exactly these (scheme://host[:port], no trailing slash).
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Reads the setting: `*`, or a comma-separated list. Empty means none.
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if s == "*" {
            return AllowedOrigins::Any;
        }
        AllowedOrigins::List(
            s.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect(),
        )
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, if allowed.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        let origin = origin?.trim();
        match self {
            AllowedOrigins::Any => Some(origin.to_owned()),
            AllowedOrigins::List(l) => l.iter().any(|o| o.eq_ignore_ascii_case(origin)).then(|| origin.to_owned()),
        }
    }
}

/// Headers for a response to a request from an allowed origin.
pub fn response_headers(allowed_origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Access-Control-Allow-Origin", allowed_origin.to_owned()),
        ("Access-Control-Expose-Headers", "Location, Content-Type".to_owned()),
        ("Vary", "Origin".to_owned()),
    ]
}

/// Headers for a preflight answer (204) to an allowed origin.
pub fn preflight_headers(allowed_origin: &str) -> Vec<(&'static str, String)> {
    let mut h = response_headers(allowed_origin);
    h.push(("Access-Control-Allow-Methods", "GET, POST, OPTIONS".to_owned()));
    h.push(("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept".to_owned()));
    h.push(("Access-Control-Max-Age", "600".to_owned()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impl_5a24_allow_list() {
        let any = AllowedOrigins::parse("*");
        assert_eq!(any.allow(Some("https://app.example")), Some("https://app.example".into()));
        assert_eq!(any.allow(None), None);
        let l = AllowedOrigins::parse("https://ehr.example, https://viewer.example/");
        assert_eq!(l.allow(Some("https://viewer.example")), Some("https://viewer.example".into()));
        assert_eq!(l.allow(Some("https://evil.example")), None);
        assert_eq!(AllowedOrigins::parse("").allow(Some("https://x")), None);
        assert!(preflight_headers("https://x")
            .iter()
            .any(|(k, v)| *k == "Access-Control-Allow-Headers" && v.contains("Authorization")));
    }
}
