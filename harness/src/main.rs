//! The `capbench` binary: parses the command line and hands each subcommand
//! to the library. Exit codes: 0 ok, 1 a case or the harness failed, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use capbench::analysis::compare::{CompareOptions, compare_runs};
use capbench::cli::{
    BaselineCommand, CalibrateArgs, Cli, Command, CompareArgs, CompareFormat, ExportGgufArgs,
    ListArgs, ListWhat, PlanArgs, ReportArgs, RunArgs, ShowArgs,
};
use capbench::error::HarnessError;
use capbench::gpu::probe_all;
use capbench::meter::energy::{Probe, SourceAttempt};
use capbench::report::compare as report_compare;
use capbench::report::{self as report_mod, ReportInput, table};
use capbench::results::{Status, io::load_run};
use capbench::runner::{self, PlanRequest, RunTarget};
use capbench::{baseline, suite, worker};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(a) => list(&a),
        Command::Run(a) => run(a),
        Command::Show(a) => show(&a),
        Command::Compare(a) => compare(&a),
        Command::Report(a) => report(&a),
        Command::Calibrate(a) => calibrate(a),
        Command::Baseline(c) => baseline_cmd(c),
        Command::ExportGguf(a) => export_gguf(&a),
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
                json(&serde_json::json!({ "workloads": entries, "models": model_rows() }))
            } else {
                let kinds = table::rows(
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
                );
                let models = table::rows(
                    &[
                        "model",
                        "family",
                        "parameters",
                        "active",
                        "KV/token (f16)",
                        "decode need f16 / q4_0",
                        "source",
                    ],
                    model_rows()
                        .iter()
                        .map(|m| {
                            let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
                            vec![
                                m["name"].as_str().unwrap_or_default().to_string(),
                                m["family"].as_str().unwrap_or_default().to_string(),
                                human_count(f("params")),
                                human_count(f("active_params")),
                                human_bytes(f("kv_bytes_per_token_f16")),
                                format!(
                                    "{} / {}",
                                    human_bytes(f("decode_f16_need_bytes")),
                                    human_bytes(f("decode_q4_0_need_bytes"))
                                ),
                                m["source"].as_str().unwrap_or_default().to_string(),
                            ]
                        })
                        .collect(),
                );
                format!(
                    "{kinds}\n<model> is one of (seeded synthetic weights; real shapes where a source is given):\n{models}"
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

fn plan_request(p: PlanArgs, inject_slowdown: Option<f64>) -> PlanRequest {
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
    }
}

fn export_gguf(a: &ExportGgufArgs) -> Result<ExitCode, HarnessError> {
    use capbench_workloads::spec::{DEFAULT_SEED, WeightFmt};
    let cfg = capbench_workloads::models::shape(&a.model).ok_or_else(|| {
        HarnessError::usage(format!(
            "--model '{}' is not a model shape; see `capbench list workloads`",
            a.model
        ))
    })?;
    let format = WeightFmt::parse(&a.format)
        .filter(|f| *f != WeightFmt::Bf16)
        .ok_or_else(|| {
            HarnessError::usage(format!(
                "--format '{}': expected f32, f16, q8_0 or q4_0",
                a.format
            ))
        })?;
    if a.out.exists() {
        return Err(HarnessError::usage(format!(
            "{} exists; remove it or choose another --out",
            a.out.display()
        )));
    }
    let seed = a.seed.unwrap_or(DEFAULT_SEED);
    let bytes = capbench_workloads::models::gguf::export(&cfg, seed, format, &a.out)
        .map_err(capbench::runner::plan::gguf_error)?;
    println!("{}", a.out.display());
    eprintln!(
        "wrote {} ({bytes} bytes): {} in {}, seed {seed:#x}; decode it with `capbench run --model {}`",
        a.out.display(),
        cfg.name,
        format.as_str(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run(a: RunArgs) -> Result<ExitCode, HarnessError> {
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
            request: plan_request(a.plan, a.inject_slowdown),
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

/// Tells where the report went and which figures were left out, and why.
fn announce(w: &report_mod::Written) {
    let drawn = w
        .report
        .figures
        .iter()
        .filter(|f| f.status == "drawn")
        .count();
    eprintln!(
        "report: {} ({drawn} figures drawn, {} files)",
        w.dir.display(),
        w.files.len()
    );
    for f in w.report.figures.iter().filter(|f| f.status != "drawn") {
        eprintln!(
            "  not drawn: {} — {}",
            f.id,
            f.note.as_deref().unwrap_or("no data")
        );
    }
}

fn report(a: &ReportArgs) -> Result<ExitCode, HarnessError> {
    let inputs = a
        .runs
        .iter()
        .map(|p| {
            Ok(ReportInput {
                source: p.display().to_string(),
                run: load_run(p)?,
            })
        })
        .collect::<Result<Vec<_>, HarnessError>>()?;
    let out = match (&a.out, a.runs.as_slice()) {
        (Some(o), _) => o.clone(),
        (None, [one]) => {
            let dir = if one.is_dir() {
                one.clone()
            } else {
                one.parent().map(PathBuf::from).unwrap_or_default()
            };
            dir.join(report_mod::REPORT_DIR)
        }
        (None, _) => PathBuf::from("results/local").join(format!(
            "report-{}",
            runner::plan::compact_time(&capbench::results::now_rfc3339())
        )),
    };
    let w = report_mod::write_report(&inputs, &out, &a.format)?;
    announce(&w);
    println!("{}", w.dir.display());
    Ok(ExitCode::SUCCESS)
}

fn compare(a: &CompareArgs) -> Result<ExitCode, HarnessError> {
    let (base, base_dir, new_path) = match (&a.baseline, a.runs.as_slice()) {
        (Some(name), [new]) => {
            let (dir, run, _) = baseline::load(&a.baselines_dir, name)?;
            (run, Some(dir), new)
        }
        (Some(_), _) => {
            return Err(HarnessError::usage(
                "with --baseline NAME, give only the NEW run folder",
            ));
        }
        (None, [base, new]) => (load_run(base)?, base.is_dir().then(|| base.clone()), new),
        (None, _) => {
            return Err(HarnessError::usage(
                "compare needs BASE and NEW run folders (or --baseline NAME and NEW)",
            ));
        }
    };
    let new = load_run(new_path)?;
    let calibration = match (&a.calibration, &base_dir) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file).map_err(HarnessError::io("read", file))?;
            Some(capbench::results::io::parse_versioned(file, "", &text)?)
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
    let incomparable = c
        .cases
        .iter()
        .any(|x| x.verdict == capbench::analysis::compare::Verdict::Incomparable);
    Ok(
        if c.any_regressed() || (a.fail_on_incomparable && incomparable) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn calibrate(a: CalibrateArgs) -> Result<ExitCode, HarnessError> {
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
                request: request.clone(),
                out: Some(out.join(format!("run-{k}"))),
            };
            runs.push(runner::run(target, true)?.run);
        }
        (runs, Some(out))
    };
    let cal = capbench::analysis::calibration::calibrate(&runs).map_err(HarnessError::usage)?;
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
        capbench::results::io::write_json_atomic(
            &out.join(capbench::analysis::calibration::CALIBRATION_FILE),
            &cal,
        )?;
        eprintln!("calibration: {}", out.display());
    }
    if let Some(name) = &a.baseline {
        let dir = baseline::dir_of(&a.baselines_dir, &cal.machine_id, name);
        if !dir.join(capbench::results::io::RUN_FILE).exists() {
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

fn baseline_cmd(c: BaselineCommand) -> Result<ExitCode, HarnessError> {
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
            let here = capbench::results::env::Env::machine_id_now();
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

/// One JSON row per model shape: sizes and predicted memory needs.
fn model_rows() -> Vec<serde_json::Value> {
    use capbench_workloads::models::{shapes, work::memory_need_bytes};
    shapes()
        .into_iter()
        .map(|m| {
            let need = |fmt: &str| {
                capbench_workloads::WorkloadSpec::parse(&format!("decode/{}/{fmt}", m.name))
                    .ok()
                    .and_then(|s| memory_need_bytes(&s))
            };
            serde_json::json!({
                "name": m.name,
                "family": m.family.as_str(),
                "params": m.param_count(),
                "active_params": m.active_param_count(),
                "kv_bytes_per_token_f16": m.kv_elems_per_token() * 2,
                "decode_f16_need_bytes": need("f16"),
                "decode_q4_0_need_bytes": need("q4_0"),
                "source": if m.source.is_empty() { "synthetic size".to_string() } else { m.source.clone() },
            })
        })
        .collect()
}

fn human_count(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2} B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else {
        format!("{:.0} k", n / 1e3)
    }
}

fn human_bytes(b: f64) -> String {
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}
