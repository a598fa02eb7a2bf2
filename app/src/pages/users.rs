use super::error_text;
use crate::backend::list_users;
use leptos::prelude::*;
use leptos_meta::Title;

/// User accounts (admins). Accounts are managed with `migctl user …`.
#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    view! {
        <Title text="Users"/>
        <h1>"Users"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(rows) => view! {
                        <table class="table" data-testid="users">
                            <thead><tr>
                                <th scope="col">"User"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Status"</th>
                                <th scope="col">"API tokens"</th>
                                <th scope="col">"Created"</th>
                            </tr></thead>
                            <tbody>
                                {rows.into_iter().map(|u| view! {
                                    <tr>
                                        <td>{u.name}</td>
                                        <td><span class=format!("role role-{}", u.role)>{u.role.as_str()}</span></td>
                                        <td>{if u.disabled { "disabled" } else { "active" }}</td>
                                        <td>{u.api_tokens}</td>
                                        <td>{u.created_at}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        <p class="hint">
                            "Manage accounts from the console's shell: "
                            <code>"migctl user add NAME --role viewer|operator|admin"</code>", "
                            <code>"user passwd"</code>", " <code>"user del"</code>", "
                            <code>"user token"</code>"."
                        </p>
                    }.into_any(),
                    Err(e) => view! {
                        <p class="alert" role="alert" data-testid="forbidden">{error_text(&e)}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
