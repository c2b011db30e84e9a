//! A stateful fake of the DfE's Lead Provider API for the gateway's tests:
//! an axum server on 127.0.0.1 that records every request, checks the bearer
//! token, answers 500 to every n-th request, 429 (with `Retry-After`) to
//! others, 422 to chosen paths, keeps participants and declarations, and
//! serves them back in pages for reconciliation.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub bearer: Option<String>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Debug, Clone, Default)]
pub struct FakeParticipant {
    pub trn: String,
    pub participant_type: String,
    pub training_status: String,
    pub schedule_identifier: String,
    pub cohort: String,
}

#[derive(Debug, Clone)]
pub struct FakeDeclaration {
    pub participant_id: String,
    pub declaration_type: String,
    pub course_identifier: String,
    pub state: String,
}

#[derive(Debug, Default)]
pub struct FakeState {
    /// The bearer token the fake accepts.
    pub token: String,
    /// Every request, in arrival order.
    pub received: Vec<Received>,
    /// Answer 500 to every n-th write (1-based count of writes).
    pub fail_every: Option<usize>,
    /// Answer 429 with this `Retry-After` to every m-th write.
    pub too_many_every: Option<(usize, u64)>,
    /// Paths (containing this text) answered 422 while listed.
    pub refuse: Vec<String>,
    pub participants: BTreeMap<String, FakeParticipant>,
    pub declarations: BTreeMap<String, FakeDeclaration>,
    writes: usize,
}

pub struct FakeDfe {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDfe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDfe {
    pub async fn start(token: &str) -> FakeDfe {
        let state = Arc::new(Mutex::new(FakeState { token: token.to_owned(), ..FakeState::default() }));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake DfE");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDfe { url, state, task }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake DfE state"))
    }

    /// The writes the fake accepted (2xx), in order.
    pub fn accepted(&self) -> Vec<Received> {
        self.with(|s| {
            s.received.iter().filter(|r| r.method != "GET" && (200..300).contains(&r.status)).cloned().collect()
        })
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        let k = k.replace("%5B", "[").replace("%5D", "]");
        (k == name).then(|| v.replace("%3A", ":"))
    })
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().expect("fake DfE state");
    let path = uri.path().to_owned();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let parsed: Value =
        if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let (status, answer) = answer(&mut s, &method, &uri, &path, bearer.as_deref(), &parsed);
    s.received.push(Received {
        method: method.to_string(),
        path,
        body: parsed,
        bearer,
        status: status.as_u16(),
        at: Instant::now(),
    });
    match answer {
        Answer::Json(body) => json_response(status, body),
        Answer::RetryAfter(seconds) => (status, [("retry-after", seconds.to_string())], "slow down").into_response(),
    }
}

enum Answer {
    Json(Value),
    RetryAfter(u64),
}

fn error(title: &str, detail: &str) -> Answer {
    Answer::Json(json!({"errors": [{"title": title, "detail": detail}]}))
}

fn answer(
    s: &mut FakeState,
    method: &Method,
    uri: &Uri,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> (StatusCode, Answer) {
    if bearer != Some(s.token.as_str()) {
        return (StatusCode::UNAUTHORIZED, error("Unauthorized", "bad or missing bearer token"));
    }
    if method == Method::GET {
        return (StatusCode::OK, Answer::Json(list(s, uri, path)));
    }
    s.writes += 1;
    if s.fail_every.is_some_and(|n| s.writes.is_multiple_of(n)) {
        return (StatusCode::INTERNAL_SERVER_ERROR, error("Internal error", "try again"));
    }
    if let Some((m, seconds)) = s.too_many_every
        && s.writes.is_multiple_of(m)
    {
        return (StatusCode::TOO_MANY_REQUESTS, Answer::RetryAfter(seconds));
    }
    if s.refuse.iter().any(|r| path.contains(r.as_str())) {
        return (StatusCode::UNPROCESSABLE_ENTITY, error("reason", "The property '#/reason' must be a valid reason"));
    }
    let attributes = &body["data"]["attributes"];
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("PUT", ["api", "v3", "participants", "ecf", id, action]) => {
            let p = s.participants.entry((*id).to_owned()).or_default();
            match *action {
                "defer" => p.training_status = "deferred".into(),
                "resume" => p.training_status = "active".into(),
                "withdraw" => p.training_status = "withdrawn".into(),
                "change-schedule" => {
                    p.schedule_identifier = attributes["schedule_identifier"].as_str().unwrap_or_default().to_owned()
                }
                _ => return (StatusCode::NOT_FOUND, error("Not found", "no such action")),
            }
            (StatusCode::OK, Answer::Json(json!({"data": {"id": id, "type": "participant", "attributes": {}}})))
        }
        ("POST", ["api", "v3", "participant-declarations"]) => {
            let id = uuid::Uuid::now_v7().to_string();
            let declaration = FakeDeclaration {
                participant_id: attributes["participant_id"].as_str().unwrap_or_default().to_owned(),
                declaration_type: attributes["declaration_type"].as_str().unwrap_or_default().to_owned(),
                course_identifier: attributes["course_identifier"].as_str().unwrap_or_default().to_owned(),
                state: "submitted".into(),
            };
            let data = declaration_json(&id, &declaration);
            s.declarations.insert(id, declaration);
            (StatusCode::OK, Answer::Json(json!({ "data": data })))
        }
        ("PUT", ["api", "v3", "participant-declarations", id, "void"]) => match s.declarations.get_mut(*id) {
            Some(d) => {
                d.state = "voided".into();
                let data = declaration_json(id, d);
                (StatusCode::OK, Answer::Json(json!({ "data": data })))
            }
            None => (StatusCode::NOT_FOUND, error("Not found", "no such declaration")),
        },
        _ => (StatusCode::NOT_FOUND, error("Not found", path)),
    }
}

fn declaration_json(id: &str, d: &FakeDeclaration) -> Value {
    json!({"id": id, "type": "participant-declaration", "attributes": {
        "participant_id": d.participant_id, "declaration_type": d.declaration_type,
        "course_identifier": d.course_identifier, "state": d.state,
        "updated_at": "2026-11-28T00:00:00Z"}})
}

/// GET of participants or declarations, paged by `page[page]` and `page[per_page]`.
fn list(s: &FakeState, uri: &Uri, path: &str) -> Value {
    let page: usize = query_param(uri, "page[page]").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let per_page: usize = query_param(uri, "page[per_page]").and_then(|p| p.parse().ok()).unwrap_or(100).max(1);
    let all: Vec<Value> = if path == "/api/v3/participants/ecf" {
        s.participants
            .iter()
            .map(|(id, p)| {
                json!({"id": id, "type": "participant", "attributes": {
                    "full_name": "A Teacher", "teacher_reference_number": p.trn,
                    "updated_at": "2026-11-28T00:00:00Z", "participant_id_changes": [],
                    "ecf_enrolments": [{"participant_type": p.participant_type, "training_status": p.training_status,
                        "schedule_identifier": p.schedule_identifier, "cohort": p.cohort}]}})
            })
            .collect()
    } else {
        s.declarations.iter().map(|(id, d)| declaration_json(id, d)).collect()
    };
    let data: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    json!({ "data": data })
}
