//! Group runs: the list with a form that starts one, and a run's page —
//! its steps as a pipeline (checks with their attempts, each step's
//! operation linking to its monitor), where every member is, and the
//! operator's controls. Forms post and redirect, so everything works
//! without JavaScript; once hydrated, a run that has not ended follows
//! its stream (SSE, `GET /api/v1/groups/runs/{id}` as text/event-stream).

use super::layout::Me;
use super::{When, error_text};
use crate::backend::{get_group_run, list_group_definitions, list_group_runs};
use crate::model::{
    AttemptView, GroupRunView, ItemState, ItemView, MemberPlace, Role, RunState, Stage, StepState,
    StepView,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// Where a run stands, in words: "step 2/3 (mq2), after-check 1".
fn standing(r: &GroupRunView) -> String {
    match r.position {
        None => match r.state {
            RunState::Done => "every step done".into(),
            RunState::RolledBack => {
                "rolled back: every member it moved is on the source grid again".into()
            }
            _ => String::new(),
        },
        Some(p) => {
            let member = r
                .steps
                .get(p.step as usize)
                .map_or("?", |s| s.member.as_str());
            let what = match p.stage {
                Stage::Before => format!("check {} before the step", p.item + 1),
                Stage::Actions => format!("action {}", p.item + 1),
                Stage::Operation => "moving".into(),
                Stage::After => format!("check {} after the step", p.item + 1),
                Stage::Undo => "rolling back: moving it back to its kept source".into(),
                Stage::Recheck => {
                    format!("rolling back: check {} again, once it is back", p.item + 1)
                }
            };
            format!("step {}/{} ({member}): {what}", p.step + 1, r.steps.len())
        }
    }
}

#[component]
pub fn GroupsPage() -> impl IntoView {
    let runs = Resource::new(|| (), |_| list_group_runs());
    let kept = Resource::new(|| (), |_| list_group_definitions());
    let me = expect_context::<Me>();
    let notice = super::use_notice();
    view! {
        <Title text="Group runs"/>
        <h1>"Group runs"</h1>
        <p class="hint">"A group run moves the members of an HA group to another grid one step at a time, each step one migrate, with checks before and after each step."</p>
        <super::NoticeBanner notice testid="groups"/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let can_start = me.await.map(|u| u.role.allows(Role::Operator)).unwrap_or(false);
                let files = kept.await.unwrap_or_default();
                can_start.then(|| view! { <StartForm files/> })
            })}
        </Suspense>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match runs.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No group runs yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="group-runs">
                            <thead><tr>
                                <th scope="col">"Run"</th>
                                <th scope="col">"Group"</th>
                                <th scope="col">"From"</th>
                                <th scope="col">"To"</th>
                                <th scope="col">"State"</th>
                                <th scope="col">"Where"</th>
                                <th scope="col">"Started"</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|r| {
                                    let state = r.state.as_str();
                                    let at = standing(&r);
                                    view! {
                                        <tr data-run=r.id.clone()>
                                            <td><a href=format!("/groups/runs/{}", r.id)>{r.id.clone()}</a></td>
                                            <td>{r.name.clone()}</td>
                                            <td>{r.source_grid.clone()}</td>
                                            <td>{r.target_grid.clone()}</td>
                                            <td><span class=format!("status status-run-{state}")>{state}</span></td>
                                            <td>{at}</td>
                                            <td><When at=r.created_at.clone()/></td>
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

/// Start a run: a definition kept in the console's directory, or one pasted.
#[component]
fn StartForm(files: Vec<String>) -> impl IntoView {
    let has_files = !files.is_empty();
    view! {
        <form method="post" action="/groups/runs" class="card" data-testid="start-group-run" aria-label="Start a group run">
            <h2>"Start a run"</h2>
            {has_files.then(|| view! {
                <label for="g-file">"A definition kept in the console's directory"</label>
                <select id="g-file" name="definition_file">
                    <option value="">"— none: paste one below —"</option>
                    {files.iter().enumerate().map(|(i, f)| view! {
                        <option value=f.clone() selected=i == 0>{f.clone()}</option>
                    }).collect_view()}
                </select>
            })}
            <label for="g-text">{if has_files { "or paste a definition (TOML)" } else { "A definition (TOML)" }}</label>
            <textarea id="g-text" name="definition" rows="6" spellcheck="false"
                placeholder="name = \"mq\"\nsource_grid = \"east\"\ntarget_grid = \"west\"\n…"></textarea>
            <p class="hint">"The run starts at once, from its first step; its page shows each check as it is tried."</p>
            <button type="submit" class="primary">"Start the run"</button>
        </form>
    }
}

#[component]
pub fn GroupRunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let first = Resource::new(id, get_group_run);
    let me = expect_context::<Me>();
    let notice = super::use_notice();
    view! {
        <super::NoticeBanner notice testid="group-run"/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can_act = me.await.map(|u| u.role.allows(Role::Operator)).unwrap_or(false);
                match first.await {
                    Ok(r) => view! { <Run run=r can_act/> }.into_any(),
                    Err(e) => view! {
                        <Title text="Group run"/>
                        <h1>"Group run"</h1>
                        <p class="alert" role="alert">{error_text(&e)}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Run(run: GroupRunView, can_act: bool) -> impl IntoView {
    let id = run.id.clone();
    let run = RwSignal::new(run);
    #[cfg(feature = "hydrate")]
    follow(id.clone(), run);
    // The controls change only when the run's state or place does, so a
    // reason being typed is not wiped by every reading.
    let key = Memo::new(move |_| {
        run.with(|r| {
            (
                r.state,
                r.position,
                r.awaiting_approval.clone(),
                r.can_roll_back,
            )
        })
    });
    let title = run.with_untracked(|r| format!("Group run {} ({})", r.id, r.name));
    view! {
        <Title text=title/>
        <h1>"Group run "{id.clone()}</h1>
        {move || run.with(|r| {
            let state = r.state.as_str();
            view! {
                <section class="card" aria-label="Where the run stands" data-testid="run-state" data-state=state>
                    <p>
                        <span class=format!("status status-run-{state}")>{state}</span>" "
                        {format!("group {}: {} → {}", r.name, r.source_grid, r.target_grid)}
                    </p>
                    <p data-testid="run-standing">{standing(r)}</p>
                    {r.reason.clone().map(|why| view! { <p data-testid="run-reason">{why}</p> })}
                    <p class="muted">"Started by "{r.created_by.clone()}" "<When at=r.created_at.clone()/></p>
                </section>
            }.into_any()
        })}
        {move || {
            // The console's own rule says whether it may be rolled back now.
            let (state, _, awaiting, may_roll_back) = key.get();
            can_act.then(|| view! { <Controls id=id.clone() state awaiting may_roll_back/> }.into_any())
        }}
        <h2>"Steps"</h2>
        {move || run.with(|r| view! {
            <ol class="group-steps" data-testid="group-steps">
                {r.steps.iter().enumerate().map(|(i, s)| view! { <Step n=i + 1 step=s.clone()/> }).collect_view()}
            </ol>
        }.into_any())}
        <h2>"Members"</h2>
        {move || run.with(|r| view! {
            <table class="table" data-testid="members">
                <thead><tr>
                    <th scope="col">"Member"</th>
                    <th scope="col">"Where"</th>
                    <th scope="col">"What the console knows"</th>
                </tr></thead>
                <tbody>
                    {r.members.iter().map(|m| {
                        let place = m.place.as_str();
                        view! {
                            <tr data-member=m.app.clone() data-place=place>
                                <td>{m.app.clone()}</td>
                                <td><span class=format!("status status-place-{place}")>{match m.place {
                                    MemberPlace::Source => "on the source",
                                    MemberPlace::Moving => "moving",
                                    MemberPlace::Target => "on the target",
                                }}</span></td>
                                <td>{m.says.clone()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }.into_any())}
        {move || run.with(|r| (!r.approvals.is_empty()).then(|| view! {
            <h2>"Approvals"</h2>
            <ul data-testid="approvals">
                {r.approvals.iter().map(|a| {
                    let step = r.steps.get(a.step as usize).map(|s| s.member.clone()).unwrap_or_default();
                    view! {
                        <li>
                            <strong>{if a.approved { "approved" } else { "refused" }}</strong>
                            {format!(" by {} (step {}, {}, {} check {}): {} ", a.decided_by, a.step + 1, step, a.stage, a.item + 1, a.reason)}
                            <When at=a.decided_at.clone()/>
                        </li>
                    }
                }).collect_view()}
            </ul>
        }.into_any()))}
    }
}

/// The operator's buttons, each saying what it will do.
#[component]
fn Controls(
    id: String,
    state: RunState,
    awaiting: Option<String>,
    may_roll_back: bool,
) -> impl IntoView {
    let url = |verb: &str| format!("/groups/runs/{id}/{verb}");
    let ended = state.ended();
    view! {
        <section class="card controls" aria-label="Controls" data-testid="run-controls">
            {awaiting.map(|prompt| view! {
                <form method="post" action=url("approve") class="approval" data-testid="approve-form">
                    <h2>"Waiting for your approval"</h2>
                    <p data-testid="approval-prompt">{prompt}</p>
                    <label for="approve-reason">"Why (kept with your name)"</label>
                    <input id="approve-reason" name="reason" type="text" required maxlength="1000"/>
                    <div class="actions">
                        <button type="submit" name="approve" value="1" class="primary">"Approve: the run goes on"</button>
                        <button type="submit" name="approve" value="0" class="danger">"Refuse: the check fails"</button>
                    </div>
                </form>
            })}
            {(state == RunState::Running).then(|| view! {
                <form method="post" action=url("pause")>
                    <button type="submit">"Pause: what is in flight finishes, nothing new starts"</button>
                </form>
            })}
            {(state == RunState::Paused).then(|| view! {
                <form method="post" action=url("resume")>
                    <button type="submit" class="primary">"Resume: start again at the check or step where it stopped"</button>
                </form>
            })}
            {(!ended).then(|| view! {
                <details class="abort">
                    <summary>"Abort this run…"</summary>
                    <form method="post" action=url("abort")>
                        <p>"The step in flight is cancelled as a cancel does (one past its copy finishes); nothing new starts. Each member stays where it is."</p>
                        <label for="abort-reason">"Why (optional)"</label>
                        <input id="abort-reason" name="reason" type="text" maxlength="1000"/>
                        <button type="submit" class="danger">"Abort the run"</button>
                    </form>
                </details>
            })}
            {may_roll_back.then(|| view! {
                <details class="rollback" data-testid="rollback-run">
                    <summary>"Roll this run back…"</summary>
                    <form method="post" action=url("rollback")>
                        <p>"The members it moved return to their kept sources, the last moved first, each by a rollback operation that copies back only what changed on the target; each step's checks after are applied again once its member is back. The run ends rolled back."</p>
                        <label for="rollback-reason">"Why (kept with your name)"</label>
                        <input id="rollback-reason" name="reason" type="text" required maxlength="1000"/>
                        <button type="submit" class="danger">"Roll the run back"</button>
                    </form>
                </details>
            })}
            {(ended && !may_roll_back).then(|| view! { <p class="muted">"This run has ended: nothing more can be done with it."</p> })}
            <p><a href=format!("/groups/runs/{id}")>"Refresh"</a></p>
        </section>
    }
}

#[component]
fn Step(n: usize, step: StepView) -> impl IntoView {
    let state = step.state.as_str();
    let current = step.state == StepState::Current;
    view! {
        <li class=format!("step step-{state}") data-step=n data-state=state aria-current=current.then_some("step")>
            <h3>{format!("{n}. {} → {}{}", step.member, step.target_app, if step.warm { " (warm)" } else { "" })}
                " "<span class=format!("status status-step-{state}")>{state}</span></h3>
            <Items label="Before" items=step.before.clone()/>
            <Items label="Actions" items=step.actions.clone()/>
            {(!step.operations.is_empty()).then(|| view! {
                <p>"Operations: "
                    {step.operations.iter().map(|o| {
                        let outcome = o.outcome.map_or("running", |o| o.as_str());
                        view! {
                            {o.action.as_str()}" "
                            <a href=format!("/operations/{}", o.id)>{o.id.clone()}</a>" "
                            <span class=format!("status status-op-{outcome}")>{outcome}</span>" "
                        }
                    }).collect_view()}
                </p>
            })}
            <Items label="After" items=step.after.clone()/>
            {(!step.rechecks.is_empty()).then(|| view! {
                <Items label="Again, once rolled back" items=step.rechecks.clone()/>
            })}
        </li>
    }
}

#[component]
fn Items(label: &'static str, items: Vec<ItemView>) -> impl IntoView {
    (!items.is_empty()).then(|| view! {
        <div class="items">
            <h4>{label}</h4>
            <ul>
                {items.into_iter().map(|i| {
                    let state = i.state.as_str();
                    let open = i.state == ItemState::Current;
                    let count = i.attempts.len();
                    view! {
                        <li class=format!("item item-{state}") data-item=i.name.clone() data-state=state>
                            {format!("{} ({}", i.name, i.kind)}
                            {(i.passes > 1).then(|| format!(", {} passes in a row", i.passes))}
                            {format!(", on failure: {}) ", i.on_failure)}
                            <span class=format!("status status-item-{state}")>{state}</span>
                            {(count > 0).then(|| view! {
                                <details open=open>
                                    <summary>{format!("{count} attempt{}", if count == 1 { "" } else { "s" })}</summary>
                                    <Attempts attempts=i.attempts.clone()/>
                                </details>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </div>
    })
}

#[component]
fn Attempts(attempts: Vec<AttemptView>) -> impl IntoView {
    view! {
        <table class="table attempts">
            <thead><tr>
                <th scope="col">"Round"</th>
                <th scope="col">"When"</th>
                <th scope="col">"Outcome"</th>
                <th scope="col">"Status"</th>
                <th scope="col">"What it found"</th>
                <th scope="col">"ms"</th>
            </tr></thead>
            <tbody>
                {attempts.into_iter().rev().take(50).map(|a| {
                    let outcome = a.outcome.as_str();
                    view! {
                        <tr data-outcome=outcome>
                            <td>{a.round}</td>
                            <td><When at=a.at.clone()/></td>
                            <td><span class=format!("status status-attempt-{outcome}")>{outcome}</span></td>
                            <td>{a.status.map(|s| s.to_string()).unwrap_or_default()}</td>
                            <td>{a.note.clone()}{(!a.excerpt.is_empty()).then(|| view! { <code>{a.excerpt.clone()}</code> })}</td>
                            <td>{a.ms}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// Once hydrated: the run's stream (SSE), each `run` event the run as it
/// is now, until it ends. The browser reconnects by itself after a drop.
#[cfg(feature = "hydrate")]
fn follow(id: String, run: RwSignal<GroupRunView>) {
    use send_wrapper::SendWrapper;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{EventSource, MessageEvent};
    let ended = |r: &GroupRunView| r.state.ended();
    if run.with_untracked(ended) {
        return;
    }
    let Ok(source) = EventSource::new(&format!("/api/v1/groups/runs/{id}")) else {
        return;
    };
    let closer = source.clone();
    let on_run = Closure::<dyn FnMut(MessageEvent)>::new(move |m: MessageEvent| {
        let Some(text) = m.data().as_string() else {
            return;
        };
        if let Ok(r) = serde_json::from_str::<GroupRunView>(&text) {
            let done = ended(&r);
            run.set(r);
            if done {
                closer.close();
            }
        }
    });
    let _ = source.add_event_listener_with_callback("run", on_run.as_ref().unchecked_ref());
    // The closure lives as long as the page; the stream closes with it.
    on_run.forget();
    let source = SendWrapper::new(source);
    on_cleanup(move || source.close());
}
