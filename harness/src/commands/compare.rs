//! `capbench compare`: the regression gate — BASE against NEW (or a stored
//! baseline against NEW), exit 1 when a case regressed beyond its threshold.

use std::process::ExitCode;

use crate::analysis::compare::{CompareOptions, Verdict, compare_runs};
use crate::baseline;
use crate::cli::{CompareArgs, CompareFormat};
use crate::error::HarnessError;
use crate::report::compare as report_compare;
use crate::results::io::{load_run, parse_versioned};

use super::exit_ok;

pub fn run(a: &CompareArgs) -> Result<ExitCode, HarnessError> {
    let (base, base_dir, base_path, new_path) = match (&a.baseline, a.runs.as_slice()) {
        (Some(name), [new]) => {
            let (dir, run, _) = baseline::load(&a.baselines_dir, name)?;
            (run, Some(dir), new, new)
        }
        (Some(_), _) => {
            return Err(HarnessError::usage(
                "with --baseline NAME, give only the NEW run folder",
            ));
        }
        (None, [base, new]) => (
            load_run(base)?,
            base.is_dir().then(|| base.clone()),
            base,
            new,
        ),
        (None, _) => {
            return Err(HarnessError::usage(
                "compare needs BASE and NEW run folders (or --baseline NAME and NEW)",
            ));
        }
    };
    let new = load_run(new_path)?;
    base.check_one_result_per_case(base_dir.as_deref().unwrap_or(base_path))?;
    new.check_one_result_per_case(new_path)?;
    let calibration = match (&a.calibration, &base_dir) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file).map_err(HarnessError::io("read", file))?;
            Some(parse_versioned(file, "", &text)?)
        }
        (None, Some(dir)) => baseline::read_calibration(dir)?,
        (None, None) => None,
    };
    let opts = CompareOptions {
        threshold: a.threshold,
        allow_machine_mismatch: a.allow_machine_mismatch,
        calibration,
    };
    let c = compare_runs(&base, &new, &opts);
    let text = match a.format {
        CompareFormat::Text => report_compare::text(&c),
        CompareFormat::Md => report_compare::markdown(&c),
        CompareFormat::Json => report_compare::json(&c),
    };
    println!("{text}");
    if let Some(path) = &a.junit {
        crate::report::junit::write(
            path,
            &crate::report::junit::compare(&c, a.fail_on_incomparable),
        )?;
    }
    let incomparable = c.cases.iter().any(|x| x.verdict == Verdict::Incomparable);
    Ok(exit_ok(
        !(c.any_regressed() || (a.fail_on_incomparable && incomparable)),
    ))
}
