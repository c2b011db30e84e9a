//! Statements of fixed text kept prepared (issue 18).
//!
//! Diesel keeps a statement prepared only when it can prove the statement's
//! text is one of a bounded few: it never keeps an `UPDATE` (its `SET` list
//! varies with the changeset), a raw `sql` fragment or `sql_query` (it cannot
//! see how the text was made), nor an `IN` list on SQLite. Each such
//! statement was parsed and planned again on every call: on SQLite that was
//! the participant service's largest cost after executing statements (16% of
//! its CPU while deferring, most of it the relay's claim), and on PostgreSQL
//! a parse and plan on the server per statement.
//!
//! [`KeepPrepared`] marks a statement whose text is fixed, so the backend's
//! statement cache keeps it: by its type where diesel has a static query id,
//! by its text otherwise. Only statements whose text cannot vary with the
//! values bound may be wrapped (no `IN` list on SQLite, no multi-row insert):
//! each distinct text would stay in the cache for the connection's life.
//! The wrapped statement is a whole statement, run on the backend's own
//! connection (see [`crate::on_backend`]): its text is written on its own,
//! with its bind placeholders numbered from the first, and never as empty
//! (so no UPDATE whose changes may be none, no INSERT of no rows).

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;

/// A statement of fixed text, kept prepared by the connection's statement
/// cache whatever diesel would decide for it. Build it with
/// [`KeepPreparedDsl::keep_prepared`].
#[derive(Debug, Clone, Copy)]
pub struct KeepPrepared<Q>(Q);

/// `.keep_prepared()` on any statement: see [`KeepPrepared`].
pub trait KeepPreparedDsl: Sized {
    fn keep_prepared(self) -> KeepPrepared<Self> {
        KeepPrepared(self)
    }
}

impl<Q> KeepPreparedDsl for Q {}

impl<Q: QueryId> QueryId for KeepPrepared<Q> {
    type QueryId = KeepPrepared<Q::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q, DB> QueryFragment<DB> for KeepPrepared<Q>
where
    Q: QueryFragment<DB>,
    DB: Backend,
    DB::QueryBuilder: Default,
{
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // Diesel's connections ask whether a statement may be kept by
        // walking it (PostgreSQL's always does, through a reference that
        // does not reach `is_safe_to_cache_prepared` below), and an UPDATE
        // or a raw fragment says no on that walk. Diesel offers no public
        // way to tell that walk from the one that writes the SQL, so the
        // statement's own walk is taken only for its bind values (and their
        // debug form); every other walk gets its text, written on its own.
        // `AstPassHelper` is the hook diesel's `MultiConnection` derive uses
        // for the same purpose; the lockfile pins its version, and the
        // tests in `relay_batches.rs` fail if a diesel upgrade changes it.
        use diesel::internal::derives::multiconnection::AstPassHelper;
        if pass.bind_collector().is_some() || pass.debug_binds().is_some() {
            return self.0.walk_ast(pass);
        }
        // On PostgreSQL this text is written once per run, for the cache's
        // question: far less than the parse and plan it saves the server.
        let mut text = DB::QueryBuilder::default();
        self.0.to_sql(&mut text, pass.backend())?;
        pass.push_sql(&text.finish());
        Ok(())
    }

    /// Asked directly (SQLite's connection does), the answer needs no walk.
    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for KeepPrepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for KeepPrepared<Q> {}
