//! What runs at start-up, before serving: the release feed recomputed when
//! the curriculum or the release rules changed.

use super::{ContentRelease, refresh_feed};
use crate::domain::release;
use crate::store;
use std::sync::Arc;
use steplab_platform::error::ServiceError;

impl ContentRelease {
    /// Recomputes the stored release feed of every learner when the loaded
    /// curriculum differs from the one the feed was computed with (a
    /// deployment changed its file), or the release rules changed (a new
    /// release of this service, e.g. the term-aligned restart of D5). Runs at start-up, before serving; a
    /// crash part-way leaves the old marker, so the next start redoes it.
    /// Returns how many learners were recomputed.
    pub async fn reconcile_curriculum(&self) -> Result<u64, ServiceError> {
        const BATCH: i64 = 500;
        let basis = release::feed_basis(self.curriculum.canonical());
        let stored = self.db.read(store::stored_curriculum).await?;
        if stored.as_deref() == Some(basis.as_str()) {
            return Ok(0);
        }
        let mut after: Option<String> = None;
        let mut count = 0u64;
        loop {
            let curriculum = Arc::clone(&self.curriculum);
            let from = after.clone();
            let batch = self
                .db
                .write(move |conn| {
                    let ids = store::learner_ids_after(conn, from.as_deref(), BATCH)?;
                    for id in &ids {
                        refresh_feed(conn, &curriculum, id)?;
                    }
                    Ok::<_, ServiceError>(ids)
                })
                .await?;
            count += batch.len() as u64;
            match batch.last() {
                Some(last) if batch.len() as i64 == BATCH => after = Some(last.clone()),
                _ => break,
            }
        }
        let now = self.clock.now();
        self.db.write(move |conn| store::save_curriculum(conn, &basis, now)).await?;
        if count > 0 {
            tracing::info!(learners = count, "curriculum changed: release feed recomputed");
        }
        Ok(count)
    }
}
