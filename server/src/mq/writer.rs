//! `migctl mq-writer`: writes continuously to whichever node of the demo's
//! HA group is the primary, records every write as ok, failed or unknown
//! (sent, but no answer came: it may or may not be written), then reads
//! everything back and reports what was **lost** (acknowledged but absent),
//! duplicated (applied twice), unexpected (never attempted) and recovered
//! (unknown but present), and the longest gap between two acknowledged
//! writes.

use super::store::Entry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A write's outcome, as the writer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered 200: acknowledged.
    Ok,
    /// Refused (any other answer), or never sent: not written.
    Failed,
    /// Sent, and no answer came.
    Unknown,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Acknowledged but absent from the final read: must be 0.
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub unexpected: Vec<String>,
    pub recovered: u64,
    /// The longest time between two acknowledged writes, in milliseconds.
    pub longest_gap_ms: u64,
    /// Seconds from the first write sent to the last answered.
    pub secs: f64,
    /// Writes attempted a second over `secs`: the rate the writer kept.
    pub per_sec: f64,
    /// The node that was primary at the final read.
    pub read_from: String,
}

pub struct Writer {
    http: reqwest::Client,
    nodes: Vec<String>,
    /// The node written to now (the last known primary).
    at: usize,
    outcomes: BTreeMap<String, Outcome>,
    acks: Vec<Instant>,
    n: u64,
    /// When the first write was sent and the last one answered.
    span: Option<(Instant, Instant)>,
}

impl Writer {
    pub fn new(nodes: Vec<String>) -> anyhow::Result<Writer> {
        anyhow::ensure!(!nodes.is_empty(), "name the group's nodes (--nodes A,B,…)");
        Ok(Writer {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(300))
                .timeout(Duration::from_secs(2))
                .build()?,
            nodes,
            at: 0,
            outcomes: BTreeMap::new(),
            acks: vec![],
            n: 0,
            span: None,
        })
    }

    /// One write of a new key, to the node believed primary; a refusal
    /// that names another primary moves the writer there.
    pub async fn write_one(&mut self) -> Outcome {
        self.n += 1;
        let sent_at = Instant::now();
        let key = format!("w{:08}", self.n);
        let to = self.nodes[self.at].clone();
        let sent = self
            .http
            .post(format!("http://{to}/write"))
            .json(&serde_json::json!({"key": key, "value": self.n.to_string()}))
            .send()
            .await;
        let outcome = match sent {
            Ok(r) if r.status().is_success() => Outcome::Ok,
            Ok(r) => {
                let named = r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["primary"].as_str().map(str::to_owned));
                self.move_to(named);
                Outcome::Failed
            }
            Err(e) if e.is_connect() => {
                self.move_to(None);
                Outcome::Failed
            }
            Err(_) => {
                self.move_to(None);
                Outcome::Unknown
            }
        };
        let now = Instant::now();
        if outcome == Outcome::Ok {
            self.acks.push(now);
        }
        self.span = Some((self.span.map_or(sent_at, |(first, _)| first), now));
        self.outcomes.insert(key, outcome);
        outcome
    }

    /// To the node named as primary, else the next one.
    fn move_to(&mut self, named: Option<String>) {
        self.at = match named.and_then(|p| self.nodes.iter().position(|n| *n == p)) {
            Some(i) if i != self.at => i,
            _ => (self.at + 1) % self.nodes.len(),
        };
    }

    /// Writes `per_sec` a second until `stop`: a write answered late is
    /// followed by the ones its wait held back, so the rate holds on
    /// average (the report says the rate kept).
    pub async fn run(&mut self, per_sec: u32, stop: impl std::future::Future<Output = ()>) {
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_sec.max(1))));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {
                    self.write_one().await;
                }
            }
        }
    }

    /// Reads everything back from the primary (waiting up to `patience`
    /// for one to answer) and compares.
    pub async fn report(&self, patience: Duration) -> anyhow::Result<Report> {
        let deadline = Instant::now() + patience;
        let (from, entries) = loop {
            let mut found = None;
            for n in &self.nodes {
                if let Ok(r) = self.http.get(format!("http://{n}/dump")).send().await
                    && r.status().is_success()
                    && let Ok(e) = r.json::<Vec<Entry>>().await
                {
                    found = Some((n.clone(), e));
                    break;
                }
            }
            match found {
                Some(f) => break f,
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                None => anyhow::bail!(
                    "no node answered as the primary within {patience:?}: nothing could be read back"
                ),
            }
        };
        let mut count: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &entries {
            *count.entry(e.key.as_str()).or_default() += 1;
        }
        let mut r = Report {
            read_from: from,
            ..Report::default()
        };
        for (key, o) in &self.outcomes {
            r.attempted += 1;
            let present = count.contains_key(key.as_str());
            match o {
                Outcome::Ok => {
                    r.ok += 1;
                    if !present {
                        r.lost.push(key.clone());
                    }
                }
                Outcome::Failed => r.failed += 1,
                Outcome::Unknown => {
                    r.unknown += 1;
                    r.recovered += u64::from(present);
                }
            }
        }
        r.duplicated = count
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| (*k).to_owned())
            .collect();
        r.unexpected = count
            .keys()
            .filter(|k| !self.outcomes.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect();
        r.longest_gap_ms = self
            .acks
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).as_millis() as u64)
            .max()
            .unwrap_or(0);
        if let Some((first, last)) = self.span {
            r.secs = last.duration_since(first).as_secs_f64();
            if r.secs > 0.0 {
                r.per_sec = (r.attempted as f64 / r.secs * 10.0).round() / 10.0;
            }
        }
        Ok(r)
    }
}
