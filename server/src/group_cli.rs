//! `migctl group …`: group runs on a running console from the shell. A
//! definition file is read and checked here first (its problems named with
//! their lines), then sent as JSON.

use crate::remote::{self, Remote, RemoteArgs};
use anyhow::Context;
use operation_model::group_run::{GroupRunView, ItemView, RunState, Stage};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// Start a run of a group definition (TOML)
    Run {
        file: PathBuf,
        /// Follow it until it ends: exit 0 once it is done
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Check a group definition (TOML) without starting anything
    Check { file: PathBuf },
    /// List group runs, newest first
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show a run: its steps, checks with their attempts, and its members
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Follow a run until it ends, printing each attempt and step
    Watch {
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Start nothing new: the attempt or operation in flight finishes
    Pause {
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Go on from where a paused run stands (the check there starts afresh)
    Resume {
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Try the check, action or step a paused run failed at again
    Retry {
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Stop a run for good: its operation in flight is cancelled
    Abort {
        id: String,
        /// Why (kept in the audit trail)
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Roll a paused, done or aborted run back: the members it moved return
    /// to their kept sources, the last moved first, each step's checks
    /// after applied again (the definition must keep the sources)
    Rollback {
        id: String,
        /// Why (kept with your name)
        #[arg(long)]
        reason: String,
        /// Follow it until it ends; exit 0 once it is rolled back
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Approve (or with --refuse, refuse) the approval check a run waits at
    Approve {
        id: String,
        /// Why (kept with your name)
        #[arg(long)]
        reason: String,
        #[arg(long)]
        refuse: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// The run followed ended other than as asked: aborted, or rolled back
/// when it was to be done.
#[derive(Debug, thiserror::Error)]
#[error("group run {id} ended {state}: {reason}")]
pub struct RunEndedOtherwise {
    pub id: String,
    pub state: RunState,
    pub reason: String,
}

/// A definition file as JSON, once it reads as a definition.
fn definition_json(file: &PathBuf) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    group::Definition::toml_as_json(&text).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "{} is not a group definition this console runs:\n{}",
            file.display(),
            list.join("\n")
        )
    })
}

pub async fn run(cmd: &GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Run { file, wait, remote } => {
            let def = definition_json(file)?;
            let api = Remote::new(remote)?;
            let v = api.post("/groups/runs", def).await?;
            let run: GroupRunView = serde_json::from_value(v)?;
            println!("{}", describe(&run));
            if *wait {
                follow(&api, &run.id, describe(&run), RunState::Done).await?;
            }
        }
        GroupCommand::Check { file } => {
            definition_json(file)?;
            println!("{}: a group definition this console runs", file.display());
        }
        GroupCommand::List { json, remote } => {
            let v = Remote::new(remote)?.get("/groups/runs").await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let runs: Vec<GroupRunView> = serde_json::from_value(v)?;
                for r in runs {
                    println!("{}", describe(&r));
                }
            }
        }
        GroupCommand::Show { id, json, remote } => {
            let v = Remote::new(remote)?
                .get(&format!("/groups/runs/{id}"))
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", details(&serde_json::from_value(v)?));
            }
        }
        GroupCommand::Watch { id, remote } => {
            let api = Remote::new(remote)?;
            let v = api.get(&format!("/groups/runs/{id}")).await?;
            let run: GroupRunView = serde_json::from_value(v)?;
            // A run rolling back is watched to its rollback's end.
            let want = if run.state == RunState::RolledBack
                || run.position.is_some_and(|p| p.stage.back())
            {
                RunState::RolledBack
            } else {
                RunState::Done
            };
            follow(&api, id, String::new(), want).await?;
        }
        GroupCommand::Pause { id, remote } => {
            act(remote, id, "pause", serde_json::json!({})).await?;
        }
        GroupCommand::Resume { id, remote } => {
            act(remote, id, "resume", serde_json::json!({})).await?;
        }
        GroupCommand::Retry { id, remote } => {
            act(remote, id, "retry", serde_json::json!({})).await?;
        }
        GroupCommand::Abort { id, reason, remote } => {
            act(remote, id, "abort", serde_json::json!({ "reason": reason })).await?;
        }
        GroupCommand::Rollback {
            id,
            reason,
            wait,
            remote,
        } => {
            let line = act(
                remote,
                id,
                "rollback",
                serde_json::json!({ "reason": reason }),
            )
            .await?;
            if *wait {
                follow(&Remote::new(remote)?, id, line, RunState::RolledBack).await?;
            }
        }
        GroupCommand::Approve {
            id,
            reason,
            refuse,
            remote,
        } => {
            act(
                remote,
                id,
                "approve",
                serde_json::json!({ "approve": !refuse, "reason": reason }),
            )
            .await?;
        }
    }
    Ok(())
}

/// Posts `verb` on run `id` and prints the run's line (returned).
async fn act(
    r: &RemoteArgs,
    id: &str,
    verb: &str,
    body: serde_json::Value,
) -> anyhow::Result<String> {
    let v = Remote::new(r)?
        .post(&format!("/groups/runs/{id}/{verb}"), body)
        .await?;
    let run: GroupRunView = serde_json::from_value(v)?;
    let line = describe(&run);
    println!("{line}");
    if run.state == RunState::Aborted {
        for m in &run.members {
            println!("  {}: {}", m.app, m.says);
        }
    }
    Ok(line)
}

/// One line: id, name, state, where it stands.
pub fn describe(r: &GroupRunView) -> String {
    let at = match r.position {
        None => String::new(),
        Some(p) => {
            let member = r
                .steps
                .get(p.step as usize)
                .map_or("?", |s| s.member.as_str());
            format!(
                " at step {}/{} ({member}), {}",
                p.step + 1,
                r.steps.len(),
                match p.stage {
                    Stage::Operation => "moving".to_owned(),
                    Stage::Undo => "moving back".to_owned(),
                    s => format!("{s} {}", p.item + 1),
                }
            )
        }
    };
    format!(
        "{} group {} from {} to {}: {}{at}{}",
        r.id,
        r.name,
        r.source_grid,
        r.target_grid,
        r.state,
        r.reason
            .as_ref()
            .map(|why| format!(" — {why}"))
            .unwrap_or_default()
    )
}

fn items(step: &operation_model::group_run::StepView) -> Vec<(&'static str, &ItemView)> {
    step.before
        .iter()
        .map(|i| ("before", i))
        .chain(step.actions.iter().map(|i| ("action", i)))
        .chain(step.after.iter().map(|i| ("after", i)))
        .chain(step.rechecks.iter().map(|i| ("recheck", i)))
        .collect()
}

/// The whole run, for `show`.
pub fn details(r: &GroupRunView) -> String {
    let mut out = format!("{}\n", describe(r));
    for (n, s) in r.steps.iter().enumerate() {
        out.push_str(&format!(
            "step {} {} → {} ({}, {}):\n",
            n + 1,
            s.member,
            s.target_app,
            s.state,
            if s.warm { "warm" } else { "cold" }
        ));
        for (stage, i) in items(s) {
            out.push_str(&format!(
                "  {stage} “{}” ({}): {}, {} attempts{}\n",
                i.name,
                i.kind,
                i.state,
                i.attempts.len(),
                i.attempts
                    .last()
                    .map(|a| format!(", last {} — {}", a.outcome, a.note))
                    .unwrap_or_default()
            ));
        }
        for o in &s.operations {
            out.push_str(&format!(
                "  {} {}: {}\n",
                o.action,
                o.id,
                o.outcome.map_or("running".to_owned(), |o| o.to_string())
            ));
        }
    }
    for m in &r.members {
        out.push_str(&format!("member {}: {}\n", m.app, m.says));
    }
    out
}

/// Prints what happens to run `id` until it ends; ending other than
/// `want` (done, or rolled back) is an error.
async fn follow(api: &Remote, id: &str, shown: String, want: RunState) -> anyhow::Result<()> {
    let mut seen: HashMap<(usize, &'static str, usize), usize> = HashMap::new();
    let mut ops_seen: HashMap<String, bool> = HashMap::new();
    let mut last_line = shown;
    let mut away = crate::away::Away::default();
    loop {
        let v = remote::get_through_gap(api, &format!("/groups/runs/{id}"), &mut away).await?;
        let r: GroupRunView = serde_json::from_value(v)?;
        for (n, s) in r.steps.iter().enumerate() {
            for (k, (stage, i)) in items(s).into_iter().enumerate() {
                let shown = seen.entry((n, stage, k)).or_default();
                for a in i.attempts.iter().skip(*shown) {
                    println!(
                        "step {} {}: {stage} “{}”: {} — {}",
                        n + 1,
                        s.member,
                        i.name,
                        a.outcome,
                        a.note
                    );
                }
                *shown = i.attempts.len();
            }
            for o in &s.operations {
                let ended = o.outcome.is_some();
                match ops_seen.insert(o.id.clone(), ended) {
                    None if !ended => {
                        println!("step {} {}: {} {} started", n + 1, s.member, o.action, o.id)
                    }
                    Some(false) | None if ended => println!(
                        "step {} {}: {} {} ended {}",
                        n + 1,
                        s.member,
                        o.action,
                        o.id,
                        o.outcome.map(|x| x.to_string()).unwrap_or_default()
                    ),
                    _ => {}
                }
            }
        }
        let line = describe(&r);
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        if r.state.ended() {
            for m in &r.members {
                println!("member {}: {}", m.app, m.says);
            }
            if r.state == want {
                return Ok(());
            }
            return Err(RunEndedOtherwise {
                id: r.id,
                state: r.state,
                reason: r.reason.unwrap_or_default(),
            }
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
