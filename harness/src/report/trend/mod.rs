//! Trend plots and the static dashboard of a performance history: per case,
//! the headline median over commits with its 95 % CI as a band, the change
//! points the detector found as vertical marks, and the level the verdict
//! compares against as a dashed line; and one `index.html` holding every
//! plot and the change-point table — a folder a CI job can publish as is
//! (GitHub Pages):
//!
//! ```text
//! out/
//!   index.html
//!   plots/trend-<case>.svg  plots/trend-<case>.png
//! ```
//!
//! Formatting only: the series, change points, levels and verdicts come in
//! computed (`history analyze`); nothing here estimates anything.

mod from_history;
mod html;

pub use from_history::dashboard as from_history;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plots::chart::{Axis, Band, Chart, Line, Mark, Marker, Point, Series};
use super::plots::{PLOTS_DIR, font, render_chart};
use crate::error::{HarnessError, Result};
use crate::format::sig3;

/// One run's figure of a case: a point of the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub commit: String,
    /// RFC 3339 start of the run.
    pub time: String,
    pub median: f64,
    /// 95 % CI of the median (between processes where the run had several).
    pub ci95_low: f64,
    pub ci95_high: f64,
}

/// A change point: the series' level shifts from point `index` on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeMark {
    /// Index into the case's points of the first point at the new level.
    pub index: usize,
    pub commit: String,
    /// Level after / level before − 1 (−0.10: 10 % lower).
    pub change_rel: f64,
    /// The detector's confidence that the shift is real (1 − p-value).
    pub confidence: f64,
}

/// One case's history as the dashboard draws it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendCase {
    /// Case identity, e.g. `kernel/gemm-f32-256@cpu`.
    pub case: String,
    /// Headline metric key, e.g. `gflops_per_s`.
    pub metric: String,
    pub higher_is_better: bool,
    pub machine_id: String,
    pub branch: String,
    /// Oldest first.
    pub points: Vec<TrendPoint>,
    /// In commit order.
    pub change_points: Vec<ChangeMark>,
    /// The level the verdict compares the current one with (the level
    /// before the last change), in the metric's units.
    pub baseline_level: Option<f64>,
    /// The current level (after the last change).
    pub current_level: Option<f64>,
    /// `regressed`, `improved`, `stable`, `drifting`, `too few runs`.
    pub verdict: String,
}

/// What the dashboard shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// Page title, e.g. "capbench history · main · AMD EPYC (host)".
    pub title: String,
    /// How the change points were found, with its reference and parameters
    /// (printed under the table and each plot).
    pub method: String,
    pub cases: Vec<TrendCase>,
}

/// One case's plot as written.
#[derive(Debug, Clone)]
pub struct TrendFigure {
    /// Index into `Dashboard::cases`.
    pub index: usize,
    pub case: String,
    /// Relative to the output folder: SVG, then PNG.
    pub files: Vec<String>,
}

/// What `write_dashboard` produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub dir: PathBuf,
    pub index: PathBuf,
    pub figures: Vec<TrendFigure>,
    /// Cases not drawn and why (no points).
    pub skipped: Vec<(String, String)>,
}

/// Unit of a metric key for axis labels.
fn unit(metric: &str) -> &str {
    match metric {
        "gflops_per_s" => "GFLOP/s",
        "tokens_per_s" => "tokens/s",
        "gbytes_per_s" => "GB/s",
        other => other,
    }
}

/// Abbreviates a git hash to the 7 digits git prints; any other label
/// (`state-03`, `v1.2.0`) is kept whole up to 12 characters, so labels that
/// share a prefix stay apart.
pub fn short(commit: &str) -> &str {
    let hash = commit.len() > 7 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    let n = if hash { 7 } else { 12 };
    match commit.char_indices().nth(n) {
        Some((i, _)) => &commit[..i],
        None => commit,
    }
}

/// A file-name stem for a case: its id with everything but letters, digits,
/// `.`, `_` and `-` replaced, and the index appended on a clash.
fn stems(cases: &[TrendCase]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for c in cases {
        let base: String = c
            .case
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        let mut stem = format!("trend-{base}");
        let mut k = 2;
        while out.contains(&stem) {
            stem = format!("trend-{base}-{k}");
            k += 1;
        }
        out.push(stem);
    }
    out
}

/// The chart of one case: CI band, median line, baseline level, change
/// points. `None` when the case has no points.
pub fn chart(c: &TrendCase, method: &str) -> Option<Chart> {
    if c.points.is_empty() {
        return None;
    }
    let u = unit(&c.metric);
    let x = |i: usize| i as f64;
    let mut series = vec![Series {
        name: format!("median ({u})"),
        color: 0,
        marker: Some(Marker::Circle),
        line: Line::Solid,
        points: c
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| Point::at(x(i), p.median))
            .collect(),
    }];
    if let Some(level) = c.baseline_level.filter(|v| v.is_finite()) {
        series.push(Series {
            name: format!("baseline level {}", sig3(level)),
            color: 7,
            marker: None,
            line: Line::Dashed,
            points: vec![
                Point::at(-0.4, level),
                Point::at(c.points.len() as f64 - 0.6, level),
            ],
        });
    }
    let bands = vec![Band {
        name: "95% CI".into(),
        color: 0,
        points: c
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (x(i), p.ci95_low, p.ci95_high))
            .collect(),
    }];
    let marks = c
        .change_points
        .iter()
        .filter(|m| m.index < c.points.len())
        .map(|m| Mark {
            // Between the last point of the old level and the first of the new.
            x: m.index as f64 - 0.5,
            label: format!("{:+.1}% {}", m.change_rel * 100.0, short(&m.commit)),
            color: 3,
        })
        .collect();
    // The method's name and reference; its parameters are on the page.
    let method = method.split(": ").next().unwrap_or(method);
    let direction = if c.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    };
    Some(Chart {
        title: format!("{} — {}", c.case, c.verdict),
        source: format!(
            "machine {} · branch {} · {} runs · headline {} ({direction}), median and 95% CI per run · change points: {method}",
            short(&c.machine_id),
            c.branch,
            c.points.len(),
            c.metric
        ),
        x: Axis::ordinal(
            "commit (oldest left)",
            c.points
                .iter()
                .map(|p| short(&p.commit).to_string())
                .collect(),
        ),
        y: Axis::zoomed(format!("{} ({u})", c.metric)),
        series,
        bands,
        marks,
    })
}

/// Draws every case's trend into `out/plots/` and writes `out/index.html`
/// with all of them and the change-point table.
pub fn write_dashboard(d: &Dashboard, out: &Path) -> Result<Written> {
    if let Err(why) = font::ensure() {
        return Err(HarnessError::Io {
            op: "draw",
            path: out.join(PLOTS_DIR).display().to_string(),
            source: std::io::Error::other(why),
        });
    }
    let dir = out.join(PLOTS_DIR);
    std::fs::create_dir_all(&dir).map_err(HarnessError::io("create", &dir))?;
    let mut figures = vec![];
    let mut skipped = vec![];
    for (index, (c, stem)) in d.cases.iter().zip(stems(&d.cases)).enumerate() {
        let Some(chart) = chart(c, &d.method) else {
            skipped.push((c.case.clone(), "no runs with a result".to_string()));
            continue;
        };
        render_chart(&chart, &dir, &stem)?;
        figures.push(TrendFigure {
            index,
            case: c.case.clone(),
            files: vec![
                format!("{PLOTS_DIR}/{stem}.svg"),
                format!("{PLOTS_DIR}/{stem}.png"),
            ],
        });
    }
    let index = out.join("index.html");
    crate::results::io::write_atomic(&index, html::page(d, &figures, &skipped).as_bytes())?;
    Ok(Written {
        dir: out.to_path_buf(),
        index,
        figures,
        skipped,
    })
}

#[cfg(test)]
pub(crate) mod synthetic;
#[cfg(test)]
mod tests;
