use crate::backend::whoami;
use crate::model::{Role, SignedIn};
use leptos::prelude::*;
use leptos_router::components::{A, Outlet};

/// The signed-in user, shared by the layout with the page inside it.
pub type Me = Resource<Result<SignedIn, ServerFnError>>;

/// Header, navigation, the user's badge and sign-out, around every signed-in page.
#[component]
pub fn ConsoleLayout() -> impl IntoView {
    let me: Me = Resource::new(|| (), |_| whoami());
    provide_context(me);

    view! {
        <header class="topbar">
            <a class="brand" href="/">"migctl"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(user) => view! { <Nav user/> }.into_any(),
                        Err(_) => view! { <a href="/login">"Sign in"</a> }.into_any(),
                    }
                })}
            </Suspense>
        </header>
        <main>
            <Outlet/>
        </main>
    }
}

#[component]
fn Nav(user: SignedIn) -> impl IntoView {
    let is_admin = user.role.allows(Role::Admin);
    view! {
        <nav aria-label="Main">
            <A href="/" exact=true>"Dashboard"</A>
            <A href="/grids">"Grids"</A>
            <A href="/operations">"Operations"</A>
            <A href="/groups">"Groups"</A>
            <A href="/lock">"Lock"</A>
            <Show when=move || is_admin>
                <A href="/users">"Users"</A>
                <A href="/audit">"Audit"</A>
            </Show>
        </nav>
        <div class="whoami">
            <span class="user" data-testid="user-name">{user.name.clone()}</span>
            <span class=format!("role role-{}", user.role) data-testid="user-role">
                {user.role.as_str()}
            </span>
            <form method="post" action="/logout">
                <button type="submit" class="link">"Sign out"</button>
            </form>
        </div>
    }
}
