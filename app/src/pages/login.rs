use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The sign-in form. It posts to the server's `/login` handler, which
/// redirects back here with `?error=…` when the sign-in is refused.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let message = move || {
        let q = query.read();
        match q.get("error").as_deref() {
            Some("invalid") => Some("Wrong user name or password.".to_owned()),
            Some("throttled") => {
                // A number or nothing: the query is anyone's to write.
                let wait = q
                    .get("retry")
                    .and_then(|r| r.parse::<u32>().ok())
                    .map_or_else(|| "a few".to_owned(), |s| s.to_string());
                Some(format!(
                    "Too many failed sign-ins. Try again in {wait} seconds."
                ))
            }
            Some("missing") => Some("Enter your user name and password.".to_owned()),
            Some(_) => Some("Sign-in failed. Try again.".to_owned()),
            None => None,
        }
    };
    let signed_out = move || query.read().get("signed_out").is_some();

    view! {
        <Title text="Sign in"/>
        <main class="login">
            <form method="post" action="/login" class="card login-card">
                <h1>"migctl"</h1>
                <p class="muted">"Sign in to migrate and snapshot apps between grids."</p>
                <Show when=signed_out>
                    <p class="notice" role="status">"You are signed out."</p>
                </Show>
                {move || message().map(|m| view! {
                    <p class="alert" role="alert" data-testid="login-error">{m}</p>
                })}
                <input type="hidden" name="next" value=next/>
                <label for="username">"User name"</label>
                <input id="username" name="username" type="text" autocomplete="username"
                    autocapitalize="none" spellcheck="false" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password"
                    autocomplete="current-password" required/>
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </main>
    }
}
