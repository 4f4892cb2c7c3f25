//! JUnit snapshots of a comparison and a claims check, and the one rule:
//! a test case fails exactly when it makes the command exit 1.

use super::*;
use crate::analysis::compare::{CompareOptions, compare_runs};
use crate::analysis::fixtures::{case, jittered, run};
use crate::claims::verdict::{Basis, ExpectationVerdict, Outcome as ExpOutcome};
use crate::report::tests::check_snapshot;

fn comparison() -> Comparison {
    let base = run(
        "m",
        vec![
            case("kernel/gemm-f32-64", "cpu", jittered(0.010, 3, 0)),
            case("kernel/gemm-f32-128", "cpu", jittered(0.010, 3, 0)),
            case("kernel/gemm-f32-256", "cpu", jittered(0.010, 3, 0)),
        ],
    );
    let new = run(
        "m",
        vec![
            case("kernel/gemm-f32-64", "cpu", jittered(0.010, 3, 1)),
            // 20 % slower: regressed. The 256 case is missing: incomparable.
            case("kernel/gemm-f32-128", "cpu", jittered(0.012, 3, 1)),
        ],
    );
    let opts = CompareOptions {
        threshold: 0.05,
        allow_machine_mismatch: false,
        calibration: None,
    };
    compare_runs(&base, &new, &opts)
}

fn claim(id: &str, verdict: ClaimVerdictKind) -> ClaimVerdict {
    ClaimVerdict {
        id: id.into(),
        statement: format!("{id} decodes at >= 20 tokens/s <fast> & \"cheap\""),
        workload: "decode/dense-small/q4_0/p8g16".into(),
        profile: None,
        versus: None,
        verdict,
        expectations: vec![ExpectationVerdict {
            expectation: "tokens_per_s >= 20".into(),
            outcome: ExpOutcome::Supported,
            basis: Some(Basis::Measured),
            value: Some(26.3),
            band_low: Some(25.6),
            band_high: Some(27.0),
            evidence: "decode/dense-small/q4_0/p8g16@cpu of run r1".into(),
            reason: None,
        }],
        assumptions: vec![],
        projections: vec![],
    }
}

fn check_report() -> CheckReport {
    CheckReport {
        schema_version: 1,
        claims_file: "claims/examples.toml".into(),
        results: vec!["results/r1".into()],
        projection_uncertainty_rel: 0.2,
        claims: vec![
            claim("fast", ClaimVerdictKind::SupportedMeasured),
            claim("faster", ClaimVerdictKind::RefutedMeasured),
            claim("unknown", ClaimVerdictKind::CannotTell),
        ],
    }
}

/// (test cases, failures, skipped), counted by an XML parser — which also
/// proves the document well-formed.
fn counts(doc: &str) -> (usize, usize, usize) {
    use xml::reader::{EventReader, XmlEvent};
    let (mut cases, mut failures, mut skipped) = (0, 0, 0);
    for e in EventReader::from_str(doc) {
        match e.unwrap_or_else(|e| panic!("malformed XML: {e}\n{doc}")) {
            XmlEvent::StartElement { name, .. } => match name.local_name.as_str() {
                "testcase" => cases += 1,
                "failure" => failures += 1,
                "skipped" => skipped += 1,
                _ => {}
            },
            _ => continue,
        }
    }
    (cases, failures, skipped)
}

#[test]
fn compare_junit_matches_its_snapshot_and_fails_only_what_fails_the_gate() {
    let c = comparison();
    let xml = compare(&c, false);
    check_snapshot("junit-compare.xml", &xml);
    assert_eq!(counts(&xml), (3, 1, 1), "{xml}");
    assert!(xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""));
    assert!(xml.contains("type=\"regressed\""), "{xml}");
    // Under --fail-on-incomparable the missing case fails as well.
    let strict = compare(&c, true);
    assert_eq!(counts(&strict), (3, 2, 0), "{strict}");
    assert!(strict.contains("type=\"incomparable\""), "{strict}");
}

#[test]
fn check_junit_matches_its_snapshot_with_refuted_and_cannot_tell_failing() {
    let xml = check(&check_report());
    check_snapshot("junit-check.xml", &xml);
    assert_eq!(counts(&xml), (3, 2, 0), "{xml}");
    // Claim text is escaped, never markup.
    assert!(!xml.contains("<fast>") && xml.contains("&lt;fast&gt; &amp; &quot;cheap&quot;"));
}

#[test]
fn escape_keeps_xml_well_formed_for_any_string() {
    assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    assert_eq!(escape("x\ny\u{1}z"), "x&#10;y\u{FFFD}z");
    assert_eq!(escape_text("x\ny\u{1}<"), "x\ny\u{FFFD}&lt;");
    // Whatever a case is called, the document parses.
    let mut c = comparison();
    c.cases[0].key = "a\u{0}b<]]>&\"'\n\u{FFFF}".into();
    counts(&compare(&c, false));
}
