//! A service's migrations: its own, and the platform's tables (request
//! idempotency, the audit log, the readiness heartbeat), whose SQL lives once
//! in `shared/platform/migrations` instead of in a copy per service.
//!
//! Deployed databases recorded the platform's tables under the version of
//! whichever folder of the service created them (participant's audit log is
//! `2026-11-28-000004`, content-release's `2026-11-28-000003`). Each service
//! therefore names the versions it used, and the combined source reports
//! exactly those: nothing already applied runs again and nothing is missed.
//!
//! Each migration is written once, as an `up.sql` and a `down.sql` that both
//! backends render from: `{{sqlite:A|postgres:B}}` stands for `A` on SQLite
//! and `B` on PostgreSQL (either may be empty or span lines, neither may hold
//! `{{`, `|postgres:` or `}}`). Everything else is the SQL both run, byte for
//! byte.

use diesel::backend::Backend;
use diesel::connection::BoxableConnection;
use diesel::migration::{Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion};
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

/// One of a service's migrations as written: its folder name
/// (`{version}_{name}`, the version diesel records) and its `up.sql` and
/// `down.sql` templates. Made by [`migration!`](crate::migration!).
#[derive(Clone, Copy, Debug)]
pub struct Template {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

impl Template {
    #[doc(hidden)]
    pub const fn new(name: &'static str, up: &'static str, down: &'static str) -> Self {
        Self { name, up, down }
    }
}

/// The [`Template`] of the calling crate's folder `migrations/{name}`; a
/// folder without an `up.sql` and a `down.sql` does not compile.
#[macro_export]
macro_rules! migration {
    ($name:literal) => {
        $crate::migrations::Template::new(
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $name, "/up.sql")),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $name, "/down.sql")),
        )
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendKind {
    Sqlite,
    Postgres,
}

macro_rules! platform_step {
    ($folder:literal) => {
        Template::new(
            $folder,
            include_str!(concat!("../migrations/", $folder, "/up.sql")),
            include_str!(concat!("../migrations/", $folder, "/down.sql")),
        )
    };
}

impl PlatformMigration {
    /// The step's SQL; its name is the folder's until a service records it.
    fn template(self) -> Template {
        match self {
            Self::IdempotencyKeys => platform_step!("idempotency_keys"),
            Self::AuditLog => platform_step!("audit_log"),
            Self::Heartbeat => platform_step!("heartbeat"),
            Self::AuditRetention => platform_step!("audit_retention"),
            Self::IdempotencyKeyForm => platform_step!("idempotency_key_form"),
        }
    }
}

#[cfg(test)]
impl PlatformMigration {
    /// The step's `up.sql` as SQLite runs it, for a test that wants one table.
    pub(crate) fn sqlite_up(self) -> String {
        render(self.template().up, BackendKind::Sqlite).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

const OPENS: &str = "{{";
const SQLITE_FIRST: &str = "sqlite:";
const POSTGRES_SECOND: &str = "|postgres:";
const CLOSES: &str = "}}";

/// `template` as `backend` runs it (see the module's documentation).
fn render(template: &str, backend: BackendKind) -> Result<String, String> {
    let mut rendered = String::with_capacity(template.len());
    let mut rest = template;
    loop {
        let (plain, alternatives) = match rest.split_once(OPENS) {
            Some((plain, after)) => (plain, Some(after)),
            None => (rest, None),
        };
        if let Some(at) = plain.find(CLOSES) {
            let line = plain[..at].rfind('\n').map_or(0, |newline| newline + 1);
            return Err(format!("`{CLOSES}` closes nothing: {}", excerpt(&plain[line..])));
        }
        rendered.push_str(plain);
        let Some(after) = alternatives else { return Ok(rendered) };
        let malformed = || format!("not `{OPENS}{SQLITE_FIRST}…{POSTGRES_SECOND}…{CLOSES}`: {OPENS}{}", excerpt(after));
        let (sqlite, after) =
            after.strip_prefix(SQLITE_FIRST).and_then(|a| a.split_once(POSTGRES_SECOND)).ok_or_else(malformed)?;
        let (postgres, after) = after.split_once(CLOSES).ok_or_else(malformed)?;
        let nested = |part: &str| [OPENS, POSTGRES_SECOND, CLOSES].iter().any(|marker| part.contains(marker));
        if nested(sqlite) || nested(postgres) {
            return Err(malformed());
        }
        rendered.push_str(match backend {
            BackendKind::Sqlite => sqlite,
            BackendKind::Postgres => postgres,
        });
        rest = after;
    }
}

/// The first line of `text`, enough to find the fault in the file.
fn excerpt(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Each backend's migrations for one service: its own folders and the
/// platform's steps under the versions the service recorded them.
pub struct Migrations {
    own: &'static [Template],
    platform: &'static [Recorded],
}

impl Migrations {
    /// A service's own migrations (each a [`migration!`](crate::migration!))
    /// plus the platform's steps as it recorded them.
    pub const fn new(own: &'static [Template], platform: &'static [Recorded]) -> Self {
        Self { own, platform }
    }

    /// The platform's steps alone, for the platform's own tests.
    pub const fn platform_only(platform: &'static [Recorded]) -> Self {
        Self { own: &[], platform }
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
        let platform = self.migrations.platform.iter().map(|&(step, name)| Template { name, ..step.template() });
        let all = self.migrations.own.iter().copied().chain(platform);
        let all: Vec<Box<dyn Migration<DB>>> = all
            .map(|template| Ok(Box::new(Rendered::new(template, self.backend)?) as Box<dyn Migration<DB>>))
            .collect::<diesel::migration::Result<_>>()?;
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

/// A migration's SQL as one backend runs it.
struct Rendered {
    name: FolderName,
    up: String,
    down: String,
}

impl Rendered {
    fn new(template: Template, backend: BackendKind) -> diesel::migration::Result<Self> {
        let name = FolderName(template.name);
        // `embed_migrations!` refused such a folder when it compiled; a
        // template is only read here.
        let version = name.version().to_string();
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{name}: not a `{{version}}_{{name}}` folder name").into());
        }
        let rendered = |sql, file| render(sql, backend).map_err(|e| format!("{name}/{file}: {e}"));
        Ok(Self { up: rendered(template.up, "up.sql")?, down: rendered(template.down, "down.sql")?, name })
    }
}

impl<DB: Backend> Migration<DB> for Rendered {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        conn.batch_execute(&self.up).map_err(|e| format!("failed to run {} with: {e}", self.name).into())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        conn.batch_execute(&self.down).map_err(|e| format!("failed to revert {} with: {e}", self.name).into())
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

struct FolderName(&'static str);

impl MigrationName for FolderName {
    /// diesel's rule for a folder name: the part before the first `_`,
    /// without its dashes.
    fn version(&self) -> MigrationVersion<'_> {
        let version = self.0.split('_').next().unwrap_or(self.0);
        MigrationVersion::from(version.replace('-', ""))
    }
}

impl fmt::Display for FolderName {
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

    static MISNAMED: Migrations =
        Migrations::new(&[Template::new("release", "CREATE TABLE releases (id TEXT);", "DROP TABLE releases;")], &[]);

    #[test]
    fn a_folder_name_without_a_version_is_refused() {
        let refused = MigrationSource::<Sqlite>::migrations(&MISNAMED.sqlite()).err().expect("refused");
        assert!(refused.to_string().contains("release"), "{refused}");
    }

    #[test]
    fn two_steps_with_one_version_are_refused() {
        let refused = MigrationSource::<Sqlite>::migrations(&SHARED_VERSION.sqlite()).err().expect("refused");
        assert!(refused.to_string().contains("share the version"), "{refused}");
    }

    #[test]
    fn each_backend_takes_its_own_alternative_and_the_rest_as_written() {
        let template = "CREATE TABLE t (\n    id {{sqlite:INTEGER|postgres:BIGINT}},\n    b {{sqlite:BLOB|postgres:}}\n)\
                        {{sqlite: WITHOUT ROWID\n|postgres:}}; SELECT 'a' || 'b';";
        assert_eq!(
            render(template, BackendKind::Sqlite).as_deref(),
            Ok("CREATE TABLE t (\n    id INTEGER,\n    b BLOB\n) WITHOUT ROWID\n; SELECT 'a' || 'b';")
        );
        assert_eq!(
            render(template, BackendKind::Postgres).as_deref(),
            Ok("CREATE TABLE t (\n    id BIGINT,\n    b \n); SELECT 'a' || 'b';")
        );
    }

    #[test]
    fn a_malformed_alternative_is_refused() {
        let templates = [
            "{{sqlite:BLOB}}",
            "{{postgres:BYTEA|sqlite:BLOB}}",
            "a {{sqlite:BLOB|postgres:BYTEA",
            "BLOB}}",
            "{{sqlite:BLOB}} b|postgres:BYTEA}}",
        ];
        for template in templates {
            for backend in [BackendKind::Sqlite, BackendKind::Postgres] {
                assert!(render(template, backend).is_err(), "{template:?} on {backend:?}");
            }
        }
    }

    /// Every template the platform holds renders on both backends.
    #[test]
    fn every_platform_step_renders_on_both_backends() {
        use PlatformMigration::*;
        for step in [IdempotencyKeys, AuditLog, Heartbeat, AuditRetention, IdempotencyKeyForm] {
            for backend in [BackendKind::Sqlite, BackendKind::Postgres] {
                let template = step.template();
                for sql in [template.up, template.down] {
                    let rendered = render(sql, backend).unwrap_or_else(|e| panic!("{step:?} on {backend:?}: {e}"));
                    assert!(!rendered.contains("{{") && !rendered.contains("postgres:"), "{step:?} on {backend:?}");
                }
            }
        }
    }
}
