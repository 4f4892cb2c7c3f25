//! Markdown for GitHub (README, PR comment, `$GITHUB_STEP_SUMMARY`): the
//! runs, a results table, each figure linked with its source, the figures
//! left out and why, and the environment fingerprint.

use super::{Exporter, env_pairs, headline_text, latency_text, run_cells};
use crate::format::sig3;
use crate::report::model::Report;

pub struct Markdown;

/// A table cell: `|` would end the cell, a line break the row, and raw
/// `<`/`>` would be taken for HTML.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "report.md"
    }

    fn render(&self, r: &Report) -> String {
        let mut o = format!("# capbench report: {}\n\n", cell(&r.title));
        o.push_str(
            "| run | source | suite | machine | started | cases |\n|---|---|---|---|---|---|\n",
        );
        for run in &r.runs {
            let [id, source, suite, machine, started, cases] = run_cells(run).map(|c| cell(&c));
            o.push_str(&format!(
                "| `{id}` | `{source}` | {suite} | {machine} | {started} | {cases} |\n"
            ));
        }

        o.push_str("\n## Results\n\nMedian of worker-process medians with its 95% CI; latency percentiles pool every sample.\n\n");
        o.push_str("| case | status | headline (median, 95% CI) | CI basis | p50 / p90 / p99 (ms) | verification (scaled max diff) | note |\n|---|---|---|---|---|---|---|\n");
        let several = r.runs.len() > 1;
        for c in &r.cases {
            let case = if several {
                format!("{} @ {}", c.id, c.hostname)
            } else {
                c.id.clone()
            };
            o.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                cell(&case),
                c.status,
                headline_text(c),
                cell(
                    &c.ci_basis
                        .clone()
                        .unwrap_or_else(|| "—".into())
                        .replace('_', " ")
                ),
                latency_text(c),
                c.verification_scaled_max_diff
                    .map(|d| format!("{d:.1e}"))
                    .unwrap_or_else(|| "—".into()),
                cell(&c.status_detail.chars().take(120).collect::<String>()),
            ));
        }

        o.push_str("\n## Figures\n\n");
        for f in r.figures.iter().filter(|f| f.status == "drawn") {
            o.push_str(&format!("### {}\n\n", cell(&f.title)));
            if let (Some(svg), Some(png)) = (f.files.first(), f.files.get(1)) {
                o.push_str(&format!(
                    "![{}]({png})\n\n[SVG]({svg}) · source: {}\n",
                    cell(&f.title),
                    cell(&f.source)
                ));
            }
            if let Some(n) = &f.note {
                o.push_str(&format!("\n> {}\n", cell(n)));
            }
            o.push('\n');
        }
        let skipped: Vec<_> = r.figures.iter().filter(|f| f.status != "drawn").collect();
        if !skipped.is_empty() {
            o.push_str("Not drawn — these runs hold no data for them:\n\n");
            for f in skipped {
                o.push_str(&format!(
                    "- **{}** (`{}`): {}\n",
                    cell(&f.title),
                    f.id,
                    cell(f.note.as_deref().unwrap_or(""))
                ));
            }
            o.push('\n');
        }

        o.push_str("## Environment\n\n");
        for run in &r.runs {
            o.push_str(&format!(
                "<details><summary>run <code>{}</code>: machine <code>{}</code></summary>\n\n| field | value |\n|---|---|\n",
                cell(&run.run_id),
                cell(&run.env.machine_id)
            ));
            for (k, v) in env_pairs(&run.env) {
                o.push_str(&format!("| {k} | {} |\n", cell(&v)));
            }
            o.push_str(&format!(
                "| memory | {} GiB |\n\n</details>\n\n",
                sig3(run.env.memory_total_bytes as f64 / (1u64 << 30) as f64)
            ));
        }
        o
    }
}
