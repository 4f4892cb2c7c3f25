//! `capbench check`: claims against evidence — the given run folders, plus
//! a run of what the claims need but the folders lack when `--run` is set.

use std::process::ExitCode;

use crate::claims::{self, missing, verdict};
use crate::cli::{CheckArgs, CheckFormat};
use crate::error::HarnessError;
use crate::report as report_mod;
use crate::results::merge::{SourcedRun, load_all};
use crate::runner::{self, RunTarget};

use super::exit_ok;

/// `capbench check`: claims → verdicts (optionally running what is missing).
pub fn run(a: CheckArgs) -> Result<ExitCode, HarnessError> {
    let set = claims::load(&a.claims)?;
    if a.results.is_empty() && !a.run {
        return Err(HarnessError::usage(
            "check needs evidence: --results DIR… (run or merged folders), or --run to measure what the claims need",
        ));
    }
    let mut runs = load_all(&a.results)?;
    if a.run {
        let (todo, skipped) = missing::workloads(&set, &runs);
        for s in &skipped {
            eprintln!("not run: {s}");
        }
        if !todo.is_empty() {
            eprintln!("running what the claims need: {}", todo.join(", "));
            let dir = runner::plan::create_run_dir(a.out)?;
            let suite = dir.join("claims-suite.toml");
            std::fs::write(&suite, missing::suite_toml(&todo))
                .map_err(HarnessError::io("write", &suite))?;
            let request = runner::PlanRequest {
                suite: Some(suite.display().to_string()),
                backends: a.backend,
                ..Default::default()
            };
            let outcome = runner::run_with(
                RunTarget::Fresh {
                    request: Box::new(request),
                    out: Some(dir),
                },
                true,
                a.model_cache,
            )?;
            eprintln!("results: {}", outcome.dir.display());
            runs.push(SourcedRun {
                source: outcome.dir.display().to_string(),
                run: outcome.run,
            });
        } else {
            eprintln!("nothing to run: the results hold every workload the claims name");
        }
    }
    let opts = verdict::CheckOptions {
        projection_uncertainty_rel: a.projection_uncertainty,
    };
    let r = verdict::check(&set, &runs, &opts);
    let text = match a.format {
        CheckFormat::Text => report_mod::claims::text(&r),
        CheckFormat::Md => report_mod::claims::markdown(&r),
        CheckFormat::Json => report_mod::claims::json(&r),
    };
    println!("{text}");
    if let Some(path) = &a.junit {
        report_mod::junit::write(path, &report_mod::junit::check(&r))?;
    }
    Ok(exit_ok(r.all_supported()))
}
