//! Bearer tokens: everything but the signature (pure, tested natively).
//!
//! The signature is verified by the platform's WebCrypto (`crypto.subtle.verify`: RS256,
//! ES256, HS256) in `webcrypto.rs`; no crypto is written here. This module splits the compact JWS,
//! decodes its header and claims, and checks the claims: `exp` (required), `nbf`, `iss`, `aud`,
//! the `fhircast/` scopes (`scope` string or `scp` array; req 16-18), and an optional topic
//! binding (claim `hub.topic`, as the SMART launch parameter is named). The result is the
//! core's [`Auth`], whose `expires_at` clamps leases (req 20).

use fhircast_core::hub::Auth;
use fhircast_core::scope::Scopes;
use fhircast_core::Timestamp;
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// Why a request is not authorised (req 23: 401 for the token, 403 for what it allows).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("an access token is required: send Authorization: Bearer <token> (req 19, neg 9)")]
    Missing,
    /// Not a compact JWS, or undecodable parts.
    #[error("the access token is not a well-formed JWT: {0} (neg 9)")]
    Malformed(&'static str),
    /// An algorithm this hub does not accept.
    #[error("the access token's algorithm {0:?} is not accepted; use RS256, ES256 or HS256 (neg 9)")]
    Algorithm(String),
    /// No key to verify it with.
    #[error("no key is configured that can verify this access token ({}) (neg 9)", kid_text(.0))]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("the access token's signature does not verify (neg 9)")]
    BadSignature,
    /// `exp` missing or past.
    #[error("the access token has expired or has no \"exp\" (req 20, neg 9)")]
    Expired,
    /// `nbf` in the future.
    #[error("the access token is not valid yet (\"nbf\") (neg 9)")]
    NotYetValid,
    /// Wrong `iss`.
    #[error("the access token's issuer {0:?} is not the one this hub trusts (neg 9)")]
    Issuer(String),
    /// `aud` does not name this hub.
    #[error("the access token's audience does not include this hub (neg 9)")]
    Audience,
    /// The hub requires topic-bound tokens (`REQUIRE_TOPIC_BINDING`) and this one names none.
    #[error("this hub accepts only access tokens bound to a topic (a \"hub.topic\" claim); ask the EHR for a token for this session (neg 9)")]
    Unbound,
    /// The JWKS or keys could not be fetched or read. The detail is for the log only: the
    /// caller is told the hub cannot verify tokens now.
    #[error("the hub cannot read its verification keys right now; try again later")]
    Keys(String),
}

/// How an error message names a token's `kid`: `kid "k1"`, or that it has none.
fn kid_text(kid: &Option<String>) -> String {
    match kid {
        Some(k) => format!("kid {k:?}"),
        None => "the token names no kid".to_owned(),
    }
}

impl AuthError {
    /// The HTTP status: every token problem is a 401 (the scope checks, 403, happen in the core).
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Keys(_) => 503,
            _ => 401,
        }
    }
}

/// What a deployment trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimRules {
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required member of `aud`, if set.
    pub audience: Option<String>,
}

/// A compact JWS, split and decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jws {
    /// The header's `alg`.
    pub alg: String,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The signed input: `base64url(header) "." base64url(payload)`.
    pub signing_input: String,
    /// The decoded signature.
    pub signature: Vec<u8>,
    /// The decoded claims.
    pub claims: serde_json::Value,
}

/// Reads `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = h.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// Splits and decodes a compact JWS (no verification).
pub fn parse_jws(token: &str) -> Result<Jws, AuthError> {
    if token.len() > 16 * 1024 {
        return Err(AuthError::Malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    };
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
    }
    let header: Header = serde_json::from_slice(&b64url(h).ok_or(AuthError::Malformed("header is not base64url"))?)
        .map_err(|_| AuthError::Malformed("header is not a JSON object with \"alg\""))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&b64url(p).ok_or(AuthError::Malformed("payload is not base64url"))?)
            .map_err(|_| AuthError::Malformed("payload is not JSON"))?;
    if !claims.is_object() {
        return Err(AuthError::Malformed("payload is not a JSON object"));
    }
    let signature = b64url(s).ok_or(AuthError::Malformed("signature is not base64url"))?;
    if !matches!(header.alg.as_str(), "RS256" | "ES256" | "HS256") {
        return Err(AuthError::Algorithm(header.alg));
    }
    Ok(Jws { alg: header.alg, kid: header.kid, signing_input: format!("{h}.{p}"), signature, claims })
}

/// Checks the claims of a verified token and says what it allows.
pub fn check_claims(claims: &serde_json::Value, rules: &ClaimRules, now: Timestamp) -> Result<Auth, AuthError> {
    // NumericDate (RFC 7519 §2) may have a fraction: compared in milliseconds. A claim that is
    // present but not a number is malformed: never ignored (fail closed).
    let now_ms = now.unix_millis();
    let leeway_ms = LEEWAY_SECS * 1000;
    let date_ms = |k: &'static str| -> Result<Option<i64>, AuthError> {
        match claims.get(k) {
            None => Ok(None),
            Some(v) => {
                v.as_f64().filter(|f| f.is_finite() && f.abs() < 1e13).map(|f| Some((f * 1000.0).floor() as i64)).ok_or(
                    AuthError::Malformed(if k == "exp" {
                        "\"exp\" is not a number"
                    } else {
                        "\"nbf\" is not a number"
                    }),
                )
            }
        }
    };
    let exp_ms = date_ms("exp")?.ok_or(AuthError::Expired)?;
    if exp_ms + leeway_ms <= now_ms {
        return Err(AuthError::Expired);
    }
    if date_ms("nbf")?.is_some_and(|nbf| nbf - leeway_ms > now_ms) {
        return Err(AuthError::NotYetValid);
    }
    if let Some(iss) = &rules.issuer {
        let got = claims.get("iss").and_then(|v| v.as_str()).unwrap_or_default();
        if got != iss {
            return Err(AuthError::Issuer(got.to_owned()));
        }
    }
    if let Some(aud) = &rules.audience {
        let ok = match claims.get("aud") {
            Some(serde_json::Value::String(s)) => s == aud,
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud)),
            _ => false,
        };
        if !ok {
            return Err(AuthError::Audience);
        }
    }
    let scope_text = match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(s)), _) => s.clone(),
        (_, Some(serde_json::Value::Array(a))) => a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" "),
        (_, Some(serde_json::Value::String(s))) => s.clone(),
        _ => String::new(),
    };
    // A topic binding that is not a string must not leave the token unbound (fail closed).
    let topic = match claims.get("hub.topic") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(AuthError::Malformed("the \"hub.topic\" claim is not a string")),
    };
    // Who, for the timeline and the audit trail (never for a decision): the subject, and the
    // client as SMART (`client_id`) or OpenID Connect (`azp`) names it. Cut to 256 characters.
    let text_claim = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(|s| s.chars().take(256).collect::<String>());
    Ok(Auth {
        scopes: Some(Scopes::parse(&scope_text)),
        expires_at: Some(Timestamp::from_unix_millis(exp_ms)),
        topic,
        subject: text_claim("sub"),
        client: text_claim("client_id").or_else(|| text_claim("azp")),
    })
}

/// base64url without padding (padding tolerated).
pub fn b64url(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhircast_core::scope::Access;
    use fhircast_core::EventName;
    use serde_json::json;

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    const NOW: i64 = 1_800_000_000;

    fn now() -> Timestamp {
        Timestamp::from_unix_millis(NOW * 1000)
    }

    #[test]
    fn b64url_round_trip() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"\xff\xfe\x00hello"] {
            assert_eq!(b64url(&b64(data)).unwrap(), data);
        }
        assert!(b64url("a+b/").is_none());
    }

    #[test]
    fn neg9_unknown_key_names_the_kid() {
        assert_eq!(
            AuthError::UnknownKey(Some("k9".into())).to_string(),
            "no key is configured that can verify this access token (kid \"k9\") (neg 9)"
        );
        assert_eq!(
            AuthError::UnknownKey(None).to_string(),
            "no key is configured that can verify this access token (the token names no kid) (neg 9)"
        );
    }

    #[test]
    fn neg9_bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Missing));
    }

    #[test]
    fn neg9_jws_shape_and_algorithm() {
        let h = b64(br#"{"alg":"RS256","kid":"k1"}"#);
        let p = b64(br#"{"exp":1}"#);
        let j = parse_jws(&format!("{h}.{p}.{}", b64(b"sig"))).unwrap();
        assert_eq!((j.alg.as_str(), j.kid.as_deref(), j.signature.as_slice()), ("RS256", Some("k1"), &b"sig"[..]));
        assert!(matches!(parse_jws("a.b"), Err(AuthError::Malformed(_))));
        let none = b64(br#"{"alg":"none"}"#);
        assert_eq!(parse_jws(&format!("{none}.{p}.")), Err(AuthError::Algorithm("none".into())));
        assert!(matches!(parse_jws(&format!("{h}.{}.x", b64(b"[1]"))), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn neg9_req20_claims() {
        let rules =
            ClaimRules { issuer: Some("https://ehr.example".into()), audience: Some("https://hub.example".into()) };
        let good = json!({"exp": NOW + 300, "iss": "https://ehr.example", "aud": ["x", "https://hub.example"],
            "scope": "openid fhircast/Patient-open.read fhircast/Patient-open.write", "hub.topic": "T1"});
        let a = check_claims(&good, &rules, now()).unwrap();
        assert_eq!(a.topic.as_deref(), Some("T1"));
        assert_eq!(a.expires_at, Some(Timestamp::from_unix_millis((NOW + 300) * 1000)));
        let po = EventName::parse("Patient-open").unwrap();
        assert!(a.scopes.as_ref().unwrap().allows(&po, Access::Write));
        assert!(!a.scopes.unwrap().allows(&EventName::parse("Patient-close").unwrap(), Access::Read));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good.clone();
            c[k] = v;
            check_claims(&c, &rules, now())
        };
        assert_eq!(with("exp", json!(NOW - 61)).unwrap_err(), AuthError::Expired);
        assert!(with("exp", json!(NOW - 30)).is_ok(), "60 s leeway");
        assert_eq!(with("nbf", json!(NOW + 120)).unwrap_err(), AuthError::NotYetValid);
        assert_eq!(with("iss", json!("https://evil")).unwrap_err(), AuthError::Issuer("https://evil".into()));
        assert_eq!(with("aud", json!("https://other")).unwrap_err(), AuthError::Audience);
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check_claims(&no_exp, &rules, now()).unwrap_err(), AuthError::Expired);
        let scp = json!({"exp": NOW + 10, "scp": ["fhircast/*.read"]});
        let a = check_claims(&scp, &ClaimRules::default(), now()).unwrap();
        assert!(a.scopes.unwrap().allows(&po, Access::Read));
    }

    /// Issue 13: NumericDates with a fraction are dates (RFC 7519 §2); claims of the wrong type
    /// fail closed.
    #[test]
    fn neg9_fractional_dates_and_claims_of_the_wrong_type() {
        let rules = ClaimRules::default();
        let check = |c: serde_json::Value| check_claims(&c, &rules, now());
        let a = check(json!({"exp": NOW as f64 + 300.5})).expect("a fractional exp is a valid date");
        assert_eq!(a.expires_at, Some(Timestamp::from_unix_millis((NOW + 300) * 1000 + 500)));
        assert_eq!(check(json!({"exp": NOW as f64 - 60.5})).unwrap_err(), AuthError::Expired);
        assert_eq!(
            check(json!({"exp": NOW + 300, "nbf": NOW as f64 + 120.25})).unwrap_err(),
            AuthError::NotYetValid,
            "a fractional nbf in the future is not ignored"
        );
        assert!(check(json!({"exp": NOW + 300, "nbf": NOW as f64 + 30.5})).is_ok(), "within the leeway");
        assert!(matches!(check(json!({"exp": NOW + 300, "nbf": "soon"})).unwrap_err(), AuthError::Malformed(_)));
        assert!(matches!(check(json!({"exp": "never"})).unwrap_err(), AuthError::Malformed(_)));
        for bad in [json!(["T1"]), json!(7), json!({"id": "T1"}), json!(true)] {
            let e = check(json!({"exp": NOW + 300, "hub.topic": bad})).unwrap_err();
            assert!(e.to_string().contains("hub.topic"), "{e}");
        }
        assert_eq!(check(json!({"exp": NOW + 300, "hub.topic": null})).unwrap().topic, None);
    }
}

/// The JWKs of a JWKS document that can verify a token signed with `alg` (and `kid`, if the
/// token names one): RSA keys for RS256, EC P-256 keys for ES256; keys marked for encryption
/// are skipped.
pub fn select_keys(jwks: &serde_json::Value, alg: &str, kid: Option<&str>) -> Vec<serde_json::Value> {
    let keys = jwks.get("keys").and_then(|k| k.as_array()).cloned().unwrap_or_default();
    keys.into_iter()
        .filter(|k| {
            let s = |f: &str| k.get(f).and_then(|v| v.as_str());
            let kty_ok = match alg {
                "RS256" => s("kty") == Some("RSA"),
                "ES256" => s("kty") == Some("EC") && s("crv") == Some("P-256"),
                _ => false,
            };
            kty_ok
                && s("use") != Some("enc")
                && s("alg").is_none_or(|a| a == alg)
                && kid.is_none_or(|kid| s("kid") == Some(kid))
        })
        .collect()
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwks_key_selection() {
        let jwks = json!({"keys": [
            {"kty":"RSA","kid":"r1","n":"x","e":"AQAB"},
            {"kty":"RSA","kid":"r2","alg":"RS512","n":"x","e":"AQAB"},
            {"kty":"EC","kid":"e1","crv":"P-256","x":"x","y":"y"},
            {"kty":"EC","kid":"e2","crv":"P-384","x":"x","y":"y"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"x","e":"AQAB"}
        ]});
        let kids = |alg: &str, kid: Option<&str>| -> Vec<String> {
            select_keys(&jwks, alg, kid).iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(kids("RS256", None), vec!["r1"]);
        assert_eq!(kids("RS256", Some("r1")), vec!["r1"]);
        assert!(kids("RS256", Some("e1")).is_empty());
        assert_eq!(kids("ES256", None), vec!["e1"]);
        assert!(kids("HS256", None).is_empty());
    }
}
