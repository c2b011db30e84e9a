//! The storage alarm: how the database layer tells readiness, at once, that
//! a unit of work met a storage fault. It lives with the database so the
//! database layer does not depend on the health service that watches it
//! (see [`crate::readiness`]).

use super::{DbError, StorageFault};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// Storage faults seen by one database's users; raised from any thread
/// (diesel runs on tokio's blocking pool), watched by the readiness task.
#[derive(Debug, Clone, Default)]
pub struct StorageAlarm {
    inner: Arc<AlarmInner>,
}

#[derive(Debug, Default)]
struct AlarmInner {
    raised: AtomicU64,
    wake: Notify,
}

impl StorageAlarm {
    pub fn raise(&self, fault: StorageFault) {
        tracing::debug!(?fault, "storage fault: readiness turns NOT_SERVING");
        self.inner.raised.fetch_add(1, Ordering::AcqRel);
        self.inner.wake.notify_one();
    }

    /// How many faults were raised so far.
    pub(crate) fn count(&self) -> u64 {
        self.inner.raised.load(Ordering::Acquire)
    }

    /// Completes when a fault is raised (or was raised since the last wait).
    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}

thread_local! {
    /// The alarm of the database whose unit of work runs on this thread.
    static WATCHING: RefCell<Option<StorageAlarm>> = const { RefCell::new(None) };
    /// Whether the unit of work on this thread met a database error, so its
    /// connection is tested before it goes back to the pool.
    static ERRED: Cell<bool> = const { Cell::new(false) };
}

/// Notes that the unit of work on this thread met a database error.
pub(crate) fn note_error() {
    ERRED.with(|e| e.set(true));
}

/// Whether the unit of work on this thread met a database error since the
/// last time this was asked.
pub(crate) fn take_error() -> bool {
    ERRED.with(|e| e.replace(false))
}

/// Runs blocking `f` (a unit of work on `alarm`'s database) so that
/// [`raise_for`] inside it reaches `alarm`.
pub(crate) fn watching<T>(alarm: &StorageAlarm, f: impl FnOnce() -> T) -> T {
    // Each unit of work starts clean: what an earlier one met on this
    // thread was asked when its connection went back.
    ERRED.with(|e| e.set(false));
    let previous = WATCHING.with(|w| w.replace(Some(alarm.clone())));
    let result = f();
    WATCHING.with(|w| *w.borrow_mut() = previous);
    result
}

/// Raises the current unit of work's alarm when `error` is a storage fault.
/// Called where database errors are classified (the error mapping and the
/// transaction boundaries); outside a unit of work it does nothing, and the
/// next probe finds the fault instead.
pub(crate) fn raise_for(error: &DbError) {
    if let DbError::Query(_) = error {
        note_error();
    }
    if let Some(fault) = error.storage_fault() {
        WATCHING.with(|w| {
            if let Some(alarm) = &*w.borrow() {
                alarm.raise(fault);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_raised_only_inside_a_unit_of_work() {
        let alarm = StorageAlarm::default();
        let full = DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database or disk is full".to_owned()),
        ));
        raise_for(&full);
        assert_eq!(alarm.count(), 0);
        watching(&alarm, || raise_for(&full));
        assert_eq!(alarm.count(), 1);
        let locked = DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        ));
        watching(&alarm, || raise_for(&locked));
        assert_eq!(alarm.count(), 1, "a busy database is load, not a fault");
    }
}
