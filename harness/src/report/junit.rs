//! JUnit XML of `compare` and `check` (`--junit FILE`), so CI systems
//! (GitLab, Jenkins, GitHub test-report actions) list each case or claim as
//! a test. One rule keeps it honest: a test case fails exactly when it
//! makes the command exit 1 — a regression, an incomparable case under
//! `--fail-on-incomparable`, a claim refuted or that cannot be told. An
//! incomparable case that does not fail the gate is `skipped`.
//!
//! The elements and attributes are the common subset of the JUnit schemas
//! these tools read (testsuites > testsuite > testcase with failure,
//! skipped, system-out; properties on the suite).

use std::path::Path;

use crate::analysis::compare::{CaseComparison, Comparison, Verdict};
use crate::claims::verdict::{CheckReport, ClaimVerdict, ClaimVerdictKind};
use crate::error::{HarnessError, Result};
use crate::format::sig3;

/// Writes the XML to `path` (its folder created), whole or not at all.
pub fn write(path: &Path, xml: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(HarnessError::io("create", dir))?;
    }
    crate::results::io::write_atomic(path, xml.as_bytes())
}

/// Escapes text for a double-quoted XML attribute. Characters XML 1.0
/// cannot carry at all (control characters but tab and line breaks) become
/// U+FFFD; line breaks and tabs become character references, which an
/// attribute keeps (a parser turns a literal one into a space).
pub fn escape(s: &str) -> String {
    escape_with(s, true)
}

/// Escapes text for XML element content, where line breaks stay as they are.
fn escape_text(s: &str) -> String {
    escape_with(s, false)
}

fn escape_with(s: &str, attribute: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' if attribute => o.push_str("&#10;"),
            '\r' if attribute => o.push_str("&#13;"),
            '\t' if attribute => o.push_str("&#9;"),
            '\n' | '\r' | '\t' => o.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// How one test case ended.
enum Outcome {
    Pass,
    Failure { kind: String, message: String },
    Skipped { message: String },
}

struct Case {
    name: String,
    outcome: Outcome,
    /// Shown by CI beside the case: the verdict and its evidence.
    detail: String,
}

fn document(suite: &str, classname: &str, properties: &[(&str, String)], cases: &[Case]) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failure { .. }))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped { .. }))
        .count();
    let counts = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\"",
        cases.len()
    );
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str(&format!(
        "<testsuites name=\"{}\" {counts}>\n",
        escape(classname)
    ));
    o.push_str(&format!(
        "  <testsuite name=\"{}\" {counts}>\n",
        escape(suite)
    ));
    if !properties.is_empty() {
        o.push_str("    <properties>\n");
        for (k, v) in properties {
            o.push_str(&format!(
                "      <property name=\"{}\" value=\"{}\"/>\n",
                escape(k),
                escape(v)
            ));
        }
        o.push_str("    </properties>\n");
    }
    for c in cases {
        o.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\">\n",
            escape(classname),
            escape(&c.name)
        ));
        // The detail goes in the failure's text where there is one, else in
        // system-out, which CI shows beside a passing or skipped case.
        match &c.outcome {
            Outcome::Failure { kind, message } => o.push_str(&format!(
                "      <failure type=\"{}\" message=\"{}\">{}</failure>\n",
                escape(kind),
                escape(message),
                escape_text(&c.detail)
            )),
            Outcome::Skipped { message } => o.push_str(&format!(
                "      <skipped message=\"{}\"/>\n",
                escape(message)
            )),
            Outcome::Pass => {}
        }
        if !matches!(c.outcome, Outcome::Failure { .. }) {
            o.push_str(&format!(
                "      <system-out>{}</system-out>\n",
                escape_text(&c.detail)
            ));
        }
        o.push_str("    </testcase>\n");
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

fn ratio_words(x: &CaseComparison) -> String {
    match (x.ratio, x.ratio_ci95_low, x.ratio_ci95_high) {
        (Some(r), Some(lo), Some(hi)) => format!(
            "ratio NEW/BASE {r:.3} [{lo:.3}, {hi:.3}], threshold ±{:.1}%",
            x.threshold * 100.0
        ),
        _ => "no ratio".into(),
    }
}

fn value(v: Option<f64>) -> String {
    v.map(sig3).unwrap_or_else(|| "—".into())
}

/// `compare`'s verdicts as JUnit: one test case per compared case.
pub fn compare(c: &Comparison, fail_on_incomparable: bool) -> String {
    let cases: Vec<Case> = c
        .cases
        .iter()
        .map(|x| {
            let message = format!("{}: {}", x.verdict.as_str(), ratio_words(x));
            let mut detail = vec![message.clone()];
            if !x.metric.is_empty() {
                detail.push(format!(
                    "{}: base {} → new {}",
                    x.metric,
                    value(x.base_value),
                    value(x.new_value)
                ));
            }
            detail.push(x.reason.clone());
            let detail = detail.join("\n");
            let outcome = match x.verdict {
                Verdict::Regressed => Outcome::Failure {
                    kind: "regressed".into(),
                    message,
                },
                Verdict::Incomparable if fail_on_incomparable => Outcome::Failure {
                    kind: "incomparable".into(),
                    message: format!("incomparable: {}", x.reason),
                },
                Verdict::Incomparable => Outcome::Skipped {
                    message: format!("incomparable: {}", x.reason),
                },
                Verdict::Improved | Verdict::Unchanged | Verdict::Inconclusive => Outcome::Pass,
            };
            Case {
                name: x.key.clone(),
                outcome,
                detail,
            }
        })
        .collect();
    let suite = format!("capbench compare {} → {}", c.base.run_id, c.new.run_id);
    let props = [
        ("base_run_id", c.base.run_id.clone()),
        ("base_git_commit", c.base.git_commit.clone()),
        ("new_run_id", c.new.run_id.clone()),
        ("new_git_commit", c.new.git_commit.clone()),
        ("threshold", c.threshold.to_string()),
        ("calibrated", c.calibrated.to_string()),
        ("headline", c.headline.clone()),
    ];
    document(&suite, "capbench.compare", &props, &cases)
}

fn claim_detail(c: &ClaimVerdict) -> String {
    let mut lines = vec![
        format!("{} — {}", c.id, c.verdict.as_str()),
        c.statement.clone(),
    ];
    for e in &c.expectations {
        let v = match (e.value, e.band_low, e.band_high) {
            (Some(v), Some(lo), Some(hi)) => format!("{} [{}, {}]", sig3(v), sig3(lo), sig3(hi)),
            (Some(v), _, _) => sig3(v),
            _ => "—".into(),
        };
        let mut line = format!("{}: {v} — {}", e.expectation, e.evidence);
        if let Some(r) = &e.reason {
            line.push_str(&format!(" (why: {r})"));
        }
        lines.push(line);
    }
    lines.extend(c.assumptions.iter().map(|a| format!("assumes: {a}")));
    lines.join("\n")
}

/// `check`'s verdicts as JUnit: one test case per claim.
pub fn check(r: &CheckReport) -> String {
    let cases: Vec<Case> = r
        .claims
        .iter()
        .map(|c| {
            let message = format!("{}: {}", c.verdict.as_str(), c.statement);
            let outcome = match c.verdict {
                ClaimVerdictKind::SupportedMeasured | ClaimVerdictKind::SupportedProjected => {
                    Outcome::Pass
                }
                ClaimVerdictKind::RefutedMeasured | ClaimVerdictKind::RefutedProjected => {
                    Outcome::Failure {
                        kind: "refuted".into(),
                        message,
                    }
                }
                ClaimVerdictKind::CannotTell => Outcome::Failure {
                    kind: "cannot tell".into(),
                    message,
                },
            };
            Case {
                name: c.id.clone(),
                outcome,
                detail: claim_detail(c),
            }
        })
        .collect();
    let props = [
        ("claims_file", r.claims_file.clone()),
        ("results", r.results.join(" ")),
        (
            "projection_uncertainty_rel",
            r.projection_uncertainty_rel.to_string(),
        ),
    ];
    let suite = format!("capbench check {}", r.claims_file);
    document(&suite, "capbench.check", &props, &cases)
}

#[cfg(test)]
#[path = "junit_tests.rs"]
mod tests;
