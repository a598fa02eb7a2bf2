//! The lock page: the lock's fields, its age, the evidence read live from
//! the controllers, whether it looks stale and why, and (admins) the
//! override form that asks for the operation id and a reason.

use super::When;
use super::layout::Me;
use super::{NoticeBanner, error_text, use_notice};
use crate::backend::lock_evidence;
use crate::model::{LockDetail, Notice, Role, human_duration};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn LockPage() -> impl IntoView {
    let notice = use_notice();
    let me = expect_context::<Me>();
    let detail = Resource::new(|| (), |_| lock_evidence());
    view! {
        <Title text="Lock"/>
        <h1>"Lock"</h1>
        <NoticeBanner notice testid="lock"/>
        <Suspense fallback=|| view! { <p class="muted">"Reading the lock and asking the controllers…"</p> }>
            {move || Suspend::new(async move {
                let is_admin = me.await.map(|u| u.role.allows(Role::Admin)).unwrap_or(false);
                let said = notice.await;
                match detail.await {
                    Ok(None) => view! {
                        <p class="big" data-testid="no-lock"><span class="status status-op-done">"free"</span>" No operation holds the lock."</p>
                    }.into_any(),
                    Ok(Some(d)) => view! { <Evidence d is_admin said/> }.into_any(),
                    Err(e) => view! { <p class="alert" role="alert">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Evidence(d: LockDetail, is_admin: bool, said: Option<Notice>) -> impl IntoView {
    let field_error = move |field: &str| {
        said.as_ref()
            .and_then(|n| n.about(field))
            .map(str::to_owned)
    };
    let confirm_word = d.op_id.clone().unwrap_or_else(|| "unreadable".into());
    let age = |s: Option<u64>| {
        s.map(|s| format!("{} ago", human_duration(s)))
            .unwrap_or_else(|| "unknown".into())
    };
    view! {
        <section class="card" aria-label="Verdict" data-testid="lock-verdict">
            {match d.stale.clone() {
                Some(why) => view! {
                    <p class="big"><span class="status status-stale" data-testid="lock-stale">"stale"</span></p>
                    <p data-testid="stale-reason">{why}</p>
                }.into_any(),
                None => view! {
                    <p class="big"><span class="status status-op-running">"active"</span></p>
                    <p>"This console is working on the operation and it is making progress. Overriding now would leave the helper working unsupervised."</p>
                }.into_any(),
            }}
            {d.op_id.clone().map(|id| view! { <p><a class="button" href=format!("/operations/{id}")>"View the monitor"</a></p> })}
        </section>
        <div class="cards">
            <section class="card" aria-label="Lock file">
                <h2>"Lock file"</h2>
                <dl class="facts" data-testid="lock-fields">
                    {d.fields.iter().map(|(k, v)| view! { <dt>{k.clone()}</dt><dd><code>{v.clone()}</code></dd> }).collect_view()}
                    <dt>"age"</dt><dd data-testid="lock-age">{age(d.age_secs)}</dd>
                </dl>
                {d.problem.clone().map(|p| view! { <p class="alert">{p}</p> })}
                {d.raw.clone().map(|r| view! { <h3>"Raw content"</h3><pre class="raw" data-testid="lock-raw">{r}</pre> })}
            </section>
            <section class="card" aria-label="Evidence">
                <h2>"Evidence"</h2>
                <dl class="facts" data-testid="lock-evidence">
                    <dt>"phase"</dt><dd>{d.phase.map_or("unknown", |p| p.label())}</dd>
                    <dt>"last word"</dt><dd>{d.reason.clone().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"last progress"</dt><dd data-testid="lock-progress">{match (d.last_progress.clone(), d.last_progress_at.clone()) {
                        (Some(p), Some(at)) => view! { {p}" at "<When at/> }.into_any(),
                        (Some(p), None) => p.into_any(),
                        (None, _) => "none".into_any(),
                    }}</dd>
                    <dt>"last event"</dt><dd>{age(d.last_event_age_secs)}</dd>
                    <dt>"worked on"</dt><dd>{if d.driven { "yes, by this console" } else { "no" }}</dd>
                    <dt>"source app"</dt><dd data-testid="ev-source">{d.source_state.clone()}</dd>
                    <dt>"helper"</dt><dd data-testid="ev-helper">{d.helper_state.clone()}</dd>
                    <dt>"target app"</dt><dd data-testid="ev-target">{d.target_state.clone()}</dd>
                </dl>
                <p class="hint">"States were read from the controllers just now."</p>
            </section>
        </div>
        {if is_admin {
            view! {
                <form method="post" action="/lock/override" class="card op-form danger-zone" data-testid="override-form">
                    <h2>"Override the lock"</h2>
                    <p>"The lock file is moved to " <code>"locks/"</code> " and the override is audited. Nothing on the grids changes unless you ask for the helper to be destroyed; look at both grids first."</p>
                    <label for="op_id">{format!("Type {confirm_word} to confirm")}</label>
                    <input id="op_id" name="op_id" type="text" required autocomplete="off" spellcheck="false"/>
                    {field_error("op_id").map(|e| view! { <p class="field-error" data-testid="error-op_id">{e}</p> })}
                    <label for="reason">"Reason"</label>
                    <textarea id="reason" name="reason" required rows="2"></textarea>
                    {field_error("reason").map(|e| view! { <p class="field-error" data-testid="error-reason">{e}</p> })}
                    <label class="choice"><input type="checkbox" name="destroy_helper" value="1"/>" Also destroy the helper on the target grid"</label>
                    <button type="submit" class="danger">"Override the lock"</button>
                </form>
            }.into_any()
        } else {
            view! { <p class="hint">"Only admins can override a lock."</p> }.into_any()
        }}
    }
}
