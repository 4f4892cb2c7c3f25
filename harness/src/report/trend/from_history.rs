//! The dashboard's input from the history store and its analysis: each
//! analysed case joined with its series (by case, metric, machine and
//! branch), the change points and levels as `history analyze` found them.

use super::{ChangeMark, Dashboard, TrendCase, TrendPoint, short};
use crate::analysis::history::HistoryAnalysis;
use crate::results::history::Series;

/// One `TrendCase` per analysed case that has a series, in analysis order.
pub fn dashboard(series: &[Series], a: &HistoryAnalysis) -> Dashboard {
    let cases: Vec<TrendCase> = a
        .cases
        .iter()
        .filter_map(|t| {
            let s = series.iter().find(|s| {
                s.case == t.case
                    && s.metric == t.metric
                    && s.machine_id == t.machine_id
                    && s.branch == t.branch
            })?;
            Some(TrendCase {
                case: t.case.clone(),
                metric: t.metric.clone(),
                higher_is_better: t.higher_is_better,
                machine_id: t.machine_id.clone(),
                branch: t.branch.clone(),
                points: s
                    .points
                    .iter()
                    .map(|p| TrendPoint {
                        commit: p.commit.clone(),
                        time: p.time.clone(),
                        median: p.median,
                        ci95_low: p.ci95_low,
                        ci95_high: p.ci95_high,
                    })
                    .collect(),
                change_points: t
                    .change_points
                    .iter()
                    .map(|c| ChangeMark {
                        index: c.index,
                        commit: c.commit.clone(),
                        change_rel: c.magnitude_rel,
                        confidence: c.confidence,
                    })
                    .collect(),
                // Without a change point the whole series is one level.
                baseline_level: t.level_before_last_change.or(t.current_level),
                current_level: t.current_level,
                verdict: t.verdict.as_str().to_string(),
            })
        })
        .collect();
    let mut branches: Vec<&str> = cases.iter().map(|c| c.branch.as_str()).collect();
    branches.sort();
    branches.dedup();
    let mut machines: Vec<&str> = cases.iter().map(|c| short(&c.machine_id)).collect();
    machines.sort();
    machines.dedup();
    Dashboard {
        title: format!(
            "capbench history · {} · machine {} — {}",
            branches.join(", "),
            machines.join(", "),
            // Without the verdict's emoji: browsers without an emoji font
            // draw a box.
            a.headline
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .trim()
        ),
        method: a.method.clone(),
        cases,
    }
}
