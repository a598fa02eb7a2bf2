//! One module per page; the console layout wraps every signed-in page.

mod audit;
mod dashboard;
mod grids;
mod groups;
mod layout;
mod lock;
mod login;
mod monitor;
mod new_operation;
mod operations;
mod rollback;
mod users;
mod when;

pub use audit::AuditPage;
pub use dashboard::Dashboard;
pub use grids::{GridPage, GridsPage};
pub use groups::{GroupRunPage, GroupsPage};
pub use layout::ConsoleLayout;
pub use lock::LockPage;
pub use login::LoginPage;
pub use monitor::MonitorPage;
pub use new_operation::NewOperationPage;
pub use operations::OperationsPage;
pub use rollback::RollbackPage;
pub use users::UsersPage;
pub use when::{When, utc_text};

use crate::backend::get_notice;
use crate::model::{Notice, NoticeKind};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <section data-testid="not-found">
            <h1>"Page not found"</h1>
            <p>"There is no page at this address: it may have been mistyped, or the page may have moved. "
                <a href="/">"Go to the dashboard"</a>" or use the navigation above."</p>
        </section>
    }
}

/// A server function's error as the operator should read it.
fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        other => other.to_string(),
    }
}

/// What the form just posted answered (`?notice=ID`), read from the
/// console: the sentence never travels in the address.
fn use_notice() -> Resource<Option<Notice>> {
    let query = use_query_map();
    Resource::new(
        move || query.read().get("notice"),
        |id| async move {
            match id {
                Some(id) => get_notice(id).await.ok().flatten(),
                None => None,
            }
        },
    )
}

/// A notice's banner at the top of a page: what was done, or a refusal
/// about no field in particular (a field's refusal is shown at the field).
/// `testid` names it for tests: `{testid}-ok` and `{testid}-error`.
#[component]
fn NoticeBanner(notice: Resource<Option<Notice>>, testid: &'static str) -> impl IntoView {
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                notice.await.and_then(|n| match n.kind {
                    NoticeKind::Done => Some(view! {
                        <p class="notice" role="status" data-testid=format!("{testid}-ok")>{n.message}</p>
                    }.into_any()),
                    NoticeKind::Refused => n.general_refusal().map(|m| view! {
                        <p class="alert" role="alert" data-testid=format!("{testid}-error")>{m.to_owned()}</p>
                    }.into_any()),
                })
            })}
        </Suspense>
    }
}
