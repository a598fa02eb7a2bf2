//! `migctl mq-node`: one node of the demo's HA group, a small primary/backup
//! replication kept by a monitor.
//!
//! - The **monitor** (`MQ_KIND=monitor`) keeps the view ([`super::view`]):
//!   `POST /ping`, `POST /handover`, and its view on its volume.
//! - A **node** pings the monitor every 100 ms and serves as what the view
//!   makes it. The primary acknowledges a write (`POST /write`, 200) only
//!   once its backup has it; it acknowledges a view with a backup only
//!   once it has brought that backup up to date (a full state transfer),
//!   so the monitor never promotes a backup that lacks a write. Every
//!   message between them carries the view number; older views are
//!   refused. `POST /release-activity` hands the primary role to the backup
//!   without losing an acknowledged write (writes wait while it happens).
//! - Every node answers `GET /redundancy`: `{"view", "role", "up"}`.
//!
//! Nodes are known by their address (`LISTEN`), which travels with them;
//! their writes live on their volume `state`, so a node moved to another
//! grid rejoins with its data.

use super::store::{Entry, Store};
use super::view::{NodeId, View, ViewService};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How often a node pings the monitor (and the primary its backup).
pub const PING_EVERY: Duration = Duration::from_millis(100);
/// A node not heard from for this long is dead to the monitor.
pub const DEAD_AFTER: Duration = Duration::from_millis(1000);
/// A write forwarded to the backup must be confirmed within this.
const FORWARD_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Monitor,
    Node,
}

pub struct Config {
    pub kind: Kind,
    /// This node's address, also its identity.
    pub listen: std::net::SocketAddr,
    /// The monitor's address (nodes).
    pub monitor: Option<String>,
    pub state_dir: PathBuf,
}

impl Config {
    /// From the process's environment, as the grid starts it: `LISTEN`,
    /// `MQ_KIND` (monitor or node), `MQ_MONITOR` (nodes), and the volume
    /// `state` (`GRIDSIM_VOL_state`, or `MQ_STATE_DIR`).
    pub fn from_env() -> anyhow::Result<Config> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let kind = match var("MQ_KIND").as_deref() {
            Some("monitor") => Kind::Monitor,
            Some("node") | None => Kind::Node,
            Some(other) => anyhow::bail!("MQ_KIND={other:?}: write monitor or node"),
        };
        let listen = var("LISTEN")
            .ok_or_else(|| {
                anyhow::anyhow!("LISTEN is not set: the node's address, e.g. 127.0.0.1:7101")
            })?
            .parse()
            .map_err(|e| anyhow::anyhow!("LISTEN: {e}"))?;
        let monitor = var("MQ_MONITOR");
        if kind == Kind::Node && monitor.is_none() {
            anyhow::bail!("MQ_MONITOR is not set: the monitor's address, e.g. 127.0.0.1:7103");
        }
        let state_dir = var("GRIDSIM_VOL_state")
            .or_else(|| var("MQ_STATE_DIR"))
            .ok_or_else(|| {
                anyhow::anyhow!("no state volume: GRIDSIM_VOL_state (or MQ_STATE_DIR) is not set")
            })?
            .into();
        Ok(Config {
            kind,
            listen,
            monitor,
            state_dir,
        })
    }
}

/// Serves until `stop`.
pub async fn run(
    config: Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let me = config.listen.to_string();
    // Ends the node's pings when it stops serving.
    let ending = tokio_util::sync::CancellationToken::new();
    let _end = ending.clone().drop_guard();
    let app = match config.kind {
        Kind::Monitor => monitor_routes(&config, &me)?,
        Kind::Node => node_routes(&config, &me, ending)?,
    };
    println!("mq {me}: serving as {:?}", config.kind);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    println!("mq {me}: stopped");
    Ok(())
}

fn refuse(status: StatusCode, error: impl Into<String>, primary: Option<&NodeId>) -> Response {
    (
        status,
        Json(json!({"error": error.into(), "primary": primary})),
    )
        .into_response()
}

// --- the monitor ---------------------------------------------------------------

struct Monitor {
    views: Mutex<ViewService>,
    file: PathBuf,
}

#[derive(Deserialize)]
struct Ping {
    node: NodeId,
    view: u64,
}

#[derive(Deserialize)]
struct Handover {
    from: NodeId,
    view: u64,
}

fn monitor_routes(config: &Config, _me: &str) -> anyhow::Result<Router> {
    std::fs::create_dir_all(&config.state_dir)?;
    let file = config.state_dir.join("view.json");
    let kept: Option<View> = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let views = match kept {
        Some(v) => {
            println!("mq monitor: resuming view {}", v.num);
            ViewService::resume(v, DEAD_AFTER, Instant::now())
        }
        None => ViewService::new(DEAD_AFTER),
    };
    let m = Arc::new(Monitor {
        views: Mutex::new(views),
        file,
    });
    Ok(Router::new()
        .route("/ping", post(monitor_ping))
        .route("/handover", post(monitor_handover))
        .route("/redundancy", get(monitor_redundancy))
        .with_state(m))
}

impl Monitor {
    /// The view kept on the volume whenever it changes (before anyone
    /// hears of it).
    fn keep(&self, before: u64, v: &View) {
        if v.num != before {
            let tmp = self.file.with_extension("json.new");
            let ok = serde_json::to_vec(v)
                .ok()
                .and_then(|b| std::fs::write(&tmp, b).ok())
                .and_then(|()| std::fs::rename(&tmp, &self.file).ok());
            if ok.is_none() {
                tracing::error!("cannot keep view {} in {}", v.num, self.file.display());
            }
            println!(
                "mq monitor: view {} primary {:?} backup {:?}",
                v.num, v.primary, v.backup
            );
        }
    }
}

async fn monitor_ping(State(m): State<Arc<Monitor>>, Json(p): Json<Ping>) -> Json<View> {
    let mut s = m.views.lock().await;
    let before = s.view().num;
    let v = s.ping(&p.node, p.view, Instant::now());
    m.keep(before, &v);
    Json(v)
}

async fn monitor_handover(State(m): State<Arc<Monitor>>, Json(h): Json<Handover>) -> Response {
    let mut s = m.views.lock().await;
    let before = s.view().num;
    match s.hand_over(&h.from, h.view, Instant::now()) {
        Ok(v) => {
            m.keep(before, &v);
            Json(v).into_response()
        }
        Err(e) => refuse(
            StatusCode::CONFLICT,
            e.to_string(),
            s.view().primary.as_ref(),
        ),
    }
}

/// Read only: views change on pings (every node pings ten times a second),
/// where each change is kept before anyone hears of it.
async fn monitor_redundancy(State(m): State<Arc<Monitor>>) -> Json<serde_json::Value> {
    let s = m.views.lock().await;
    Json(json!({"view": s.view().num, "role": "monitor", "up": s.redundant(Instant::now())}))
}

// --- a node ----------------------------------------------------------------

struct Node {
    me: NodeId,
    monitor: String,
    http: reqwest::Client,
    state: Mutex<NodeState>,
}

struct NodeState {
    view: View,
    /// The view number this node acknowledges in its pings: a primary's
    /// only once its backup is up to date.
    acked: u64,
    /// It has pinged since it started (its first ping says 0).
    pinged: bool,
    store: Store,
    /// Backup: the view it received its full state in. Primary: the view
    /// it brought its backup up to date in.
    synced_in: Option<u64>,
    /// Backup: the primary's last write and when it was heard.
    primary_seq: Option<(u64, Instant)>,
    /// Primary: its backup confirmed the last heartbeat or write.
    backup_confirms: bool,
    /// The monitor's view number at the last ping.
    monitor_view: u64,
}

impl NodeState {
    /// The refusal of a request only the primary answers, naming the
    /// primary; `None` when this node is it.
    fn unless_primary(&self, me: &str, status: StatusCode) -> Option<Response> {
        (self.view.primary.as_deref() != Some(me)).then(|| {
            refuse(
                status,
                format!("{me} is not the primary"),
                self.view.primary.as_ref(),
            )
        })
    }

    fn role(&self, me: &str) -> &'static str {
        if self.view.primary.as_deref() == Some(me) {
            "primary"
        } else if self.view.backup.as_deref() == Some(me) {
            "backup"
        } else {
            "idle"
        }
    }
}

fn node_routes(
    config: &Config,
    me: &str,
    ending: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Router> {
    let store = Store::open(&config.state_dir)?;
    println!("mq {me}: {} writes kept on its volume", store.last_seq());
    let node = Arc::new(Node {
        me: me.to_owned(),
        monitor: config.monitor.clone().unwrap_or_default(),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(300))
            .build()?,
        state: Mutex::new(NodeState {
            view: View::default(),
            acked: 0,
            pinged: false,
            store,
            synced_in: None,
            primary_seq: None,
            backup_confirms: false,
            monitor_view: 0,
        }),
    });
    let pings = ping_loop(node.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = ending.cancelled() => {}
            () = pings => {}
        }
    });
    Ok(Router::new()
        .route("/write", post(write))
        .route("/read", get(read))
        .route("/dump", get(dump))
        .route("/redundancy", get(redundancy))
        .route("/release-activity", post(release_activity))
        .route("/forward", post(forward))
        .route("/transfer", post(transfer))
        .route("/heartbeat", post(heartbeat))
        .with_state(node))
}

#[derive(Serialize, Deserialize)]
struct Forward {
    view: u64,
    entry: Entry,
}

#[derive(Serialize, Deserialize)]
struct Transfer {
    view: View,
    entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Heartbeat {
    view: u64,
    seq: u64,
}

impl Node {
    async fn post<T: Serialize>(
        &self,
        to: &str,
        path: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<reqwest::Response, String> {
        self.http
            .post(format!("http://{to}{path}"))
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(r)
                } else {
                    Err(format!("{to}{path} answered {}", r.status()))
                }
            })
    }
}

async fn ping_loop(node: Arc<Node>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let num = {
            let s = node.state.lock().await;
            if s.pinged { s.acked } else { 0 }
        };
        let ping = json!({"node": node.me, "view": num});
        let Ok(r) = node
            .post(&node.monitor, "/ping", &ping, Duration::from_millis(300))
            .await
        else {
            continue;
        };
        let Ok(v) = r.json::<View>().await else {
            continue;
        };
        let mut s = node.state.lock().await;
        s.pinged = true;
        s.monitor_view = v.num;
        if v.num < s.view.num {
            continue;
        }
        if v != s.view {
            println!(
                "mq {}: view {} primary {:?} backup {:?}",
                node.me, v.num, v.primary, v.backup
            );
            s.view = v.clone();
            s.backup_confirms = false;
        }
        if v.primary.as_deref() != Some(node.me.as_str()) {
            s.acked = v.num;
            continue;
        }
        match v.backup.clone() {
            None => s.acked = v.num,
            Some(b) if s.synced_in != Some(v.num) => {
                // Brought up to date with the lock held: no write slips in
                // between the copy and the forwarding.
                let t = Transfer {
                    view: v.clone(),
                    entries: s.store.entries().to_vec(),
                };
                match node.post(&b, "/transfer", &t, Duration::from_secs(5)).await {
                    Ok(_) => {
                        println!(
                            "mq {}: brought backup {b} up to date ({} writes)",
                            node.me,
                            t.entries.len()
                        );
                        s.synced_in = Some(v.num);
                        s.acked = v.num;
                        s.backup_confirms = true;
                    }
                    Err(e) => println!("mq {}: cannot bring backup {b} up to date: {e}", node.me),
                }
            }
            Some(b) => {
                let hb = Heartbeat {
                    view: v.num,
                    seq: s.store.last_seq(),
                };
                drop(s);
                let ok = node
                    .post(&b, "/heartbeat", &hb, FORWARD_TIMEOUT)
                    .await
                    .is_ok();
                let mut s = node.state.lock().await;
                if s.view.num == hb.view {
                    s.backup_confirms = ok;
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct WriteBody {
    key: String,
    value: String,
}

async fn write(State(node): State<Arc<Node>>, Json(w): Json<WriteBody>) -> Response {
    let mut s = node.state.lock().await;
    if let Some(refused) = s.unless_primary(&node.me, StatusCode::SERVICE_UNAVAILABLE) {
        return refused;
    }
    if s.acked != s.view.num {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the primary is bringing its backup up to date; not written, try again",
            s.view.primary.as_ref(),
        );
    }
    let entry = Entry {
        seq: s.store.last_seq() + 1,
        key: w.key,
        value: w.value,
    };
    if let Some(b) = s.view.backup.clone() {
        let f = Forward {
            view: s.view.num,
            entry: entry.clone(),
        };
        if let Err(e) = node.post(&b, "/forward", &f, FORWARD_TIMEOUT).await {
            s.backup_confirms = false;
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the backup did not confirm the write ({e}); not written"),
                s.view.primary.as_ref(),
            );
        }
        s.backup_confirms = true;
    }
    let seq = entry.seq;
    match s.store.append(entry) {
        Ok(()) => Json(json!({"seq": seq})).into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot keep the write: {e}"),
            None,
        ),
    }
}

#[derive(Deserialize)]
struct ReadQuery {
    key: String,
}

async fn read(State(node): State<Arc<Node>>, Query(q): Query<ReadQuery>) -> Response {
    let s = node.state.lock().await;
    if let Some(refused) = s.unless_primary(&node.me, StatusCode::SERVICE_UNAVAILABLE) {
        return refused;
    }
    match s.store.get(&q.key) {
        Some(v) => Json(json!({"value": v})).into_response(),
        None => refuse(StatusCode::NOT_FOUND, format!("no key {:?}", q.key), None),
    }
}

/// Every write the primary holds, in order (the writer looks for
/// duplicates in it).
async fn dump(State(node): State<Arc<Node>>) -> Response {
    let s = node.state.lock().await;
    if let Some(refused) = s.unless_primary(&node.me, StatusCode::SERVICE_UNAVAILABLE) {
        return refused;
    }
    Json(s.store.entries().to_vec()).into_response()
}

async fn redundancy(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    let s = node.state.lock().await;
    let role = s.role(&node.me);
    let agree = s.monitor_view == s.view.num;
    let up = match role {
        "primary" => {
            s.view.backup.is_some()
                && s.synced_in == Some(s.view.num)
                && s.acked == s.view.num
                && s.backup_confirms
                && agree
        }
        "backup" => {
            s.synced_in == Some(s.view.num)
                && agree
                && s.primary_seq
                    .is_some_and(|(seq, at)| at.elapsed() < DEAD_AFTER && seq == s.store.last_seq())
        }
        _ => false,
    };
    Json(json!({"view": s.view.num, "role": role, "up": up}))
}

async fn release_activity(State(node): State<Arc<Node>>) -> Response {
    let mut s = node.state.lock().await;
    if let Some(refused) = s.unless_primary(&node.me, StatusCode::CONFLICT) {
        return refused;
    }
    if s.view.backup.is_none() || s.synced_in != Some(s.view.num) || !s.backup_confirms {
        return refuse(
            StatusCode::CONFLICT,
            "no backup is up to date: releasing activity now would leave the group without a primary that has every write",
            s.view.primary.as_ref(),
        );
    }
    let h = json!({"from": node.me, "view": s.view.num});
    // The lock is held: no write is acknowledged while the role moves.
    let answer = match node
        .post(&node.monitor, "/handover", &h, Duration::from_secs(2))
        .await
    {
        Ok(r) => r.json::<View>().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match answer {
        Ok(v) => {
            println!(
                "mq {}: released activity: view {} primary {:?}",
                node.me, v.num, v.primary
            );
            s.view = v.clone();
            s.acked = v.num;
            Json(json!({"view": v.num, "primary": v.primary})).into_response()
        }
        Err(e) => refuse(
            StatusCode::CONFLICT,
            format!("the monitor refused the handover: {e}"),
            s.view.primary.as_ref(),
        ),
    }
}

async fn forward(State(node): State<Arc<Node>>, Json(f): Json<Forward>) -> Response {
    let mut s = node.state.lock().await;
    if f.view != s.view.num || s.view.backup.as_deref() != Some(node.me.as_str()) {
        return refuse(
            StatusCode::CONFLICT,
            format!("view {} is not this backup's view ({})", f.view, s.view.num),
            None,
        );
    }
    if s.synced_in != Some(f.view) {
        return refuse(
            StatusCode::CONFLICT,
            "this backup has not received the primary's state yet",
            None,
        );
    }
    let next = s.store.last_seq() + 1;
    if f.entry.seq < next {
        // Already applied (a retried forward): the same write, once.
        return Json(json!({"seq": f.entry.seq})).into_response();
    }
    if f.entry.seq > next {
        return refuse(
            StatusCode::CONFLICT,
            format!("write {} out of order: expected {next}", f.entry.seq),
            None,
        );
    }
    let seq = f.entry.seq;
    match s.store.append(f.entry) {
        Ok(()) => {
            s.primary_seq = Some((seq, Instant::now()));
            Json(json!({"seq": seq})).into_response()
        }
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot keep the write: {e}"),
            None,
        ),
    }
}

async fn transfer(State(node): State<Arc<Node>>, Json(t): Json<Transfer>) -> Response {
    let mut s = node.state.lock().await;
    if t.view.num < s.view.num {
        return refuse(
            StatusCode::CONFLICT,
            format!("view {} is older than {}", t.view.num, s.view.num),
            None,
        );
    }
    if t.view.backup.as_deref() != Some(node.me.as_str()) {
        return refuse(
            StatusCode::CONFLICT,
            format!("{} is not the backup of view {}", node.me, t.view.num),
            None,
        );
    }
    let seq = t.entries.last().map_or(0, |e| e.seq);
    if let Err(e) = s.store.replace(t.entries) {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot keep the state: {e}"),
            None,
        );
    }
    println!(
        "mq {}: received the primary's state ({seq} writes) in view {}",
        node.me, t.view.num
    );
    s.view = t.view;
    s.synced_in = Some(s.view.num);
    s.primary_seq = Some((seq, Instant::now()));
    Json(json!({"seq": seq})).into_response()
}

async fn heartbeat(State(node): State<Arc<Node>>, Json(h): Json<Heartbeat>) -> StatusCode {
    let mut s = node.state.lock().await;
    if h.view != s.view.num || s.synced_in != Some(h.view) {
        return StatusCode::CONFLICT;
    }
    s.primary_seq = Some((h.seq, Instant::now()));
    StatusCode::NO_CONTENT
}
