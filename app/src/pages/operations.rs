//! Operations: history, the monitor of one operation, and the form that starts one.

use super::error_text;
use super::layout::Me;
use crate::backend::{current_lock, get_operation, list_grids, list_operations};
use crate::model::{OperationView, Role, human_bytes};
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

const PHASES: [&str; 8] = [
    "preflight",
    "provisioning",
    "stopping_source",
    "copying",
    "verifying",
    "starting_target",
    "reconciling",
    "done",
];

fn outcome_text(op: &OperationView) -> String {
    op.outcome.clone().unwrap_or_else(|| "running".into())
}

fn percent(op: &OperationView) -> i64 {
    if op.bytes_total > 0 {
        (op.bytes_done * 100 / op.bytes_total).clamp(0, 100)
    } else {
        0
    }
}

/// The lock banner: MIG's two choices, view the monitor or override (admins).
#[component]
pub fn LockBanner() -> impl IntoView {
    let lock = Resource::new(|| (), |_| current_lock());
    let me = expect_context::<Me>();
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let is_admin = me.await.map(|u| u.role.allows(Role::Admin)).unwrap_or(false);
                match lock.await {
                    Ok(Some(l)) => view! {
                        <div class="notice lock-banner" role="status" data-testid="lock-banner">
                            <strong>"Locked: "</strong>{l.summary.clone()}
                            <div class="actions">
                                {l.op_id.clone().map(|id| view! { <a class="button" href=format!("/operations/{id}")>"View the monitor"</a> })}
                                {is_admin.then(|| view! { <span class="hint">"Admins can override it with " <code>"migctl lock override --op ID --reason …"</code></span> })}
                            </div>
                        </div>
                    }.into_any(),
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
                            <td>{op.phase.clone()}</td>
                            <td><span class=format!("status status-op-{outcome}")>{outcome.clone()}</span></td>
                            <td>{op.created_at.clone()}</td>
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
                {["", "running", "done", "failed", "cancelled"].into_iter().map(|s| {
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

/// The monitor of one operation. While it runs, the page refreshes itself
/// every two seconds (no JavaScript needed) and the log shows everything so far.
#[component]
pub fn MonitorPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let detail = Resource::new(id, get_operation);
    let me = expect_context::<Me>();
    let query = use_query_map();
    view! {
        {move || query.read().get("error").map(|e| view! { <p class="alert" role="alert">{e}</p> })}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can_cancel = me.await.map(|u| u.role.allows(Role::Operator)).unwrap_or(false);
                match detail.await {
                    Ok(d) => {
                        let op = d.operation.clone();
                        let running = op.outcome.is_none();
                        let pct = percent(&op);
                        let current = PHASES.iter().position(|p| *p == op.phase);
                        let title = format!("{} {}/{} → {}/{}", op.action, op.source_grid, op.source_app, op.target_grid, op.target_app);
                        let (src, dst, helper) = d.states.clone().unwrap_or_default();
                        view! {
                            <Title text=format!("Operation {}", op.id)/>
                            {running.then(|| view! { <Meta http_equiv="refresh" content="2"/> })}
                            <h1>{title}</h1>
                            <p class="muted">{format!("Operation {} started by {} at {}", op.id, op.created_by, op.created_at)}</p>
                            <ol class="pipeline" aria-label="Phases">
                                {PHASES.iter().enumerate().map(|(i, p)| {
                                    let class = match current {
                                        Some(c) if i < c => "done",
                                        Some(c) if i == c => "current",
                                        _ => "todo",
                                    };
                                    view! { <li class=class>{p.replace('_', " ")}</li> }
                                }).collect_view()}
                            </ol>
                            <section class="card" aria-label="Progress">
                                <h2>"Progress"</h2>
                                <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=pct.to_string()>
                                    <div class="fill" style=format!("width: {pct}%")></div>
                                </div>
                                <p data-testid="progress">{format!(
                                    "{pct}% — {} of {}",
                                    human_bytes(u64::try_from(op.bytes_done).unwrap_or(0)),
                                    human_bytes(u64::try_from(op.bytes_total).unwrap_or(0))
                                )}</p>
                                <p class="big" data-testid="outcome">
                                    <span class=format!("status status-op-{}", outcome_text(&op))>{outcome_text(&op)}</span>
                                </p>
                                {op.reason.clone().map(|r| view! { <p class="hint" data-testid="reason">{r}</p> })}
                            </section>
                            <section class="cards" aria-label="Apps">
                                <div class="card"><h2>"Source app"</h2><p>{src}</p></div>
                                <div class="card"><h2>"Helper"</h2><p>{helper}</p></div>
                                <div class="card"><h2>"Target app"</h2><p>{dst}</p></div>
                            </section>
                            {(running && can_cancel).then(|| view! {
                                <form method="post" action=format!("/operations/{}/cancel", op.id) class="cancel">
                                    <p class="hint">"Cancelling before the target starts stops the helper, restarts the source and removes the partial target."</p>
                                    <button type="submit">"Cancel operation"</button>
                                </form>
                            })}
                            <section aria-label="Log">
                                <h2>"Log"</h2>
                                <ol class="log" data-testid="log">
                                    {d.events.into_iter().map(|e| {
                                        let source = e.source.clone();
                                        view! {
                                            <li data-source=e.source data-kind=e.kind>
                                                <span class="seq">{e.seq}</span>
                                                <span class="src">{source}</span>
                                                <span class="text">{e.text}</span>
                                            </li>
                                        }
                                    }).collect_view()}
                                </ol>
                            </section>
                        }.into_any()
                    }
                    Err(e) => view! {
                        <Title text="Operation"/>
                        <h1>"Operation"</h1>
                        <p class="alert" role="alert">{error_text(&e)}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Start an operation: a plain form the server answers with the monitor,
/// or with this page again and the error next to the field it concerns.
#[component]
pub fn NewOperationPage() -> impl IntoView {
    let query = use_query_map();
    let grids = Resource::new(|| (), |_| list_grids());
    let q = move |k: &str| query.read().get(k).unwrap_or_default();
    let field_error = move |field: &'static str| {
        move || {
            let q = query.read();
            (q.get("field").as_deref() == Some(field)).then(|| q.get("error").unwrap_or_default())
        }
    };
    view! {
        <Title text="New operation"/>
        <h1>"New operation"</h1>
        {move || {
            let q = query.read();
            match (q.get("error"), q.get("field")) {
                (Some(e), None) => Some(view! { <p class="alert" role="alert" data-testid="form-error">{e}</p> }),
                _ => None,
            }
        }}
        <Suspense fallback=|| view! { <p class="muted">"Loading grids…"</p> }>
            {move || Suspend::new(async move {
                let names: Vec<String> = grids.await.map(|g| g.into_iter().map(|g| g.name).collect()).unwrap_or_default();
                let options = move |selected: String| names.iter().map(|n| {
                    let sel = *n == selected;
                    view! { <option value=n.clone() selected=sel>{n.clone()}</option> }
                }).collect_view();
                view! {
                    <form method="post" action="/operations/new" class="card op-form">
                        <label for="source_grid">"Source grid"</label>
                        <select id="source_grid" name="source_grid">{options.clone()(q("source_grid"))}</select>
                        <label for="source_app">"Source app"</label>
                        <input id="source_app" name="source_app" type="text" required prop:value=move || q("source_app")/>
                        {move || field_error("source_app")().map(|e| view! { <p class="alert field-error" data-testid="error-source_app">{e}</p> })}
                        <label for="target_grid">"Target grid"</label>
                        <select id="target_grid" name="target_grid">{options(q("target_grid"))}</select>
                        <label for="target_app">"Target app name"</label>
                        <input id="target_app" name="target_app" type="text" required pattern="[A-Za-z][A-Za-z0-9_-]{0,63}" prop:value=move || q("target_app")/>
                        {move || field_error("target_app")().map(|e| view! { <p class="alert field-error" data-testid="error-target_app">{e}</p> })}
                        <fieldset>
                            <legend>"Action"</legend>
                            <label><input type="radio" name="action" value="migrate" checked=move || q("action") != "snapshot"/>" Migrate"</label>
                            <label><input type="radio" name="action" value="snapshot" checked=move || q("action") == "snapshot"/>" Snapshot"</label>
                        </fieldset>
                        <button type="submit" class="primary">"Start"</button>
                    </form>
                }
            })}
        </Suspense>
    }
}
