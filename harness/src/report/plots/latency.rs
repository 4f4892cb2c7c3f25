//! Latency distribution per case: p50, p90 and p99 of the per-iteration
//! wall time (per token, for decode cases that record token latencies).

use super::chart::{Axis, Line, Marker, Point, Series};
use super::common::{Planned, dodge, ok_cases, run_suffix, runs_text, value_axis};
use crate::report::model::{ReportInput, keys};

const ID: &str = "latency";
const TITLE: &str = "Latency distribution (p50 / p90 / p99)";

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let per_token = [
        keys::TOKEN_LATENCY_S_P50,
        keys::TOKEN_LATENCY_S_P90,
        keys::TOKEN_LATENCY_S_P99,
    ];
    let per_iter = [keys::WALL_S_P50, keys::WALL_S_P90, keys::WALL_S_P99];
    let mut rows: Vec<String> = vec![];
    let mut pct: [Vec<f64>; 3] = [vec![], vec![], vec![]];
    let mut any_token = false;
    for it in ok_cases(inputs) {
        let m = &it.case.metrics;
        let (ks, unit) = if per_token.iter().all(|k| m.contains_key(*k)) {
            any_token = true;
            (per_token, "per token")
        } else if per_iter.iter().all(|k| m.contains_key(*k)) {
            (per_iter, "per iteration")
        } else {
            continue;
        };
        rows.push(format!(
            "{}{} ({unit})",
            it.case.id,
            run_suffix(inputs, &it)
        ));
        for (i, k) in ks.iter().enumerate() {
            pct[i].push(m[*k] * 1e3);
        }
    }
    if rows.is_empty() {
        return vec![Planned::skipped(
            ID,
            TITLE,
            "no case ended ok with latency percentiles (metrics wall_s_median/wall_s_p90/wall_s_p99 or token_latency_s_p50/p90/p99)",
        )];
    }
    let styles = [
        ("p50 (median)", 0, Marker::Circle),
        ("p90", 1, Marker::Triangle),
        ("p99", 3, Marker::Cross),
    ];
    let series: Vec<Series> = styles
        .iter()
        .enumerate()
        .map(|(i, (name, color, marker))| Series {
            name: name.to_string(),
            color: *color,
            marker: Some(*marker),
            line: Line::None,
            points: pct[i]
                .iter()
                .enumerate()
                .map(|(row, v)| Point::at(*v, row as f64 + dodge(i, 3)))
                .collect(),
        })
        .collect();
    let all = pct.iter().flatten().copied();
    let x = value_axis("latency (ms)", all, 20.0);
    let what = if any_token {
        "wall_s_median/p90/p99 per iteration; token_latency_s_p50/p90/p99 per token"
    } else {
        "wall_s_median/p90/p99 per iteration"
    };
    vec![Planned::drawn(
        ID,
        TITLE,
        format!(
            "{} · metrics {what}, all worker processes' samples pooled · measured",
            runs_text(inputs)
        ),
        x,
        Axis::categories("case", rows),
        series,
        None,
    )]
}
