//! Provisioning the helper app `MigHelper_<target>` on the target grid with
//! the operation's job as its properties.

use super::{
    Engine, EngineError, HELPER_TEMPLATE, cutover_signal_name, helper_name, remove_helper, store,
};
use crate::lock::Lock;
use app::model::Phase;
use grid::TemplateName;
use grid::dialect::Property;

impl Engine {
    pub(super) async fn provision(&self, lock: &Lock) -> Result<(), EngineError> {
        let op = &lock.op_id;
        self.phase(
            op,
            Phase::Provisioning,
            &format!("provisioning the helper on grid {}", lock.target_grid),
        )
        .await;
        let dst = self.connection(&lock.target_grid).await?;
        let helper = helper_name(&lock.target_app_name)?;
        // A helper left by an aborted run is removed first (MIG did the same).
        if let Ok(info) = dst.app_info(&helper).await {
            self.log(op, format!("destroying a stale {helper} ({})", info.state))
                .await;
            remove_helper(&dst, &lock.target_app_name, 30).await?;
        }
        let job = helper::Job {
            op_id: op.clone(),
            action: lock.action,
            source_grid: lock.source_grid.clone(),
            source_app: lock.source_app_name.clone(),
            target_grid: lock.target_grid.clone(),
            target_app: lock.target_app_name.clone(),
            grids_file: Default::default(),
            key_file: Default::default(),
            known_hosts: Default::default(),
            block_size: helper::env::DEFAULT_BLOCK_SIZE,
            stop_timeout_secs: lock.stop_timeout(),
            rate_limit: self.settings.copy_rate_limit_mib.unwrap_or(0) << 20,
            streams: self.settings.copy_streams,
            transfer: super::start::TRANSFER,
            compress: self.settings.copy_compression,
            warm: match &lock.warm {
                None => None,
                Some(w) => Some(helper::env::Warm {
                    cutover: w.cutover,
                    // Whole seconds, rounded up: never before the time asked.
                    cutover_at: w.cutover_at.and_then(|t| {
                        let late = u64::from(t.0.nanosecond() > 0);
                        u64::try_from(t.0.unix_timestamp()).ok().map(|s| s + late)
                    }),
                    pass_limit: self.settings.warm_pass_limit,
                    converged_bytes: self.settings.warm_converged_mib << 20,
                    at_limit: self.settings.warm_at_pass_limit,
                    signal: cutover_signal_name(&lock.target_app_name)?,
                }),
            },
        };
        let props = job
            .properties()
            .into_iter()
            .map(|(k, v)| Property::new(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        let template =
            TemplateName::new(HELPER_TEMPLATE).map_err(|e| EngineError::Unexpected(e.into()))?;
        self.mark_source_log(lock).await;
        dst.app_provision(&template, &helper, props).await?;
        self.log(op, format!("{helper} is running on {}", lock.target_grid))
            .await;
        Ok(())
    }

    /// Records the source's last log line before the helper starts: the
    /// operation's share of the source's log (its stop included) is what
    /// comes after, however late the console first follows it.
    async fn mark_source_log(&self, lock: &Lock) {
        let op = &lock.op_id;
        let last = match self.connection(&lock.source_grid).await {
            Ok(src) => src
                .app_log(&lock.source_app_name, None)
                .await
                .map(|lines| lines.last().map_or(0, |l| l.seq))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let stored = match last {
            Ok(seq) => store::set_source_log_since(&self.pool, op, seq)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            self.log(
                op,
                format!(
                    "cannot mark where {}'s log stands ({e}): its lines are stored from when the console first reads them",
                    lock.source_app_name
                ),
            )
            .await;
        }
    }
}
