//! `capbench report`: tables, figures and exports of one or more runs (a
//! probe run's ceilings serving the other runs of its machine).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::ReportArgs;
use crate::error::HarnessError;
use crate::report::{self as report_mod, ReportInput};
use crate::results::merge::load_all;
use crate::runner;

pub fn run(a: &ReportArgs) -> Result<ExitCode, HarnessError> {
    let mut runs: Vec<_> = load_all(&a.runs)?;
    // A probe run's ceilings serve the other runs of its machine.
    let mut files: Vec<_> = runs.iter().map(|r| r.run.clone()).collect();
    crate::analysis::ceilings::share_within_machines(&mut files);
    for (r, f) in runs.iter_mut().zip(files) {
        r.run = f;
    }
    let inputs: Vec<ReportInput> = runs
        .into_iter()
        .map(|r| ReportInput {
            source: r.source,
            run: r.run,
        })
        .collect();
    let out = match (&a.out, a.runs.as_slice()) {
        (Some(o), _) => o.clone(),
        // One folder (a run, or a merged folder): its report/ inside it.
        (None, [one]) => {
            let dir = if one.is_dir() {
                one.clone()
            } else {
                one.parent().map(PathBuf::from).unwrap_or_default()
            };
            dir.join(report_mod::REPORT_DIR)
        }
        (None, _) => PathBuf::from("results/local").join(format!(
            "report-{}",
            runner::plan::compact_time(&crate::results::now_rfc3339())
        )),
    };
    let w = report_mod::write_report(&inputs, &out, &a.format)?;
    announce(&w);
    println!("{}", w.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Tells where the report went and which figures were left out, and why.
pub(crate) fn announce(w: &report_mod::Written) {
    let drawn = w
        .report
        .figures
        .iter()
        .filter(|f| f.status == "drawn")
        .count();
    eprintln!(
        "report: {} ({drawn} figures drawn, {} files)",
        w.dir.display(),
        w.files.len()
    );
    for f in w.report.figures.iter().filter(|f| f.status != "drawn") {
        eprintln!(
            "  not drawn: {} — {}",
            f.id,
            f.note.as_deref().unwrap_or("no data")
        );
    }
}
