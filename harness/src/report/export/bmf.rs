//! Bencher Metric Format (bmf.json) for `bencher run --adapter json`: an
//! object of benchmarks (the case names), each an object of measures, each
//! `{value, lower_value, upper_value}` — the schema at
//! https://bencher.dev/docs/reference/bencher-metric-format/.
//!
//! Measures per case: the headline metric under its own key (e.g.
//! `gflops_per_s`; Bencher creates a measure of that name on first upload)
//! with its 95 % between-process CI as the bounds, and Bencher's built-in
//! `latency` (nanoseconds) from the median wall time per iteration.

use serde_json::{Map, Value, json};

use super::Exporter;
use super::bench::{Figure, benches};
use crate::report::model::Report;

pub struct Bmf;

/// Bencher's built-in latency measure, in nanoseconds.
const LATENCY: &str = "latency";

fn metric(f: Figure) -> Value {
    let mut m = json!({ "value": f.value });
    if let Some((lo, hi)) = f.ci95 {
        m["lower_value"] = json!(lo);
        m["upper_value"] = json!(hi);
    }
    m
}

impl Exporter for Bmf {
    fn file_name(&self) -> &'static str {
        "bmf.json"
    }

    fn render(&self, r: &Report) -> String {
        let mut out = Map::new();
        for b in benches(r) {
            let mut measures = Map::new();
            let key = b.row.headline_metric.clone().unwrap_or_default();
            measures.insert(key, metric(b.headline));
            if let Some(w) = b.wall_s {
                measures.insert(LATENCY.into(), metric(w.scaled(1e9)));
            }
            out.insert(b.name, Value::Object(measures));
        }
        let mut s = serde_json::to_string_pretty(&Value::Object(out)).expect("serialises");
        s.push('\n');
        s
    }
}
