//! Exporters: one module per format behind one trait (as hyperfine does),
//! each a pure function of the `Report` to the text of one file.

mod bench;
mod bmf;
mod csv;
mod gab;
mod html;
mod json;
mod markdown;

use clap::ValueEnum;

use crate::report::model::Report;

pub use html::escape as html_escape;

pub trait Exporter {
    /// File the format writes inside the report folder.
    fn file_name(&self) -> &'static str;
    fn render(&self, report: &Report) -> String;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown: GitHub tables, figures linked (report.md).
    Md,
    /// One self-contained page: figures inline, sortable table (index.html).
    Html,
    /// One flat row per case (cases.csv).
    Csv,
    /// Canonical JSON of the whole report (report.json).
    Json,
    /// Bencher Metric Format for `bencher run --adapter json` (bmf.json).
    Bmf,
    /// github-action-benchmark's customBiggerIsBetter (gab-bigger.json)
    /// and customSmallerIsBetter (gab-smaller.json).
    Gab,
}

impl Format {
    /// What `report` writes unless told otherwise.
    pub const ALL: [Format; 4] = [Format::Md, Format::Html, Format::Csv, Format::Json];
    /// Every format, the dashboard exports included.
    pub const EVERY: [Format; 6] = [
        Format::Md,
        Format::Html,
        Format::Csv,
        Format::Json,
        Format::Bmf,
        Format::Gab,
    ];

    /// The exporters of the format, one per file it writes.
    pub fn exporters(self) -> Vec<Box<dyn Exporter>> {
        match self {
            Format::Md => vec![Box::new(markdown::Markdown)],
            Format::Html => vec![Box::new(html::Html)],
            Format::Csv => vec![Box::new(csv::Csv)],
            Format::Json => vec![Box::new(json::Json)],
            Format::Bmf => vec![Box::new(bmf::Bmf)],
            Format::Gab => vec![Box::new(gab::GabBigger), Box::new(gab::GabSmaller)],
        }
    }
}

/// Headline as "52.8 GFLOP/s [50.1, 53.6]", or "—".
pub(crate) fn headline_text(r: &crate::report::model::CaseRow) -> String {
    use crate::format::sig3;
    match (
        &r.headline_metric,
        r.headline_value,
        r.headline_ci95_low,
        r.headline_ci95_high,
    ) {
        (Some(m), Some(v), Some(lo), Some(hi)) => {
            let unit = bench::unit_of(m);
            format!("{} {unit} [{}, {}]", sig3(v), sig3(lo), sig3(hi))
        }
        _ => "—".into(),
    }
}

/// "p50 / p90 / p99" in ms: per token where the case records token
/// latencies (as the latency figure does), else per iteration; or "—".
pub(crate) fn latency_text(r: &crate::report::model::CaseRow) -> String {
    use crate::format::sig3;
    use crate::report::model::keys;
    let m = &r.metrics;
    let get = |k: [&str; 3]| Some((*m.get(k[0])?, *m.get(k[1])?, *m.get(k[2])?));
    let token = get([
        keys::TOKEN_LATENCY_S_P50,
        keys::TOKEN_LATENCY_S_P90,
        keys::TOKEN_LATENCY_S_P99,
    ]);
    let (v, unit) = match token {
        Some(v) => (Some(v), " per token"),
        None => (
            get([keys::WALL_S_P50, keys::WALL_S_P90, keys::WALL_S_P99]),
            "",
        ),
    };
    match v {
        Some((a, b, c)) => format!(
            "{} / {} / {}{unit}",
            sig3(a * 1e3),
            sig3(b * 1e3),
            sig3(c * 1e3)
        ),
        None => "—".into(),
    }
}

/// Environment fingerprint as (field, value) text pairs, nested values as
/// compact JSON.
/// A run's cells in the runs table of every format, unescaped: run id,
/// source, suite, machine, start time, cases by status.
pub(crate) fn run_cells(run: &crate::report::model::RunSummary) -> [String; 6] {
    let counts: Vec<String> = run
        .by_status
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    [
        run.run_id.clone(),
        run.source.clone(),
        run.suite.clone(),
        format!(
            "{} ({}, {} logical cores)",
            run.env.cpu_model, run.env.hostname, run.env.logical_cores
        ),
        run.started_at.clone(),
        counts.join(", "),
    ]
}

pub(crate) fn env_pairs(env: &crate::results::Env) -> Vec<(String, String)> {
    let v = serde_json::to_value(env).expect("env serialises");
    let serde_json::Value::Object(map) = v else {
        return vec![];
    };
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}
