use super::When;
use super::error_text;
use super::layout::Me;
use crate::backend::{console_settings, grid_detail, list_grids, list_kept_sources};
use crate::model::{Action, GridView, Role, human_bytes};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// Reachability in words and colour; the words alone carry the meaning.
#[component]
fn Reach(grid: GridView) -> impl IntoView {
    let (class, text) = match (&grid.checked_at, grid.reachable) {
        (None, _) => ("status status-unknown", "checking…".to_owned()),
        (Some(_), true) => ("status status-ok", "reachable".to_owned()),
        (Some(_), false) => ("status status-bad", "unreachable".to_owned()),
    };
    view! { <span class=class>{text}</span> }
}

fn latency(g: &GridView) -> String {
    g.latency_ms.map_or("—".into(), |ms| format!("{ms:.1} ms"))
}

fn free(g: &GridView) -> String {
    match (g.free_bytes, g.total_bytes) {
        (Some(f), Some(t)) => format!("{} of {}", human_bytes(f), human_bytes(t)),
        _ => "—".into(),
    }
}

/// The inventory's grids as a table (dashboard).
#[component]
pub fn GridTable() -> impl IntoView {
    let grids = Resource::new(|| (), |_| list_grids());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading grids…"</p> }>
            {move || Suspend::new(async move {
                match grids.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted" data-testid="no-grids">
                            "No grids: the grid inventory lists none (see grids_file in migctl.toml)."
                        </p>
                    }.into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="grids">
                            <thead><tr>
                                <th scope="col">"Grid"</th>
                                <th scope="col">"Controller"</th>
                                <th scope="col">"Status"</th>
                                <th scope="col">"Latency"</th>
                                <th scope="col">"Dialect"</th>
                                <th scope="col">"Free storage"</th>
                                <th scope="col">"Apps"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|g| {
                                    let href = format!("/grids/{}", g.name);
                                    let (lat, fr) = (latency(&g), free(&g));
                                    let dialect = g.dialect.map_or("—".into(), |d| format!("v{d}"));
                                    let apps = g.apps.len();
                                    let err = g.error.clone();
                                    view! {
                                        <tr data-grid=g.name.clone()>
                                            <td><a href=href>{g.name.clone()}</a></td>
                                            <td><code>{g.address.clone()}</code></td>
                                            <td>
                                                <Reach grid=g.clone()/>
                                                {err.map(|e| view! { <div class="hint">{e}</div> })}
                                            </td>
                                            <td>{lat}</td>
                                            <td>{dialect}</td>
                                            <td>{fr}</td>
                                            <td>{apps}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => view! { <p class="alert" role="alert">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The inventory's grids, on a page of their own (the navigation's "Grids").
#[component]
pub fn GridsPage() -> impl IntoView {
    view! {
        <Title text="Grids"/>
        <h1>"Grids"</h1>
        <p class="muted">"The grids in this console's inventory, checked in the background; each links to its apps."</p>
        <GridTable/>
    }
}

/// One grid: its controller's status and its apps with state and volumes.
#[component]
pub fn GridPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let grid = Resource::new(name, grid_detail);
    let kept = Resource::new(|| (), |_| list_kept_sources());
    let me = expect_context::<Me>();
    let info = Resource::new(|| (), |_| console_settings());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let kept = kept.await.unwrap_or_default();
                // Operators start an operation from an app's row; the
                // console's mode says which actions it offers.
                let operator = me.await.is_ok_and(|u| u.role.allows(Role::Operator));
                let mode = info.await.ok().map(|i| i.mode);
                let actions: Vec<Action> = [Action::Migrate, Action::Snapshot]
                    .into_iter()
                    .filter(|a| operator && mode.is_none_or(|m| a.allowed_by(m)))
                    .collect();
                match grid.await {
                    Ok(g) => {
                        let title = format!("Grid {}", g.name);
                        let (lat, fr) = (latency(&g), free(&g));
                        view! {
                            <Title text=title.clone()/>
                            <h1>{title}</h1>
                            <section class="cards">
                                <div class="card"><h2>"Status"</h2><p class="big"><Reach grid=g.clone()/></p>
                                    {g.error.clone().map(|e| view! { <p class="hint">{e}</p> })}
                                </div>
                                <div class="card"><h2>"Controller"</h2><p><code>{g.address.clone()}</code></p>
                                    <p class="hint">{g.description.clone()}</p></div>
                                <div class="card"><h2>"Latency"</h2><p class="big">{lat}</p></div>
                                <div class="card"><h2>"Free storage"</h2><p class="big">{fr}</p></div>
                            </section>
                            <h2>"Apps"</h2>
                            {if g.apps.is_empty() {
                                view! { <p class="muted" data-testid="no-apps">"No apps on this grid."</p> }.into_any()
                            } else {
                                view! {
                                    <table class="table" data-testid="apps">
                                        <thead><tr>
                                            <th scope="col">"App"</th>
                                            <th scope="col">"State"</th>
                                            <th scope="col">"Template"</th>
                                            <th scope="col">"Volumes"</th>
                                            {(!actions.is_empty()).then(|| view! { <th scope="col">"Actions"</th> })}
                                        </tr></thead>
                                        <tbody>
                                            {g.apps.into_iter().map(|a| {
                                                // A kept source is no ordinary stopped app.
                                                let kept_by = kept.iter().find(|op| op.kept_source.as_ref().is_some_and(|k| k.grid == g.name && k.app == a.name))
                                                    .map(|op| (op.id.clone(), op.kept_source.as_ref().map(|k| k.until.clone()).unwrap_or_default()));
                                                let state_class = format!("status status-app-{}", a.state);
                                                // A kept source is moved back by its rollback, and
                                                // migctl's own helpers are no app to move: not from here.
                                                let starts = (!actions.is_empty()).then(|| {
                                                    let own = operation_model::name::is_migctls_own(&a.name);
                                                    let links = if kept_by.is_some() || own { Vec::new() } else { actions.clone() };
                                                    let (grid, app) = (g.name.clone(), a.name.clone());
                                                    view! {
                                                        <td class="row-actions">
                                                            {links.into_iter().map(|act| {
                                                                let verb = match act { Action::Snapshot => "Snapshot", _ => "Migrate" };
                                                                view! {
                                                                    <a class="button" href=format!("/operations/new?source_grid={grid}&source_app={app}&action={act}")
                                                                        aria-label=format!("{verb} {app}") data-testid=format!("start-{act}")>{verb}</a>
                                                                    " "
                                                                }
                                                            }).collect_view()}
                                                        </td>
                                                    }
                                                });
                                                let vols = a.volumes.iter()
                                                    .map(|v| format!("{} ({})", v.name, human_bytes(v.size)))
                                                    .collect::<Vec<_>>().join(", ");
                                                view! {
                                                    <tr data-app=a.name.clone()>
                                                        <td>{a.name.clone()}</td>
                                                        <td><span class=state_class>{a.state.clone()}</span>
                                                            {kept_by.map(|(op, until)| view! {
                                                                <span class="hint" data-testid="kept-by">" — kept by "<a href=format!("/operations/{op}")>{op.clone()}</a>" until "<When at=until/>": roll back to it or release it there"</span>
                                                            })}</td>
                                                        <td>{a.template.clone().unwrap_or_else(|| "—".into())}</td>
                                                        <td>{vols}</td>
                                                        {starts}
                                                    </tr>
                                                }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any()
                            }}
                            <p class="hint">{g.checked_at.map(|t| view! { "Checked at "<When at=t/>"; refreshed in the background." })}</p>
                        }.into_any()
                    }
                    Err(e) => view! {
                        <Title text="Grid"/>
                        <h1>"Grid"</h1>
                        <p class="alert" role="alert">{error_text(&e)}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
