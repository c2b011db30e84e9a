//! Figures: latency histograms, one JSON line per figure, and the readable
//! table printed at the end of a run.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Latencies in microseconds, 1 µs to 10 min, 3 significant digits.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)] // constant, valid bounds
        Latencies(Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"))
    }

    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record(d.as_micros().clamp(1, 600_000_000) as u64);
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when empty.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() { 0.0 } else { self.0.value_at_quantile(q) as f64 / 1000.0 }
    }
}

/// One measured figure: the common fields, then figure-specific extras.
#[derive(Debug, Clone)]
pub struct Figure {
    pub figure: String,
    pub backend: String,
    /// Concurrent clients, or 0 when not a load figure.
    pub clients: u64,
    /// Calls (or operations) measured.
    pub n: u64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Throughput over the echo baseline's at the same client count.
    pub ratio_to_echo: Option<f64>,
    pub extra: Map<String, Value>,
}

impl Figure {
    pub fn new(figure: &str, backend: &str, clients: u64) -> Self {
        Figure {
            figure: figure.into(),
            backend: backend.into(),
            clients,
            n: 0,
            per_s: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            ratio_to_echo: None,
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.insert(key.into(), value.into());
    }

    pub fn json(&self) -> String {
        let mut m = Map::new();
        m.insert("figure".into(), json!(self.figure));
        m.insert("backend".into(), json!(self.backend));
        m.insert("clients".into(), json!(self.clients));
        m.insert("n".into(), json!(self.n));
        m.insert("per_s".into(), json!(round(self.per_s, 1)));
        m.insert("p50_ms".into(), json!(round(self.p50_ms, 3)));
        m.insert("p99_ms".into(), json!(round(self.p99_ms, 3)));
        m.insert("ratio_to_echo".into(), self.ratio_to_echo.map_or(Value::Null, |r| json!(round(r, 4))));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m).to_string()
    }
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `part / whole`, or `None` when there is no baseline to compare with.
pub fn ratio(part: f64, whole: Option<f64>) -> Option<f64> {
    whole.filter(|w| *w > 0.0).map(|w| part / w)
}

/// A ratio as a percentage for the table: `12.3%`, or `-`.
pub fn percent(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 0.1 => format!("{:.1}%", r * 100.0),
        Some(r) => format!("{:.2}%", r * 100.0),
        None => "-".into(),
    }
}

/// A number for the table: thousands separated, to a sensible precision.
pub fn num(x: f64) -> String {
    if x >= 100.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn extra_text(f: &Figure) -> String {
    let get = |k: &str| f.extra.get(k).and_then(Value::as_f64);
    let mut parts = Vec::new();
    if let (Some(p50), Some(p99)) = (get("lag_p50_ms"), get("lag_p99_ms")) {
        parts.push(format!("lag p50 {} p99 {} ms", num(p50), num(p99)));
    }
    if let Some(a) = get("accepted_per_s") {
        parts.push(format!("accepted {}/s", num(a)));
    }
    if let Some(sustained) = f.extra.get("sustained").and_then(Value::as_bool) {
        parts.push(if sustained { "sustained" } else { "not sustained" }.to_owned());
    }
    if let Some(rows) = get("rows") {
        parts.push(format!("{} rows", if rows >= 100.0 { num(rows) } else { format!("{rows}") }));
    }
    if let Some(pages) = get("pages") {
        parts.push(format!("{pages} pages"));
    }
    if let Some(t) = get("total_ms") {
        parts.push(format!("{} ms total", num(t)));
    }
    if let Some(us) = get("us_per_participant") {
        parts.push(format!("{} µs/participant", num(us)));
    }
    if let Some(mb) = get("rss_mb") {
        parts.push(format!("{} MB RSS", num(mb)));
    }
    if let Some(e) = get("errors").filter(|e| *e > 0.0) {
        parts.push(format!("{e} errors"));
    }
    if let Some(Value::Object(cpu)) = f.extra.get("cpu_pct") {
        let items: Vec<String> = cpu.iter().filter_map(|(k, v)| v.as_f64().map(|v| format!("{k} {v:.0}"))).collect();
        if !items.is_empty() {
            parts.push(format!("cpu% {}", items.join(" ")));
        }
    }
    if let Some(Value::String(note)) = f.extra.get("note") {
        parts.push(note.clone());
    }
    parts.join("; ")
}

/// The readable table of every figure of the run.
pub fn table(figures: &[Figure]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<22} {:<8} {:>8} {:>10} {:>9} {:>9} {:>8}  {}\n",
        "figure", "backend", "clients", "per_s", "p50_ms", "p99_ms", "vs_echo", "notes"
    ));
    for f in figures {
        let size = f.extra.get("participants").and_then(Value::as_u64);
        let clients = match size {
            Some(n) => format!("{}k", n / 1000),
            None if f.clients > 0 => f.clients.to_string(),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{:<22} {:<8} {:>8} {:>10} {:>9} {:>9} {:>8}  {}\n",
            f.figure,
            f.backend,
            clients,
            if f.per_s > 0.0 { num(f.per_s) } else { "-".into() },
            if f.n > 0 { num(f.p50_ms) } else { "-".into() },
            if f.n > 0 { num(f.p99_ms) } else { "-".into() },
            percent(f.ratio_to_echo),
            extra_text(f)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut l = Latencies::new();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert!((l.ms(0.5) - 50.0).abs() < 0.1, "{}", l.ms(0.5));
        assert!((l.ms(0.99) - 99.0).abs() < 0.1, "{}", l.ms(0.99));
        assert_eq!(Latencies::new().ms(0.99), 0.0);
    }

    #[test]
    fn ratios_and_numbers_format_for_the_table() {
        assert_eq!(ratio(50.0, Some(200.0)), Some(0.25));
        assert_eq!(ratio(50.0, None), None);
        assert_eq!(ratio(50.0, Some(0.0)), None);
        assert_eq!(percent(Some(0.25)), "25.0%");
        assert_eq!(percent(Some(0.0123)), "1.23%");
        assert_eq!(percent(None), "-");
        assert_eq!(num(123456.7), "123,457");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
    }

    #[test]
    fn a_figure_is_one_json_object_with_the_common_fields() {
        let mut f = Figure::new("echo", "-", 16).with("errors", 0);
        f.n = 10;
        f.per_s = 1234.56;
        f.ratio_to_echo = Some(1.0);
        let v: Value = serde_json::from_str(&f.json()).expect("json");
        assert_eq!(v["figure"], "echo");
        assert_eq!(v["clients"], 16);
        assert_eq!(v["per_s"], 1234.6);
        assert_eq!(v["ratio_to_echo"], 1.0);
        assert_eq!(v["errors"], 0);
    }
}
