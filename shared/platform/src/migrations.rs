//! A service's migrations: its own, and the platform's tables (request
//! idempotency, the audit log, the readiness heartbeat), whose SQL lives once
//! in `shared/platform/migrations` instead of in a copy per service.
//!
//! Deployed databases recorded the platform's tables under the version of
//! whichever folder of the service created them (participant's audit log is
//! `2026-11-28-000004`, content-release's `2026-11-28-000003`). Each service
//! therefore names the versions it used, and the combined source reports
//! exactly those: nothing already applied runs again and nothing is missed.

use diesel::backend::Backend;
use diesel::connection::BoxableConnection;
use diesel::migration::{Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion};
use diesel_migrations::EmbeddedMigrations;
use std::collections::HashSet;
use std::fmt;

/// One step of the platform's schema, in the order the services took them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformMigration {
    IdempotencyKeys,
    AuditLog,
    Heartbeat,
    AuditRetention,
    IdempotencyKeyForm,
}

/// A platform step as one service recorded it: the step and the folder name
/// (`{version}_{name}`) it had in that service's migrations.
pub type Recorded = (PlatformMigration, &'static str);

/// The `down.sql` of one of a service's migrations whose `up.sql` differs
/// between the backends but whose `down.sql` does not: the folder name and
/// the SQL, kept once in `migrations/down/{name}.sql` (see [`shared_down!`]).
pub type SharedDown = (&'static str, &'static str);

/// A [`SharedDown`] from the calling service's `migrations/down/{name}.sql`.
#[macro_export]
macro_rules! shared_down {
    ($name:literal) => {
        ($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/down/", $name, ".sql")))
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy)]
struct Sql {
    up: &'static str,
    down: &'static str,
}

macro_rules! platform_sql {
    ($path:literal) => {
        include_str!(concat!("../migrations/", $path))
    };
}

impl PlatformMigration {
    /// Only the `CREATE TABLE`s differ between the backends (`BLOB` against
    /// `BYTEA`, `AUTOINCREMENT` against `BIGSERIAL`, `TEXT` against `TIMESTAMP`); the rest is one file.
    fn sql(self, backend: BackendKind) -> Sql {
        use BackendKind::{Postgres, Sqlite};
        match (self, backend) {
            (Self::IdempotencyKeys, Sqlite) => Sql {
                up: platform_sql!("idempotency_keys/up.sqlite.sql"),
                down: platform_sql!("idempotency_keys/down.sql"),
            },
            (Self::IdempotencyKeys, Postgres) => Sql {
                up: platform_sql!("idempotency_keys/up.postgres.sql"),
                down: platform_sql!("idempotency_keys/down.sql"),
            },
            (Self::AuditLog, Sqlite) => {
                Sql { up: platform_sql!("audit_log/up.sqlite.sql"), down: platform_sql!("audit_log/down.sql") }
            }
            (Self::AuditLog, Postgres) => {
                Sql { up: platform_sql!("audit_log/up.postgres.sql"), down: platform_sql!("audit_log/down.sql") }
            }
            (Self::Heartbeat, Sqlite) => {
                Sql { up: platform_sql!("heartbeat/up.sqlite.sql"), down: platform_sql!("heartbeat/down.sql") }
            }
            (Self::Heartbeat, Postgres) => {
                Sql { up: platform_sql!("heartbeat/up.postgres.sql"), down: platform_sql!("heartbeat/down.sql") }
            }
            (Self::AuditRetention, _) => {
                Sql { up: platform_sql!("audit_retention/up.sql"), down: platform_sql!("audit_retention/down.sql") }
            }
            (Self::IdempotencyKeyForm, _) => Sql {
                up: platform_sql!("idempotency_key_form/up.sql"),
                down: platform_sql!("idempotency_key_form/down.sql"),
            },
        }
    }
}

/// Each backend's migrations for one service: its own folders and the
/// platform's steps under the versions the service recorded them.
pub struct Migrations {
    sqlite: Option<EmbeddedMigrations>,
    postgres: Option<EmbeddedMigrations>,
    on_both_backends: Option<EmbeddedMigrations>,
    shared_downs: &'static [SharedDown],
    platform: &'static [Recorded],
}

impl Migrations {
    /// A service's own SQLite and PostgreSQL folders plus the platform's
    /// steps as it recorded them.
    pub const fn new(sqlite: EmbeddedMigrations, postgres: EmbeddedMigrations, platform: &'static [Recorded]) -> Self {
        Self { sqlite: Some(sqlite), postgres: Some(postgres), on_both_backends: None, shared_downs: &[], platform }
    }

    /// Adds the service's folder of migrations whose SQL is the same on both
    /// backends, so that they are not kept twice.
    pub const fn with_both_backends(self, migrations: EmbeddedMigrations) -> Self {
        Self { on_both_backends: Some(migrations), ..self }
    }

    /// Adds the `down.sql`s of the service's SQLite and PostgreSQL folders
    /// that are the same on both backends (those folders then hold none).
    pub const fn with_shared_downs(self, shared_downs: &'static [SharedDown]) -> Self {
        Self { shared_downs, ..self }
    }

    /// The platform's steps alone, for the platform's own tests.
    pub const fn platform_only(platform: &'static [Recorded]) -> Self {
        Self { sqlite: None, postgres: None, on_both_backends: None, shared_downs: &[], platform }
    }

    pub fn sqlite(&'static self) -> Source {
        Source { migrations: self, backend: BackendKind::Sqlite }
    }

    pub fn postgres(&'static self) -> Source {
        Source { migrations: self, backend: BackendKind::Postgres }
    }
}

/// One backend's combined migrations, as diesel runs them.
#[derive(Clone, Copy)]
pub struct Source {
    migrations: &'static Migrations,
    backend: BackendKind,
}

impl<DB: Backend + 'static> MigrationSource<DB> for Source {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let own = match self.backend {
            BackendKind::Sqlite => &self.migrations.sqlite,
            BackendKind::Postgres => &self.migrations.postgres,
        };
        let own = match own {
            Some(folder) => MigrationSource::<DB>::migrations(folder)?,
            None => Vec::new(),
        };
        let mut all = with_shared_downs(own, self.migrations.shared_downs)?;
        if let Some(folder) = &self.migrations.on_both_backends {
            all.extend(MigrationSource::<DB>::migrations(folder)?);
        }
        all.extend(self.migrations.platform.iter().map(|&(step, name)| {
            Box::new(PlatformStep { sql: step.sql(self.backend), name: RecordedName(name) }) as Box<dyn Migration<DB>>
        }));
        // diesel keys pending migrations by version: a shared version would
        // silently drop one of the two from a fresh database.
        let mut versions = HashSet::new();
        for migration in &all {
            if !versions.insert(migration.name().version().as_owned()) {
                return Err(format!("two migrations share the version of {}", migration.name()).into());
            }
        }
        Ok(all)
    }
}

/// Gives each migration named in `shared_downs` that down; a shared down
/// that names none of them is a typo, refused rather than never run.
fn with_shared_downs<DB: Backend + 'static>(
    migrations: Vec<Box<dyn Migration<DB>>>,
    shared_downs: &'static [SharedDown],
) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
    let names: HashSet<String> = migrations.iter().map(|m| m.name().to_string()).collect();
    if let Some((unknown, _)) = shared_downs.iter().find(|(name, _)| !names.contains(*name)) {
        return Err(format!("a shared down names no migration of this service: {unknown}").into());
    }
    Ok(migrations
        .into_iter()
        .map(|migration| {
            let name = migration.name().to_string();
            match shared_downs.iter().find(|(shared, _)| *shared == name) {
                Some(&(_, down)) => Box::new(WithSharedDown { inner: migration, down }) as Box<dyn Migration<DB>>,
                None => migration,
            }
        })
        .collect())
}

struct WithSharedDown<DB: Backend> {
    inner: Box<dyn Migration<DB>>,
    down: &'static str,
}

impl<DB: Backend> Migration<DB> for WithSharedDown<DB> {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        self.inner.run(conn)
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        conn.batch_execute(self.down).map_err(|e| format!("failed to revert {} with: {e}", self.inner.name()).into())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self.inner.metadata()
    }

    fn name(&self) -> &dyn MigrationName {
        self.inner.name()
    }
}

struct PlatformStep {
    sql: Sql,
    name: RecordedName,
}

impl<DB: Backend> Migration<DB> for PlatformStep {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        conn.batch_execute(self.sql.up).map_err(|e| format!("failed to run {} with: {e}", self.name).into())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        conn.batch_execute(self.sql.down).map_err(|e| format!("failed to revert {} with: {e}", self.name).into())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        &InTransaction
    }

    fn name(&self) -> &dyn MigrationName {
        &self.name
    }
}

/// diesel's default: each migration runs in its own transaction.
struct InTransaction;

impl MigrationMetadata for InTransaction {}

struct RecordedName(&'static str);

impl MigrationName for RecordedName {
    /// diesel's rule for a folder name: the part before the first `_`,
    /// without its dashes.
    fn version(&self) -> MigrationVersion<'_> {
        let version = self.0.split('_').next().unwrap_or(self.0);
        MigrationVersion::from(version.replace('-', ""))
    }
}

impl fmt::Display for RecordedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sqlite::Sqlite;

    static SHARED_VERSION: Migrations = Migrations::platform_only(&[
        (PlatformMigration::IdempotencyKeys, "2026-11-28-000001_init"),
        (PlatformMigration::AuditLog, "2026-11-28-000001_audit"),
    ]);

    static RECORDED: Migrations =
        Migrations::platform_only(&[(PlatformMigration::AuditLog, "2026-11-28-000004_audit")]);

    #[test]
    fn a_platform_step_reports_the_version_its_service_recorded() {
        let migrations = MigrationSource::<Sqlite>::migrations(&RECORDED.sqlite()).expect("migrations");
        let names: Vec<_> = migrations.iter().map(|m| (m.name().to_string(), m.name().version().to_string())).collect();
        assert_eq!(names, [("2026-11-28-000004_audit".to_owned(), "20261128000004".to_owned())]);
    }

    static MISNAMED_DOWN: Migrations =
        Migrations::platform_only(&[]).with_shared_downs(&[("2026-11-28-000002_relase", "DROP TABLE releases;")]);

    #[test]
    fn a_shared_down_for_no_migration_is_refused() {
        let refused = MigrationSource::<Sqlite>::migrations(&MISNAMED_DOWN.sqlite()).err().expect("refused");
        assert!(refused.to_string().contains("2026-11-28-000002_relase"), "{refused}");
    }

    #[test]
    fn two_steps_with_one_version_are_refused() {
        let refused = MigrationSource::<Sqlite>::migrations(&SHARED_VERSION.sqlite()).err().expect("refused");
        assert!(refused.to_string().contains("share the version"), "{refused}");
    }
}
