//! Helpers the figure builders share: which cases to draw, their labels,
//! stable colours per series key, units of metric names.

use crate::report::model::{ReportInput, throughput_source};
use crate::results::{CaseResult, Status};

use super::chart::Chart;

/// A figure to draw (or the reason it cannot be drawn from these runs).
pub struct Planned {
    pub id: String,
    pub title: String,
    pub chart: Result<Chart, String>,
    /// A caveat shown with a drawn figure (points left out, and why).
    pub note: Option<String>,
}

impl Planned {
    pub fn skipped(id: &str, title: &str, why: impl Into<String>) -> Planned {
        Planned {
            id: id.into(),
            title: title.into(),
            chart: Err(why.into()),
            note: None,
        }
    }
}

/// A case and the run it came from.
pub struct Item<'a> {
    pub input: &'a ReportInput,
    pub case: &'a CaseResult,
}

pub fn all_cases(inputs: &[ReportInput]) -> impl Iterator<Item = Item<'_>> {
    inputs
        .iter()
        .flat_map(|i| i.run.cases.iter().map(move |c| Item { input: i, case: c }))
}

pub fn ok_cases(inputs: &[ReportInput]) -> impl Iterator<Item = Item<'_>> {
    all_cases(inputs).filter(|it| it.case.status == Status::Ok)
}

/// Whether the runs come from more than one machine (then labels name it).
pub fn several_machines(inputs: &[ReportInput]) -> bool {
    inputs
        .iter()
        .any(|i| i.run.env.machine_id != inputs[0].run.env.machine_id)
}

/// The backend, with the host when runs from several machines are drawn,
/// or the run id when several runs of one machine are: points of different
/// runs never merge into one series.
pub fn backend_label(inputs: &[ReportInput], it: &Item) -> String {
    let mut b = it.case.backend.clone();
    if let Some(t) = it.case.caps.threads {
        b.push_str(&format!(" ({t} threads)"));
    }
    b.push_str(&run_suffix(inputs, it));
    b
}

/// " @ host" when several machines are drawn, " · run ID" when several runs
/// of one machine are, else nothing.
pub fn run_suffix(inputs: &[ReportInput], it: &Item) -> String {
    if several_machines(inputs) {
        format!(" @ {}", it.input.run.env.hostname)
    } else if inputs.len() > 1 {
        format!(" · run {}", it.input.run.run_id)
    } else {
        String::new()
    }
}

/// `measured` cases draw filled markers; anything else (projected) hollow,
/// in a series of its own.
pub fn is_measured(c: &CaseResult) -> bool {
    throughput_source(c) == "measured"
}

/// Index of `key` in `keys`, appended if new: stable colours and categories
/// in order of first appearance.
pub fn index_of(keys: &mut Vec<String>, key: &str) -> usize {
    match keys.iter().position(|k| k == key) {
        Some(i) => i,
        None => {
            keys.push(key.to_string());
            keys.len() - 1
        }
    }
}

/// The unit a metric name carries, for axis labels.
pub fn unit_of(metric: &str) -> String {
    match metric {
        "gflops_per_s" => "GFLOP/s".into(),
        "tokens_per_s" => "tokens/s".into(),
        "gbytes_per_s" => "GB/s".into(),
        m => match m.strip_suffix("_per_s") {
            Some(what) => format!("{what}/s"),
            None => m.to_string(),
        },
    }
}

/// Vertical offset of series `k` of `n` inside one category row, so dots
/// of different series on one workload do not cover each other.
pub fn dodge(k: usize, n: usize) -> f64 {
    if n <= 1 {
        0.0
    } else {
        (k as f64 - (n as f64 - 1.0) / 2.0) * (0.6 / n as f64)
    }
}

/// "run 20260101T000000Z-1" or "runs A, B".
pub fn runs_text(inputs: &[ReportInput]) -> String {
    let ids: Vec<&str> = inputs.iter().map(|i| i.run.run_id.as_str()).collect();
    match ids.as_slice() {
        [one] => format!("run {one}"),
        many => format!("runs {}", many.join(", ")),
    }
}
