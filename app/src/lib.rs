//! migctl's pages. Rendered on the server (the `ssr` feature) and hydrated in
//! the browser (the `hydrate` feature); every page also works without
//! JavaScript because routes render only once their data is ready.

pub mod backend;
pub mod model;
mod pages;
pub mod summary;

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{ParentRoute, Route, Router, Routes},
    path,
};

/// The HTML document around the app. Used by the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Set by an effect, and effects only run in the browser: tests (and
    // curious operators) can tell a hydrated page from a server-rendered one.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <Title formatter=|page: String| format!("{page} · migctl")/>
        <Router>
            <div id="root" data-hydrated=move || hydrated.get().to_string()>
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/login") view=pages::LoginPage ssr=SsrMode::Async/>
                    <ParentRoute path=path!("") view=pages::ConsoleLayout ssr=SsrMode::Async>
                        <Route path=path!("") view=pages::Dashboard ssr=SsrMode::Async/>
                        <Route path=path!("users") view=pages::UsersPage ssr=SsrMode::Async/>
                        <Route path=path!("audit") view=pages::AuditPage ssr=SsrMode::Async/>
                        <Route path=path!("lock") view=pages::LockPage ssr=SsrMode::Async/>
                        <Route path=path!("grids") view=pages::GridsPage ssr=SsrMode::Async/>
                        <Route path=path!("grids/:name") view=pages::GridPage ssr=SsrMode::Async/>
                        <Route path=path!("groups") view=pages::GroupsPage ssr=SsrMode::Async/>
                        <Route path=path!("groups/runs/:id") view=pages::GroupRunPage ssr=SsrMode::Async/>
                        <Route path=path!("operations") view=pages::OperationsPage ssr=SsrMode::Async/>
                        <Route path=path!("operations/new") view=pages::NewOperationPage ssr=SsrMode::Async/>
                        <Route path=path!("operations/:id") view=pages::MonitorPage ssr=SsrMode::Async/>
                        <Route path=path!("operations/:id/rollback") view=pages::RollbackPage ssr=SsrMode::Async/>
                        // Any other address: the 404 page, inside the layout (its navigation).
                        <Route path=path!("*any") view=pages::NotFound ssr=SsrMode::Async/>
                    </ParentRoute>
                </Routes>
            </div>
        </Router>
    }
}
