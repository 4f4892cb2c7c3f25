//! The performance history: run folders filed by machine fingerprint and
//! branch under one root (no server; a folder `git` or a CI cache carries),
//! and the per-case series of headline figures read out of them.

pub mod store;

use serde::{Deserialize, Serialize};

use super::{RunFile, Status};

/// One run filed in the history (a line of a branch's `index.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The environment fingerprint of the machine that ran it: series of
    /// different machines are never mixed.
    pub machine_id: String,
    pub branch: String,
    /// Commit of the code measured (the run's own, or `history add --commit`).
    pub commit: String,
    /// When the run started, RFC 3339 UTC: the order of the series.
    pub time: String,
    pub run_id: String,
    /// The run's folder, relative to the history root.
    pub path: String,
    /// When the run was added to the history, RFC 3339 UTC.
    pub added_at: String,
}

/// The index of one machine × branch folder, newest entry last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryIndex {
    pub schema_version: u32,
    pub entries: Vec<HistoryEntry>,
}

/// One run's headline figure of one case: a point of a trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub commit: String,
    pub run_id: String,
    pub time: String,
    /// The headline metric (its own units, e.g. GFLOP/s).
    pub median: f64,
    /// Its 95% CI: between processes when `n` ≥ 2, else within one process.
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// Worker processes that succeeded.
    pub n: usize,
}

/// The trend of one case's headline metric on one machine and branch,
/// oldest point first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The case identity (`workload@backend[caps]`, as `compare` keys it).
    pub case: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub machine_id: String,
    pub branch: String,
    pub points: Vec<SeriesPoint>,
}

/// The headline point of every successful case of `run`, keyed by case
/// identity; failed cases and cases without a headline give none (a gap in
/// the trend, not a zero).
pub fn points_of(run: &RunFile, entry: &HistoryEntry) -> Vec<(String, String, bool, SeriesPoint)> {
    run.cases
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| {
            let h = c.headline.as_ref()?;
            let n = c.stats.as_ref().map(|s| s.processes_ok).unwrap_or(1);
            Some((
                c.identity(),
                h.metric.clone(),
                h.higher_is_better,
                SeriesPoint {
                    commit: entry.commit.clone(),
                    run_id: entry.run_id.clone(),
                    time: entry.time.clone(),
                    median: h.value,
                    ci95_low: h.ci95_low,
                    ci95_high: h.ci95_high,
                    n,
                },
            ))
        })
        .collect()
}

/// Builds one series per case (and metric) from runs in history order.
pub fn series_of(runs: &[(HistoryEntry, RunFile)]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for (entry, run) in runs {
        for (case, metric, hib, p) in points_of(run, entry) {
            let found = out
                .iter_mut()
                .find(|s| s.case == case && s.metric == metric && s.machine_id == entry.machine_id);
            match found {
                Some(s) => s.points.push(p),
                None => out.push(Series {
                    case,
                    metric,
                    higher_is_better: hib,
                    machine_id: entry.machine_id.clone(),
                    branch: entry.branch.clone(),
                    points: vec![p],
                }),
            }
        }
    }
    out.sort_by(|a, b| (&a.machine_id, &a.case).cmp(&(&b.machine_id, &b.case)));
    out
}
