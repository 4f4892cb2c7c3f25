//! What the dashboard exports (BMF, github-action-benchmark) share: which
//! cases they carry, under which stable benchmark name, and the figures of
//! each — read from the report's rows, never recomputed.

use std::collections::BTreeMap;

use crate::report::model::{CaseRow, Report, keys};

/// One case as a dashboard sees it.
pub(crate) struct Bench<'a> {
    /// The case id, or "id [host]" where two runs of the report hold it.
    pub name: String,
    pub row: &'a CaseRow,
    /// The headline metric with its 95 % CI.
    pub headline: Figure,
    /// Wall time per iteration, seconds, with its 95 % CI where recorded.
    pub wall_s: Option<Figure>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Figure {
    pub value: f64,
    /// 95 % CI; `None` where either end is missing or not finite.
    pub ci95: Option<(f64, f64)>,
}

impl Figure {
    fn new(value: Option<f64>, low: Option<f64>, high: Option<f64>) -> Option<Figure> {
        let value = value.filter(|v| v.is_finite())?;
        let ci95 = match (low, high) {
            (Some(l), Some(h)) if l.is_finite() && h.is_finite() => Some((l, h)),
            _ => None,
        };
        Some(Figure { value, ci95 })
    }

    /// `value` and its CI multiplied by `k` (a unit change).
    pub fn scaled(self, k: f64) -> Figure {
        Figure {
            value: self.value * k,
            ci95: self.ci95.map(|(l, h)| (l * k, h * k)),
        }
    }
}

/// Unit of a metric key for people ("GFLOP/s"), or the key itself.
pub(crate) fn unit_of(metric: &str) -> &str {
    match metric {
        keys::GFLOPS_PER_S => "GFLOP/s",
        keys::TOKENS_PER_S => "tokens/s",
        "gbytes_per_s" => "GB/s",
        other => other,
    }
}

/// The cases a dashboard can carry — finished `ok` with a finite headline —
/// in report order. A failed case is left out (a gap in the chart); the
/// regression gate (`compare`, `check`) is where failures count.
pub(crate) fn benches(r: &Report) -> Vec<Bench<'_>> {
    let rows: Vec<(&CaseRow, Figure)> = r
        .cases
        .iter()
        .filter(|c| c.status == "ok" && c.headline_metric.is_some())
        .filter_map(|c| {
            let f = Figure::new(c.headline_value, c.headline_ci95_low, c.headline_ci95_high)?;
            Some((c, f))
        })
        .collect();
    let names = unique_names(rows.iter().map(|(c, _)| *c));
    rows.into_iter()
        .zip(names)
        .map(|((row, headline), name)| Bench {
            name,
            row,
            headline,
            wall_s: Figure::new(
                row.metrics.get(keys::WALL_S_P50).copied(),
                row.metrics.get("wall_s_ci95_low").copied(),
                row.metrics.get("wall_s_ci95_high").copied(),
            ),
        })
        .collect()
}

/// Benchmark names that stay the same from one run to the next (the case
/// id), qualified by host, then by run id, only where the report holds the
/// same case twice — a dashboard keys its series by these names.
fn unique_names<'a>(rows: impl Iterator<Item = &'a CaseRow> + Clone) -> Vec<String> {
    let count = |names: &[String]| {
        let mut m: BTreeMap<&str, usize> = BTreeMap::new();
        for n in names {
            *m.entry(n.as_str()).or_default() += 1;
        }
        names
            .iter()
            .map(|n| m[n.as_str()] > 1)
            .collect::<Vec<bool>>()
    };
    let mut names: Vec<String> = rows.clone().map(|c| c.id.clone()).collect();
    let clash = count(&names);
    for ((n, c), clashes) in names.iter_mut().zip(rows.clone()).zip(clash) {
        if clashes {
            *n = format!("{} [{}]", c.id, c.hostname);
        }
    }
    let clash = count(&names);
    for ((n, c), clashes) in names.iter_mut().zip(rows).zip(clash) {
        if clashes {
            *n = format!("{} [{} {}]", c.id, c.hostname, c.run_id);
        }
    }
    names
}
