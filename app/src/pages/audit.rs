//! The audit trail (admins): sign-ins, refusals, user changes, lock
//! overrides, operations started, cut over and cancelled; filtered by who
//! and by what, newest first. A plain GET form.

use super::When;
use super::error_text;
use crate::backend::audit_trail;
use crate::model::AuditFilter;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The families of actions, for the filter.
const ACTIONS: [(&str, &str); 6] = [
    ("", "any action"),
    ("login", "sign-ins (and refusals)"),
    ("user", "user changes"),
    ("operation", "operations started, cut over, cancelled"),
    ("lock", "lock overrides"),
    ("login.failed", "failed sign-ins only"),
];

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        let q = query.read();
        AuditFilter {
            actor: q.get("actor").filter(|a| !a.is_empty()),
            action: q.get("action").filter(|a| !a.is_empty()),
            limit: None,
        }
    };
    let entries = Resource::new(filter, audit_trail);
    view! {
        <Title text="Audit"/>
        <h1>"Audit"</h1>
        <form method="get" action="/audit" class="filters" data-testid="audit-filter">
            <label for="actor">"Who"</label>
            <input id="actor" name="actor" type="text" autocomplete="off"
                value=move || filter().actor.unwrap_or_default()/>
            <label for="action">"What"</label>
            <select id="action" name="action">
                {move || {
                    let chosen = filter().action.unwrap_or_default();
                    ACTIONS.iter().map(|(value, label)| {
                        let sel = *value == chosen;
                        view! { <option value=*value selected=sel>{*label}</option> }
                    }).collect_view()
                }}
            </select>
            <button type="submit">"Filter"</button>
        </form>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match entries.await {
                    Ok(rows) if rows.is_empty() => view! { <p class="muted" data-testid="audit-empty">"Nothing recorded matches."</p> }.into_any(),
                    Ok(rows) => view! {
                        <div class="table-wrap">
                            <table class="table" data-testid="audit">
                                <thead><tr>
                                    <th scope="col">"When"</th>
                                    <th scope="col">"Who"</th>
                                    <th scope="col">"What"</th>
                                    <th scope="col">"Detail"</th>
                                </tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|e| {
                                        let kind = e.action.clone();
                                        let op = e.operation().map(str::to_owned);
                                        view! {
                                        <tr data-action=kind>
                                            <td><When at=e.at/></td>
                                            <td>{e.actor}</td>
                                            <td>{e.action}</td>
                                            <td>{e.detail}
                                                {op.map(|id| view! { " " <a href=format!("/operations/{id}") data-testid="audit-op">{format!("see {id}")}</a> })}
                                            </td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                    Err(e) => view! { <p class="alert" role="alert">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
