//! Operations: history, the monitor of one operation, and the form that starts one.

use super::When;
use super::error_text;
use super::layout::Me;
use crate::backend::{current_lock, list_operations};
use crate::model::{OperationView, Role};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

fn outcome_text(op: &OperationView) -> String {
    op.outcome.map_or("running", |o| o.as_str()).to_owned()
}

/// The lock banner: MIG's two choices, view the monitor or override the
/// lock (admins), and whether the lock looks stale and why.
#[component]
pub fn LockBanner() -> impl IntoView {
    let lock = Resource::new(|| (), |_| current_lock());
    let me = expect_context::<Me>();
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let is_admin = me.await.map(|u| u.role.allows(Role::Admin)).unwrap_or(false);
                match lock.await {
                    Ok(Some(l)) => {
                        let class = if l.stale.is_some() { "notice lock-banner stale" } else { "notice lock-banner" };
                        view! {
                            <div class=class role="status" data-testid="lock-banner">
                                <p><strong>"Locked: "</strong>{l.summary.clone()}</p>
                                {l.stale.clone().map(|why| view! {
                                    <p data-testid="lock-stale"><span class="status status-stale">"stale"</span>" "{why}</p>
                                })}
                                <div class="actions">
                                    {l.op_id.clone().map(|id| view! { <a class="button" href=format!("/operations/{id}")>"View the monitor"</a> })}
                                    {if is_admin {
                                        view! { <a class="button danger" href="/lock">"Override the lock…"</a> }.into_any()
                                    } else {
                                        view! { <a class="button" href="/lock">"Lock details"</a> }.into_any()
                                    }}
                                </div>
                            </div>
                        }.into_any()
                    }
                    _ => ().into_any(),
                }
            })}
        </Suspense>
    }
}

/// A table of operations; used by the history page and the dashboard.
#[component]
pub fn OperationTable(ops: Vec<OperationView>) -> impl IntoView {
    view! {
        <table class="table" data-testid="operations">
            <thead><tr>
                <th scope="col">"Operation"</th>
                <th scope="col">"Action"</th>
                <th scope="col">"From"</th>
                <th scope="col">"To"</th>
                <th scope="col">"Phase"</th>
                <th scope="col">"Outcome"</th>
                <th scope="col">"Started"</th>
            </tr></thead>
            <tbody>
                {ops.into_iter().map(|op| {
                    let outcome = outcome_text(&op);
                    view! {
                        <tr data-op=op.id.clone()>
                            <td><a href=format!("/operations/{}", op.id)>{op.id.clone()}</a></td>
                            <td>{op.action.as_str()}</td>
                            <td>{format!("{}/{}", op.source_grid, op.source_app)}</td>
                            <td>{format!("{}/{}", op.target_grid, op.target_app)}</td>
                            <td>{op.phase.label()}</td>
                            <td><span class=format!("status status-op-{outcome}")>{outcome.clone()}</span></td>
                            <td><When at=op.created_at.clone()/></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// History: every operation, filtered by state, app or grid (a GET form, so it works without JavaScript).
#[component]
pub fn OperationsPage() -> impl IntoView {
    let query = use_query_map();
    let ops = Resource::new(|| (), |_| list_operations());
    let q = move |k: &str| query.read().get(k).unwrap_or_default();
    view! {
        <Title text="Operations"/>
        <h1>"Operations"</h1>
        <form method="get" class="filters" aria-label="Filter">
            <label for="f-state">"State"</label>
            <select id="f-state" name="state">
                {["", "running", "done", "failed", "cancelled", "elsewhere"].into_iter().map(|s| {
                    let selected = q("state") == s;
                    view! { <option value=s selected=selected>{if s.is_empty() { "any" } else { s }}</option> }
                }).collect_view()}
            </select>
            <label for="f-app">"App"</label>
            <input id="f-app" name="app" type="text" prop:value=move || q("app")/>
            <label for="f-grid">"Grid"</label>
            <input id="f-grid" name="grid" type="text" prop:value=move || q("grid")/>
            <button type="submit">"Filter"</button>
        </form>
        <p><a class="button primary" href="/operations/new">"New operation"</a></p>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let (state, app, grid) = (q("state"), q("app"), q("grid"));
                match ops.await {
                    Ok(list) => {
                        let list: Vec<_> = list.into_iter().filter(|op| {
                            (state.is_empty() || outcome_text(op) == state)
                                && (app.is_empty() || op.source_app == app || op.target_app == app)
                                && (grid.is_empty() || op.source_grid == grid || op.target_grid == grid)
                        }).collect();
                        if list.is_empty() {
                            view! { <p class="muted">"No operations."</p> }.into_any()
                        } else {
                            view! { <OperationTable ops=list/> }.into_any()
                        }
                    }
                    Err(e) => view! { <p class="alert" role="alert">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
