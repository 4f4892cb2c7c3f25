//! The `capbench` binary: parses the command line and hands each subcommand
//! to the library. Exit codes: 0 ok, 1 a case or the harness failed, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use capbench::cli::{Cli, Command, ListArgs, ListWhat, RunArgs, ShowArgs};
use capbench::error::HarnessError;
use capbench::meter::energy::{Probe, SourceAttempt};
use capbench::report::table;
use capbench::results::{Status, io::load_run};
use capbench::runner::{self, PlanRequest, RunTarget};
use capbench::{suite, worker};
use capbench_workloads::backend::probe_all;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(a) => list(&a),
        Command::Run(a) => run(a),
        Command::Show(a) => show(&a),
        Command::Worker(a) => worker::run(&a.job, &a.result).map(|_| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("capbench: error: {e}");
        ExitCode::from(e.exit_code())
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serialisable")
}

fn list(a: &ListArgs) -> Result<ExitCode, HarnessError> {
    let text = match a.what {
        ListWhat::Workloads => {
            let entries: Vec<_> = capbench_workloads::catalog()
                .into_iter()
                .filter(|e| a.all || !e.harness_test)
                .collect();
            if a.json {
                json(&entries)
            } else {
                table::rows(
                    &[
                        "name pattern",
                        "kind",
                        "version",
                        "backends",
                        "example",
                        "what",
                    ],
                    entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.pattern.to_string(),
                                e.kind.to_string(),
                                format!("v{}", e.version),
                                e.backends.to_string(),
                                e.example.to_string(),
                                e.description.to_string(),
                            ]
                        })
                        .collect(),
                )
            }
        }
        ListWhat::Backends => {
            let all = probe_all();
            if a.json {
                json(&all)
            } else {
                let mut rows = vec![];
                for b in &all {
                    rows.push(vec![
                        b.backend.clone(),
                        yes_no(b.compiled_in),
                        yes_no(b.usable),
                        b.note.clone(),
                    ]);
                    for d in &b.devices {
                        let idx = d
                            .index
                            .map(|i| format!("{}:{i} ", b.backend))
                            .unwrap_or_default();
                        rows.push(vec![
                            String::new(),
                            String::new(),
                            String::new(),
                            format!(
                                "{idx}{} — api {}, type {}, driver {} {}",
                                d.name, d.api, d.device_type, d.driver, d.driver_info
                            ),
                        ]);
                    }
                }
                let mut t =
                    table::rows(&["backend", "compiled in", "usable here", "details"], rows);
                t.push_str("\n\nenergy sources (capbench list energy):\n");
                t.push_str(&energy_table());
                t
            }
        }
        ListWhat::Energy => {
            if a.json {
                json(&energy_survey())
            } else {
                energy_table()
            }
        }
        ListWhat::Profiles => {
            if a.json {
                "[]".to_string()
            } else {
                "no hardware profiles are built in yet: runs use this machine uncapped \
                 (apart from --threads)"
                    .to_string()
            }
        }
        ListWhat::Suites => {
            let suites = suite::built_in();
            if a.json {
                json(
                    &suites
                        .iter()
                        .map(|s| {
                            serde_json::json!({
                                "name": s.name,
                                "description": s.description,
                                "workloads": s.workloads.iter().map(|w| &w.name).collect::<Vec<_>>(),
                                "sampling": s.sampling,
                            })
                        })
                        .collect::<Vec<_>>(),
                )
            } else {
                table::rows(
                    &["suite", "workloads", "processes per case", "what"],
                    suites
                        .iter()
                        .map(|s| {
                            vec![
                                s.name.clone(),
                                s.workloads
                                    .iter()
                                    .map(|w| w.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join("\n"),
                                s.sampling.repeat.to_string(),
                                s.description.clone(),
                            ]
                        })
                        .collect(),
                )
            }
        }
    };
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn energy_survey() -> Vec<SourceAttempt> {
    Probe::system(capbench_workloads::backend::candle::default_threads()).survey()
}

fn energy_table() -> String {
    table::rows(
        &["source", "kind", "usable here", "details"],
        energy_survey()
            .into_iter()
            .map(|s| {
                vec![
                    s.name,
                    s.kind.as_str().to_string(),
                    yes_no(s.available),
                    s.status,
                ]
            })
            .collect(),
    )
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn run(a: RunArgs) -> Result<ExitCode, HarnessError> {
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
            request: PlanRequest {
                suite: a.suite,
                backends: a.backend,
                workload_globs: a.workload,
                threads: a.threads,
                case_timeout_s: a.case_timeout,
                repeat: a.repeat,
            },
            out: a.out,
        },
    };
    let outcome = runner::run(target, !a.quiet && !a.json)?;
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
    let all_ok = outcome.run.cases.iter().all(|c| c.status == Status::Ok);
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(a: &ShowArgs) -> Result<ExitCode, HarnessError> {
    let run = load_run(&a.path)?;
    if a.json {
        println!("{}", json(&run));
    } else {
        print!("{}", table::summary(&run));
    }
    Ok(ExitCode::SUCCESS)
}
