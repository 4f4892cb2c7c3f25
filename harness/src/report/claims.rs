//! `capbench check` output: per claim, the verdict, the evidence table (one
//! row per expectation, measured and projected values in separate columns),
//! the assumptions, and why it cannot tell — as text, Markdown or JSON.

use super::table::rows;
use crate::claims::verdict::{Basis, CheckReport, ClaimVerdict, ExpectationVerdict, Outcome};
use crate::format::sig3;

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Supported => "supported",
        Outcome::Refuted => "refuted",
        Outcome::CannotTell => "cannot tell",
    }
}

/// `value [low, high]` in the column of its basis; the other column `—`.
fn value_cells(e: &ExpectationVerdict) -> (String, String) {
    let text = match (e.value, e.band_low, e.band_high) {
        (Some(v), Some(lo), Some(hi)) if lo != hi => {
            format!("{} [{}, {}]", sig3(v), sig3(lo), sig3(hi))
        }
        (Some(v), _, _) => sig3(v),
        _ => "—".into(),
    };
    match e.basis {
        Some(Basis::Measured) => (text, "—".into()),
        Some(Basis::Projected) => ("—".into(), text),
        None => ("—".into(), "—".into()),
    }
}

fn expectation_rows(c: &ClaimVerdict) -> Vec<Vec<String>> {
    c.expectations
        .iter()
        .map(|e| {
            let (m, p) = value_cells(e);
            let mut ev = e.evidence.clone();
            if let Some(r) = &e.reason {
                if !ev.is_empty() {
                    ev.push('\n');
                }
                ev.push_str(&format!("why: {r}"));
            }
            vec![
                e.expectation.clone(),
                outcome(e.outcome).to_string(),
                m,
                p,
                ev,
            ]
        })
        .collect()
}

const HEADER: [&str; 5] = [
    "expectation",
    "verdict",
    "measured [95% CI]",
    "projected [band]",
    "evidence",
];

fn target_words(c: &ClaimVerdict) -> String {
    match (&c.profile, &c.versus) {
        (Some(p), Some(v)) => format!("on profile {p} versus {v}"),
        (Some(p), None) => format!("on profile {p}"),
        _ => "on the machine that measured it".into(),
    }
}

pub fn text(r: &CheckReport) -> String {
    let mut out = format!(
        "claims: {} — {} claim(s) against {} run(s)\n",
        r.claims_file,
        r.claims.len(),
        r.results.len()
    );
    for c in &r.claims {
        out.push_str(&format!(
            "\n{} — {}\n  {}\n  {} {}\n",
            c.id,
            c.verdict.as_str(),
            c.statement,
            c.workload,
            target_words(c)
        ));
        for line in rows(&HEADER, expectation_rows(c)).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        if !c.assumptions.is_empty() {
            out.push_str("  assumptions:\n");
            for a in &c.assumptions {
                out.push_str(&format!("    * {a}\n"));
            }
        }
    }
    out.push_str(&format!("\n{}\n", tally(r)));
    out
}

fn tally(r: &CheckReport) -> String {
    let mut counts: Vec<(String, usize)> = vec![];
    for c in &r.claims {
        let k = c.verdict.as_str().to_string();
        match counts.iter_mut().find(|(n, _)| *n == k) {
            Some(e) => e.1 += 1,
            None => counts.push((k, 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

pub fn markdown(r: &CheckReport) -> String {
    let mut out = format!(
        "## Claims: {}\n\n{} — against {}\n",
        md_cell(&r.claims_file),
        tally(r),
        r.results
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for c in &r.claims {
        out.push_str(&format!(
            "\n### `{}` — **{}**\n\n{}\n\n`{}` {}\n\n| {} |\n|{}|\n",
            c.id,
            c.verdict.as_str(),
            md_cell(&c.statement),
            c.workload,
            target_words(c),
            HEADER.join(" | "),
            HEADER.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        ));
        for row in expectation_rows(c) {
            out.push_str(&format!(
                "| {} |\n",
                row.iter()
                    .map(|s| md_cell(s))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        if !c.assumptions.is_empty() {
            out.push_str("\nAssumptions:\n\n");
            for a in &c.assumptions {
                out.push_str(&format!("- {}\n", md_cell(a)));
            }
        }
    }
    out
}

pub fn json(r: &CheckReport) -> String {
    serde_json::to_string_pretty(r).expect("check report serialises")
}
