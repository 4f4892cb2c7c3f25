//! github-action-benchmark's custom tools: `gab-bigger.json` for
//! `tool: customBiggerIsBetter` (headline throughputs) and
//! `gab-smaller.json` for `tool: customSmallerIsBetter` (wall time per
//! iteration, and any headline where lower is better). Each is a JSON array
//! of `{name, unit, value, range, extra}`; `range` and `extra` are free text
//! the action shows in its chart tooltips (its README, "Examples for custom
//! benchmark").

use serde_json::{Value, json};

use super::Exporter;
use super::bench::{Bench, Figure, benches, unit_of};
use crate::format::sig3;
use crate::report::model::Report;

pub struct GabBigger;
pub struct GabSmaller;

/// "± 1.23": the larger distance from the value to an end of its CI (the
/// action takes one symmetric range).
fn range(f: Figure) -> Option<String> {
    let (lo, hi) = f.ci95?;
    Some(format!("± {}", sig3((hi - f.value).max(f.value - lo))))
}

fn extra(b: &Bench, f: Figure, unit: &str) -> String {
    let mut lines = vec![];
    if let Some((lo, hi)) = f.ci95 {
        let basis = b
            .row
            .ci_basis
            .as_deref()
            .unwrap_or("between processes")
            .replace('_', " ");
        lines.push(format!(
            "95% CI [{}, {}] {unit} ({basis}, {} processes)",
            sig3(lo),
            sig3(hi),
            b.row.processes_ok
        ));
    }
    lines.push(format!("run {} on {}", b.row.run_id, b.row.hostname));
    lines.join("\n")
}

fn entry(b: &Bench, name: String, f: Figure, unit: &str) -> Value {
    let mut e = json!({ "name": name, "unit": unit, "value": f.value });
    if let Some(r) = range(f) {
        e["range"] = json!(r);
    }
    e["extra"] = json!(extra(b, f, unit));
    e
}

fn render(entries: Vec<Value>) -> String {
    let mut s = serde_json::to_string_pretty(&Value::Array(entries)).expect("serialises");
    s.push('\n');
    s
}

/// The headline in the file its direction belongs to.
fn headline(b: &Bench, bigger: bool) -> Option<Value> {
    let higher = b.row.headline_higher_is_better.unwrap_or(true);
    if higher != bigger {
        return None;
    }
    let metric = b.row.headline_metric.as_deref().unwrap_or_default();
    Some(entry(b, b.name.clone(), b.headline, unit_of(metric)))
}

impl Exporter for GabBigger {
    fn file_name(&self) -> &'static str {
        "gab-bigger.json"
    }

    fn render(&self, r: &Report) -> String {
        render(
            benches(r)
                .iter()
                .filter_map(|b| headline(b, true))
                .collect(),
        )
    }
}

impl Exporter for GabSmaller {
    fn file_name(&self) -> &'static str {
        "gab-smaller.json"
    }

    fn render(&self, r: &Report) -> String {
        let mut out = vec![];
        for b in benches(r) {
            out.extend(headline(&b, false));
            if let Some(w) = b.wall_s {
                let name = format!("{} · wall per iteration", b.name);
                out.push(entry(&b, name, w.scaled(1e3), "ms"));
            }
        }
        render(out)
    }
}
