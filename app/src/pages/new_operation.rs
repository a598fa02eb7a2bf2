//! Starting an operation in two steps: the form (checked as the operator
//! types once hydrated, and on submit), then the pre-flight preview — the
//! controller commands in order, the volumes and bytes, an estimate —
//! which the operator confirms. Both steps are plain GET/POST forms, so
//! they work without JavaScript.

use super::error_text;
use super::layout::Me;
use crate::backend::{check_target, console_settings, list_grids, preview_operation};
use crate::model::{
    Action, ConsoleInfo, Cutover, FieldError, GridView, NoticeKind, OperationRequest, PlanView,
    Role, check_name, human_bytes, human_duration,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use operation_model::{DEFAULT_STOP_TIMEOUT_SECS, MAX_KEEP_SOURCE_HOURS, MAX_STOP_TIMEOUT_SECS};

/// The form's fields, as the query carries them between the steps.
#[derive(Clone, Debug, Default, PartialEq)]
struct Fields {
    source_grid: String,
    source_app: String,
    target_grid: String,
    target_app: String,
    action: String,
    /// "1" when the existing target is updated.
    update_target: String,
    /// "1" for warm (pre-copy while the source runs).
    warm: String,
    /// auto, manual or scheduled (warm).
    cutover: String,
    /// `datetime-local` (UTC) for a scheduled cutover.
    cutover_at: String,
    /// Seconds the source may take to stop by itself; empty: the default.
    stop_timeout_secs: String,
    /// Migrate: "1" keeps the source, "0" destroys it; empty: the console's default.
    keep_source: String,
    /// Hours a kept source stays; empty: the console's default.
    keep_source_hours: String,
}

impl Fields {
    fn updates(&self) -> bool {
        !self.update_target.is_empty()
    }

    fn warm(&self) -> bool {
        self.warm == "1"
    }

    fn cutover(&self) -> Option<Cutover> {
        self.cutover.parse().ok()
    }

    /// Whether the source is kept: as asked, else `default`.
    fn keeps(&self, default: bool) -> bool {
        match self.keep_source.as_str() {
            "1" => true,
            "0" => false,
            _ => default,
        }
    }

    /// The keep choice as the request carries it (`None`: the console's).
    fn keep_source(&self) -> Option<bool> {
        match self.keep_source.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    /// The hours asked for: `Ok(None)` when empty (or the source is not
    /// kept); a field error when not a whole number.
    fn keep_hours(&self) -> Result<Option<u64>, FieldError> {
        match self.keep_source_hours.trim() {
            "" => Ok(None),
            _ if self.keep_source == "0" => Ok(None),
            t => t.parse().map(Some).map_err(|_| FieldError {
                field: Some("keep_source_hours".into()),
                message: format!(
                    "keep_source_hours: {t:?} is not a whole number of hours; write 1 to {MAX_KEEP_SOURCE_HOURS}, or leave it empty for the console's"
                ),
            }),
        }
    }

    /// The stop timeout asked for: `Ok(None)` when empty; a field error
    /// when it is not a whole number (its range is the console's to judge).
    fn stop_timeout(&self) -> Result<Option<u64>, FieldError> {
        match self.stop_timeout_secs.trim() {
            "" => Ok(None),
            t => t.parse().map(Some).map_err(|_| FieldError {
                field: Some("stop_timeout_secs".into()),
                message: format!(
                    "stop_timeout_secs: {t:?} is not a whole number of seconds; write 1 to {MAX_STOP_TIMEOUT_SECS}, or leave it empty for {DEFAULT_STOP_TIMEOUT_SECS}"
                ),
            }),
        }
    }

    fn query(&self) -> String {
        fn enc(s: &str) -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        }
        format!(
            "source_grid={}&source_app={}&target_grid={}&target_app={}&action={}{}{}{}&keep_source={}&keep_source_hours={}",
            enc(&self.source_grid),
            enc(&self.source_app),
            enc(&self.target_grid),
            enc(&self.target_app),
            enc(&self.action),
            if self.updates() {
                "&update_target=1"
            } else {
                ""
            },
            if self.stop_timeout_secs.is_empty() {
                String::new()
            } else {
                format!("&stop_timeout_secs={}", enc(&self.stop_timeout_secs))
            },
            if self.warm() {
                format!(
                    "&warm=1&cutover={}&cutover_at={}",
                    enc(&self.cutover),
                    enc(&self.cutover_at)
                )
            } else {
                String::new()
            },
            enc(&self.keep_source),
            enc(&self.keep_source_hours)
        )
    }
}

fn parse_action(s: &str) -> Option<Action> {
    s.parse().ok()
}

#[component]
pub fn NewOperationPage() -> impl IntoView {
    let query = use_query_map();
    let me = expect_context::<Me>();
    let grids = Resource::new(|| (), |_| list_grids());
    let info = Resource::new(|| (), |_| console_settings());
    let fields = move || {
        let q = query.read();
        let get = |k: &str| q.get(k).unwrap_or_default();
        Fields {
            source_grid: get("source_grid"),
            source_app: get("source_app"),
            target_grid: get("target_grid"),
            target_app: get("target_app"),
            action: get("action"),
            update_target: get("update_target"),
            warm: get("warm"),
            cutover: get("cutover"),
            cutover_at: get("cutover_at"),
            stop_timeout_secs: get("stop_timeout_secs"),
            keep_source: get("keep_source"),
            keep_source_hours: get("keep_source_hours"),
        }
    };
    let review = move || query.read().get("review").is_some().then(fields);
    let plan = Resource::new(review, |review| async move {
        let Some(f) = review else { return Ok(None) };
        let Some(action) = parse_action(&f.action) else {
            return Ok(Some(Err(FieldError {
                field: Some("action".into()),
                message: "choose migrate or snapshot".into(),
            })));
        };
        let stop_timeout_secs = match f.stop_timeout() {
            Ok(t) => t,
            Err(e) => return Ok(Some(Err(e))),
        };
        let keep_source_hours = match f.keep_hours() {
            Ok(h) => h,
            Err(e) => return Ok(Some(Err(e))),
        };
        let keep_source = f.keep_source().filter(|_| action == Action::Migrate);
        let (update, warm, cutover) = (f.updates(), f.warm(), f.cutover());
        // The time only with a scheduled cutover (hidden otherwise, the
        // field may still hold what was typed before).
        let at = (warm && cutover == Some(Cutover::Scheduled) && !f.cutover_at.is_empty())
            .then_some(f.cutover_at);
        preview_operation(OperationRequest {
            source_grid: f.source_grid,
            source_app: f.source_app,
            target_grid: f.target_grid,
            target_app: f.target_app,
            action,
            update_target: update,
            warm,
            cutover: cutover.filter(|_| warm),
            cutover_at: at,
            stop_timeout_secs,
            keep_source,
            keep_source_hours: keep_source_hours.filter(|_| action == Action::Migrate),
        })
        .await
        .map(Some)
    });
    let notice = super::use_notice();

    view! {
        <Title text="New operation"/>
        <h1>"New operation"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let user = match me.await {
                    Ok(u) => u,
                    Err(e) => return view! { <p class="alert" role="alert">{error_text(&e)}</p> }.into_any(),
                };
                if !user.role.allows(Role::Operator) {
                    return view! {
                        <p class="alert" role="alert" data-testid="form-error">
                            {format!("You are signed in as {} ({}): viewers watch operations but cannot start them.", user.name, user.role)}
                        </p>
                    }.into_any();
                }
                let grids: Vec<GridView> = grids.await.unwrap_or_default();
                let info = info.await.ok();
                // What the form's last post was refused for.
                let submitted_error = notice.await.filter(|n| n.kind == NoticeKind::Refused).map(|n| FieldError {
                    field: n.field,
                    message: n.message,
                });
                let actions: Vec<Action> = [Action::Migrate, Action::Snapshot]
                    .into_iter()
                    .filter(|a| info.as_ref().is_none_or(|i| a.allowed_by(i.mode)))
                    .collect();
                let mut defaults = fields();
                if defaults.source_grid.is_empty() {
                    defaults.source_grid = info.as_ref().and_then(|i| i.current_grid.clone()).unwrap_or_default();
                }
                if defaults.source_app.is_empty() {
                    defaults.source_app = info.as_ref().and_then(|i| i.current_app.clone()).unwrap_or_default();
                }
                // The console's defaults for keeping a migrate's source.
                let keep = info.as_ref().map_or((false, operation_model::DEFAULT_KEEP_SOURCE_HOURS), |i| (i.keep_source, i.keep_source_hours));
                let warm_rule = info.as_ref().map(ConsoleInfo::warm_limit_rule);
                match plan.await {
                    Ok(Some(Ok(p))) => view! { <Preview plan=p fields=defaults/> }.into_any(),
                    Ok(Some(Err(e))) => view! { <OpForm grids actions defaults keep warm_rule=warm_rule.clone() error=Some(e)/> }.into_any(),
                    Ok(None) => view! { <OpForm grids actions defaults keep warm_rule=warm_rule.clone() error=submitted_error/> }.into_any(),
                    Err(e) => view! {
                        <OpForm grids actions defaults keep warm_rule=warm_rule.clone() error=Some(FieldError { field: None, message: error_text(&e) })/>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn OpForm(
    /// The inventory's grids with their apps, as last checked.
    grids: Vec<GridView>,
    actions: Vec<Action>,
    defaults: Fields,
    /// The console's `keep_source` and `keep_source_hours`.
    keep: (bool, u64),
    /// What warm does at its pass limit, in the console's settings' terms.
    warm_rule: Option<String>,
    error: Option<FieldError>,
) -> impl IntoView {
    let keeps = defaults.keeps(keep.0);
    let names: Vec<String> = grids.iter().map(|g| g.name.clone()).collect();
    // The select shows the first grid when none (or an unknown one) is
    // named: the apps offered and the target's default follow what it shows.
    let mut defaults = defaults;
    if !names.contains(&defaults.source_grid) {
        defaults.source_grid = names.first().cloned().unwrap_or_default();
    }
    let source_grid = RwSignal::new(defaults.source_grid.clone());
    let source_app = RwSignal::new(defaults.source_app.clone());
    // The source grid's apps, offered for the source app.
    let apps = StoredValue::new(grids);
    let source_apps = move || {
        apps.with_value(|gs| {
            gs.iter()
                .find(|g| g.name == source_grid.get())
                .map(|g| {
                    g.apps
                        .iter()
                        .filter(|a| !operation_model::name::is_migctls_own(&a.name))
                        .map(|a| (a.name.clone(), a.state.clone()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let apps_hint = move || {
        let apps = source_apps();
        let grid = source_grid.get();
        if apps.is_empty() {
            format!("{grid} lists no apps (as last checked).")
        } else {
            let listed: Vec<String> = apps.iter().map(|(n, st)| format!("{n} ({st})")).collect();
            format!("On {grid}: {}.", listed.join(", "))
        }
    };
    let target_grid = RwSignal::new(if defaults.target_grid.is_empty() {
        names
            .iter()
            .find(|n| **n != defaults.source_grid)
            .cloned()
            .unwrap_or_default()
    } else {
        defaults.target_grid.clone()
    });
    // The target's name follows the source app's until the operator types one.
    let named_target = RwSignal::new(!defaults.target_app.is_empty());
    let target_app = RwSignal::new(if defaults.target_app.is_empty() {
        defaults.source_app.clone()
    } else {
        defaults.target_app.clone()
    });
    let update = RwSignal::new(defaults.updates());
    // Typing replaces the submitted answer for that field with a live one.
    let typed_source = RwSignal::new(false);
    let typed_target = RwSignal::new(false);
    let live_source = RwSignal::new(None::<String>);
    let live_target = RwSignal::new(None::<String>);
    let check_source = move || {
        typed_source.set(true);
        live_source.set(check_name(&source_app.get_untracked()).err());
    };
    let check_target_now = move || {
        typed_target.set(true);
        let (grid, app, updating) = (
            target_grid.get_untracked(),
            target_app.get_untracked(),
            update.get_untracked(),
        );
        if let Err(e) = check_name(&app) {
            live_target.set(Some(e));
            return;
        }
        live_target.set(None);
        leptos::task::spawn_local(async move {
            let verdict = check_target(grid.clone(), app.clone(), updating).await;
            let current = target_grid.get_untracked() == grid && target_app.get_untracked() == app;
            if let (Ok(v), true) = (verdict, current) {
                live_target.set(v);
            }
        });
    };
    let submitted = StoredValue::new(error);
    let submitted_for = move |field: &'static str| {
        submitted.with_value(|e| {
            e.as_ref()
                .filter(|e| e.field.as_deref() == Some(field))
                .map(|e| e.message.clone())
        })
    };
    let general = submitted.with_value(|e| {
        e.as_ref()
            .filter(|e| e.field.is_none())
            .map(|e| e.message.clone())
    });
    let source_error = move || {
        if typed_source.get() {
            live_source.get()
        } else {
            submitted_for("source_app")
        }
    };
    let target_error = move || {
        if typed_target.get() {
            live_target.get()
        } else {
            submitted_for("target_app")
        }
    };
    let options = move |selected: String| {
        names
            .iter()
            .map(|n| {
                let sel = *n == selected;
                view! { <option value=n.clone() selected=sel>{n.clone()}</option> }
            })
            .collect_view()
    };
    let chosen = parse_action(&defaults.action)
        .filter(|a| actions.contains(a))
        .or(actions.first().copied());
    view! {
        {general.map(|e| view! { <p class="alert" role="alert" data-testid="form-error">{e}</p> })}
        <form method="get" action="/operations/new" class="card op-form" data-testid="op-form">
            <input type="hidden" name="review" value="1"/>
            <label for="source_grid">"Source grid"</label>
            <select id="source_grid" name="source_grid"
                on:change=move |ev| source_grid.set(event_target_value(&ev))>{options.clone()(defaults.source_grid.clone())}</select>
            {submitted_for("source_grid").map(|e| view! { <p class="field-error" data-testid="error-source_grid">{e}</p> })}
            <label for="source_app">"Source app"</label>
            <input id="source_app" name="source_app" type="text" required autocomplete="off"
                list="source_app-choices" aria-describedby="source_app-apps source_app-error"
                value=defaults.source_app.clone()
                prop:value=move || source_app.get()
                on:input=move |ev| {
                    let app = event_target_value(&ev);
                    if !named_target.get_untracked() {
                        target_app.set(app.clone());
                    }
                    source_app.set(app);
                    check_source();
                    if !named_target.get_untracked() {
                        check_target_now();
                    }
                }/>
            <datalist id="source_app-choices">
                {move || source_apps().into_iter().map(|(n, _)| view! { <option value=n></option> }).collect_view()}
            </datalist>
            <p class="hint" id="source_app-apps" data-testid="source-apps">{apps_hint}</p>
            <p class="field-error" id="source_app-error" data-testid="error-source_app" aria-live="polite"
                hidden=move || source_error().is_none()>{source_error}</p>
            <label for="target_grid">"Target grid"</label>
            <select id="target_grid" name="target_grid"
                on:change=move |ev| { target_grid.set(event_target_value(&ev)); check_target_now(); }>
                {options(target_grid.get_untracked())}
            </select>
            {submitted_for("target_grid").map(|e| view! { <p class="field-error" data-testid="error-target_grid">{e}</p> })}
            <label for="target_app">"Target app name"</label>
            <input id="target_app" name="target_app" type="text" required autocomplete="off"
                aria-describedby="target_app-hint target_app-error"
                value=target_app.get_untracked()
                prop:value=move || target_app.get()
                on:input=move |ev| { named_target.set(true); target_app.set(event_target_value(&ev)); check_target_now(); }/>
            <p class="hint" id="target_app-hint">"A letter, then up to 63 letters, digits, _ or -; not yet used on the target grid (unless updated)."</p>
            <p class="field-error" id="target_app-error" data-testid="error-target_app" aria-live="polite"
                hidden=move || target_error().is_none()>{target_error}</p>
            <label class="choice">
                <input type="checkbox" name="update_target" value="1" data-testid="update-target"
                    aria-describedby="update_target-hint"
                    prop:checked=move || update.get()
                    on:change=move |ev| { update.set(event_target_checked(&ev)); check_target_now(); }/>
                " Update the existing target"
                <span class="hint" id="update_target-hint">
                    " — it exists, stopped, with the source's volumes (e.g. an earlier snapshot): only the blocks that differ are copied, and it is never destroyed"
                </span>
            </label>
            <fieldset>
                <legend>"Action"</legend>
                {actions.iter().map(|a| {
                    let checked = Some(*a) == chosen;
                    let hint = match a {
                        Action::Migrate => "move the app: the source is destroyed once the target runs verified",
                        Action::Rollback => "move a migrated app back into its kept source",
                        Action::Snapshot => "copy the app: the source runs again, the copy stays stopped",
                    };
                    view! {
                        <label class="choice">
                            <input type="radio" name="action" id=format!("action-{a}") value=a.as_str() checked=checked/>
                            " " {a.as_str()} <span class="hint">" — " {hint}</span>
                        </label>
                    }
                }).collect_view()}
                {submitted_for("action").map(|e| view! { <p class="field-error" data-testid="error-action">{e}</p> })}
            </fieldset>
            <fieldset>
                <legend>"Copy"</legend>
                <label class="choice">
                    <input type="radio" name="warm" value="0" checked=!defaults.warm() data-testid="copy-cold"/>
                    " cold" <span class="hint">" — MIG's way: the source stops first and stays down for the whole copy"</span>
                </label>
                <label class="choice">
                    <input type="radio" name="warm" value="1" checked=defaults.warm() data-testid="copy-warm"
                        aria-describedby="warm-hint"/>
                    " warm" <span class="hint" id="warm-hint">" — the source keeps running while passes copy what it changes; it stops only for the final pass, so it is down for seconds whatever its size (needs a grid that reads running apps, dialect 4; otherwise it copies cold and says why)"</span>
                </label>
                <div class="warm-only">
                {warm_rule.map(|r| view! { <p class="hint" data-testid="warm-limit">{r}</p> })}
                <label for="cutover">"Cut over"</label>
                <select id="cutover" name="cutover" data-testid="cutover-choice">
                    {[(Cutover::Auto, "automatically, once a pass finds little changed"),
                      (Cutover::Manual, "when I press \"Cut over now\" on the monitor"),
                      (Cutover::Scheduled, "at a time (UTC)")]
                        .into_iter()
                        .map(|(c, label)| {
                            let sel = defaults.cutover() == Some(c);
                            view! { <option value=c.as_str() selected=sel>{label}</option> }
                        })
                        .collect_view()}
                </select>
                {submitted_for("cutover").map(|e| view! { <p class="field-error" data-testid="error-cutover">{e}</p> })}
                <div class="scheduled-only">
                <label for="cutover_at">"Scheduled cutover, UTC"</label>
                <input id="cutover_at" name="cutover_at" type="datetime-local" value=defaults.cutover_at.clone()
                    aria-describedby="cutover_at-error"/>
                <p class="field-error" id="cutover_at-error" data-testid="error-cutover_at"
                    hidden=submitted_for("cutover_at").is_none()>{submitted_for("cutover_at")}</p>
                </div>
                </div>
            </fieldset>
            <fieldset class="migrate-only">
                <legend>"After a migrate"</legend>
                <label class="choice">
                    <input type="radio" name="keep_source" value="0" checked=!keeps data-testid="keep-source-no"/>
                    " destroy the source" <span class="hint">" — once the target runs verified (MIG's way)"</span>
                </label>
                <label class="choice">
                    <input type="radio" name="keep_source" value="1" checked=keeps data-testid="keep-source-yes"
                        aria-describedby="keep_source-hint"/>
                    " keep the source, stopped" <span class="hint" id="keep_source-hint">" — so that the move can be rolled back, copying only what the target changed; an operator releases it, or its deadline does"</span>
                </label>
                <label for="keep_source_hours">"Keep it for, hours"</label>
                <input id="keep_source_hours" name="keep_source_hours" type="number" min="1" max=MAX_KEEP_SOURCE_HOURS.to_string()
                    inputmode="numeric" placeholder=keep.1.to_string()
                    value=defaults.keep_source_hours.clone() data-testid="keep-source-hours"
                    aria-describedby="keep_source_hours-error"/>
                <p class="field-error" id="keep_source_hours-error" data-testid="error-keep_source_hours"
                    hidden=submitted_for("keep_source_hours").is_none()>{submitted_for("keep_source_hours")}</p>
                {submitted_for("keep_source").map(|e| view! { <p class="field-error" data-testid="error-keep_source">{e}</p> })}
            </fieldset>
            <label for="stop_timeout_secs">"Stop timeout, seconds"</label>
            <input id="stop_timeout_secs" name="stop_timeout_secs" type="number" min="1" max=MAX_STOP_TIMEOUT_SECS.to_string()
                inputmode="numeric" placeholder=DEFAULT_STOP_TIMEOUT_SECS.to_string()
                value=defaults.stop_timeout_secs.clone() data-testid="stop-timeout"
                aria-describedby="stop_timeout_secs-hint stop_timeout_secs-error"/>
            <p class="hint" id="stop_timeout_secs-hint">{format!(
                "How long the source may take to stop by itself (its process exits; a virtual machine shuts down on its ACPI power button) before it is forced off, losing what it had not written. Empty: {DEFAULT_STOP_TIMEOUT_SECS} s."
            )}</p>
            <p class="field-error" id="stop_timeout_secs-error" data-testid="error-stop_timeout_secs"
                hidden=submitted_for("stop_timeout_secs").is_none()>{submitted_for("stop_timeout_secs")}</p>
            <button type="submit" class="primary">"Review the plan"</button>
        </form>
    }
}

/// A plan's controller commands in order: who sends each, to which grid, and why.
#[component]
pub(super) fn PlanSteps(steps: Vec<crate::model::PlanStep>) -> impl IntoView {
    view! {
        <ol class="steps" data-testid="plan-steps">
            {steps.into_iter().map(|s| view! {
                <li>
                    <span class=format!("by by-{}", s.by)>{s.by.clone()}</span>
                    " on " <strong>{s.grid}</strong> ": "
                    <code>{s.command}</code>
                    <span class="hint">" — " {s.why}</span>
                </li>
            }).collect_view()}
        </ol>
    }
}

#[component]
fn Preview(plan: PlanView, fields: Fields) -> impl IntoView {
    let change = format!("/operations/new?{}", fields.query());
    let verb = plan.action.as_str();
    let stop = match plan.stop_timeout_secs {
        Some(secs) => format!(
            "the source gets {secs} s to stop by itself (a process exits, a virtual machine shuts down on its ACPI power button); then it is forced off, losing what it had not written"
        ),
        None => format!("{} is not running: nothing is stopped", plan.source_app),
    };
    let warm = plan
        .copy_mode
        .as_deref()
        .is_some_and(|m| m.starts_with("warm"));
    let downtime = match (plan.action, warm) {
        (_, true) => {
            "Only the final pass: the source stops once the passes have copied almost everything, and runs again (or the target starts) after the last changes are copied and verified."
        }
        (Action::Migrate | Action::Rollback, false) => {
            "The source app is stopped from the first step until the target runs."
        }
        (Action::Snapshot, false) => {
            "The source app is stopped while its volumes are copied, then started again."
        }
    };
    view! {
        <section class="card preview" data-testid="preflight" aria-label="Pre-flight">
            <h2><span class="status status-op-done">"pre-flight passed"</span></h2>
            <p class="big">{format!("{verb} {}/{} → {}/{}", plan.source_grid, plan.source_app, plan.target_grid, plan.target_app)}</p>
            <dl class="facts">
                <dt>"Volumes"</dt>
                <dd>{plan.volumes.iter().map(|v| format!("{} ({})", v.name, human_bytes(v.size))).collect::<Vec<_>>().join(", ")}</dd>
                <dt>"To copy"</dt>
                <dd data-testid="bytes">{match plan.bytes_to_move {
                    Some(n) => format!(
                        "{} of {} — found by hashing the source now: all-zero blocks{} are skipped",
                        human_bytes(n),
                        human_bytes(plan.bytes_total),
                        if fields.updates() { " and blocks the target already holds" } else { "" }
                    ),
                    None => format!("at most {} — all-zero blocks are skipped", human_bytes(plan.bytes_total)),
                }}</dd>
                <dt>"Room on "{plan.target_grid.clone()}</dt>
                <dd>{format!("{} free", human_bytes(plan.target_free_bytes))}</dd>
                <dt>"Estimate"</dt>
                <dd data-testid="estimate">{format!(
                    "about {} at {}/s ({})",
                    human_duration(plan.estimate_secs),
                    human_bytes(plan.rate_bytes_per_sec),
                    plan.rate_basis
                )}</dd>
                {plan.copy_mode.clone().map(|m| view! { <dt>"Copy"</dt><dd data-testid="copy-mode">{m}</dd> })}
                <dt>"Downtime"</dt>
                <dd>{downtime}</dd>
                <dt>"Stop"</dt>
                <dd data-testid="stop-plan">{stop}</dd>
            </dl>
            <h3>"What will happen, in order"</h3>
            <PlanSteps steps=plan.steps/>
            <form method="post" action="/operations/new" class="confirm">
                <input type="hidden" name="source_grid" value=fields.source_grid.clone()/>
                <input type="hidden" name="source_app" value=fields.source_app.clone()/>
                <input type="hidden" name="target_grid" value=fields.target_grid.clone()/>
                <input type="hidden" name="target_app" value=fields.target_app.clone()/>
                <input type="hidden" name="action" value=fields.action.clone()/>
                <input type="hidden" name="update_target" value=fields.update_target.clone()/>
                <input type="hidden" name="warm" value=fields.warm.clone()/>
                <input type="hidden" name="cutover" value=fields.cutover.clone()/>
                <input type="hidden" name="cutover_at" value=fields.cutover_at.clone()/>
                <input type="hidden" name="stop_timeout_secs" value=fields.stop_timeout_secs.clone()/>
                <input type="hidden" name="keep_source" value=fields.keep_source.clone()/>
                <input type="hidden" name="keep_source_hours" value=fields.keep_source_hours.clone()/>
                <button type="submit" class="primary">{format!("Start the {}", plan.action.noun())}</button>
                " "
                <a class="button" href=change>"Change"</a>
            </form>
        </section>
    }
}
