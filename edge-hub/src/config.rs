//! The hub's settings, read from wrangler vars and secrets (pure, tested natively).
//!
//! Every setting has a default that suits local development except authorization, which must
//! be chosen: `AUTH_MODE=open` (what `make dev` uses, announced loudly) or `AUTH_MODE=jwt`.

use std::time::Duration;

use fhircast_core::hub::store::ROW_LIMIT_BYTES;
use fhircast_core::hub::HubConfig;

/// The largest body and content the settings allow: under the platform's 2 MB row limit
/// ([`ROW_LIMIT_BYTES`]) with room for a row's key and the fields the hub adds.
pub const MAX_STORED_VALUE: usize = 1_900_000;

use crate::claims::ClaimRules;
use crate::cors::AllowedOrigins;

/// How requests are authorised (req 19-23).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No tokens: everything allowed. For local development only.
    Open,
    /// Bearer JWTs, verified with WebCrypto.
    Jwt(JwtSettings),
}

/// Where a `jwt` deployment gets its keys and what it requires of tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// `iss` / `aud` requirements.
    pub rules: ClaimRules,
    /// `JWT_JWKS_URL`: fetched (and cached) for RS256/ES256 keys.
    pub jwks_url: Option<String>,
    /// `JWT_PUBLIC_KEYS`: a JWKS document (JSON) given inline.
    pub jwks_inline: Option<String>,
    /// `JWT_HS256_SECRET`: a shared secret for HS256 (a wrangler secret).
    pub hs256_secret: Option<String>,
}

/// Where the audit trail's AuditEvents go (`AUDIT_SINK`; issue 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditSink {
    /// `auto` (the default): the Queue bound as `AUDIT_QUEUE` when there is one, else the log.
    Auto,
    /// `log`: one line per AuditEvent in the Worker's log (`AuditEvent {json}`).
    Log,
    /// `queue`: the `AUDIT_QUEUE` binding only (an event that cannot be queued is logged as
    /// an error, with the AuditEvent, so none is lost silently).
    Queue,
    /// `off`: none.
    Off,
}

/// All settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `HUB_BASE_PATH`, default `/api/hub`.
    pub base_path: String,
    /// `AUTH_MODE`.
    pub auth: AuthMode,
    /// `ALLOWED_ORIGINS`: `*` or a comma-separated list (default `*`).
    pub origins: AllowedOrigins,
    /// `MAX_BODY_BYTES`: HTTP bodies beyond it get 413 (default 1 MiB; neg 18).
    pub max_body_bytes: usize,
    /// `MAX_MESSAGE_BYTES`: WebSocket messages from subscribers beyond it are ignored
    /// (default 64 KiB; acks are tiny).
    pub max_message_bytes: usize,
    /// `REQUIRE_TOPIC_BINDING`: refuse tokens without a `hub.topic` claim (401), for EHR
    /// deployments whose tokens are minted per session (default off: a SMART token without
    /// the claim may use any topic it can name).
    pub require_topic_binding: bool,
    /// `STORAGE_ROW_LIMIT_BYTES`: the largest row written to the Durable Object's SQLite
    /// storage (default and maximum 2,000,000, the platform's limit). Lower only to test the
    /// failure path: the size limits above keep every row under 2 MB by construction.
    pub storage_row_limit: usize,
    /// `DEBUG_MEMORY=1` (set by `bench/soak.mjs` only): every answer carries the wasm linear
    /// memory's size, so a soak can tell memory the Rust code holds from the runtime's.
    pub debug_memory: bool,
    /// `TIMELINE_LIMIT`: how many facts each topic keeps for `GET {hub}/{topic}/timeline`
    /// (default 1,000; 0 records none; issue 17).
    pub timeline_limit: usize,
    /// `AUDIT_SINK`: `auto`, `log`, `queue` or `off`.
    pub audit: AuditSink,
    /// `AUDIT_SITE`: the deployment's name in each AuditEvent's `source.site`.
    pub audit_site: Option<String>,
    /// The core's settings: `ACK_TIMEOUT_SECONDS`, `CONNECT_TIMEOUT_SECONDS`,
    /// `DEFAULT_LEASE_SECONDS`, `MAX_LEASE_SECONDS`, `MAX_SUBSCRIPTIONS_PER_TOPIC`,
    /// `MAX_BUNDLE_ENTRIES`, `DERIVE_OPEN_EVENTS`, `NON_CURRENT_UPDATES`, `HEARTBEAT_SECONDS`.
    pub hub: HubConfig,
}

/// A setting with an unusable value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("setting {name}={value:?} is invalid: {reason}")]
pub struct SettingError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is expected.
    pub reason: &'static str,
}

impl Settings {
    /// Reads the settings through `get` (a wrangler var or secret by name).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let text = |name: &'static str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let num = |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, SettingError> {
            match text(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(SettingError { name, value: v, reason: "expected a whole number in range" }),
                },
            }
        };
        let flag = |name: &'static str, default: bool| -> Result<bool, SettingError> {
            match text(name).as_deref() {
                None => Ok(default),
                Some("true" | "1" | "yes") => Ok(true),
                Some("false" | "0" | "no") => Ok(false),
                Some(v) => Err(SettingError { name, value: v.to_owned(), reason: "expected true or false" }),
            }
        };
        let auth = match text("AUTH_MODE").as_deref() {
            Some("open") => AuthMode::Open,
            Some("jwt") => {
                let s = JwtSettings {
                    rules: ClaimRules { issuer: text("JWT_ISSUER"), audience: text("JWT_AUDIENCE") },
                    jwks_url: text("JWT_JWKS_URL"),
                    jwks_inline: text("JWT_PUBLIC_KEYS"),
                    hs256_secret: text("JWT_HS256_SECRET"),
                };
                if s.jwks_url.is_none() && s.jwks_inline.is_none() && s.hs256_secret.is_none() {
                    return Err(SettingError {
                        name: "AUTH_MODE",
                        value: "jwt".into(),
                        reason: "jwt needs JWT_JWKS_URL, JWT_PUBLIC_KEYS or JWT_HS256_SECRET",
                    });
                }
                if s.rules.audience.is_none() {
                    return Err(SettingError {
                        name: "JWT_AUDIENCE",
                        value: String::new(),
                        reason: "jwt needs the hub's audience",
                    });
                }
                AuthMode::Jwt(s)
            }
            other => {
                return Err(SettingError {
                    name: "AUTH_MODE",
                    value: other.unwrap_or_default().to_owned(),
                    reason: "expected open (local development) or jwt",
                })
            }
        };
        let base_path = text("HUB_BASE_PATH").unwrap_or_else(|| "/api/hub".into());
        if !base_path.starts_with('/') || base_path.contains(['?', '#', ' ']) {
            return Err(SettingError {
                name: "HUB_BASE_PATH",
                value: base_path,
                reason: "expected a path such as /api/hub",
            });
        }
        let heartbeat = num("HEARTBEAT_SECONDS", 0, 0, 3600)?;
        // An open event is stored as received (plus its version): the body limit bounds its
        // row, under the platform's 2 MB with room for the key and the version.
        let max_body_bytes = num("MAX_BODY_BYTES", 1 << 20, 1024, MAX_STORED_VALUE as u64)? as usize;
        let defaults = HubConfig::default();
        let hub = HubConfig {
            ack_timeout: Duration::from_secs(num("ACK_TIMEOUT_SECONDS", 10, 1, 300)?),
            connect_timeout: Duration::from_secs(num("CONNECT_TIMEOUT_SECONDS", 60, 1, 3600)?),
            default_lease_seconds: num("DEFAULT_LEASE_SECONDS", 3600, 1, 31_536_000)?,
            max_lease_seconds: num("MAX_LEASE_SECONDS", 86_400, 1, 31_536_000)?,
            max_subscriptions: num("MAX_SUBSCRIPTIONS_PER_TOPIC", 2000, 1, 100_000)? as usize,
            max_bundle_entries: num("MAX_BUNDLE_ENTRIES", 500, 1, 100_000)? as usize,
            derive_opens: flag("DERIVE_OPEN_EVENTS", true)?,
            non_current_updates: flag("NON_CURRENT_UPDATES", true)?,
            // How many request ids a topic keeps for duplicate detection (req 139); the soak
            // makes it small so each topic's state is full within its warm-up.
            dedup_window: num("DEDUP_WINDOW", 1024, 1, 100_000)? as usize,
            heartbeat: (heartbeat > 0).then(|| Duration::from_secs(heartbeat)),
            max_clock_ahead: Duration::from_secs(num("MAX_CLOCK_AHEAD_SECONDS", 60, 1, 86_400)?),
            max_event_bytes: max_body_bytes,
            max_content_bytes: num("MAX_CONTENT_BYTES", 1 << 20, 1024, MAX_STORED_VALUE as u64)? as usize,
            max_topic_bytes: num("MAX_TOPIC_BYTES", 16 << 20, 64 << 10, 64 << 20)? as usize,
            max_pending_acks: num("MAX_PENDING_ACKS", 256, 1, 512)? as usize,
            ..defaults
        };
        let timeline_limit = num("TIMELINE_LIMIT", 1000, 0, 100_000)? as usize;
        let audit = match text("AUDIT_SINK").as_deref() {
            None | Some("auto") => AuditSink::Auto,
            Some("log") => AuditSink::Log,
            Some("queue") => AuditSink::Queue,
            Some("off") => AuditSink::Off,
            Some(v) => {
                return Err(SettingError {
                    name: "AUDIT_SINK",
                    value: v.to_owned(),
                    reason: "expected auto, log, queue or off",
                })
            }
        };
        let hub = HubConfig { record: timeline_limit > 0 || audit != AuditSink::Off, ..hub };
        Ok(Settings {
            timeline_limit,
            audit,
            audit_site: text("AUDIT_SITE"),
            base_path: base_path.trim_end_matches('/').to_owned(),
            auth,
            origins: AllowedOrigins::parse(&text("ALLOWED_ORIGINS").unwrap_or_else(|| "*".into())),
            max_body_bytes,
            max_message_bytes: num("MAX_MESSAGE_BYTES", 64 << 10, 256, 1 << 20)? as usize,
            require_topic_binding: flag("REQUIRE_TOPIC_BINDING", false)?,
            storage_row_limit: num("STORAGE_ROW_LIMIT_BYTES", ROW_LIMIT_BYTES as u64, 1000, ROW_LIMIT_BYTES as u64)?
                as usize,
            debug_memory: flag("DEBUG_MEMORY", false)?,
            hub,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_for_open_mode() {
        let s = settings(&[("AUTH_MODE", "open")]).unwrap();
        assert_eq!(s.base_path, "/api/hub");
        assert_eq!(s.auth, AuthMode::Open);
        assert_eq!(s.hub, HubConfig { record: true, ..HubConfig::default() });
        assert_eq!((s.timeline_limit, s.audit), (1000, AuditSink::Auto));
        let quiet = settings(&[("AUTH_MODE", "open"), ("TIMELINE_LIMIT", "0"), ("AUDIT_SINK", "off")]).unwrap();
        assert!(!quiet.hub.record, "nothing to record for");
        assert_eq!(settings(&[("AUTH_MODE", "open"), ("AUDIT_SINK", "kafka")]).unwrap_err().name, "AUDIT_SINK");
        assert!(!s.require_topic_binding);
        assert_eq!(s.storage_row_limit, ROW_LIMIT_BYTES);
        assert_eq!(s.origins, AllowedOrigins::Any);
    }

    #[test]
    fn auth_mode_must_be_chosen_and_jwt_needs_keys_and_audience() {
        assert!(settings(&[]).unwrap_err().to_string().contains("AUTH_MODE"));
        assert!(settings(&[("AUTH_MODE", "jwt"), ("JWT_AUDIENCE", "h")]).is_err());
        assert!(settings(&[("AUTH_MODE", "jwt"), ("JWT_HS256_SECRET", "s")]).is_err());
        let s =
            settings(&[("AUTH_MODE", "jwt"), ("JWT_HS256_SECRET", "s"), ("JWT_AUDIENCE", "h"), ("JWT_ISSUER", "i")])
                .unwrap();
        assert!(matches!(s.auth, AuthMode::Jwt(JwtSettings { hs256_secret: Some(_), .. })));
    }

    #[test]
    fn numbers_are_checked() {
        let s = settings(&[("AUTH_MODE", "open"), ("ACK_TIMEOUT_SECONDS", "3"), ("HEARTBEAT_SECONDS", "10")]).unwrap();
        assert_eq!(s.hub.ack_timeout, Duration::from_secs(3));
        assert_eq!(s.hub.heartbeat, Some(Duration::from_secs(10)));
        let e = settings(&[("AUTH_MODE", "open"), ("ACK_TIMEOUT_SECONDS", "ten")]).unwrap_err();
        assert_eq!(e.name, "ACK_TIMEOUT_SECONDS");
        assert!(settings(&[("AUTH_MODE", "open"), ("DERIVE_OPEN_EVENTS", "maybe")]).is_err());
        assert!(settings(&[("AUTH_MODE", "open"), ("HUB_BASE_PATH", "api")]).is_err());
    }

    #[test]
    fn issue13_size_settings_cannot_exceed_the_platforms_row_limit() {
        let max = MAX_STORED_VALUE.to_string();
        let s = settings(&[("AUTH_MODE", "open"), ("MAX_BODY_BYTES", &max), ("MAX_CONTENT_BYTES", &max)]).unwrap();
        assert_eq!(s.hub.max_event_bytes, MAX_STORED_VALUE, "the core refuses opens over the body limit");
        let over = (MAX_STORED_VALUE + 1).to_string();
        for var in ["MAX_BODY_BYTES", "MAX_CONTENT_BYTES"] {
            assert_eq!(settings(&[("AUTH_MODE", "open"), (var, &over)]).unwrap_err().name, var);
        }
        assert!(settings(&[("AUTH_MODE", "open"), ("STORAGE_ROW_LIMIT_BYTES", "2000001")]).is_err());
        assert!(settings(&[("AUTH_MODE", "open"), ("MAX_PENDING_ACKS", "513")]).is_err());
        let s = settings(&[("AUTH_MODE", "open"), ("REQUIRE_TOPIC_BINDING", "true")]).unwrap();
        assert!(s.require_topic_binding);
    }
}
