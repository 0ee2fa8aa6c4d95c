//! Bearer-token signatures verified by the platform's WebCrypto (`crypto.subtle`), and random
//! bytes from `crypto.getRandomValues`. No crypto is implemented here.
//!
//! RS256 → RSASSA-PKCS1-v1_5/SHA-256, ES256 → ECDSA P-256/SHA-256 (JWS signatures are the raw
//! `r‖s` that WebCrypto expects), HS256 → HMAC/SHA-256. Public keys come from a JWKS: inline
//! (`JWT_PUBLIC_KEYS`) or fetched from `JWT_JWKS_URL` and cached for five minutes per isolate.

use std::cell::RefCell;

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::claims::{select_keys, AuthError, Jws};
use crate::config::JwtSettings;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        key: &JsValue,
        algorithm: &JsValue,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &JsValue,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// `n` cryptographically random bytes, as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    get_random_values(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn js_err(e: JsValue) -> AuthError {
    AuthError::Keys(e.as_string().unwrap_or_else(|| format!("{e:?}")))
}

thread_local! {
    /// (url, fetched at ms, JWKS) per isolate.
    static JWKS_CACHE: RefCell<Option<(String, f64, serde_json::Value)>> = const { RefCell::new(None) };
    /// When an unknown kid last made the hub fetch the JWKS again (ms).
    static JWKS_REFRESHED: std::cell::Cell<f64> = const { std::cell::Cell::new(f64::NEG_INFINITY) };
}

/// How long a fetched JWKS is used before it is fetched again.
const JWKS_MAX_AGE_MS: f64 = 300_000.0;
/// A token whose `kid` the cached JWKS lacks makes the hub fetch the JWKS again at once (the
/// identity provider rotated its keys), but at most once in this long: tokens with made-up
/// `kid`s cannot make the hub hammer the identity provider.
const JWKS_REFETCH_AFTER_MS: f64 = 30_000.0;

/// The JWKS and whether it was fetched just now. `refresh`: fetch now, unless an unknown kid
/// already did so within [`JWKS_REFETCH_AFTER_MS`].
async fn jwks(settings: &JwtSettings, refresh: bool) -> Result<(serde_json::Value, bool), AuthError> {
    if let Some(inline) = &settings.jwks_inline {
        return serde_json::from_str(inline)
            .map(|v| (v, true))
            .map_err(|e| AuthError::Keys(format!("JWT_PUBLIC_KEYS is not a JWKS: {e}")));
    }
    let Some(url) = &settings.jwks_url else { return Ok((serde_json::json!({"keys": []}), true)) };
    let now = js_sys::Date::now();
    let refresh = refresh && now - JWKS_REFRESHED.with(|r| r.get()) >= JWKS_REFETCH_AFTER_MS;
    if refresh {
        JWKS_REFRESHED.with(|r| r.set(now));
    }
    let max_age = if refresh { 0.0 } else { JWKS_MAX_AGE_MS };
    let cached = JWKS_CACHE
        .with(|c| c.borrow().as_ref().filter(|(u, at, _)| u == url && now - at < max_age).map(|(_, _, v)| v.clone()));
    if let Some(v) = cached {
        return Ok((v, false));
    }
    let mut resp = worker::Fetch::Url(url.parse().map_err(|e| AuthError::Keys(format!("JWT_JWKS_URL: {e}")))?)
        .send()
        .await
        .map_err(|e| AuthError::Keys(format!("fetching the JWKS: {e}")))?;
    if resp.status_code() != 200 {
        return Err(AuthError::Keys(format!("the JWKS URL answered {}", resp.status_code())));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| AuthError::Keys(format!("the JWKS is not JSON: {e}")))?;
    JWKS_CACHE.with(|c| *c.borrow_mut() = Some((url.clone(), now, v.clone())));
    Ok((v, true))
}

async fn verify_with(
    format: &str,
    key: JsValue,
    import_alg: JsValue,
    verify_alg: JsValue,
    jws: &Jws,
) -> Result<bool, AuthError> {
    let usages = Array::of1(&JsValue::from_str("verify"));
    let key =
        JsFuture::from(import_key(format, &key, &import_alg, false, &usages).map_err(js_err)?).await.map_err(js_err)?;
    let sig = Uint8Array::from(jws.signature.as_slice());
    let data = Uint8Array::from(jws.signing_input.as_bytes());
    let ok = JsFuture::from(subtle_verify(&verify_alg, &key, &sig, &data).map_err(js_err)?).await.map_err(js_err)?;
    Ok(ok.as_bool() == Some(true))
}

/// Verifies the token's signature with the configured keys.
pub async fn verify(jws: &Jws, settings: &JwtSettings) -> Result<(), AuthError> {
    let sha256 = JsValue::from_str("SHA-256");
    match jws.alg.as_str() {
        "HS256" => {
            let secret = settings.hs256_secret.as_ref().ok_or(AuthError::UnknownKey(jws.kid.clone()))?;
            let raw: JsValue = Uint8Array::from(secret.as_bytes()).into();
            let alg = obj(&[("name", "HMAC".into()), ("hash", sha256)]);
            if verify_with("raw", raw, alg, JsValue::from_str("HMAC"), jws).await? {
                return Ok(());
            }
            Err(AuthError::BadSignature)
        }
        "RS256" | "ES256" => {
            let (doc, fresh) = jwks(settings, false).await?;
            let mut keys = select_keys(&doc, &jws.alg, jws.kid.as_deref());
            if keys.is_empty() && !fresh {
                // An unknown kid: the identity provider may have rotated its keys.
                let (doc, _) = jwks(settings, true).await?;
                keys = select_keys(&doc, &jws.alg, jws.kid.as_deref());
            }
            if keys.is_empty() {
                return Err(AuthError::UnknownKey(jws.kid.clone()));
            }
            for k in keys {
                let jwk = js_sys::JSON::parse(&k.to_string()).map_err(js_err)?;
                // A JWK's own "alg"/"use"/"key_ops" must agree with the import; drop the
                // optional ones so an otherwise usable key is not refused over metadata.
                for f in ["alg", "use", "key_ops"] {
                    let _ = Reflect::delete_property(jwk.unchecked_ref::<Object>(), &JsValue::from_str(f));
                }
                let (import_alg, verify_alg) = if jws.alg == "RS256" {
                    let a = obj(&[("name", "RSASSA-PKCS1-v1_5".into()), ("hash", sha256.clone())]);
                    (a, JsValue::from_str("RSASSA-PKCS1-v1_5"))
                } else {
                    (
                        obj(&[("name", "ECDSA".into()), ("namedCurve", "P-256".into())]),
                        obj(&[("name", "ECDSA".into()), ("hash", sha256.clone())]),
                    )
                };
                if verify_with("jwk", jwk, import_alg, verify_alg, jws).await.unwrap_or(false) {
                    return Ok(());
                }
            }
            Err(AuthError::BadSignature)
        }
        other => Err(AuthError::Algorithm(other.to_owned())),
    }
}
