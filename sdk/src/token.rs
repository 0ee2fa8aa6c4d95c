//! The access token: none, a string, or a function (sync or async) called before every HTTP
//! request, so that an app can refresh it (req 19-20).

use wasm_bindgen::prelude::*;

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

/// The token for the next request: known now, or a promise of it.
pub(crate) enum Next {
    Ready(Option<String>),
    Later(js_sys::Promise),
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

    /// The token for the next request (the provider is called now).
    pub(crate) fn next(&self) -> Result<Next, SdkError> {
        match self {
            Token::None => Ok(Next::Ready(None)),
            Token::Fixed(s) => Ok(Next::Ready(Some(s.clone()))),
            Token::Provider(f) => {
                let v = f.call0(&JsValue::UNDEFINED).map_err(|e| token_error(&e))?;
                if v.is_object() {
                    Ok(Next::Later(js_sys::Promise::resolve(&v)))
                } else {
                    read(&v).map(Next::Ready)
                }
            }
        }
    }
}

/// What a provider gave (or its promise resolved to).
pub(crate) fn read(v: &JsValue) -> Result<Option<String>, SdkError> {
    match v.as_string() {
        Some(s) => Ok(Some(s)),
        None if v.is_undefined() || v.is_null() => Ok(None),
        None => Err(SdkError::Token("it returned neither a string nor a promise of one".into())),
    }
}

pub(crate) fn token_error(e: &JsValue) -> SdkError {
    SdkError::Token(crate::http::js_message(e))
}
