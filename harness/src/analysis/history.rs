//! `history analyze`: per case series of headline figures → change points
//! (E-Divisive means on the log of each run's median, see `changepoint`),
//! each kept only when its step exceeds both the threshold and the
//! uncertainty of the two levels from the runs' between-process CIs; the current level against the level before the last
//! change; a slow drift by Mann–Kendall; a verdict per case.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::changepoint::{self, Params};
use crate::results::history::Series;
use crate::stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendVerdict {
    /// The latest change point (within the recent runs) made it worse.
    Regressed,
    /// No step, but a monotone trend larger than the threshold.
    Drifting,
    /// Fewer runs than the analysis needs.
    TooFewRuns,
    /// The latest change point (within the recent runs) made it better.
    Improved,
    Stable,
}

impl TrendVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            TrendVerdict::Regressed => "regressed",
            TrendVerdict::Drifting => "drifting",
            TrendVerdict::TooFewRuns => "too few runs",
            TrendVerdict::Improved => "improved",
            TrendVerdict::Stable => "stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Smallest relative step (or drift over the last segment) that counts.
    pub threshold: f64,
    pub params: Params,
    /// Fewer runs than this: `too few runs`.
    pub min_runs: usize,
    /// Only a change point within the last `recent` runs sets the verdict;
    /// older ones are listed (a CI gate must not fail forever on an old,
    /// accepted step).
    pub recent: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            threshold: 0.02,
            params: Params::default(),
            min_runs: 6,
            recent: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// Index of the first run at the new level.
    pub index: usize,
    pub commit: String,
    pub run_id: String,
    pub time: String,
    /// Median of the segment before and after (headline units).
    pub level_before: f64,
    pub level_after: f64,
    /// after / before − 1 of the headline metric.
    pub magnitude_rel: f64,
    /// `regression` or `improvement` (by the metric's direction).
    pub direction: String,
    /// Permutation p-value of the split, and 1 − p.
    pub p_value: f64,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTrend {
    pub case: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub machine_id: String,
    pub branch: String,
    pub runs: usize,
    pub change_points: Vec<ChangePoint>,
    /// Median of the runs since the last change point.
    pub current_level: Option<f64>,
    /// Median of the segment before the last change point.
    pub level_before_last_change: Option<f64>,
    /// Mann–Kendall p-value and Theil–Sen change over the last segment,
    /// relative to its level (drift), when it has enough runs.
    pub drift_p_value: Option<f64>,
    pub drift_rel: Option<f64>,
    pub verdict: TrendVerdict,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryAnalysis {
    pub schema_version: u32,
    pub method: String,
    pub threshold: f64,
    pub counts: BTreeMap<String, usize>,
    pub headline: String,
    pub cases: Vec<CaseTrend>,
}

impl HistoryAnalysis {
    pub fn any_regressed(&self) -> bool {
        self.cases
            .iter()
            .any(|c| c.verdict == TrendVerdict::Regressed)
    }
}

fn method(o: &AnalyzeOptions) -> String {
    let p = &o.params;
    format!(
        "E-Divisive means (Matteson & James 2014) on ln(run median): distance exponent {}, {} permutations, significance {}, segments of at least {} runs; a change point is kept when its step exceeds ±{:.1}% and the 95% uncertainty of the two segment levels (runs' median between-process CI half-width / sqrt(runs), combined); drift: Mann-Kendall test (p < {}) with Theil-Sen change over the last segment beyond ±{:.1}%",
        p.alpha_exp,
        p.permutations,
        p.significance,
        p.min_size,
        o.threshold * 100.0,
        p.significance,
        o.threshold * 100.0
    )
}

/// Half-width of each point's CI relative to its median.
fn ci_rel(s: &Series, range: std::ops::Range<usize>) -> f64 {
    let v: Vec<f64> = s.points[range]
        .iter()
        .filter(|p| p.median > 0.0)
        .map(|p| (p.ci95_high - p.ci95_low) / 2.0 / p.median)
        .collect();
    if v.is_empty() { 0.0 } else { stats::median(&v) }
}

/// Change points of one series that pass the step gates, in index order.
pub fn change_points(s: &Series, o: &AnalyzeOptions) -> Vec<ChangePoint> {
    let logs: Vec<f64> = s.points.iter().map(|p| p.median.max(1e-300).ln()).collect();
    let mut splits = changepoint::detect(&logs, &o.params);
    // Drop the weakest split below the gates, re-measure, until all pass:
    // a dropped split merges its neighbours, which changes their levels.
    loop {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(splits.iter().map(|x| x.index))
            .chain(std::iter::once(s.points.len()))
            .collect();
        let level = |a: usize, b: usize| {
            stats::median(&s.points[a..b].iter().map(|p| p.median).collect::<Vec<_>>())
        };
        let cps: Vec<ChangePoint> = splits
            .iter()
            .enumerate()
            .map(|(k, x)| {
                let (before, after) = (level(bounds[k], x.index), level(x.index, bounds[k + 2]));
                let p = &s.points[x.index];
                let mag = after / before - 1.0;
                let better = (mag > 0.0) == s.higher_is_better;
                ChangePoint {
                    index: x.index,
                    commit: p.commit.clone(),
                    run_id: p.run_id.clone(),
                    time: p.time.clone(),
                    level_before: before,
                    level_after: after,
                    magnitude_rel: mag,
                    direction: if better { "improvement" } else { "regression" }.into(),
                    p_value: x.p_value,
                    confidence: 1.0 - x.p_value,
                }
            })
            .collect();
        let weak = cps
            .iter()
            .enumerate()
            .filter(|(k, c)| {
                let (a, m, b) = (bounds[*k], c.index, bounds[k + 2]);
                // The 95% uncertainty of the difference of the two segment
                // levels, from the runs' own CIs: each level's half-width
                // shrinks with the square root of its runs.
                let hw = |r: std::ops::Range<usize>| ci_rel(s, r.clone()).powi(2) / r.len() as f64;
                let gate = o.threshold.max((hw(a..m) + hw(m..b)).sqrt());
                c.magnitude_rel.abs() < gate
            })
            .min_by(|a, b| a.1.magnitude_rel.abs().total_cmp(&b.1.magnitude_rel.abs()));
        match weak {
            Some((k, _)) => {
                splits.remove(k);
            }
            None => return cps,
        }
    }
}

/// Normal upper tail, by erfc's rational approximation (Abramowitz &
/// Stegun 7.1.26, |error| < 1.5e-7).
fn normal_sf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// Mann–Kendall two-sided p-value (normal approximation, no tie
/// correction; Kendall 1975) and the Theil–Sen slope (Sen 1968).
pub fn mann_kendall(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    let (mut s, mut slopes) = (0.0, vec![]);
    for i in 0..n {
        for j in i + 1..n {
            s += (xs[j] - xs[i]).signum();
            slopes.push((xs[j] - xs[i]) / (j - i) as f64);
        }
    }
    let nf = n as f64;
    let var = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    let z = if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    (2.0 * normal_sf(z.abs()), stats::median(&slopes))
}

pub fn analyze_series(s: &Series, o: &AnalyzeOptions) -> CaseTrend {
    let n = s.points.len();
    let mut t = CaseTrend {
        case: s.case.clone(),
        metric: s.metric.clone(),
        higher_is_better: s.higher_is_better,
        machine_id: s.machine_id.clone(),
        branch: s.branch.clone(),
        runs: n,
        change_points: vec![],
        current_level: None,
        level_before_last_change: None,
        drift_p_value: None,
        drift_rel: None,
        verdict: TrendVerdict::TooFewRuns,
        reason: format!("{n} runs; the analysis needs {}", o.min_runs),
    };
    if n < o.min_runs {
        return t;
    }
    t.change_points = change_points(s, o);
    let start = t.change_points.last().map(|c| c.index).unwrap_or(0);
    let last: Vec<f64> = s.points[start..].iter().map(|p| p.median).collect();
    t.current_level = Some(stats::median(&last));
    t.level_before_last_change = t.change_points.last().map(|c| c.level_before);
    if last.len() >= o.min_runs {
        let (p, slope) = mann_kendall(&last);
        let rel = slope * (last.len() - 1) as f64 / stats::median(&last);
        t.drift_p_value = Some(p);
        t.drift_rel = Some(rel);
    }
    let pct = |x: f64| format!("{:+.1}%", x * 100.0);
    // A change point that a straight line through its two segments fits as
    // well as the step is a drift that E-Divisive cut in two.
    let is_drift = |c: &ChangePoint| {
        let k = t.change_points.len();
        let a = if k >= 2 {
            t.change_points[k - 2].index
        } else {
            0
        };
        let xs: Vec<f64> = s.points[a..].iter().map(|p| p.median).collect();
        let (_, slope) = mann_kendall(&xs);
        let icpt = stats::median(
            &xs.iter()
                .enumerate()
                .map(|(i, x)| x - slope * i as f64)
                .collect::<Vec<_>>(),
        );
        let line: f64 = xs
            .iter()
            .enumerate()
            .map(|(i, x)| (x - icpt - slope * i as f64).abs())
            .sum();
        let cut = c.index - a;
        let step: f64 = xs[..cut]
            .iter()
            .map(|x| (x - c.level_before).abs())
            .sum::<f64>()
            + xs[cut..]
                .iter()
                .map(|x| (x - c.level_after).abs())
                .sum::<f64>();
        line <= step
    };
    match t.change_points.last() {
        Some(c) if c.index + o.recent >= n && is_drift(c) => {
            t.verdict = TrendVerdict::Drifting;
            t.reason = format!(
                "a trend rather than a step: a line through the last {} runs fits as well as the change at commit {} ({})",
                n - t
                    .change_points
                    .len()
                    .checked_sub(2)
                    .map(|k| t.change_points[k].index)
                    .unwrap_or(0),
                &c.commit[..c.commit.len().min(10)],
                pct(c.magnitude_rel)
            );
        }
        Some(c) if c.index + o.recent >= n => {
            t.verdict = if c.direction == "regression" {
                TrendVerdict::Regressed
            } else {
                TrendVerdict::Improved
            };
            t.reason = format!(
                "{} at commit {} ({} runs ago, confidence {:.3}): {} vs the level before",
                c.direction,
                &c.commit[..c.commit.len().min(10)],
                n - c.index,
                c.confidence,
                pct(c.magnitude_rel)
            );
        }
        _ => {
            let drifting = matches!((t.drift_p_value, t.drift_rel),
                (Some(p), Some(r)) if p < o.params.significance && r.abs() >= o.threshold);
            (t.verdict, t.reason) = if drifting {
                (
                    TrendVerdict::Drifting,
                    format!(
                        "no step, but a monotone trend of {} over the last {} runs (Mann-Kendall p = {:.4})",
                        pct(t.drift_rel.unwrap_or(0.0)),
                        last.len(),
                        t.drift_p_value.unwrap_or(1.0)
                    ),
                )
            } else {
                let older = t
                    .change_points
                    .last()
                    .map(|c| {
                        format!(
                            "; last change {} runs ago ({})",
                            n - c.index,
                            pct(c.magnitude_rel)
                        )
                    })
                    .unwrap_or_default();
                (
                    TrendVerdict::Stable,
                    format!(
                        "no change point in the last {} runs{older}",
                        o.recent.min(n)
                    ),
                )
            };
        }
    }
    t
}

pub fn analyze(series: &[Series], o: &AnalyzeOptions) -> HistoryAnalysis {
    let mut cases: Vec<CaseTrend> = series.iter().map(|s| analyze_series(s, o)).collect();
    cases.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.case.cmp(&b.case)));
    let mut counts = BTreeMap::new();
    for c in &cases {
        *counts.entry(c.verdict.as_str().to_string()).or_insert(0) += 1;
    }
    let regressed = counts.get("regressed").copied().unwrap_or(0);
    let headline = if regressed > 0 {
        format!(
            "❌ {regressed} of {} series regressed at a recent change point",
            cases.len()
        )
    } else {
        let list: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        format!("✅ no recent regression: {}", list.join(", "))
    };
    HistoryAnalysis {
        schema_version: crate::results::SCHEMA_VERSION,
        method: method(o),
        threshold: o.threshold,
        counts,
        headline,
        cases,
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
