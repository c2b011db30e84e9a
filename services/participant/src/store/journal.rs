//! What a change wrote, kept in memory as it writes (issue 18): the events it
//! appended (as stored, cursors included), the participants it wrote as they
//! now stand, and the commands it sends. A change describes itself from its
//! journal (ChangeEffects) and reads a participant it wrote from it, instead
//! of reading its own rows back; its commands reach the outbox in one
//! statement when it ends.
//!
//! The journal lives on the thread for the length of one unit of work
//! ([`kept`]), as the call context does: every store function and use case
//! takes only the connection, and a unit of work runs start to end in one
//! closure on one thread. Outside [`kept`] (the due-returns sweep) nothing
//! is journaled and commands are written at once.

use crate::domain::events::Event;
use crate::domain::view::ParticipantRecord;
use chrono::NaiveDateTime;
use std::cell::RefCell;
use steplab_platform::db::DbConn;
use steplab_platform::error::ServiceError;
use steplab_platform::outbox::{self, NewCommand, OutboxRow};

/// One participant the unit of work wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Their version before the unit of work's first write: their events up
    /// to it are their history before the change.
    pub version_before: i64,
    /// Their record after the unit of work's last write, as a read would give it.
    pub after: ParticipantRecord,
}

#[derive(Debug, Default)]
pub struct Journal {
    /// Every event appended, as stored, in the order appended.
    pub events: Vec<Event>,
    /// Every participant written, in the order first written.
    pub written: Vec<Written>,
    /// Commands enqueued, not yet written.
    pending: Vec<(NewCommand, NaiveDateTime)>,
    /// Commands written, as stored, oldest first.
    pub commands: Vec<OutboxRow>,
    /// X1: each DfE id read in this unit of work (with the participant, in
    /// the same statement) or set by it, so the change shows it without
    /// reading it again.
    dfe_ids: std::collections::HashMap<String, Option<String>>,
}

thread_local! {
    static JOURNAL: RefCell<Option<Journal>> = const { RefCell::new(None) };
}

/// Puts the previous journal (none, outside a unit of work) back even if
/// the unit of work panics, so a pooled thread never keeps a stale one.
struct Restore(Option<Journal>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        JOURNAL.with(|j| *j.borrow_mut() = previous);
    }
}

/// Runs `f` (one unit of work, on this thread) with a fresh journal, and
/// answers the journal with `f`'s result. Its pending commands are not yet
/// written: [`flush`] them before the transaction ends.
pub fn kept<T>(f: impl FnOnce() -> T) -> (T, Journal) {
    let restore = Restore(JOURNAL.with(|j| j.replace(Some(Journal::default()))));
    let answer = f();
    let journal = JOURNAL.with(|j| j.take()).unwrap_or_default();
    drop(restore);
    (answer, journal)
}

/// Writes the journal's pending commands in one statement (one per distinct
/// enqueue time, in practice one), keeping them as stored.
pub fn flush(conn: &mut DbConn, journal: &mut Journal) -> Result<(), ServiceError> {
    let pending = std::mem::take(&mut journal.pending);
    let mut start = 0;
    while start < pending.len() {
        let now = pending[start].1;
        let run = pending[start..].iter().take_while(|(_, at)| *at == now).count();
        let commands: Vec<NewCommand> = pending[start..start + run].iter().map(|(c, _)| c.clone()).collect();
        journal.commands.extend(outbox::enqueue_all(conn, &commands, now)?);
        start += run;
    }
    Ok(())
}

/// Adds commands to the outbox: to the journal's pending ones inside a unit
/// of work, else at once.
pub fn enqueue(conn: &mut DbConn, commands: Vec<NewCommand>, now: NaiveDateTime) -> Result<(), ServiceError> {
    if commands.is_empty() {
        return Ok(());
    }
    let left = JOURNAL.with(|j| match j.borrow_mut().as_mut() {
        Some(journal) => {
            journal.pending.extend(commands.into_iter().map(|c| (c, now)));
            None
        }
        None => Some(commands),
    });
    if let Some(commands) = left {
        outbox::enqueue_all(conn, &commands, now)?;
    }
    Ok(())
}

/// Notes events just stored and the participants they were appended to,
/// as they now stand.
pub(super) fn note_written(events: &[Event], written: Vec<Written>) {
    JOURNAL.with(|j| {
        if let Some(journal) = j.borrow_mut().as_mut() {
            journal.events.extend_from_slice(events);
            for w in written {
                match journal.written.iter_mut().find(|known| known.after.id == w.after.id) {
                    // Written before in this unit of work: its history before the change stays.
                    Some(known) => known.after = w.after,
                    None => journal.written.push(w),
                }
            }
        }
    });
}

/// The participant as this unit of work last wrote them, if it did.
pub(super) fn written(id: &str) -> Option<ParticipantRecord> {
    JOURNAL.with(|j| {
        j.borrow()
            .as_ref()
            .and_then(|journal| journal.written.iter().find(|w| w.after.id == id).map(|w| w.after.clone()))
    })
}

/// X1: notes a participant's DfE id as read or set in this unit of work.
pub(super) fn note_dfe_id(id: &str, dfe_participant_id: Option<&str>) {
    JOURNAL.with(|j| {
        if let Some(journal) = j.borrow_mut().as_mut() {
            journal.dfe_ids.insert(id.to_owned(), dfe_participant_id.map(str::to_owned));
        }
    });
}

/// X1: the participant's DfE id as this unit of work read or set it (the
/// outer `None`: it did neither).
pub(super) fn dfe_id(id: &str) -> Option<Option<String>> {
    JOURNAL.with(|j| j.borrow().as_ref().and_then(|journal| journal.dfe_ids.get(id).cloned()))
}
