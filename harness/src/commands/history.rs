//! `capbench history`: file runs (add), show them (list), drop old ones
//! (prune), and find change points with a verdict per case (analyze).

use std::process::{Command, ExitCode};

use crate::analysis::changepoint::Params;
use crate::analysis::history::{AnalyzeOptions, HistoryAnalysis, analyze};
use crate::cli::{CompareFormat, HistoryCommand, HistoryWhere};
use crate::error::{HarnessError, Result};
use crate::report::changes;
use crate::report::table::rows;
use crate::results::history::{self, store};
use crate::results::io::load_run;

use super::{exit_ok, json};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

pub fn run(c: HistoryCommand) -> Result<ExitCode> {
    match c {
        HistoryCommand::Add(a) => {
            let run = load_run(&a.run)?;
            let recorded = Some(run.env.git_commit.clone()).filter(|c| c != "unknown");
            let commit = a
                .commit
                .or(recorded)
                .or_else(|| git(&["rev-parse", "HEAD"]))
                .unwrap_or_else(|| "unknown".into());
            let branch = a
                .branch
                .or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]))
                .unwrap_or_else(|| "unknown".into());
            let e = store::add(&a.dir, &a.run, &commit, &branch)?;
            eprintln!(
                "added run {} (commit {}, branch {}) as {}",
                e.run_id,
                &e.commit[..e.commit.len().min(10)],
                e.branch,
                a.dir.join(&e.path).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        HistoryCommand::List(a) => {
            let mut entries = vec![];
            for (_, dir) in
                store::branches(&a.at.dir, a.at.machine.as_deref(), a.at.branch.as_deref())?
            {
                entries.extend(store::read_index(&dir)?.entries);
            }
            if a.json {
                println!("{}", json(&entries));
            } else {
                let table = rows(
                    &["machine", "branch", "time", "commit", "run"],
                    entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.machine_id.clone(),
                                e.branch.clone(),
                                e.time.clone(),
                                e.commit[..e.commit.len().min(10)].to_string(),
                                e.run_id.clone(),
                            ]
                        })
                        .collect(),
                );
                println!("{}", crate::error::printable(&table));
            }
            Ok(ExitCode::SUCCESS)
        }
        HistoryCommand::Prune(a) => {
            if a.keep.is_none() && a.max_age.is_none() {
                return Err(HarnessError::usage(
                    "prune needs --keep N or --max-age AGE (or both)",
                ));
            }
            let cutoff = match &a.max_age {
                Some(s) => {
                    let age = humantime::parse_duration(s).map_err(|e| {
                        HarnessError::usage(format!("--max-age {s}: {e} (e.g. 90d, 12w, 720h)"))
                    })?;
                    let t = std::time::SystemTime::now()
                        .checked_sub(age)
                        .unwrap_or(std::time::UNIX_EPOCH);
                    Some(humantime::format_rfc3339_seconds(t).to_string())
                }
                None => None,
            };
            let gone = store::prune(
                &a.at.dir,
                a.at.machine.as_deref(),
                a.at.branch.as_deref(),
                a.keep,
                cutoff.as_deref(),
            )?;
            eprintln!("pruned {} runs", gone.len());
            Ok(ExitCode::SUCCESS)
        }
        HistoryCommand::Analyze(a) => {
            let (_, result) = analysed(&a.at, a.threshold, a.alpha)?;
            let text = match a.format {
                CompareFormat::Text => changes::text(&result),
                CompareFormat::Md => changes::markdown(&result),
                CompareFormat::Json => json(&result),
            };
            println!("{text}");
            Ok(exit_ok(!result.any_regressed()))
        }
        HistoryCommand::Report(a) => {
            let (series, result) = analysed(&a.at, a.threshold, a.alpha)?;
            let d = crate::report::trend::from_history(&series, &result);
            let w = crate::report::trend::write_dashboard(&d, &a.out)?;
            eprintln!(
                "history report: {} ({} trend plots){}",
                w.index.display(),
                w.figures.len(),
                if w.skipped.is_empty() {
                    String::new()
                } else {
                    format!(", {} cases without runs", w.skipped.len())
                }
            );
            println!("{}", changes::text(&result));
            println!("{}", w.dir.display());
            Ok(exit_ok(!result.any_regressed()))
        }
    }
}

/// The selected part of the history, its series and their analysis.
fn analysed(
    at: &HistoryWhere,
    threshold: f64,
    alpha: f64,
) -> Result<(Vec<history::Series>, HistoryAnalysis)> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(HarnessError::usage(format!(
            "--alpha {alpha}: give a significance level in (0, 1), e.g. 0.01"
        )));
    }
    let o = AnalyzeOptions {
        threshold,
        params: Params {
            significance: alpha,
            ..Params::default()
        },
        ..AnalyzeOptions::default()
    };
    let mut series = vec![];
    for runs in store::load(&at.dir, at.machine.as_deref(), at.branch.as_deref())? {
        series.extend(history::series_of(&runs));
    }
    if series.is_empty() {
        return Err(HarnessError::usage(format!(
            "no runs in the history at {}{}: add some with `capbench history add RUN_DIR`",
            at.dir.display(),
            selection(at.machine.as_deref(), at.branch.as_deref())
        )));
    }
    let result = analyze(&series, &o);
    Ok((series, result))
}

fn selection(machine: Option<&str>, branch: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(m) = machine {
        s.push_str(&format!(" for machine {m}"));
    }
    if let Some(b) = branch {
        s.push_str(&format!(" on branch {b}"));
    }
    s
}
