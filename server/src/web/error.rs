//! The one error type of the HTTP boundary and its one mapping to responses:
//! a JSON body `{ "error": code, "message": text }`. Unexpected errors are
//! logged with their cause and answered with a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "sign in, or send `Authorization: Bearer TOKEN` (create one with `migctl user token NAME`)"
    )]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Unexpected(e.into())
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "locked"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                "the console hit an unexpected error; its log has the cause".to_owned()
            }
            other => other.to_string(),
        };
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiError {
    /// A JSON body the route could not take: 413 when it is too large, else
    /// 422 with what was wrong and what the route expects.
    pub fn bad_json(e: &axum::extract::rejection::JsonRejection, expected: &str) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("{}; send {expected}", e.body_text()))
        } else {
            ApiError::Unprocessable(format!("{}; send {expected}", e.body_text()))
        }
    }
}

impl From<crate::operation::EngineError> for ApiError {
    fn from(e: crate::operation::EngineError) -> Self {
        use crate::operation::EngineError as E;
        match e {
            E::BadField { .. } | E::BadInput(_) | E::UnknownGrid(_) => {
                ApiError::Unprocessable(e.to_string())
            }
            E::ModeForbids { .. } => ApiError::Forbidden(e.to_string()),
            E::NoSuchOperation(_) => ApiError::NotFound(e.to_string()),
            E::Locked(_) | E::Ended { .. } | E::NotCancellable { .. } | E::NoCutover { .. } => {
                ApiError::Conflict(e.to_string())
            }
            E::Grid(_) | E::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            E::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}
