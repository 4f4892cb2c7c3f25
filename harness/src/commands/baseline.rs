//! `capbench baseline save|show|list`: named reference runs per machine,
//! for `compare --baseline`.

use std::process::ExitCode;

use crate::baseline;
use crate::cli::BaselineCommand;
use crate::error::HarnessError;
use crate::report::table;

pub fn run(c: BaselineCommand) -> Result<ExitCode, HarnessError> {
    match c {
        BaselineCommand::Save {
            name,
            run,
            baselines_dir,
        } => {
            let (dir, r) = baseline::save(&baselines_dir, &name, &run)?;
            println!(
                "saved baseline {name} ({} cases, machine {}) to {}",
                r.cases.len(),
                r.env.machine_id,
                dir.display()
            );
        }
        BaselineCommand::Show {
            name,
            baselines_dir,
        } => {
            let (dir, run, cal) = baseline::load(&baselines_dir, &name)?;
            println!("{}", dir.display());
            eprintln!(
                "baseline {name}: {} cases, run {}, commit {}, {}",
                run.cases.len(),
                run.run_id,
                run.env.git_commit,
                if cal.is_some() {
                    "calibrated"
                } else {
                    "not calibrated"
                }
            );
        }
        BaselineCommand::List { baselines_dir } => {
            let here = crate::results::env::Env::machine_id_now();
            let rows = baseline::list(&baselines_dir)
                .into_iter()
                .map(|(m, n)| {
                    let mark = if m == here { " (this machine)" } else { "" };
                    vec![format!("{m}{mark}"), n]
                })
                .collect();
            println!("{}", table::rows(&["machine", "baseline"], rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}
