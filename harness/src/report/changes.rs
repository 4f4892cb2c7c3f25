//! Formats `history analyze`: the verdict per case with its change points,
//! for a terminal or a CI summary (Markdown). Formatting only.

use super::compare::{md_cell, short};
use crate::analysis::history::{CaseTrend, HistoryAnalysis, TrendVerdict};
use crate::format::sig3;
use crate::report::table::rows;

fn icon(v: TrendVerdict) -> &'static str {
    match v {
        TrendVerdict::Regressed => "❌",
        TrendVerdict::Drifting => "〰️",
        TrendVerdict::TooFewRuns => "❔",
        TrendVerdict::Improved => "🚀",
        TrendVerdict::Stable => "✅",
    }
}

fn changes(c: &CaseTrend) -> String {
    let v: Vec<String> = c
        .change_points
        .iter()
        .map(|p| {
            format!(
                "#{} {} {:+.1}% (p={:.3})",
                p.index,
                short(&p.commit),
                p.magnitude_rel * 100.0,
                p.p_value
            )
        })
        .collect();
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

fn level(c: &CaseTrend) -> String {
    match (c.current_level, c.level_before_last_change) {
        (Some(now), Some(before)) => format!("{} (before: {})", sig3(now), sig3(before)),
        (Some(now), None) => sig3(now),
        _ => "—".into(),
    }
}

pub fn markdown(a: &HistoryAnalysis) -> String {
    let mut out = format!("### capbench history: {}\n\n{}\n\n", a.headline, a.method);
    out.push_str("| verdict | case | metric | runs | current level | change points | note |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for c in &a.cases {
        out.push_str(&format!(
            "| {} {} | `{}` | {} | {} | {} | {} | {} |\n",
            icon(c.verdict),
            c.verdict.as_str(),
            md_cell(&c.case),
            c.metric,
            c.runs,
            level(c),
            md_cell(&changes(c)),
            md_cell(&c.reason)
        ));
    }
    out
}

pub fn text(a: &HistoryAnalysis) -> String {
    let mut out = format!("{}\n", a.headline);
    out.push_str(&rows(
        &[
            "verdict",
            "case",
            "runs",
            "current level",
            "change points",
            "note",
        ],
        a.cases
            .iter()
            .map(|c| {
                vec![
                    c.verdict.as_str().to_string(),
                    c.case.clone(),
                    c.runs.to_string(),
                    level(c),
                    changes(c),
                    c.reason.clone(),
                ]
            })
            .collect(),
    ));
    out.push('\n');
    crate::error::printable(&out)
}
