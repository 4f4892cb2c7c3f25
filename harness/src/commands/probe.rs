//! `capbench probe`: the probe suite as a run, then the machine's measured
//! ceilings (peak FLOP/s and memory bandwidth per backend), the LLC and
//! array sizes the bandwidth ceilings used, and how far each bracketed
//! ceiling moved between the start and the end of the run.

use std::process::ExitCode;

use crate::cli::ProbeArgs;
use crate::error::HarnessError;
use crate::report::table;
use crate::results::{Ceiling, Status};
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
        for line in sizing_lines(ceilings)
            .into_iter()
            .chain(bracket_lines(ceilings))
        {
            println!("{line}");
        }
    }
    eprintln!(
        "ceilings: {} — pass this folder to `capbench report` or `capbench check --results` beside runs of this machine (machine {})",
        outcome.dir.display(),
        outcome.run.env.machine_id
    );
    // A kernel a backend cannot run at this size (the LLC-sized triad on a
    // device that binds less) is in the table as unsupported; the others
    // still give that backend its ceilings.
    let all_ok = outcome
        .run
        .cases
        .iter()
        .all(|c| matches!(c.status, Status::Ok | Status::Unsupported));
    Ok(exit_ok(all_ok && !ceilings.is_empty()))
}

/// The LLC and the arrays each bandwidth ceiling streamed, with the rule.
fn sizing_lines(ceilings: &[Ceiling]) -> Vec<String> {
    let mut out = vec![];
    let llc = ceilings.iter().find_map(|c| c.sizing.as_ref()?.llc_bytes);
    if ceilings.iter().any(|c| c.sizing.is_some()) {
        out.push(match llc {
            Some(b) => format!(
                "LLC: {} (sysfs {}); bandwidth arrays:",
                crate::format::compact_bytes(b),
                capbench_workloads::cost::llc::SYSFS_CPU0_CACHE
            ),
            None => "LLC: unknown (sysfs lists no cache sizes); bandwidth arrays:".into(),
        });
    }
    for c in ceilings
        .iter()
        .filter(|c| c.bracket.as_deref() != Some("after"))
    {
        if let Some(s) = &c.sizing {
            out.push(format!(
                "  {}: {} × {} — {}",
                c.case,
                s.arrays,
                crate::format::compact_bytes(s.array_bytes),
                s.rule
            ));
        }
    }
    out
}

/// Each ceiling measured at both ends of the run: the two values, and
/// whether they drifted beyond their CIs (`ceiling_drift`).
fn bracket_lines(ceilings: &[Ceiling]) -> Vec<String> {
    let mut out = vec![];
    for before in ceilings
        .iter()
        .filter(|c| c.bracket.as_deref() == Some("before"))
    {
        let Some(after) = ceilings
            .iter()
            .find(|c| c.bracket.as_deref() == Some("after") && c.key() == before.key())
        else {
            continue;
        };
        let change = after.value / before.value - 1.0;
        let verdict = match crate::analysis::ceilings::drift(&[before, after], before) {
            Some(_) => "ceiling_drift: beyond both CIs",
            None => "within the CIs",
        };
        out.push(format!(
            "bracket {}: {:.4} before, {:.4} after ({:+.1} %, {verdict})",
            before.case,
            before.value,
            after.value,
            change * 100.0
        ));
    }
    out
}
