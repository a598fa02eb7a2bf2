//! One module per page; the console layout wraps every signed-in page.

mod audit;
mod dashboard;
mod grids;
mod layout;
mod lock;
mod login;
mod monitor;
mod new_operation;
mod operations;
mod users;

pub use audit::AuditPage;
pub use dashboard::Dashboard;
pub use grids::GridPage;
pub use layout::ConsoleLayout;
pub use lock::LockPage;
pub use login::LoginPage;
pub use monitor::MonitorPage;
pub use new_operation::NewOperationPage;
pub use operations::OperationsPage;
pub use users::UsersPage;

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <main class="narrow">
            <h1>"Page not found"</h1>
            <p>"There is no page at this address. " <a href="/">"Go to the dashboard"</a></p>
        </main>
    }
}

/// A server function's error as the operator should read it.
fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        other => other.to_string(),
    }
}
