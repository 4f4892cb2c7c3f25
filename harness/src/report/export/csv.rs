//! CSV: one flat row per case, RFC 4180 quoting. Columns: the fixed fields,
//! then every metric key found in any case (sorted), then `tag.<key>`.

use std::collections::BTreeSet;

use super::Exporter;
use crate::report::model::Report;

pub struct Csv;

const FIXED: [&str; 20] = [
    "run_id",
    "machine_id",
    "hostname",
    "case_id",
    "workload",
    "workload_version",
    "kind",
    "backend",
    "device",
    "dtype",
    "threads",
    "status",
    "status_detail",
    "headline_metric",
    "headline_value",
    "headline_ci95_low",
    "headline_ci95_high",
    "ci_basis",
    "processes_ok",
    "verification_scaled_max_diff",
];

/// Quotes a field when it holds a separator, quote or line break. A text
/// field a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, tab or carriage return — a hostname `=HYPERLINK(…)`) gets a
/// leading `'` and quotes, as OWASP's "CSV Injection" page recommends;
/// numbers (`-1.5e-3`) stay numbers.
fn field(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        return format!("\"'{}\"", s.replace('"', "\"\""));
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl Exporter for Csv {
    fn file_name(&self) -> &'static str {
        "cases.csv"
    }

    fn render(&self, r: &Report) -> String {
        let metrics: BTreeSet<&str> = r
            .cases
            .iter()
            .flat_map(|c| c.metrics.keys().map(String::as_str))
            .collect();
        let tags: BTreeSet<&str> = r
            .cases
            .iter()
            .flat_map(|c| c.tags.keys().map(String::as_str))
            .collect();
        let mut header: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
        header.extend(metrics.iter().map(|m| m.to_string()));
        header.extend(tags.iter().map(|t| format!("tag.{t}")));
        let mut out = header
            .iter()
            .map(|h| field(h))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for c in &r.cases {
            let mut row = vec![
                c.run_id.clone(),
                c.machine_id.clone(),
                c.hostname.clone(),
                c.id.clone(),
                c.workload.clone(),
                c.workload_version.to_string(),
                c.kind.clone(),
                c.backend.clone(),
                c.device.clone(),
                c.dtype.clone(),
                c.threads.map(|t| t.to_string()).unwrap_or_default(),
                c.status.clone(),
                c.status_detail.clone(),
                c.headline_metric.clone().unwrap_or_default(),
                num(c.headline_value),
                num(c.headline_ci95_low),
                num(c.headline_ci95_high),
                c.ci_basis.clone().unwrap_or_default(),
                c.processes_ok.to_string(),
                num(c.verification_scaled_max_diff),
            ];
            row.extend(metrics.iter().map(|m| num(c.metrics.get(*m).copied())));
            row.extend(
                tags.iter()
                    .map(|t| c.tags.get(*t).cloned().unwrap_or_default()),
            );
            out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        assert_eq!(
            field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        for f in ["+1+2", "-2+3", "@SUM(A1)", "\tx", "\r=1"] {
            assert!(field(f).starts_with("\"'"), "{f}");
        }
        assert_eq!(field("-1.5e-3"), "-1.5e-3");
        assert_eq!(field("plain-host"), "plain-host");
    }
}
