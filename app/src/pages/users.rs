//! User accounts (admins): add a user, change a role, disable or enable,
//! set a new password. Plain forms answered with a message.

use super::When;
use super::{NoticeBanner, error_text, use_notice};
use crate::backend::list_users;
use crate::model::{Role, UserRow};
use leptos::prelude::*;
use leptos_meta::Title;

const ROLES: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    let notice = use_notice();
    let me = expect_context::<super::layout::Me>();
    view! {
        <Title text="Users"/>
        <h1>"Users"</h1>
        <NoticeBanner notice testid="users"/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let said = notice.await;
                let me = me.await.map(|u| u.name).unwrap_or_default();
                let field_error = move |field: &str| said.as_ref().and_then(|n| n.about(field)).map(str::to_owned);
                match users.await {
                    Ok(rows) => view! {
                        <div class="table-wrap">
                            <table class="table" data-testid="users">
                                <thead><tr>
                                    <th scope="col">"User"</th>
                                    <th scope="col">"Role"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"API tokens"</th>
                                    <th scope="col">"Created"</th>
                                    <th scope="col">"Change"</th>
                                </tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|u| { let own = u.name == me; view! { <UserLine u own/> } }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <form method="post" action="/users" class="card op-form" data-testid="add-user">
                            <h2>"Add a user"</h2>
                            <label for="new-name">"Name"</label>
                            <input id="new-name" name="name" type="text" required autocomplete="off"/>
                            {field_error("name").map(|e| view! { <p class="field-error" data-testid="error-name">{e}</p> })}
                            <label for="new-role">"Role"</label>
                            <select id="new-role" name="role">
                                {ROLES.iter().map(|r| view! { <option value=r.as_str()>{format!("{} — {}", r.as_str(), r.summary())}</option> }).collect_view()}
                            </select>
                            <label for="new-password">"Password (at least 10 characters)"</label>
                            <input id="new-password" name="password" type="password" required minlength="10" autocomplete="new-password"/>
                            {field_error("password").map(|e| view! { <p class="field-error" data-testid="error-password">{e}</p> })}
                            <button type="submit" class="primary">"Add user"</button>
                        </form>
                        <p class="hint">
                            "API tokens are issued from the console's shell: " <code>"migctl user token NAME"</code>"."
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

/// One user's row; `own`: the signed-in admin's, who cannot disable
/// themselves (another admin can).
#[component]
fn UserLine(u: UserRow, own: bool) -> impl IntoView {
    let action = format!("/users/{}", u.name);
    let status = if u.disabled { "disabled" } else { "active" };
    view! {
        <tr data-user=u.name.clone()>
            <th scope="row">{u.name.clone()}</th>
            <td><span class=format!("role role-{}", u.role)>{u.role.as_str()}</span></td>
            <td><span class=format!("status status-user-{status}")>{status}</span></td>
            <td>{u.api_tokens}</td>
            <td><When at=u.created_at.clone()/></td>
            <td class="row-forms">
                <form method="post" action=action.clone() class="inline">
                    <input type="hidden" name="change" value="role"/>
                    <label class="sr-only" for=format!("role-{}", u.name)>{format!("Role of {}", u.name)}</label>
                    <select id=format!("role-{}", u.name) name="role">
                        {ROLES.iter().map(|r| {
                            let sel = *r == u.role;
                            view! { <option value=r.as_str() selected=sel>{r.as_str()}</option> }
                        }).collect_view()}
                    </select>
                    <button type="submit">"Set role"</button>
                </form>
                {(!own).then(|| view! {
                    <form method="post" action=action.clone() class="inline">
                        <input type="hidden" name="change" value=if u.disabled { "enable" } else { "disable" }/>
                        <button type="submit" class=if u.disabled { "" } else { "danger" }>
                            {if u.disabled { "Enable" } else { "Disable" }}
                        </button>
                    </form>
                })}
                <form method="post" action=action class="inline">
                    <input type="hidden" name="change" value="password"/>
                    <label class="sr-only" for=format!("pw-{}", u.name)>{format!("New password for {}", u.name)}</label>
                    <input id=format!("pw-{}", u.name) name="password" type="password" minlength="10" required
                        placeholder="new password" autocomplete="new-password"/>
                    <button type="submit">"Reset password"</button>
                </form>
            </td>
        </tr>
    }
}
