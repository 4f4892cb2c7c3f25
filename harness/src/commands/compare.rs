//! `capbench compare`: the regression gate — BASE against NEW (or a stored
//! baseline against NEW), exit 1 when a case regressed beyond its threshold.

use std::process::ExitCode;

use crate::analysis::compare::{CompareOptions, Comparison, Verdict, compare_runs};
use crate::analysis::engines::{backends_in, engine_sides};
use crate::baseline;
use crate::cli::{CompareArgs, CompareFormat};
use crate::error::HarnessError;
use crate::report::compare as report_compare;
use crate::results::io::{load_run, parse_versioned};

use super::exit_ok;

pub fn run(a: &CompareArgs) -> Result<ExitCode, HarnessError> {
    if let Some((base, new)) = &a.engines {
        return engines(a, base, new);
    }
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
    print(&c, a.format);
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

/// `compare --engines BASE,NEW RUN [RUN2]`: engines side by side.
fn engines(a: &CompareArgs, base: &str, new: &str) -> Result<ExitCode, HarnessError> {
    let (first, second) = match a.runs.as_slice() {
        [one] => (one, one),
        [one, two] => (one, two),
        _ => unreachable!("clap takes one or two run folders"),
    };
    // One folder is read once and plays both sides.
    let run_a = load_run(first)?;
    run_a.check_one_result_per_case(first)?;
    let loaded_b;
    let run_b = if first == second {
        &run_a
    } else {
        loaded_b = load_run(second)?;
        loaded_b.check_one_result_per_case(second)?;
        &loaded_b
    };
    let Some((b, n)) = engine_sides(&run_a, run_b, base, new) else {
        let mut seen = backends_in(&run_a);
        seen.extend(backends_in(run_b));
        seen.sort();
        seen.dedup();
        return Err(HarnessError::usage(format!(
            "no workload under the same caps ran on both {base} and {new} in {}; backends there: {} \
             (run one suite with --backend {base},{new}, or pass the two runs' folders)",
            if first == second {
                first.display().to_string()
            } else {
                format!("{} and {}", first.display(), second.display())
            },
            seen.join(", ")
        )));
    };
    let opts = CompareOptions {
        threshold: a.threshold,
        allow_machine_mismatch: a.allow_machine_mismatch,
        calibration: None,
    };
    let mut c = compare_runs(&b, &n, &opts);
    c.headline = format!(
        "engines: {new} against {base} (ratio = {new}'s rate / {base}'s; improved = {new} faster, \
         regressed = {new} slower) — {}",
        c.headline
    );
    print(&c, a.format);
    Ok(exit_ok(true))
}

/// Prints a comparison in the format asked for.
fn print(c: &Comparison, format: CompareFormat) {
    let text = match format {
        CompareFormat::Text => report_compare::text(c),
        CompareFormat::Md => report_compare::markdown(c),
        CompareFormat::Json => report_compare::json(c),
    };
    println!("{text}");
}
