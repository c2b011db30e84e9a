//! Where a service keeps its data: a PostgreSQL URL or a SQLite file.

use super::ConfigError;
use std::path::PathBuf;

/// Where a service keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    // A PostgreSQL URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => write!(f, "{}", redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl DatabaseUrl {
    /// Parses a database URL strictly: only `postgres://`, `postgresql://`,
    /// `sqlite://PATH` (`sqlite:///abs/path`) and `file:PATH` are accepted, so
    /// a typo such as `postgresdb` is an error instead of a new SQLite file.
    pub fn parse(variable: &str, raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        let path = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("file:"));
        match path {
            Some(p) if !p.is_empty() && p != ":memory:" => Ok(DatabaseUrl::Sqlite(PathBuf::from(p))),
            Some(_) => Err(ConfigError::new(
                variable,
                "a SQLite URL needs a file path (an in-memory database would lose everything at exit), e.g. sqlite:///var/lib/steplab/participant.sqlite3",
            )),
            None => Err(ConfigError::new(
                variable,
                format!(
                    "`{}` is not a database URL: use postgres://USER@HOST:PORT/DB or sqlite:///path/to/file.sqlite3",
                    redact_password(raw)
                ),
            )),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}
