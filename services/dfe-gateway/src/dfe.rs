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
