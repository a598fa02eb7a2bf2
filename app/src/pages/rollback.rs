//! Rolling a migrate back into the source it kept, in two steps like a new
//! operation: this page's preview — how much the migrate's target changed
//! since the cutover, and the commands in order — then the confirm form,
//! a plain POST (works without JavaScript).

use super::error_text;
use crate::backend::preview_rollback;
use crate::model::{NoticeKind, PlanView, human_bytes};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn RollbackPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    // As the form's default: the migrate's target is destroyed afterwards.
    let plan = Resource::new(id, |id| preview_rollback(id, Some(false)));
    let notice = super::use_notice();
    view! {
        <Title text="Roll back"/>
        <h1>"Roll back"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let refused = notice.await.filter(|n| n.kind == NoticeKind::Refused).map(|n| view! {
                    <p class="alert" role="alert" data-testid="form-error">{n.message}</p>
                });
                let back = format!("/operations/{}", id());
                let plan = match plan.await {
                    Ok(p) => p,
                    Err(e) => Err(error_text(&e)),
                };
                match plan {
                    Ok(p) => view! { {refused} <RollbackPreview id=id() plan=p/> }.into_any(),
                    Err(why) => {
                        view! {
                            {refused}
                            <p class="alert" role="alert" data-testid="rollback-refused">{why}</p>
                            <p><a href=back>"Back to the operation"</a></p>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn RollbackPreview(id: String, plan: PlanView) -> impl IntoView {
    let from = format!("{}/{}", plan.source_grid, plan.source_app);
    let into = format!("{}/{}", plan.target_grid, plan.target_app);
    let since = plan
        .changed_since
        .clone()
        .unwrap_or_else(|| "the cutover".to_owned());
    let changed = match plan.bytes_to_move {
        Some(n) => {
            let pct = if plan.bytes_total > 0 {
                n as f64 * 100.0 / plan.bytes_total as f64
            } else {
                0.0
            };
            format!(
                "{from} changed {} ({pct:.1} % of its {}) since {since}. Rolling back copies only that into {into}, verifies every block and starts it; starting {into} without them would lose those changes.",
                human_bytes(n),
                human_bytes(plan.bytes_total)
            )
        }
        None => format!(
            "{from} could not be compared with {into} within seconds: the rollback finds what changed since {since} as it copies (at most {}).",
            human_bytes(plan.bytes_total)
        ),
    };
    let stop = match plan.stop_timeout_secs {
        Some(secs) => format!(
            "{from} gets {secs} s to stop by itself, then it is forced off; it is down until {into} runs"
        ),
        None => format!("{from} is not running: nothing is stopped"),
    };
    view! {
        <section class="card preview" data-testid="rollback-preview" aria-label="Rollback pre-flight">
            <h2><span class="status status-op-done">"pre-flight passed"</span></h2>
            <p class="big">{format!("rollback {from} → {into}")}</p>
            <p data-testid="rollback-changed">{changed}</p>
            <p data-testid="stop-plan">{stop}</p>
            <h3>"What will happen, in order"</h3>
            <super::new_operation::PlanSteps steps=plan.steps/>
            <form method="post" action=format!("/operations/{id}/rollback") class="confirm">
                <fieldset>
                    <legend>{format!("Afterwards, {from}")}</legend>
                    <label class="choice">
                        <input type="radio" name="keep_target" value="0" checked=true data-testid="destroy-target"/>
                        " is destroyed" <span class="hint">" — once the rolled-back app runs verified"</span>
                    </label>
                    <label class="choice">
                        <input type="radio" name="keep_target" value="1" data-testid="keep-target"/>
                        " is kept, stopped" <span class="hint">" — until released or its deadline, so that this rollback can be undone too"</span>
                    </label>
                </fieldset>
                <button type="submit" class="primary">"Start the rollback"</button>
                " "
                <a class="button" href=format!("/operations/{id}")>"Back"</a>
            </form>
        </section>
    }
}
