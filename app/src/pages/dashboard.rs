use super::When;
use super::error_text;
use super::layout::Me;
use crate::backend::{console_settings, list_kept_sources, list_operations};
use crate::model::{ConsoleInfo, SignedIn};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn Dashboard() -> impl IntoView {
    let me = expect_context::<Me>();
    let info = Resource::new(|| (), |_| console_settings());
    let recent = Resource::new(|| (), |_| list_operations());
    let kept = Resource::new(|| (), |_| list_kept_sources());

    view! {
        <Title text="Dashboard"/>
        <h1>"Dashboard"</h1>
        <super::operations::LockBanner/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (me.await, info.await) {
                    (Ok(user), Ok(info)) => view! { <Overview user info/> }.into_any(),
                    (Err(e), _) | (_, Err(e)) => view! {
                        <p class="alert" role="alert">{error_text(&e)}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
        <section aria-label="Grids">
            <h2>"Grids"</h2>
            <super::grids::GridTable/>
        </section>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                kept.await.ok().filter(|k| !k.is_empty()).map(|list| view! {
                    <section aria-label="Kept sources" data-testid="kept-sources">
                        <h2>"Kept sources"</h2>
                        <p class="hint">"Sources of migrates, kept stopped so that they can be rolled back; each is destroyed at its deadline once its fingerprint is checked, or when an operator releases it."</p>
                        <table class="table">
                            <thead><tr>
                                <th scope="col">"Source"</th>
                                <th scope="col">"Kept until"</th>
                                <th scope="col">"Migrated to"</th>
                                <th scope="col">"Operation"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().filter_map(|op| {
                                    let k = op.kept_source.clone()?;
                                    let href = format!("/operations/{}", op.id);
                                    Some(view! {
                                        <tr data-kept=format!("{}/{}", k.grid, k.app)>
                                            <td>{format!("{}/{}", k.grid, k.app)}
                                                {k.problem.clone().map(|p| view! { <p class="alert" role="alert">{p}</p> })}</td>
                                            <td><When at=k.until.clone()/></td>
                                            <td>{format!("{}/{}", op.target_grid, op.target_app)}</td>
                                            <td><a href=href>{op.id.clone()}</a></td>
                                        </tr>
                                    })
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                })
            })}
        </Suspense>
        <section aria-label="Recent operations">
            <h2>"Recent operations"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match recent.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted">"No operations yet. " <a href="/operations/new">"Start one"</a></p>
                        }.into_any(),
                        Ok(list) => view! {
                            <super::operations::OperationTable ops=list.into_iter().take(5).collect()/>
                            <p><a href="/operations">"All operations"</a></p>
                        }.into_any(),
                        Err(e) => view! { <p class="alert" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Overview(user: SignedIn, info: ConsoleInfo) -> impl IntoView {
    let grid = info.current_grid.clone();
    let app = info.current_app.clone();
    let copy_of = info.snapshot_copy_of.clone().map(|op| {
        let href = format!("/operations/{op}");
        view! {
            <p class="notice" role="status" data-testid="snapshot-copy">
                "This console runs in a snapshot copy made by operation "
                <a href=href>{op}</a>
                ". Nothing was destroyed anywhere; that operation's outcome is recorded by the console in its source app. This copy is yours to use."
            </p>
        }
    });
    view! {
        {copy_of}
        <section class="cards" aria-label="This console">
            <div class="card" data-testid="current-grid">
                <h2>"Current grid"</h2>
                {match grid {
                    Some(g) => view! { <p class="big">{g}</p> }.into_any(),
                    None => view! {
                        <p class="big muted">"not set"</p>
                        <p class="hint">"Set " <code>"current_grid"</code> " in migctl.toml."</p>
                    }.into_any(),
                }}
            </div>
            <div class="card" data-testid="current-app">
                <h2>"Current app"</h2>
                {match app {
                    Some(a) => view! { <p class="big">{a}</p> }.into_any(),
                    None => view! { <p class="big muted">"none"</p> }.into_any(),
                }}
            </div>
            <div class="card" data-testid="mode">
                <h2>"Mode"</h2>
                <p class="big">{info.mode.as_str()}</p>
                <p class="hint">{format!("This console offers {}.", info.mode.label())}</p>
            </div>
            <div class="card" data-testid="signed-in">
                <h2>"Signed in"</h2>
                <p class="big">{user.name.clone()}</p>
                <p class="hint">
                    <span class=format!("role role-{}", user.role)>{user.role.as_str()}</span>
                    " — " {user.role.summary()}
                </p>
            </div>
        </section>
        <section class="card" aria-label="Configuration">
            <h2>"Configuration"</h2>
            <dl class="facts">
                <dt>"Config directory"</dt><dd><code>{info.config_dir}</code></dd>
                <dt>"Grid inventory"</dt><dd><code>{info.grids_file}</code></dd>
                <dt>"Private key"</dt><dd><code>{info.private_key_file}</code></dd>
                <dt>"Known hosts"</dt><dd><code>{info.known_hosts_file}</code></dd>
                <dt>"Version"</dt><dd>{info.version}</dd>
            </dl>
        </section>
    }
}
