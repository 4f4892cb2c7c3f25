//! `capbench merge`: runs of several machines into one folder that `show`,
//! `report` and `check` read like a run.

use std::process::ExitCode;

use crate::cli::MergeArgs;
use crate::error::HarnessError;
use crate::report::table;

pub fn run(a: &MergeArgs) -> Result<ExitCode, HarnessError> {
    let idx = crate::results::merge::merge(&a.runs, &a.out)?;
    let rows = idx
        .runs
        .iter()
        .map(|r| {
            vec![
                r.machine_id.clone(),
                r.hostname.clone(),
                r.run_id.clone(),
                r.cases.to_string(),
                r.merged_from.clone(),
            ]
        })
        .collect();
    eprintln!(
        "{}",
        table::rows(&["machine", "host", "run", "cases", "from"], rows)
    );
    for d in &idx.differences {
        eprintln!("  differs (kept, same schema): {d}");
    }
    for d in &idx.duplicates {
        eprintln!("  left out (duplicate): {d}");
    }
    eprintln!(
        "merged {} run(s) of {} machine(s)",
        idx.runs.len(),
        idx.machines.len()
    );
    println!("{}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
