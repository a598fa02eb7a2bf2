//! The one error type of the HTTP boundary and its one mapping to responses:
//! a JSON body `{ "error": code, "message": text }` ([`ErrorBody`]).
//! Unexpected errors are logged with their cause and answered with a
//! generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every refusal of the API: a code to branch on and a sentence for people
/// (what was wrong and what to do).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// What was wrong and what to do; names the field or the lock's holder.
    pub message: String,
}

/// The kind of refusal; each goes with one HTTP status.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: sign in or send a bearer token.
    Unauthorized,
    /// 403: your role (or the console's mode) does not allow it.
    Forbidden,
    /// 404: no such route, operation, grid or lock.
    NotFound,
    /// 422: a field is missing or wrong; the message names it.
    BadRequest,
    /// 409: another operation holds the lock, or the operation has ended.
    Locked,
    /// 413: the body is too large.
    TooLarge,
    /// 503: a grid did not answer.
    Unavailable,
    /// 429: too many event streams are open; try again shortly (`Retry-After`).
    TooManyStreams,
    /// 500: the console's log has the cause.
    Internal,
}

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
    /// Too many event streams are open; the client may try again later.
    #[error("{0}")]
    TooManyStreams(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Unexpected(e.into())
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::BadRequest),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Locked),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            ApiError::TooManyStreams(_) => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyStreams)
            }
            ApiError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = self.status_and_code();
        let message = match &self {
            ApiError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                "the console hit an unexpected error; its log has the cause".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorBody { error, message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
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
            E::Locked(_)
            | E::Ended { .. }
            | E::NotCancellable { .. }
            | E::NoCutover { .. }
            | E::NotReleasable { .. }
            | E::NotRollbackable { .. } => ApiError::Conflict(e.to_string()),
            E::Grid(_) | E::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            E::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}
