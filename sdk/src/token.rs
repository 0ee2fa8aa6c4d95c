//! The access token: none, a string, or a function (sync or async) called before every HTTP
//! request, so that an app can refresh it (req 19-20).

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::SdkError;

/// Where the bearer token comes from.
pub(crate) enum Token {
    /// No `Authorization` header.
    None,
    /// Always this token.
    Fixed(String),
    /// Called before each request; returns a string or a promise of one.
    Provider(js_sys::Function),
}

impl Token {
    /// Reads the `accessToken` option.
    pub(crate) fn from_option(v: JsValue) -> Result<Token, SdkError> {
        if v.is_undefined() || v.is_null() {
            Ok(Token::None)
        } else if let Some(s) = v.as_string() {
            Ok(Token::Fixed(s))
        } else if let Some(f) = v.dyn_ref::<js_sys::Function>() {
            Ok(Token::Provider(f.clone()))
        } else {
            Err(SdkError::Option { name: "accessToken", reason: "must be a string or a function returning one".into() })
        }
    }

    /// The token for the next request.
    pub(crate) async fn get(&self) -> Result<Option<String>, SdkError> {
        let f = match self {
            Token::None => return Ok(None),
            Token::Fixed(s) => return Ok(Some(s.clone())),
            Token::Provider(f) => f,
        };
        let err = |e: JsValue| {
            SdkError::Token(e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| e.message().into()))
        };
        let v = f.call0(&JsValue::UNDEFINED).map_err(err)?;
        let v = JsFuture::from(js_sys::Promise::resolve(&v)).await.map_err(err)?;
        match v.as_string() {
            Some(s) => Ok(Some(s)),
            None if v.is_undefined() || v.is_null() => Ok(None),
            None => Err(SdkError::Token("it returned neither a string nor a promise of one".into())),
        }
    }
}
