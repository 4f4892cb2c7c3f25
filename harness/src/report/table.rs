//! Terminal tables: the run summary (case, status, headline with CI) and the
//! `list` views.

use comfy_table::{Cell, Table};

use crate::error::printable;
use crate::format::{joules, sig3};
use crate::results::{CaseResult, RunFile, Status};

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    // Wrap long cells (energy source notes) to the terminal, or 160 columns
    // when there is none (pipes, CI logs).
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if t.width().is_none() {
        t.set_width(160);
    }
    t.set_header(header.iter().map(Cell::new));
    t
}

/// `12.3 GFLOP/s [11.9, 12.6]`-style text for a case's headline.
pub fn headline_text(c: &CaseResult) -> String {
    match &c.headline {
        Some(h) => {
            let unit = match h.metric.as_str() {
                "gflops_per_s" => "GFLOP/s",
                "gbytes_per_s" => "GB/s",
                "tokens_per_s" => "tok/s",
                "prefill_tokens_per_s" => "prefill tok/s",
                other => other,
            };
            format!(
                "{} {unit} [{}, {}]",
                sig3(h.value),
                sig3(h.ci95_low),
                sig3(h.ci95_high)
            )
        }
        None => "—".into(),
    }
}

pub fn summary(run: &RunFile) -> String {
    let mut t = new_table(&[
        "case",
        "status",
        "headline (median, 95% CI)",
        "CI basis",
        "samples × procs",
        "note",
    ]);
    for c in &run.cases {
        let (basis, samples) = match &c.stats {
            Some(s) => (
                s.ci_basis.replace('_', " "),
                format!(
                    "{} × {}",
                    s.pooled_wall_s.n / s.processes_ok.max(1),
                    s.processes_ok
                ),
            ),
            None => ("—".into(), "—".into()),
        };
        let note = if c.status == Status::Ok {
            let verified = c
                .verification
                .as_ref()
                .map(|v| format!("verified, max diff {:.1e}", v.scaled_max_diff))
                .unwrap_or_default();
            match c.energy.as_ref().and_then(|e| e.figure.as_ref()) {
                // The source label travels with every energy figure shown.
                Some(f) => format!(
                    "{verified}\n{}/iter, {} W ({})",
                    joules(f.energy_j_per_iter),
                    sig3(f.avg_power_w),
                    f.source.as_str()
                ),
                None => verified,
            }
        } else {
            c.status_detail.chars().take(80).collect()
        };
        t.add_row(vec![
            Cell::new(&c.id),
            Cell::new(c.status.as_str()),
            Cell::new(headline_text(c)),
            Cell::new(basis),
            Cell::new(samples),
            Cell::new(note),
        ]);
    }
    let mut out = t.to_string();
    if !run.not_planned.is_empty() {
        out.push_str("\nnot planned:\n");
        for n in &run.not_planned {
            out.push_str(&format!(
                "  {} on {}: {}\n",
                n.workload, n.backend, n.reason
            ));
        }
    }
    let counts: Vec<String> = run
        .totals
        .by_status
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    out.push_str(&format!(
        "\n{} cases: {} — machine {} ({}, {} logical cores), capbench {} ({})\n",
        run.totals.cases,
        counts.join(", "),
        run.env.machine_id,
        run.env.cpu_model,
        run.env.logical_cores,
        run.env.capbench_version,
        run.env.build_profile,
    ));
    // Every string above may come from a run file.
    printable(&out)
}

/// The ceilings `capbench probe` measured, one row per backend × caps ×
/// kind × dtype.
pub fn ceilings(cl: &[crate::results::Ceiling]) -> String {
    use crate::results::CeilingKind;
    rows(
        &[
            "backend",
            "threads",
            "ceiling",
            "median [95% CI]",
            "measured by",
        ],
        cl.iter()
            .map(|c| {
                let (what, unit) = match c.kind {
                    CeilingKind::Gemm => (
                        format!("GEMM {}", c.dtype.as_deref().unwrap_or("?")),
                        "GFLOP/s",
                    ),
                    CeilingKind::Stream => ("STREAM triad".to_string(), "GB/s"),
                    CeilingKind::Read => ("read".to_string(), "GB/s"),
                };
                vec![
                    c.backend.clone(),
                    c.threads.map(|t| t.to_string()).unwrap_or("default".into()),
                    what,
                    format!(
                        "{} {unit} [{}, {}]",
                        sig3(c.value),
                        sig3(c.ci95_low),
                        sig3(c.ci95_high)
                    ),
                    match &c.bracket {
                        Some(b) => format!("{} ({b})", c.case),
                        None => c.case.clone(),
                    },
                ]
            })
            .collect(),
    )
}

pub fn rows(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = new_table(header);
    for r in rows {
        t.add_row(r);
    }
    printable(&t.to_string())
}
