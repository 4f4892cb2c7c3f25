//! Helpers the figure builders share: which cases to draw, their labels,
//! stable colours per series key, units of metric names.

use crate::report::model::{ReportInput, throughput_source};
use crate::results::{CaseResult, Status};

use super::chart::{Axis, Chart, Line, Marker, Series, wants_log};

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

    /// A figure to draw; its chart carries the figure's title.
    pub fn drawn(
        id: impl Into<String>,
        title: &str,
        source: String,
        x: Axis,
        y: Axis,
        series: Vec<Series>,
        note: Option<String>,
    ) -> Planned {
        Planned {
            id: id.into(),
            title: title.into(),
            chart: Ok(Chart {
                title: title.into(),
                source,
                x,
                y,
                series,
                bands: vec![],
                marks: vec![],
            }),
            note,
        }
    }
}

/// A value axis, logarithmic when `values` span more than `ratio`.
pub fn value_axis(label: impl Into<String>, values: impl Iterator<Item = f64>, ratio: f64) -> Axis {
    let label = label.into();
    if wants_log(values, ratio) {
        Axis::log(format!("{label}, log scale"))
    } else {
        Axis::linear(label)
    }
}

/// The index of the point series `name` (kept in step with `names`), added
/// with `color` and `marker` and no line the first time it is asked for.
pub fn series_index(
    names: &mut Vec<String>,
    series: &mut Vec<Series>,
    name: String,
    color: usize,
    marker: Marker,
) -> usize {
    let k = index_of(names, &name);
    if k == series.len() {
        series.push(Series {
            name,
            color,
            marker: Some(marker),
            line: Line::None,
            points: vec![],
        });
    }
    k
}

/// The series of `label`'s points: filled when measured, hollow and named
/// "· projected" when not, so the two never share a series.
pub fn measured_series(
    names: &mut Vec<String>,
    series: &mut Vec<Series>,
    label: &str,
    color: usize,
    measured: bool,
) -> usize {
    if measured {
        series_index(names, series, label.to_string(), color, Marker::Circle)
    } else {
        let name = format!("{label} · projected");
        series_index(names, series, name, color, Marker::HollowCircle)
    }
}

/// A reference line without markers (a fit, a floor, a frontier).
pub fn dashed(name: String, color: usize, points: Vec<super::chart::Point>) -> Series {
    Series {
        name,
        color,
        marker: None,
        line: Line::Dashed,
        points,
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

/// Offsets every series' points inside their category rows (`dodge`), so
/// dots of different series on one row do not cover each other.
pub fn dodge_rows(series: &mut [Series]) {
    let n = series.len();
    for (k, s) in series.iter_mut().enumerate() {
        for p in &mut s.points {
            p.y += dodge(k, n);
        }
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
