//! Formats a `Comparison`: Markdown for `$GITHUB_STEP_SUMMARY` and PR
//! comments, a terminal table, or JSON. Formatting only.

use crate::analysis::compare::{CaseComparison, Comparison, Verdict};
use crate::format::sig3;
use crate::report::table::rows;

pub(super) fn icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Regressed => "❌",
        Verdict::Inconclusive => "❔",
        Verdict::Incomparable => "⚠️",
        Verdict::Improved => "🚀",
        Verdict::Unchanged => "✅",
    }
}

fn ratio_text(c: &CaseComparison) -> String {
    match (c.ratio, c.ratio_ci95_low, c.ratio_ci95_high) {
        (Some(r), Some(lo), Some(hi)) => format!("{r:.3} [{lo:.3}, {hi:.3}]"),
        _ => "—".into(),
    }
}

pub(super) fn value(v: Option<f64>) -> String {
    v.map(sig3).unwrap_or_else(|| "—".into())
}

pub(super) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Escapes `|` so a reason cannot break the Markdown table.
pub(super) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(c: &Comparison) -> String {
    let mut out = format!("### capbench compare: {}\n\n", c.headline);
    out.push_str(&format!(
        "base `{}` (commit `{}`) → new `{}` (commit `{}`) · threshold ±{:.1}%{} · ratio = NEW/BASE of the headline metric, 95% CI by hierarchical bootstrap over worker processes\n\n",
        c.base.run_id,
        short(&c.base.git_commit),
        c.new.run_id,
        short(&c.new.git_commit),
        c.threshold * 100.0,
        if c.calibrated { ", raised per case to its calibrated A/A noise" } else { " (uncalibrated)" },
    ));
    for m in &c.environment_mismatch {
        out.push_str(&format!("> ⚠️ {}\n", md_cell(m)));
    }
    if !c.environment_mismatch.is_empty() {
        out.push('\n');
    }
    out.push_str("| verdict | case | metric | base | new | ratio [95% CI] | threshold | note |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for x in &c.cases {
        out.push_str(&format!(
            "| {} {} | `{}` | {} | {} | {} | {} | ±{:.1}% | {} |\n",
            icon(x.verdict),
            x.verdict.as_str(),
            md_cell(&x.key),
            x.metric,
            value(x.base_value),
            value(x.new_value),
            ratio_text(x),
            x.threshold * 100.0,
            md_cell(&x.reason),
        ));
    }
    out
}

pub fn text(c: &Comparison) -> String {
    let mut out = format!("{}\n", c.headline);
    for m in &c.environment_mismatch {
        out.push_str(&format!("warning: {m}\n"));
    }
    out.push_str(&rows(
        &[
            "verdict",
            "case",
            "base",
            "new",
            "ratio NEW/BASE [95% CI]",
            "threshold",
            "note",
        ],
        c.cases
            .iter()
            .map(|x| {
                vec![
                    x.verdict.as_str().to_string(),
                    x.key.clone(),
                    value(x.base_value),
                    value(x.new_value),
                    ratio_text(x),
                    format!("±{:.1}%", x.threshold * 100.0),
                    x.reason.clone(),
                ]
            })
            .collect(),
    ));
    out.push('\n');
    // Keys, reasons and headlines come from run files.
    crate::error::printable(&out)
}

pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).expect("serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::compare::{CompareOptions, compare_runs};
    use crate::analysis::fixtures::{case, jittered, run};

    #[test]
    fn markdown_puts_the_verdict_first_and_escapes_pipes() {
        let base = run(
            "m",
            vec![case("kernel/gemm-f32-64", "cpu", jittered(0.01, 3, 0))],
        );
        let mut new = run(
            "m",
            vec![case("kernel/gemm-f32-64", "cpu", jittered(0.012, 3, 1))],
        );
        new.cases[0].backend = "cpu|x".into();
        let opts = CompareOptions {
            threshold: 0.05,
            allow_machine_mismatch: false,
            calibration: None,
        };
        let md = markdown(&compare_runs(&base, &new, &opts));
        let first = md.lines().next().unwrap();
        assert!(first.starts_with("### capbench compare: "), "{first}");
        assert!(md.contains("cpu\\|x"), "{md}");
        let new = run(
            "m",
            vec![case("kernel/gemm-f32-64", "cpu", jittered(0.012, 3, 1))],
        );
        let md = markdown(&compare_runs(&base, &new, &opts));
        assert!(md.contains("❌ regressed"), "{md}");
        assert!(md.lines().next().unwrap().contains("regressed"));
    }
}
