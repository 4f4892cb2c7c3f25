//! Formats `capbench ab`'s summary: Markdown for CI summaries and PR
//! comments, a terminal table. Formatting only.

use super::compare::{icon, md_cell, short, value};
use crate::analysis::paired::{AbSummary, PairedCase};
use crate::report::table::rows;

fn ratio_text(c: &PairedCase) -> String {
    match (c.ratio, c.ratio_ci95_low, c.ratio_ci95_high) {
        (Some(r), Some(lo), Some(hi)) => format!("{r:.3} [{lo:.3}, {hi:.3}]"),
        _ => "—".into(),
    }
}

pub fn markdown(s: &AbSummary) -> String {
    let mut out = format!("### capbench ab: {}\n\n", s.headline);
    out.push_str(&format!(
        "base `{}` (commit `{}`) ⇄ new `{}` (commit `{}`) · {} pairs in random order · threshold ±{:.1}% · ratio = NEW/BASE of the headline metric; {}\n\n",
        md_cell(&s.base.spec),
        short(&s.base.git_commit),
        md_cell(&s.new.spec),
        short(&s.new.git_commit),
        s.pairs,
        s.threshold * 100.0,
        s.method,
    ));
    for m in &s.environment_mismatch {
        out.push_str(&format!("> ⚠️ {}\n", md_cell(m)));
    }
    if !s.environment_mismatch.is_empty() {
        out.push('\n');
    }
    out.push_str("| verdict | case | metric | base | new | ratio [95% CI] | pairs | note |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for x in &s.cases {
        out.push_str(&format!(
            "| {} {} | `{}` | {} | {} | {} | {} | {} | {} |\n",
            icon(x.verdict),
            x.verdict.as_str(),
            md_cell(&x.key),
            x.metric,
            value(x.base_value),
            value(x.new_value),
            ratio_text(x),
            x.pairs_used,
            md_cell(&x.reason),
        ));
    }
    out
}

pub fn text(s: &AbSummary) -> String {
    let mut out = format!("{}\n", s.headline);
    for m in &s.environment_mismatch {
        out.push_str(&format!("warning: {m}\n"));
    }
    out.push_str(&rows(
        &[
            "verdict",
            "case",
            "base",
            "new",
            "ratio NEW/BASE [95% CI]",
            "pairs",
            "note",
        ],
        s.cases
            .iter()
            .map(|x| {
                vec![
                    x.verdict.as_str().to_string(),
                    x.key.clone(),
                    value(x.base_value),
                    value(x.new_value),
                    ratio_text(x),
                    x.pairs_used.to_string(),
                    x.reason.clone(),
                ]
            })
            .collect(),
    ));
    out.push('\n');
    // Keys and reasons come from run files.
    crate::error::printable(&out)
}
