//! `migctl op …` and `migctl lock …`: a running console's API from the
//! shell (`--url`, token in `MIGCTL_TOKEN`).

use crate::away::{Away, Silence};
use anyhow::{Context, bail};
use app::model::OperationView;
use serde_json::{Value, json};

pub struct Remote {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The console's URL
    #[arg(long, env = "MIGCTL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token (`migctl user token NAME`)
    #[arg(long, env = "MIGCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for an https:// console, besides the system's roots
    #[arg(long, env = "MIGCTL_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
}

impl Remote {
    pub fn new(args: &RemoteArgs) -> anyhow::Result<Remote> {
        let token = args
            .token
            .clone()
            .context("no API token: set MIGCTL_TOKEN (create one with `migctl user token NAME`)")?;
        // https:// consoles: the system's roots (rustls-native-certs), and
        // the operator's own CA when given.
        let mut http = reqwest::Client::builder();
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("--ca-cert {}: cannot read it", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("--ca-cert {}: not a PEM certificate", path.display()))?;
            if certs.is_empty() {
                bail!("--ca-cert {}: no certificate in it", path.display());
            }
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        Ok(Remote {
            url: args.url.trim_end_matches('/').to_owned(),
            token,
            http: http.build().context("cannot set up the HTTP client")?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.map_err(|e| Unreachable {
            url: self.url.clone(),
            cause: cause(&e),
        })?;
        let status = r.status();
        let value: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{} ({status})",
                value["message"].as_str().unwrap_or("the console refused")
            );
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// The console did not answer at all (as opposed to refusing): it may be
/// restarting, or away moving with the app it lives in.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the console at {url}: {cause}")]
pub struct Unreachable {
    pub(crate) url: String,
    pub(crate) cause: String,
}

/// A request error with its sources (a TLS refusal says why: an unknown
/// issuer, a name that does not match).
pub(crate) fn cause(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `get`, retried while the console does not answer (a console inside the
/// app it moves is away until the app starts where it goes), as long as
/// [`Away`] allows; says once when it is away and when it is back.
pub(crate) async fn get_through_gap(
    remote: &Remote,
    path: &str,
    away: &mut Away,
) -> anyhow::Result<Value> {
    loop {
        match remote.get(path).await {
            Ok(v) => {
                if let Some(lasted) = away.answered(std::time::Instant::now()) {
                    println!("\n{}", Away::back_line(lasted));
                }
                return Ok(v);
            }
            Err(e) if e.downcast_ref::<Unreachable>().is_some() => {
                match away.silent(std::time::Instant::now()) {
                    Silence::Began => println!("\n{}", away.began_line(&e)),
                    Silence::Continues => {}
                    Silence::TooLong => return Err(e.context(away.too_long())),
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn split_grid_app(s: &str, flag: &str) -> anyhow::Result<(String, String)> {
    s.split_once('/')
        .map(|(g, a)| (g.to_owned(), a.to_owned()))
        .with_context(|| format!("{flag} {s:?}: write GRID/APP, e.g. east/shop"))
}

/// The options of `op start` besides source, target and action.
#[derive(Default)]
pub struct StartOptions {
    pub update_target: bool,
    pub warm: bool,
    pub cutover: Option<String>,
    pub cutover_at: Option<String>,
    pub stop_timeout_secs: Option<u64>,
    /// `None`: the console's default.
    pub keep_source: Option<bool>,
    pub keep_source_hours: Option<u64>,
}

pub async fn start(
    remote: &Remote,
    (source, target, action): (&str, &str, &str),
    o: &StartOptions,
) -> anyhow::Result<OperationView> {
    let (sg, sa) = split_grid_app(source, "--source")?;
    let (tg, ta) = split_grid_app(target, "--target")?;
    let mut body = json!({"source_grid": sg, "source_app": sa, "target_grid": tg, "target_app": ta, "action": action, "update_target": o.update_target, "warm": o.warm});
    if let Some(c) = &o.cutover {
        body["cutover"] = c.as_str().into();
    }
    if let Some(secs) = o.stop_timeout_secs {
        body["stop_timeout_secs"] = secs.into();
    }
    if let Some(at) = &o.cutover_at {
        body["cutover_at"] = at.as_str().into();
    }
    if let Some(keep) = o.keep_source {
        body["keep_source"] = keep.into();
    }
    if let Some(hours) = o.keep_source_hours {
        body["keep_source_hours"] = hours.into();
    }
    Ok(serde_json::from_value(
        remote.post("/operations", body).await?,
    )?)
}

pub fn describe(op: &OperationView) -> String {
    let pct = if op.bytes_total > 0 {
        op.bytes_done * 100 / op.bytes_total
    } else {
        0
    };
    let warm = if op.warm {
        // Numbered: a long wait keeps only the latest passes.
        let passes = op
            .passes
            .iter()
            .filter(|p| !p.final_pass)
            .map(|p| p.pass)
            .max()
            .unwrap_or(0);
        format!("  warm ({passes} pass(es))")
    } else {
        String::new()
    };
    let down = op
        .downtime_ms
        .map(|ms| format!("  down {:.1} s", ms as f64 / 1000.0))
        .unwrap_or_default();
    // A forced stop lost what the source had not written: never only in the log.
    let forced = match op.source_stop {
        Some(s) if s.forced => format!("  ({})", s.text()),
        _ => String::new(),
    };
    let kept = match &op.kept_source {
        Some(k) if k.state == app::model::KeptState::Kept => {
            format!("  source {}/{} kept until {}", k.grid, k.app, k.until)
        }
        Some(k) => format!("  source {}/{} {}", k.grid, k.app, k.state),
        None => String::new(),
    };
    format!(
        "{}  {} {}/{} -> {}/{}{warm}  phase {}  {}%  {}{down}{forced}{kept}{}",
        op.id,
        op.action,
        op.source_grid,
        op.source_app,
        op.target_grid,
        op.target_app,
        op.phase,
        pct,
        op.outcome.map_or("running", |o| o.as_str()),
        op.reason
            .as_deref()
            .map(|r| format!(" ({})", operation_model::visible(r)))
            .unwrap_or_default()
    )
}

pub use crate::watch::watch;
