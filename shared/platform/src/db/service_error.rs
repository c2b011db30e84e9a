//! How a database error reaches a caller: the one mapping of [`DbError`] to
//! [`ServiceError`]. It lives with the database so that the error module
//! stays free of storage and readiness: classifying the error is also where
//! a storage fault raises the readiness alarm.

use super::{DbError, StorageFault};
use crate::error::ServiceError;

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        // Readiness turns NOT_SERVING at once when a call meets one.
        super::raise_for(&e);
        match e.storage_fault() {
            Some(StorageFault::Full) => return ServiceError::StorageFull(e.to_string()),
            Some(StorageFault::Unreachable) => return ServiceError::Unavailable(e.to_string()),
            None => {}
        }
        match e {
            DbError::Unavailable(msg) => ServiceError::Unavailable(msg),
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                ServiceError::Aborted("a concurrent change won: retry the request".into())
            }
            // A check-then-insert (a URN, a TRN, an enrolment, an idempotency
            // key) lost a race with an identical insert in another
            // transaction; the retry finds the winner's row.
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                ServiceError::Aborted("a concurrent request made the same change: retry the request".into())
            }
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info)) => {
                ServiceError::Unavailable(info.message().to_owned())
            }
            // SQLITE_BUSY: another process held the write lock for the whole
            // busy timeout. Transient, so worth a retry, not a fault of ours.
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info))
                if info.message().starts_with("database is locked") =>
            {
                ServiceError::Unavailable(info.message().to_owned())
            }
            DbError::Query(other) => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::from(DbError::Query(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};
    use tonic_types::StatusExt;

    #[test]
    fn a_locked_sqlite_database_is_unavailable_not_internal() {
        use diesel::result::{DatabaseErrorKind, Error};
        let locked = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("database is locked".to_owned()));
        let err = ServiceError::from(DbError::Query(locked));
        assert!(matches!(err, ServiceError::Unavailable(_)), "{err:?}");
        let other = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("no such table: x".to_owned()));
        assert!(matches!(ServiceError::from(DbError::Query(other)), ServiceError::Internal(_)));
    }

    #[test]
    fn a_full_disk_and_a_lost_database_are_unavailable_with_retry_info_not_internal() {
        use diesel::result::{DatabaseErrorKind, Error};
        let db_error = |kind, message: &str| DbError::Query(Error::DatabaseError(kind, Box::new(message.to_owned())));
        for message in [
            "database or disk is full",
            "could not extend file \"base/16384/16385\": No space left on device",
            "out of memory",
        ] {
            let err = ServiceError::from(db_error(DatabaseErrorKind::Unknown, message));
            assert!(matches!(err, ServiceError::StorageFull(_)), "{message}: {err:?}");
            let status = Status::from(err);
            assert_eq!(status.code(), Code::Unavailable, "{message}");
            assert!(status.get_error_details().retry_info().is_some(), "{message}");
        }
        for (kind, message) in [
            (DatabaseErrorKind::ClosedConnection, "server closed the connection unexpectedly"),
            (DatabaseErrorKind::Unknown, "terminating connection due to administrator command"),
            (DatabaseErrorKind::Unknown, "disk I/O error"),
        ] {
            let err = ServiceError::from(db_error(kind, message));
            assert!(matches!(err, ServiceError::Unavailable(_)), "{message}: {err:?}");
        }
    }
}
