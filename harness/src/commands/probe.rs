//! `capbench probe`: the probe suite as a run, then the machine's measured
//! ceilings (peak FLOP/s and memory bandwidth per backend).

use std::process::ExitCode;

use crate::cli::ProbeArgs;
use crate::error::HarnessError;
use crate::report::table;
use crate::results::Status;
use crate::runner::{self, RunTarget};

use super::{exit_ok, json};

/// `capbench probe`: the probe suite as a run, then its ceilings.
pub fn run(a: ProbeArgs) -> Result<ExitCode, HarnessError> {
    let request = runner::PlanRequest {
        suite: Some("probe".into()),
        backends: a.backend,
        threads: a.threads,
        repeat: a.repeat,
        ..Default::default()
    };
    let outcome = runner::run(
        RunTarget::Fresh {
            request: Box::new(request),
            out: a.out,
        },
        !a.json,
    )?;
    let ceilings = &outcome.run.ceilings;
    if a.json {
        println!("{}", json(ceilings));
    } else {
        println!("{}", table::ceilings(ceilings));
    }
    eprintln!(
        "ceilings: {} — pass this folder to `capbench report` or `capbench check --results` beside runs of this machine (machine {})",
        outcome.dir.display(),
        outcome.run.env.machine_id
    );
    let all_ok = outcome.run.cases.iter().all(|c| c.status == Status::Ok);
    Ok(exit_ok(all_ok && !ceilings.is_empty()))
}
