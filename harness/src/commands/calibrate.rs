//! `capbench calibrate`: A/A runs of one suite (or existing runs) give each
//! case's run-to-run noise, stored beside the runs or with a baseline.

use std::process::ExitCode;

use crate::analysis::calibration::{CALIBRATION_FILE, calibrate};
use crate::baseline;
use crate::cli::CalibrateArgs;
use crate::error::HarnessError;
use crate::report::table;
use crate::results::io::{RUN_FILE, load_run, write_json_atomic};
use crate::runner::{self, RunTarget};

use super::run::plan_request;

pub fn run(a: CalibrateArgs) -> Result<ExitCode, HarnessError> {
    let (runs, out_dir) = if !a.from.is_empty() {
        if a.plan.any_set() {
            return Err(HarnessError::usage(
                "--from uses existing runs; drop the suite/backend/workload flags",
            ));
        }
        let runs = a
            .from
            .iter()
            .map(|p| load_run(p))
            .collect::<Result<Vec<_>, _>>()?;
        (runs, None)
    } else {
        if a.runs < 2 {
            return Err(HarnessError::usage("--runs must be at least 2"));
        }
        let out = match a.out {
            Some(d) => d,
            None => runner::plan::create_run_dir(None)?,
        };
        let request = plan_request(a.plan, None);
        let mut runs = Vec::with_capacity(a.runs);
        for k in 1..=a.runs {
            eprintln!("calibration run {k} of {}", a.runs);
            let target = RunTarget::Fresh {
                request: Box::new(request.clone()),
                out: Some(out.join(format!("run-{k}"))),
            };
            runs.push(runner::run(target, true)?.run);
        }
        (runs, Some(out))
    };
    let cal = calibrate(&runs).map_err(HarnessError::usage)?;
    let mut rows = vec![];
    for (key, n) in &cal.cases {
        rows.push(vec![
            key.clone(),
            n.run_medians_wall_s.len().to_string(),
            format!("±{:.2}%", n.noise_rel * 100.0),
        ]);
    }
    println!(
        "{}",
        table::rows(&["case", "A/A runs", "A/A noise (95%)"], rows)
    );
    if let Some(out) = &out_dir {
        write_json_atomic(&out.join(CALIBRATION_FILE), &cal)?;
        eprintln!("calibration: {}", out.display());
    }
    if let Some(name) = &a.baseline {
        let dir = baseline::dir_of(&a.baselines_dir, &cal.machine_id, name);
        if !dir.join(RUN_FILE).exists() {
            let first = match (&out_dir, a.from.first()) {
                (Some(out), _) => out.join("run-1"),
                (None, Some(p)) => p.clone(),
                (None, None) => unreachable!("runs exist"),
            };
            baseline::save(&a.baselines_dir, name, &first)?;
            eprintln!("saved baseline {name} from {}", first.display());
        }
        baseline::save_calibration(&dir, &cal)?;
        eprintln!("calibration stored with baseline {name}: {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
