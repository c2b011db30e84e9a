//! Start-up: the schedules every payee is on must be loaded, and stored
//! outcomes computed under the loaded book.

use super::recompute::{Declaring, recompute_all};
use super::{Payments, REBUILD_BATCH};
use crate::store;
use std::time::Instant;

impl Payments {
    /// Start-up: every payee's schedule must be loaded, and the stored
    /// window outcomes must have been computed under the loaded schedules
    /// (a new schedules file changes amounts and windows): when the
    /// fingerprint differs, every payee is recomputed.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let book = self.book.clone();
        let in_use = self.db.read(store::schedules_in_use).await?;
        let missing: Vec<String> = in_use
            .iter()
            .filter(|(id, cohort)| book.schedule(id, *cohort).is_none())
            .map(|(id, cohort)| format!("{id}/{cohort}"))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "the loaded schedules lack {} which enrolled payees are on: add them to STEPLAB_SCHEDULES_FILE (or unset it for the built-in schedules)",
                missing.join(", ")
            );
        }
        let fingerprint = book.fingerprint();
        if self.db.read(store::book_fingerprint).await?.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        let started = Instant::now();
        let mut after: Option<String> = None;
        let mut count = 0usize;
        loop {
            let page_after = after.clone();
            let ids =
                self.db.read(move |conn| store::payee_ids_after(conn, page_after.as_deref(), REBUILD_BATCH)).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            count += ids.len();
            let book = book.clone();
            let last_id = last.clone();
            let first = ids.first().cloned().unwrap_or_default();
            let declaring = Declaring::new(&self.clock);
            self.db
                .write(move |conn| {
                    let payees = store::lock_payees(conn, &first, &last)?;
                    recompute_all(conn, &book, &payees, &declaring).map(|_| ())
                })
                .await?;
            after = Some(last_id);
        }
        let now = self.clock.now();
        self.db.write(move |conn| store::set_book_fingerprint(conn, &fingerprint, now)).await?;
        self.relay.notify_one();
        tracing::info!(
            payees = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "window outcomes computed under the loaded schedules"
        );
        Ok(())
    }
}
