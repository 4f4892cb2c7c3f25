//! The report's data: one flat row per case plus each run's fingerprint,
//! read straight from the run files (no statistics are computed here), and
//! the figures the plots produced. Every exporter formats this one value.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::results::{CaseResult, Env, RunFile};

/// Bumped on any incompatible change of `report.json`.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The metric keys, tags and series the report reads (documented in
/// results/README.md). Producers that write these get the plots for free.
pub mod keys {
    pub const GFLOPS_PER_S: &str = "gflops_per_s";
    pub const FLOPS_PER_ITER: &str = "flops_per_iter";
    pub const BYTES_PER_ITER: &str = "bytes_per_iter";
    pub const WALL_S_P50: &str = "wall_s_median";
    pub const WALL_S_P90: &str = "wall_s_p90";
    pub const WALL_S_P99: &str = "wall_s_p99";
    /// Per-token latency percentiles of decode workloads, seconds.
    pub const TOKEN_LATENCY_S_P50: &str = "itl_s_median";
    pub const TOKEN_LATENCY_S_P90: &str = "itl_s_p90";
    pub const TOKEN_LATENCY_S_P99: &str = "itl_s_p99";
    pub const TOKENS_PER_S: &str = "tokens_per_s";
    pub const MEM_CAP_BYTES: &str = "mem_cap_bytes";
    pub const ENERGY_J_PER_TOKEN: &str = "energy_j_per_token";
    pub const ENERGY_J_PER_ITER: &str = "energy_j_per_iter";
    /// Quality of a model variant: held-out loss, nats per token (lower is better).
    pub const EVAL_LOSS_NATS: &str = "eval_loss_nats_median";
    pub const ENTROPY_FLOOR_NATS: &str = "entropy_floor_nats_median";
    /// Measured roofline ceilings of the device the case ran on (the best
    /// GEMM and STREAM of the same run).
    pub const PEAK_GFLOPS_PER_S: &str = "ceiling_gflops_per_s";
    pub const PEAK_GBYTES_PER_S: &str = "ceiling_gbytes_per_s";
    /// Tags (string-valued).
    pub const TAG_ENERGY_SOURCE: &str = "energy_source";
    pub const TAG_THROUGHPUT_SOURCE: &str = "throughput_source";
    pub const TAG_QUANT: &str = "quant";
    /// Series: (step, training loss in nats).
    pub const SERIES_LOSS_CURVE: &str = "loss_curve";
}

/// A run as given on the command line.
pub struct ReportInput {
    /// The path the user gave (shown as the figures' source).
    pub source: String,
    pub run: RunFile,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub source: String,
    pub started_at: String,
    pub finished_at: String,
    pub suite: String,
    pub cases: usize,
    pub by_status: BTreeMap<String, usize>,
    pub env: Env,
}

/// One case, flat: what the CSV row and the tables show.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRow {
    pub run_id: String,
    pub machine_id: String,
    pub hostname: String,
    pub id: String,
    pub workload: String,
    pub workload_version: u32,
    pub kind: String,
    pub backend: String,
    pub device: String,
    pub dtype: String,
    pub threads: Option<usize>,
    pub status: String,
    pub status_detail: String,
    pub headline_metric: Option<String>,
    pub headline_value: Option<f64>,
    pub headline_ci95_low: Option<f64>,
    pub headline_ci95_high: Option<f64>,
    /// Direction of the headline metric (the dashboard exports need it;
    /// left out of report.json, whose schema predates it).
    #[serde(skip)]
    pub headline_higher_is_better: Option<bool>,
    pub ci_basis: Option<String>,
    pub processes_ok: usize,
    pub verification_scaled_max_diff: Option<f64>,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
}

/// A figure the report drew, or one it left out and why.
#[derive(Debug, Clone, Serialize)]
pub struct FigureEntry {
    pub id: String,
    pub title: String,
    /// Where the data came from: runs, metric keys, and whether measured,
    /// modelled or projected.
    pub source: String,
    /// `drawn` or `skipped`.
    pub status: String,
    /// Paths relative to the report folder (SVG first, then PNG).
    pub files: Vec<String>,
    /// Series names in the legend.
    pub series: Vec<String>,
    /// Why a figure was skipped, or a caveat about one drawn.
    pub note: Option<String>,
    /// The SVG text, for embedding in HTML (not in report.json).
    #[serde(skip)]
    pub svg: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub title: String,
    pub runs: Vec<RunSummary>,
    pub cases: Vec<CaseRow>,
    pub figures: Vec<FigureEntry>,
}

/// The dtype or quantisation a case ran in: the `quant` tag if the
/// producer set one, else the workload's dtype parameter.
pub fn dtype_of(c: &CaseResult) -> String {
    if let Some(q) = c.tags.get(keys::TAG_QUANT) {
        return q.clone();
    }
    match &c.workload.spec.params {
        capbench_workloads::spec::Params::Gemm { dtype, .. } => serde_json::to_value(dtype)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The energy source of a case (`measured`, `polled`, `modelled`,
/// `analytic`): the case's energy figure, else its `energy_source` tag (for
/// producers that only tag).
pub fn energy_source(c: &CaseResult) -> Option<&str> {
    match c.energy.as_ref().and_then(|e| e.figure.as_ref()) {
        Some(f) => Some(f.source.as_str()),
        None => c.tags.get(keys::TAG_ENERGY_SOURCE).map(String::as_str),
    }
}

/// `measured` unless the producer marked the throughput `projected`.
pub fn throughput_source(c: &CaseResult) -> &str {
    c.tags
        .get(keys::TAG_THROUGHPUT_SOURCE)
        .map(String::as_str)
        .unwrap_or("measured")
}

/// The calendar date (YYYY-MM-DD) of an RFC 3339 timestamp.
pub fn date_of(ts: &str) -> &str {
    ts.get(..10).unwrap_or(ts)
}

/// "AMD EPYC (host) · 2026-01-01", or "3 machines · 2026-01-01 – 2026-01-03".
pub fn title(inputs: &[ReportInput]) -> String {
    let mut machines: Vec<String> = inputs
        .iter()
        .map(|i| {
            let e = &i.run.env;
            format!("{} ({})", e.cpu_model.trim(), e.hostname)
        })
        .collect();
    machines.dedup();
    let mut dates: Vec<&str> = inputs.iter().map(|i| date_of(&i.run.started_at)).collect();
    dates.sort();
    dates.dedup();
    let machine = match machines.len() {
        0 => "no runs".to_string(),
        1 => machines.remove(0),
        n => format!("{n} machines"),
    };
    let date = match dates.as_slice() {
        [] => String::new(),
        [d] => d.to_string(),
        [first, .., last] => format!("{first} – {last}"),
    };
    format!("{machine} · {date}")
}

fn row(run: &RunFile, c: &CaseResult) -> CaseRow {
    CaseRow {
        run_id: run.run_id.clone(),
        machine_id: run.env.machine_id.clone(),
        hostname: run.env.hostname.clone(),
        id: c.id.clone(),
        workload: c.workload.name.clone(),
        workload_version: c.workload.version,
        kind: c.kind.clone(),
        backend: c.backend.clone(),
        device: c
            .device
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        dtype: dtype_of(c),
        threads: c.caps.threads,
        status: c.status.as_str().to_string(),
        status_detail: c.status_detail.clone(),
        headline_metric: c.headline.as_ref().map(|h| h.metric.clone()),
        headline_value: c.headline.as_ref().map(|h| h.value),
        headline_ci95_low: c.headline.as_ref().map(|h| h.ci95_low),
        headline_ci95_high: c.headline.as_ref().map(|h| h.ci95_high),
        headline_higher_is_better: c.headline.as_ref().map(|h| h.higher_is_better),
        ci_basis: c.stats.as_ref().map(|s| s.ci_basis.clone()),
        processes_ok: c.stats.as_ref().map(|s| s.processes_ok).unwrap_or(0),
        verification_scaled_max_diff: c.verification.as_ref().map(|v| v.scaled_max_diff),
        tags: c.tags.clone(),
        metrics: c.metrics.clone(),
    }
}

/// The report's tables, before any figure is drawn.
pub fn build(inputs: &[ReportInput]) -> Report {
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        title: title(inputs),
        runs: inputs
            .iter()
            .map(|i| RunSummary {
                run_id: i.run.run_id.clone(),
                source: i.source.clone(),
                started_at: i.run.started_at.clone(),
                finished_at: i.run.finished_at.clone(),
                suite: i.run.options.suite.clone(),
                cases: i.run.cases.len(),
                by_status: i.run.totals.by_status.clone(),
                env: i.run.env.clone(),
            })
            .collect(),
        cases: inputs
            .iter()
            .flat_map(|i| i.run.cases.iter().map(|c| row(&i.run, c)))
            .collect(),
        figures: vec![],
    }
}
