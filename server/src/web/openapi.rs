//! The API's contract: an OpenAPI 3.1 document generated from the routes'
//! annotations and the types they take and return (utoipa), served at
//! `/api/v1/openapi.json` without sign-in (it holds no data). Every status a
//! route answers is listed with the error body's shape; CI holds the console
//! to it with schemathesis (`scripts/api-fuzz`).

use super::api;
use super::error::ErrorBody;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "migctl",
        description = "Migrate or snapshot an application from one grid to another. \
            Sign in with a bearer token (`migctl user token NAME`) or the console's session \
            cookie. Every refusal has the body `{\"error\": code, \"message\": text}`; the \
            message says what was wrong and what to do.",
    ),
    paths(
        api::me,
        api::console,
        api::users,
        api::grids,
        api::grid_apps,
        api::operations,
        api::start_operation,
        api::plan_operation,
        api::operation,
        super::events::operation_events,
        api::cancel_operation,
        api::cutover_operation,
        api::release_source,
        api::rollback_operation,
        api::plan_rollback,
        api::log_text,
        api::log_ndjson,
        api::audit,
        api::lock,
        api::lock_evidence,
        api::override_lock,
        super::group_api::start_run,
        super::group_api::runs,
        super::group_api::run,
        super::group_api::pause_run,
        super::group_api::resume_run,
        super::group_api::retry_run,
        super::group_api::abort_run,
        super::group_api::approve_run,
        super::group_api::rollback_run,
    ),
    components(schemas(ErrorBody, super::error::ErrorCode)),
    modifiers(&SignIn),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "console", description = "Who is signed in, what the console is"),
        (name = "grids", description = "The grid inventory as last checked"),
        (name = "operations", description = "Migrations and snapshots"),
        (name = "lock", description = "The lock file and its override"),
        (name = "groups", description = "Group runs: an HA group moved member by member, with checks between the steps"),
        (name = "admin", description = "Users and the audit trail"),
    ),
)]
pub struct ApiDoc;

/// The two ways to sign in.
struct SignIn;

impl Modify for SignIn {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token: `migctl user token NAME`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::SESSION_COOKIE,
                "The browser's session after signing in at /login",
            ))),
        );
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// One Server-Sent Event of an operation's stream (`text/event-stream`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EventFrame {
    /// The event's sequence number: send it back as `Last-Event-ID` to resume.
    id: String,
    /// The event's kind.
    event: app::model::EventKind,
    /// The stored event (`StreamEvent`) as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

// The refusals a route lists, each with the error body. They describe
// responses and are never built: `ApiError` builds the real ones.
macro_rules! refusal {
    ($name:ident, $status:literal, $description:literal) => {
        #[derive(utoipa::IntoResponses)]
        #[response(status = $status, description = $description)]
        #[allow(dead_code)]
        pub struct $name(ErrorBody);
    };
}

refusal!(
    Unauthorized,
    401,
    "Not signed in: sign in, or send `Authorization: Bearer TOKEN`"
);
refusal!(
    Forbidden,
    403,
    "Your role does not allow it (or the console's mode does not)"
);
refusal!(NotFound, 404, "No such operation, group run, grid or lock");
refusal!(
    Conflict,
    409,
    "Another operation holds the lock (the message names it), or the operation has ended"
);
refusal!(TooLarge, 413, "The body is too large");
refusal!(
    Unprocessable,
    422,
    "A field is missing or wrong: the message names it and says what to send"
);
refusal!(
    TooManyStreams,
    429,
    "Too many event streams are open (`max_event_streams`); try again after `Retry-After` seconds"
);
refusal!(
    Unavailable,
    503,
    "A grid did not answer or refused a command: the message names it"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is the document the console serves, so that it can
    /// be read (and diffed in review) without running one. After changing
    /// the API: `MIGCTL_BLESS=1 cargo test -p server --lib openapi`.
    #[test]
    fn the_committed_document_is_the_served_one() {
        let served = ApiDoc::openapi().to_pretty_json().unwrap() + "\n";
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        if std::env::var_os("MIGCTL_BLESS").is_some() {
            std::fs::write(&file, &served).unwrap();
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            committed == served,
            "docs/openapi.json is not what the console serves; run MIGCTL_BLESS=1 cargo test -p server --lib openapi and commit it"
        );
    }

    /// Every refusal a route documents has the error body, and every route
    /// answers 401 without a token.
    #[test]
    fn every_refusal_is_documented_with_the_error_body() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 17, "{}", paths.len());
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("401"), "{method} {path}: no 401");
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            r["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        let codes = &doc["components"]["schemas"]["ErrorCode"];
        assert!(codes.to_string().contains("bad_request"), "{codes}");
    }

    /// The schema's name patterns are the one rule's (`schema(pattern)`
    /// takes a literal only, so this holds them to it).
    #[test]
    fn every_name_pattern_is_the_name_rule() {
        let doc = ApiDoc::openapi().to_json().unwrap();
        let patterns: Vec<&str> = doc.split("\"pattern\":\"").skip(1).collect();
        assert!(patterns.len() >= 4, "the start request's four names");
        let rule = serde_json::to_string(operation_model::name::PATTERN).unwrap();
        for p in patterns {
            assert!(
                format!("\"{p}").starts_with(&rule),
                "a pattern that is not the name rule: {}",
                &p[..p.len().min(40)]
            );
        }
    }
}
