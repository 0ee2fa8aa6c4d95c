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
}

async fn jwks(settings: &JwtSettings) -> Result<serde_json::Value, AuthError> {
    if let Some(inline) = &settings.jwks_inline {
        return serde_json::from_str(inline)
            .map_err(|e| AuthError::Keys(format!("JWT_PUBLIC_KEYS is not a JWKS: {e}")));
    }
    let Some(url) = &settings.jwks_url else { return Ok(serde_json::json!({"keys": []})) };
    let now = js_sys::Date::now();
    let cached = JWKS_CACHE
        .with(|c| c.borrow().as_ref().filter(|(u, at, _)| u == url && now - at < 300_000.0).map(|(_, _, v)| v.clone()));
    if let Some(v) = cached {
        return Ok(v);
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
    Ok(v)
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
            let keys = select_keys(&jwks(settings).await?, &jws.alg, jws.kid.as_deref());
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
