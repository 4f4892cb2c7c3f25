//! `capbench run`: plans a fresh run (or resumes a folder's plan), runs
//! every case in its own worker process, prints the summary, and writes the
//! report when asked.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{PlanArgs, RunArgs};
use crate::error::HarnessError;
use crate::report::{self as report_mod, ReportInput, table};
use crate::results::Status;
use crate::runner::{self, PlanRequest, RunTarget};

use super::report::announce;
use super::{exit_ok, json};

pub fn run(a: RunArgs) -> Result<ExitCode, HarnessError> {
    if a.resume.is_some() && (a.plan.any_set() || a.inject_slowdown.is_some()) {
        return Err(HarnessError::usage(
            "--resume continues the plan stored in the folder; drop --suite, --backend, --workload, --threads, --case-timeout and --repeat",
        ));
    }
    let target = match a.resume {
        Some(dir) => {
            let dir = if dir.as_os_str().is_empty() {
                a.out.clone().ok_or_else(|| {
                    HarnessError::usage("--resume needs a folder: --resume DIR (or --out DIR)")
                })?
            } else {
                dir
            };
            RunTarget::Resume(dir)
        }
        None => RunTarget::Fresh {
            request: Box::new(plan_request(a.plan, a.inject_slowdown)),
            out: a.out,
        },
    };
    let outcome = runner::run_with(target, !a.quiet && !a.json, a.model_cache)?;
    let summary = table::summary(&outcome.run);
    let dir: PathBuf = outcome.dir.clone();
    if a.json {
        eprint!("{summary}");
        println!("{}", json(&outcome.run));
    } else if !a.quiet {
        print!("{summary}");
    }
    eprintln!(
        "results: {} ({} cases run now, {} in total)",
        dir.display(),
        outcome.ran_now,
        outcome.run.cases.len()
    );
    if a.report {
        let input = ReportInput {
            source: dir.display().to_string(),
            run: outcome.run.clone(),
        };
        let out = dir.join(report_mod::REPORT_DIR);
        announce(&report_mod::write_report(
            &[input],
            &out,
            &report_mod::Format::ALL,
        )?);
    }
    Ok(exit_ok(
        outcome.run.cases.iter().all(|c| c.status == Status::Ok),
    ))
}

pub(crate) fn plan_request(p: PlanArgs, inject_slowdown: Option<f64>) -> PlanRequest {
    PlanRequest {
        suite: p.suite,
        backends: p.backend,
        workload_globs: p.workload,
        threads: p.threads,
        case_timeout_s: p.case_timeout,
        repeat: p.repeat,
        inject_slowdown,
        corpus: p.corpus,
        model: p.model,
        mem_caps: p.mem_cap,
        device_mem_caps: p.device_mem_cap,
        cpus: p.cpus,
        wgpu_limits: p.wgpu_limits,
        profiles: p.profile,
        power_limit_w: p.power_limit,
        lock_clocks: p.lock_clocks,
    }
}
