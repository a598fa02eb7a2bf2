//! The group-run forms of the pages: plain posts answered with redirects
//! (what was done, or why not, as a notice), so a run is started and
//! steered without JavaScript.

use super::AppState;
use super::gate::{CurrentUser, urlencode};
use crate::groups::GroupError;
use app::model::Notice;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/groups/runs", post(start))
        .route("/groups/runs/{id}/{verb}", post(act))
}

#[derive(Deserialize)]
pub struct StartForm {
    /// A definition kept in the console's directory, by file name.
    #[serde(default)]
    definition_file: String,
    /// Or a definition's TOML, pasted.
    #[serde(default)]
    definition: String,
}

/// "Start the run": to the run's page, or back to the list saying why not.
async fn start(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<StartForm>,
) -> Response {
    let back = |e: String| {
        state
            .notices
            .redirect("/groups", &user.0, Notice::refused(e, None))
    };
    let who = match super::forms::operator_or_back(&state, &user, "/groups") {
        Ok(who) => who,
        Err(back) => return *back,
    };
    let def = match (form.definition_file.trim(), form.definition.trim()) {
        ("", "") => {
            return back("choose a kept definition or paste one (TOML) to start a run".into());
        }
        (file, "") => crate::groups::files::read(&state.settings.config_dir, file),
        ("", text) => group::Definition::toml_as_json(text).map_err(GroupError::Definition),
        _ => {
            return back(
                "choose a kept definition or paste one, not both: clear one of them".into(),
            );
        }
    };
    let started = match def {
        Ok(def) => state.groups.start(def, &who).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(run) => Redirect::to(&format!("/groups/runs/{}", urlencode(&run.id))).into_response(),
        Err(e) => back(e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct ActForm {
    #[serde(default)]
    reason: String,
    /// For `approve`: "1" approves, "0" refuses.
    #[serde(default)]
    approve: String,
}

/// Pause, resume, retry, abort, approve or roll back from the run's page: back to
/// it, saying what was done or why not.
async fn act(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, verb)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    let page = format!("/groups/runs/{}", urlencode(&id));
    let who = match super::forms::operator_or_back(&state, &user, &page) {
        Ok(who) => who,
        Err(back) => return *back,
    };
    let g = &state.groups;
    let done = match verb.as_str() {
        "pause" => g
            .pause(&id, &who)
            .await
            .map(|_| "paused: what is in flight finishes, nothing new starts"),
        "resume" => g
            .resume(&id, &who, "resume")
            .await
            .map(|_| "resumed from where it stood"),
        "retry" => g
            .resume(&id, &who, "retry")
            .await
            .map(|_| "retrying what failed"),
        "abort" => g
            .abort(&id, &who, &form.reason)
            .await
            .map(|_| "aborted: nothing new starts; each member's place is below"),
        "rollback" => g
            .roll_back(&id, &who, &form.reason)
            .await
            .map(|_| "rolling back: the members it moved return to their kept sources, the last moved first"),
        "approve" => {
            let yes = form.approve != "0";
            g.approve(&id, &who, yes, &form.reason)
                .await
                .map(|_| if yes { "approved" } else { "refused" })
        }
        other => Err(GroupError::Bad(format!(
            "there is no {other:?} for a group run: pause, resume, retry, abort, approve or rollback"
        ))),
    };
    let notice = match done {
        Ok(said) => Notice::done(format!("Run {id} {said}.")),
        Err(e) => Notice::refused(e.to_string(), None),
    };
    state.notices.redirect(&page, &user.0, notice)
}
