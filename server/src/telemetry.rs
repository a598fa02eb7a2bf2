//! The console's metrics in the Prometheus text format (`GET /metrics`):
//! counters and histograms recorded where things happen (the `metrics`
//! facade), gauges of the lock and the grids read when scraped.

use metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Seconds: downtimes and phases, from a fraction of a second to hours.
const SECONDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed once (`None` when another recorder
/// was installed first: then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        "migctl_operations_started_total",
        "Operations started, by action and copy (cold, warm)"
    );
    describe_counter!(
        "migctl_operations_ended_total",
        "Operations ended, by action and outcome"
    );
    describe_counter!(
        "migctl_group_runs_ended_total",
        "Group runs ended, by state (done, aborted)"
    );
    describe_counter!(
        "migctl_bytes_copied_total",
        "Bytes the helper moved, summed over ended operations"
    );
    describe_counter!(
        "migctl_bytes_skipped_total",
        "Bytes not moved (zero or already equal blocks), summed over ended operations"
    );
    describe_counter!(
        "migctl_store_errors_total",
        "Writes of an operation's record (event, reason) the database refused, by what"
    );
    describe_counter!(
        "migctl_event_streams_failed_total",
        "Event streams ended because the database could not be read (each ends with an error event)"
    );
    describe_gauge!(
        "migctl_copy_rate_bytes_per_second",
        "The copy rate of the last progress sample"
    );
    describe_histogram!(
        "migctl_downtime_seconds",
        "How long an operation's app was down, as its helper measured it"
    );
    describe_histogram!(
        "migctl_phase_duration_seconds",
        "How long operations spent in each phase"
    );
    describe_gauge!(
        "migctl_lock_held",
        "1 while mig.lock is held (or unreadable)"
    );
    describe_gauge!("migctl_lock_age_seconds", "Age of the held lock");
    describe_gauge!("migctl_sse_subscribers", "Open event streams");
    describe_counter!(
        "migctl_signins_refused_total",
        "Sign-ins refused, by reason (password, throttled, invalid, busy)"
    );
    describe_gauge!(
        "migctl_grid_reachable",
        "1 when the last check reached the grid's controller"
    );
    describe_gauge!(
        "migctl_grid_command_latency_seconds",
        "Round trip of the last check's `grid info`"
    );
}

/// The text of a scrape: gauges read now (the lock, the grids), then
/// everything recorded.
pub fn render(lock: &crate::lock::LockState, grids: &[app::model::GridView]) -> Option<String> {
    let handle = handle()?;
    use crate::lock::LockState;
    let (held, age) = match lock {
        LockState::Free => (0.0, 0.0),
        LockState::Held(l) => (1.0, l.created_at.age_secs() as f64),
        LockState::Unreadable { .. } => (1.0, 0.0),
    };
    gauge!("migctl_lock_held").set(held);
    gauge!("migctl_lock_age_seconds").set(age);
    for g in grids {
        let name = g.name.clone();
        gauge!("migctl_grid_reachable", "grid" => name.clone())
            .set(f64::from(u8::from(g.reachable)));
        if let Some(ms) = g.latency_ms {
            gauge!("migctl_grid_command_latency_seconds", "grid" => name).set(ms / 1000.0);
        }
    }
    Some(handle.render())
}

/// An open event stream, counted while it lives.
pub struct Subscriber;

impl Subscriber {
    pub fn new() -> Subscriber {
        gauge!("migctl_sse_subscribers").increment(1.0);
        Subscriber
    }
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber::new()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        gauge!("migctl_sse_subscribers").decrement(1.0);
    }
}
