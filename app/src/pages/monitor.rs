//! The monitor of one operation. The server renders everything so far;
//! once hydrated, the page follows the operation's event stream (SSE) and
//! folds each event into the same [`MonitorState`] the server rendered
//! from. Without JavaScript the page refreshes itself every two seconds.

use super::When;
use super::error_text;
use super::layout::Me;
use crate::backend::get_operation;
use crate::model::{
    CancelCleanup, MonitorState, OperationDetail, OperationView, Outcome, Phase, Role, human_bytes,
    human_duration, progress_text,
};
use crate::summary::{Side, Summary, fate};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// Log sources the operator can filter by: (query value, label).
const SOURCES: [(&str, &str); 5] = [
    ("all", "All"),
    ("console", "Console"),
    ("helper", "Helper"),
    ("source", "Source app"),
    ("target", "Target app"),
];

/// What cancelling does in this phase, said before the operator confirms.
fn cleanup_text(op: &OperationView, phase: Phase) -> Option<String> {
    Some(match phase.cancel()? {
        CancelCleanup::RemoveHelper => format!(
            "The helper is removed and the lock released. The source app {}/{} has not been stopped and stays as it is.",
            op.source_grid, op.source_app
        ),
        CancelCleanup::RemoveCopy => format!(
            "The helper is stopped and the partial copy {}/{} removed. The source app {}/{} was never stopped: it keeps running.",
            op.target_grid, op.target_app, op.source_grid, op.source_app
        ),
        CancelCleanup::RestoreSource => format!(
            "The helper is stopped, the source app {}/{} is started again and the partial copy {}/{} is removed.",
            op.source_grid, op.source_app, op.target_grid, op.target_app
        ),
    })
}

#[component]
pub fn MonitorPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let detail = Resource::new(id, get_operation);
    let me = expect_context::<Me>();
    let notice = super::use_notice();
    view! {
        <super::NoticeBanner notice testid="monitor"/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can_cancel = me.await.map(|u| u.role.allows(Role::Operator)).unwrap_or(false);
                match detail.await {
                    Ok(d) => view! { <Monitor detail=d can_cancel/> }.into_any(),
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

/// A finished operation at a glance, at the top of its page.
#[component]
fn OutcomeSummary(s: Summary) -> impl IntoView {
    let outcome = s.outcome.as_str();
    view! {
        <section class=format!("card summary summary-{outcome}") aria-label="Outcome" data-testid="summary" data-outcome=outcome>
            <h2><span class=format!("status status-op-{outcome}")>{s.outcome.to_string()}</span></h2>
            <p class="big" data-testid="summary-result">{s.result}</p>
            {s.broken_promise.map(|b| view! { <p class="alert" role="alert" data-testid="summary-broken-promise">{b}</p> })}
            {s.downtime.map(|d| view! { <p data-testid="summary-downtime">{d}</p> })}
            {s.duration.map(|d| view! { <p data-testid="summary-duration">{d}</p> })}
            {s.runs_on.map(|(grid, app)| view! {
                <p data-testid="summary-runs-on">"The app runs on "
                    <a href=format!("/grids/{grid}")>{format!("{grid}/{app}")}</a>"."</p>
            })}
            {(!s.settled.is_empty()).then(|| view! {
                <ul data-testid="summary-settled" aria-label="What the console did to settle it">
                    {s.settled.into_iter().map(|t| view! { <li>{t}</li> }).collect_view()}
                </ul>
            })}
        </section>
    }
}

// What a page read without JavaScript gets instead. Named constants, not
// literals: the view macro writes a literal `inner_html` out as an
// attribute (leptos_macro 0.8.20), which does nothing.
/// A running operation's page reloads itself.
const RELOAD_WITHOUT_JS: &str = r#"<meta http-equiv="refresh" content="2">"#;
/// The log box, reversed, opens at its end: the newest line in view.
const LOG_AT_END_WITHOUT_JS: &str =
    "<style>.log-box { display: flex; flex-direction: column-reverse; }</style>";

#[component]
fn Monitor(detail: OperationDetail, can_cancel: bool) -> impl IntoView {
    let op = detail.operation.clone();
    let state = RwSignal::new(MonitorState::from_detail(&detail));
    // connecting → live → reconnecting … → ended; "static" without JavaScript.
    let link = RwSignal::new(if state.with_untracked(MonitorState::running) {
        "static"
    } else {
        "ended"
    });
    #[cfg(feature = "hydrate")]
    live::follow(op.id.clone(), state, link);
    // The finished operation as recorded (its summary's evidence): the
    // page's own when it loaded finished, else read again once the live
    // stream ends.
    let ended = RwSignal::new(op.outcome.is_some().then(|| op.clone()));
    #[cfg(feature = "hydrate")]
    {
        let id = op.id.clone();
        Effect::new(move |_| {
            if link.get() == "ended" && ended.with_untracked(Option::is_none) {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(d) = get_operation(id).await
                        && d.operation.outcome.is_some()
                    {
                        ended.set(Some(d.operation));
                    }
                });
            }
        });
    }

    let query = use_query_map();
    let filter = move || {
        query
            .read()
            .get("log")
            .filter(|s| SOURCES.iter().any(|(v, _)| v == s))
            .unwrap_or_else(|| "all".into())
    };
    let phases: std::sync::Arc<[Phase]> = op.action.pipeline(op.warm).into();
    let cutover_plan = op.cutover.map(|c| match (c, &op.cutover_at) {
        (crate::model::Cutover::Scheduled, Some(at)) => format!("cuts over at {at}"),
        (crate::model::Cutover::Manual, _) => {
            "cuts over when an operator presses \"Cut over now\"".to_owned()
        }
        _ => "cuts over by itself once a pass finds little changed".to_owned(),
    });
    let back_up = if op.action.moves() {
        "target"
    } else {
        "source"
    };
    let title = format!(
        "{} {}/{} → {}/{}",
        op.action, op.source_grid, op.source_app, op.target_grid, op.target_app
    );
    let helper = operation_model::name::helper_of(&op.target_app);
    let monitor_url = format!("/operations/{}", op.id);
    let cutover_url = monitor_url.clone();
    let op_for_cancel = op.clone();

    // Auto-scroll: follow new lines until the operator scrolls up.
    let log_box = NodeRef::<leptos::html::Div>::new();
    let follow = RwSignal::new(true);
    // Where the box was at the last scroll event. Only a move up pauses:
    // a scroll event is dispatched a frame after the scroll, and lines that
    // arrived meanwhile put the box's foot lower — our own jump to the
    // newest line then reads as "not at the bottom" (seen in CI: the log
    // stopped following while nobody had touched it).
    let last_top = StoredValue::new(0);
    let at_bottom = move || {
        log_box
            .get_untracked()
            .is_some_and(|el| el.scroll_top() + el.client_height() >= el.scroll_height() - 8)
    };
    let on_scroll = move || {
        let Some(top) = log_box.get_untracked().map(|el| el.scroll_top()) else {
            return;
        };
        if at_bottom() {
            follow.set(true);
        } else if top < last_top.get_value() {
            follow.set(false);
        }
        last_top.set_value(top);
    };
    let to_bottom = move || {
        if let Some(el) = log_box.get_untracked() {
            el.set_scroll_top(el.scroll_height());
            last_top.set_value(el.scroll_top());
        }
    };
    // Another filter is another view of the log: it opens at its newest
    // line, following (whatever scrolling the list's change caused).
    Effect::new(move |shown: Option<String>| {
        let f = filter();
        if shown.is_some_and(|s| s != f) {
            follow.set(true);
            request_animation_frame(to_bottom);
        }
        f
    });
    Effect::new(move |_| {
        state.with(|s| s.lines.len());
        filter();
        if follow.get_untracked() {
            // Checked again when the frame comes: the operator may have
            // scrolled up in between.
            request_animation_frame(move || {
                if follow.get_untracked() {
                    to_bottom();
                }
            });
        }
    });

    // A finished operation's cards say what its settling made of each app.
    let became =
        move |side| ended.with(|o| o.as_ref().and_then(|o| fate(o, side)).map(str::to_owned));

    view! {
        <Title text=format!("Operation {}", op.id)/>
        // Without JavaScript a running operation's page reloads itself;
        // with it, the event stream keeps the page current instead.
        {state.with_untracked(MonitorState::running).then(|| view! {
            <noscript inner_html=RELOAD_WITHOUT_JS></noscript>
        })}
        <h1>{title}</h1>
        <p class="muted">
            {format!("Operation {} started by {} at ", op.id, op.created_by)}<When at=op.created_at.clone()/>
            " · "
            <span class="link-state" data-testid="link-state" data-state=move || link.get()>
                {move || match (link.get(), state.read().console_away_to()) {
                    ("live", _) => "live".to_owned(),
                    ("connecting", _) => "connecting…".to_owned(),
                    // The console stopped with its app (self-migration): it
                    // answers again from where the app wakes up.
                    ("reconnecting", Some(grid)) => format!("the console is moving with the app to {grid} — retrying until it answers from there…"),
                    ("reconnecting", None) => "connection lost — reconnecting…".to_owned(),
                    ("ended", _) => "finished".to_owned(),
                    _ => "refreshes every 2 s".to_owned(),
                }}
            </span>
        </p>
        {move || ended.get().as_ref().and_then(Summary::of).map(|s| view! { <OutcomeSummary s/> })}
        <ol class="pipeline" aria-label="Phases" data-testid="pipeline">
            {phases.iter().enumerate().map(|(i, p)| {
                let all = phases.clone();
                let class = move || {
                    let s = state.read();
                    // An operation that failed or was cancelled keeps its
                    // ticks up to the phase it stopped in.
                    let current = all.iter().position(|q| *q == s.reached());
                    match (current, s.outcome) {
                        (_, Some(Outcome::Done)) => "done",
                        (Some(c), _) if i < c => "done",
                        (Some(c), Some(_)) if i == c => "failed",
                        (Some(c), None) if i == c => "current",
                        _ => "todo",
                    }
                };
                let aria = {
                    let class = class.clone();
                    move || (class() == "current").then_some("step")
                };
                view! { <li class=class aria-current=aria>{p.label()}</li> }
            }).collect_view()}
        </ol>
        // While the passes run, cutting over is the decision left: the
        // primary action, at the top.
        {move || {
            let s = state.read();
            (s.running() && can_cancel && s.warm && matches!(s.phase, Phase::Provisioning | Phase::PreCopying)).then(|| view! {
                <form method="post" action=format!("{cutover_url}/cutover") class="card cutover" data-testid="cutover">
                    <p>"The source keeps running while passes copy what changed. Cutting over stops it now, copies the last changes, verifies and starts the "{back_up}"."</p>
                    <button type="submit" class="primary">"Cut over now"</button>
                </form>
            })
        }}
        <section class="card" aria-label="Progress">
            <h2>"Progress"</h2>
            <div class="bar" role="progressbar" aria-label="Bytes copied" aria-valuemin="0" aria-valuemax="100"
                aria-valuenow=move || state.read().percent().to_string()>
                <div class="fill" style=move || format!("width: {}%", state.read().percent())></div>
            </div>
            <p data-testid="progress" data-done=move || state.read().done.to_string()>
                {move || {
                    let s = state.read();
                    let mut text = progress_text(s.percent(), s.done, s.total);
                    if s.running() && s.rate > 0 {
                        text.push_str(&format!(" · {}/s", human_bytes(s.rate)));
                    }
                    if let Some(eta) = s.eta_secs() {
                        text.push_str(&format!(" · about {} left", human_duration(eta)));
                    }
                    text
                }}
            </p>
            <p class="big" data-testid="outcome">
                {move || {
                    let s = state.read();
                    let word = s.outcome.map_or_else(|| format!("running: {}", s.phase.label()), |o| o.to_string());
                    let class = format!("status status-op-{}", s.outcome.map_or("running", Outcome::as_str));
                    view! { <span class=class>{word}</span> }
                }}
            </p>
            {move || state.read().pass_label().map(|l| view! { <p data-testid="pass">{l}</p> })}
            {cutover_plan.map(|plan| view! {
                <p class="hint" data-testid="warm-plan">{format!("Warm: the source runs while passes copy what changed; it {plan}.")}</p>
            })}
            {move || {
                let s = state.read();
                (!s.passes.is_empty()).then(|| view! {
                    <table class="table passes" data-testid="passes">
                        <caption>"Passes (the last one with the app stopped)"</caption>
                        <thead><tr><th scope="col">"Pass"</th><th scope="col">"Changed"</th><th scope="col">"Copied"</th><th scope="col">"Took"</th></tr></thead>
                        <tbody>
                            {s.passes.iter().map(|p| view! {
                                <tr data-pass=p.pass data-final=p.final_pass.to_string()>
                                    <td>{if p.final_pass { format!("{} (final, app stopped)", p.pass) } else { p.pass.to_string() }}</td>
                                    <td>{human_bytes(p.delta)}</td>
                                    <td>{human_bytes(p.copied)}</td>
                                    <td>{format!("{:.1} s", p.ms as f64 / 1000.0)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                })
            }}
            {move || state.read().outlook().map(|o| view! {
                <p data-testid="cutover-outlook" data-bytes=o.cutover_bytes.to_string()>
                    {format!(
                        "Cutting over now would copy about {} with the app stopped (about {:.1} s at the copy's {}/s), plus the app's stop and start. The app changes {}/s.",
                        human_bytes(o.cutover_bytes),
                        o.cutover_copy_ms as f64 / 1000.0,
                        human_bytes(o.copy_rate),
                        human_bytes(o.change_rate)
                    )}
                </p>
                {o.warning().map(|w| view! {
                    <p class="alert" role="alert" data-testid="not-converging">
                        {format!("The {w}. They will not shrink on their own: cut over now (the app is down while the last changes copy), or cancel and lower the app's writes or raise the copy's rate.")}
                    </p>
                })}
            })}
            {move || state.read().reason.clone().map(|r| view! { <p class="hint" data-testid="reason">{r}</p> })}
            {move || state.read().source_stop.map(|s| view! {
                <p class:alert=s.forced data-testid="source-stop" data-forced=s.forced.to_string()>
                    {s.sentence()}
                </p>
            })}
            {move || state.read().downtime_ms.map(|ms| view! {
                <p data-testid="downtime" data-ms=ms.to_string()>
                    {format!("The app was down for {:.1} s (source stopped until the {} ran).", ms as f64 / 1000.0,
                        back_up)}
                </p>
            })}
        </section>
        {op.rollback_of.clone().map(|of| view! {
            <p class="notice" data-testid="rollback-of">"This rollback undoes "<a href=format!("/operations/{of}")>{of.clone()}</a>"."</p>
        })}
        {op.rolled_back_by.clone().map(|by| view! {
            <p class="notice" data-testid="rolled-back-by">"Rolled back by "<a href=format!("/operations/{by}")>{by.clone()}</a>"."</p>
        })}
        {op.kept_source.clone().map(|k| {
            let place = format!("{}/{}", k.grid, k.app);
            match k.state {
                crate::model::KeptState::Kept => view! {
                    <section class="card kept" data-testid="kept-source" data-state=k.state.as_str() aria-label="Kept source">
                        <h2>"Kept source"</h2>
                        <p data-testid="kept-text">{format!("The source {place} is kept on its grid, stopped, until ")}<When at=k.until.clone()/>": this migrate can be rolled back to it. Its release (by an operator, or its deadline) destroys it once its fingerprint from the cutover is checked."</p>
                        {k.problem.clone().map(|p| view! { <p class="alert" role="alert" data-testid="kept-problem">{p}</p> })}
                        {(can_cancel && op.outcome == Some(crate::model::Outcome::Done)).then(|| view! {
                            <p><a class="button primary" href=format!("/operations/{}/rollback", op.id) data-testid="rollback">
                                {format!("Roll back to {place}…")}</a>
                                <span class="hint">" — the preview says how much changed since the cutover; only that is copied back"</span></p>
                        })}
                        {can_cancel.then(|| view! {
                            <details class="card" data-testid="release-source">
                                <summary>"Release the kept source…"</summary>
                                <form method="post" action=format!("/operations/{}/release-source", op.id)>
                                    <label for="release-reason">"Why (kept in the audit trail)"</label>
                                    <input id="release-reason" name="reason" type="text" required maxlength="500"/>
                                    <button type="submit" class="danger">{format!("Destroy {place} now")}</button>
                                </form>
                            </details>
                        })}
                    </section>
                }.into_any(),
                _ => view! {
                    <section class="card kept" data-testid="kept-source" data-state=k.state.as_str() aria-label="Kept source">
                        <p data-testid="kept-text">{format!(
                            "The kept source {place} was {} by {} at ",
                            match k.state { crate::model::KeptState::RolledBack => "rolled back to", _ => "released (destroyed)" },
                            k.ended_by.clone().unwrap_or_default(),
                        )}<When at=k.ended_at.clone().unwrap_or_default()/>{format!(": {}", k.reason.clone().unwrap_or_default())}</p>
                    </section>
                }.into_any(),
            }
        })}
        <section class="cards panes" aria-label="Apps">
            <Pane title="Source app" name=format!("{}/{}", op.source_grid, op.source_app) testid="pane-source"
                state=Signal::derive(move || became(Side::Source).unwrap_or_else(|| state.read().source_state.clone()))/>
            <Pane title="Helper" name=format!("{}/{}", op.target_grid, helper) testid="pane-helper"
                state=Signal::derive(move || became(Side::Helper).unwrap_or_else(|| state.read().helper_state.clone()))/>
            <Pane title="Target app" name=format!("{}/{}", op.target_grid, op.target_app) testid="pane-target"
                state=Signal::derive(move || became(Side::Target).unwrap_or_else(|| state.read().target_state.clone()))/>
        </section>
        {move || {
            let s = state.read();
            if !(s.running() && can_cancel) {
                return None;
            }
            Some(match cleanup_text(&op_for_cancel, s.phase) {
                Some(cleanup) => view! {
                    <details class="cancel card" data-testid="cancel">
                        <summary>"Cancel this operation…"</summary>
                        <p>{cleanup}</p>
                        <form method="post" action=format!("{monitor_url}/cancel")>
                            <button type="submit" class="danger">"Yes, cancel and clean up"</button>
                        </form>
                    </details>
                }.into_any(),
                None => view! {
                    <p class="hint" data-testid="cancel">"The target is starting: the operation can no longer be cancelled. Wait for its outcome."</p>
                }.into_any(),
            })
        }}
        <section aria-label="Log" class="log-section">
            <div class="log-head">
                <h2>"Log"</h2>
                <p class="downloads">
                    "Download the whole log: "
                    <a href=format!("/api/v1/operations/{}/log.txt", op.id) download data-testid="log-txt">"text"</a>
                    " · "
                    <a href=format!("/api/v1/operations/{}/log.ndjson", op.id) download data-testid="log-ndjson">"NDJSON"</a>
                </p>
                <nav class="segmented" aria-label="Show log lines from">
                    {SOURCES.iter().map(|(value, label)| {
                        let href = if *value == "all" { "?".to_owned() } else { format!("?log={value}") };
                        let current = move || (filter() == *value).then_some("true");
                        view! { <a href=href aria-current=current data-log-filter=*value>{*label}</a> }
                    }).collect_view()}
                </nav>
            </div>
            // Without JavaScript nothing scrolls the box: reversed, it opens
            // at its end, the newest line in view.
            <noscript inner_html=LOG_AT_END_WITHOUT_JS></noscript>
            <div class="log-box" node_ref=log_box tabindex="0" role="log" aria-label="Operation log"
                on:scroll=move |_| on_scroll()>
                <div class="log-lines">
                {let whole_log = format!("/api/v1/operations/{}/log.txt", op.id);
                move || {
                    let earlier = state.read().earlier_lines;
                    (earlier > 0).then(|| view! {
                        <p class="earlier" data-testid="earlier-lines">
                            {format!("{earlier} earlier lines are not shown here (the last {} are): ", MonitorState::MAX_LINES)}
                            <a href=whole_log.clone() download>"download the whole log"</a>
                        </p>
                    })
                }}
                <ol class="log" data-testid="log">
                    <For
                        each=move || {
                            let f = filter();
                            state.read().lines.iter().filter(|l| f == "all" || l.source.as_str() == f).cloned().collect::<Vec<_>>()
                        }
                        key=|l| l.seq
                        let(line)
                    >
                        <li data-source=line.source.as_str() data-kind=line.kind.as_str() data-seq=line.seq>
                            <span class="seq">{line.seq}</span>
                            <time class="at" datetime=line.at.clone() title="UTC">{crate::model::clock_time(&line.at).to_owned()}</time>
                            <span class=format!("src src-{}", line.source)>{line.source.as_str()}</span>
                            <span class="text">{line.text}</span>
                        </li>
                    </For>
                </ol>
                </div>
            </div>
            <Show when=move || !follow.get()>
                <button type="button" class="follow" data-testid="follow-log"
                    on:click=move |_| { follow.set(true); to_bottom(); }>
                    "Auto-scroll paused — jump to the newest line"
                </button>
            </Show>
        </section>
    }
}

#[component]
fn Pane(
    title: &'static str,
    name: String,
    testid: &'static str,
    state: Signal<String>,
) -> impl IntoView {
    view! {
        <div class="card pane" data-testid=testid>
            <h2>{title}</h2>
            <p class="muted">{name}</p>
            <p class="big">
                <span class=move || format!("status status-app-{}", state.get().split(' ').next().unwrap_or_default())>
                    {move || state.get()}
                </span>
            </p>
        </div>
    }
}

/// The browser's side of the live monitor: an `EventSource` that starts
/// after the last event the page shows and folds every event into the
/// page's state. The browser reconnects on its own after a drop, sending
/// `Last-Event-ID`, so no line is lost; the state ignores repeats.
#[cfg(feature = "hydrate")]
mod live {
    use crate::model::{MonitorState, StreamEvent};
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{EventSource, MessageEvent};

    pub fn follow(op_id: String, state: RwSignal<MonitorState>, link: RwSignal<&'static str>) {
        if !state.with_untracked(MonitorState::running) {
            return;
        }
        let after = state.with_untracked(|s| s.last_seq);
        let url = format!("/api/v1/operations/{op_id}/events?after={after}");
        let Ok(source) = EventSource::new(&url) else {
            link.set("static");
            return;
        };
        link.set("connecting");
        let closer = source.clone();
        let on_event = Closure::<dyn FnMut(MessageEvent)>::new(move |m: MessageEvent| {
            let Some(text) = m.data().as_string() else {
                return;
            };
            let Ok(event) = serde_json::from_str::<StreamEvent>(&text) else {
                return;
            };
            state.update(|s| s.apply(&event));
            link.set("live");
            if !state.with_untracked(MonitorState::running) {
                closer.close();
                link.set("ended");
            }
        });
        let kinds = crate::model::EventKind::ALL.iter().map(|k| k.as_str());
        for kind in kinds.chain(["message"]) {
            let _ =
                source.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
        }
        // The console could not read on and ends the stream: the browser
        // reconnects after the last event it got.
        let on_stream_error = Closure::<dyn FnMut()>::new(move || link.set("reconnecting"));
        let _ = source.add_event_listener_with_callback(
            crate::model::STREAM_ERROR_EVENT,
            on_stream_error.as_ref().unchecked_ref(),
        );
        let on_open = Closure::<dyn FnMut()>::new(move || link.set("live"));
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        let closer = source.clone();
        let on_error = Closure::<dyn FnMut()>::new(move || {
            if state.with_untracked(MonitorState::running) {
                // The browser reconnects by itself, sending Last-Event-ID.
                link.set("reconnecting");
            } else {
                closer.close();
                link.set("ended");
            }
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The closures live as long as the page; the stream closes with it.
        on_event.forget();
        on_stream_error.forget();
        on_open.forget();
        on_error.forget();
        let source = SendWrapper::new(source);
        on_cleanup(move || source.close());
    }
}
