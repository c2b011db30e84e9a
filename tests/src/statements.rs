//! Counting the SQL statements a call runs (issue 18: a change must cost a
//! few statements, not dozens). diesel's default instrumentation is
//! installed process-wide before a stack opens its connections; every
//! statement a connection starts is then attributed to the call being
//! served on that thread (its `x-request-id`), and kept only for the ids a
//! test watches, so other calls (the relay, other tests of the process)
//! never count.

// Test support: a poisoned lock fails the test that used it.
#![allow(clippy::panic)]

use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The statements of each watched request id, in the order they started.
fn watched() -> MutexGuard<'static, HashMap<String, Vec<String>>> {
    static WATCHED: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    WATCHED.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn attribute(event: InstrumentationEvent<'_>) {
    let InstrumentationEvent::StartQuery { query, .. } = event else { return };
    // The pool's test of a connection that met an error, as it goes back:
    // not the call's work.
    if query.to_string() == "SELECT 1" {
        return;
    }
    let Some(request_id) = steplab_platform::call::current_request_id() else { return };
    if let Some(statements) = watched().get_mut(&request_id) {
        statements.push(query.to_string());
    }
}

fn counting() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(attribute))
}

/// Instruments every connection opened from now on in this process: call it
/// before starting the stack whose statements are to be counted.
pub fn install() {
    set_default_instrumentation(counting).expect("install diesel instrumentation");
}

/// Starts recording the statements of the call with this `x-request-id`.
pub fn watch(request_id: &str) {
    watched().insert(request_id.to_owned(), Vec::new());
}

/// The statements the call with this `x-request-id` ran, and stops watching it.
pub fn taken(request_id: &str) -> Vec<String> {
    watched().remove(request_id).unwrap_or_default()
}

/// [`taken`], printed under `label` one statement a line, so a failing
/// count shows what ran.
pub fn taken_and_printed(label: &str, request_id: &str) -> Vec<String> {
    let ran = taken(request_id);
    eprintln!("{label}: {} statements", ran.len());
    for (n, statement) in ran.iter().enumerate() {
        eprintln!("  {:>2}. {}", n + 1, statement.chars().take(160).collect::<String>());
    }
    ran
}

/// A request carrying `x-request-id`, so its statements can be watched.
pub fn with_request_id<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        steplab_platform::call::REQUEST_ID_HEADER,
        request_id.parse().unwrap_or_else(|e| panic!("request id {request_id}: {e}")),
    );
    request
}
