//! The HTTP client of the DfE's Lead Provider API: reqwest over rustls
//! (ring), the bearer token read from its file on every call (X9: rotated in
//! place, never logged).

use std::path::PathBuf;
use std::time::Duration;
use steplab_platform::config::DfeSettings;

/// The DfE's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

#[derive(Clone)]
pub struct DfeClient {
    base: String,
    token_file: PathBuf,
    http: reqwest::Client,
}

/// The longest one request to the DfE may take before it counts as a
/// timeout (retried, X8).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

impl DfeClient {
    /// `None` when the DfE sync is off (no `STEPLAB_DFE_API_URL`, X9).
    pub fn from_settings(settings: &DfeSettings) -> anyhow::Result<Option<Self>> {
        let (Some(base), Some(token_file)) = (&settings.api_url, &settings.token_file) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent("steplab-dfe-gateway")
            .build()?;
        Ok(Some(Self { base: base.trim_end_matches('/').to_owned(), token_file: token_file.clone(), http }))
    }

    /// The token, read afresh. The error names the file, never its content.
    fn token(&self) -> Result<String, String> {
        let raw = std::fs::read_to_string(&self.token_file).map_err(|e| {
            format!("cannot read the DfE token file {} (STEPLAB_DFE_TOKEN_FILE): {e}", self.token_file.display())
        })?;
        let token = raw.trim().to_owned();
        if token.is_empty() {
            return Err(format!("the DfE token file {} is empty", self.token_file.display()));
        }
        Ok(token)
    }

    /// Sends one request; `Err` is a failure to get any answer (token file,
    /// connection, timeout), worth retrying.
    pub async fn send(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let token = self.token()?;
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("bad method {method}: {e}"))?;
        let mut request = self.http.request(method, &url).bearer_auth(token).header("accept", "application/json");
        if !body.is_empty() {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.map_err(|e| describe(&url, &e))?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await.map_err(|e| describe(&url, &e))?;
        Ok(Answer { status, retry_after, body })
    }
}

fn describe(url: &str, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    // reqwest's Display omits the cause chain; the source says why.
    let mut message = format!("{url}: {kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

/// Records per page when reading lists back (X7); the DfE allows up to 3000.
pub const PER_PAGE: usize = 100;
/// A bound on the pages of one list, against a server that never ends.
const MAX_PAGES: usize = 10_000;

impl DfeClient {
    /// Every record of a list (`GET path`), page by page (`page[page]`,
    /// `page[per_page]`), changed since `updated_since` (`filter[updated_since]`,
    /// an ISO 8601 date-time) when given. `Err` says why it could not be read.
    pub async fn read_all(&self, path: &str, updated_since: Option<&str>) -> Result<Vec<serde_json::Value>, String> {
        let mut records = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = format!("{path}?page%5Bpage%5D={page}&page%5Bper_page%5D={PER_PAGE}");
            if let Some(since) = updated_since {
                query.push_str(&format!("&filter%5Bupdated_since%5D={since}"));
            }
            let answer = self.send("GET", &query, "").await?;
            if !(200..300).contains(&answer.status) {
                return Err(format!("GET {query}: the DfE answered {}: {}", answer.status, answer.body));
            }
            let value: serde_json::Value = serde_json::from_str(&answer.body)
                .map_err(|e| format!("GET {query}: the DfE's answer is not JSON: {e}"))?;
            let data = value
                .get("data")
                .and_then(|d| d.as_array())
                .ok_or_else(|| format!("GET {query}: the DfE's answer has no `data` list"))?;
            let count = data.len();
            records.extend(data.iter().cloned());
            if count < PER_PAGE {
                break;
            }
        }
        Ok(records)
    }
}
