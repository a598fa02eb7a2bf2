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

impl From<crate::operation::EngineError> for ApiError {
    fn from(e: crate::operation::EngineError) -> Self {
        use crate::operation::EngineError as E;
        match e {
            E::BadInput(m) => ApiError::Unprocessable(m),
            E::NotAllowed(m) => ApiError::Forbidden(m),
            E::Locked(m) => ApiError::Conflict(m),
            E::Unavailable(m) => ApiError::Unavailable(m),
            E::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}
