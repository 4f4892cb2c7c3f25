//! The `capbench` binary: parses the command line and hands each subcommand
//! to the library. Exit codes: 0 ok, 1 a case or the harness failed, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use capbench::analysis::compare::{CompareOptions, compare_runs};
use capbench::cli::{
    BaselineCommand, CalibrateArgs, CheckArgs, CheckFormat, Cli, Command, CompareArgs,
    CompareFormat, ExportGgufArgs, ListArgs, ListWhat, MergeArgs, PlanArgs, ProbeArgs, ReportArgs,
    RunArgs, ShowArgs,
};
use capbench::error::HarnessError;
use capbench::gpu::probe_all;
use capbench::meter::energy::{Probe, SourceAttempt};
use capbench::report::compare as report_compare;
use capbench::report::{self as report_mod, ReportInput, table};
use capbench::results::merge::load_all;
use capbench::results::{Status, io::load_run};
use capbench::runner::{self, PlanRequest, RunTarget};
use capbench::{baseline, suite, worker};
use clap::Parser;

/// Every heap byte is counted, so a worker can enforce `--mem-cap` and
/// report its peak (see `caps::alloc`).
#[global_allocator]
static ALLOC: capbench::caps::alloc::CappedAlloc = capbench::caps::alloc::CappedAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(a) => list(&a),
        Command::Run(a) => run(a),
        Command::Show(a) => show(&a),
        Command::Compare(a) => compare(&a),
        Command::Report(a) => report(&a),
        Command::Calibrate(a) => calibrate(a),
        Command::Probe(a) => probe(a),
        Command::Check(a) => check(a),
        Command::Merge(a) => merge(&a),
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
            let all = capbench::profiles::load_all()?;
            if a.json {
                json(&all)
            } else {
                profiles_table(&all)
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

fn profiles_table(all: &[capbench::profiles::Profile]) -> String {
    let tf = |p: &capbench::profiles::Profile, d: &str| {
        p.peak_flops_per_s
            .get(d)
            .map(|s| {
                let t = s.value / 1e12;
                match t {
                    t if t >= 100.0 => format!("{t:.0}"),
                    t if t >= 10.0 => format!("{t:.1}"),
                    t => format!("{t:.2}"),
                }
            })
            .unwrap_or_else(|| "—".into())
    };
    let mut t = table::rows(
        &[
            "profile",
            "kind",
            "memory (budget)",
            "GB/s",
            "TFLOP/s f32 / f16 / bf16",
            "TDP W",
            "caps here",
            "what",
        ],
        all.iter()
            .map(|p| {
                let mut caps = vec![format!(
                    "mem {}",
                    capbench::caps::size::human_bytes(p.memory_budget_bytes())
                )];
                if let Some(t) = p.caps.threads {
                    caps.push(format!("threads {t}"));
                }
                if let Some(w) = &p.caps.wgpu_limits {
                    caps.push(format!("wgpu {w}"));
                }
                vec![
                    p.name.clone(),
                    p.kind.as_str().to_string(),
                    format!(
                        "{} ({})",
                        capbench::caps::size::human_bytes(p.memory.total_bytes.value),
                        capbench::caps::size::human_bytes(p.memory_budget_bytes())
                    ),
                    p.bandwidth()
                        .map(|b| format!("{:.0}", b / 1e9))
                        .unwrap_or_else(|| "—".into()),
                    format!("{} / {} / {}", tf(p, "f32"), tf(p, "f16"), tf(p, "bf16")),
                    p.tdp()
                        .map(|w| format!("{w:.0}"))
                        .unwrap_or_else(|| "—".into()),
                    caps.join("\n"),
                    p.description.clone(),
                ]
            })
            .collect(),
    );
    t.push_str(&format!(
        "\nEvery figure's source: `capbench list profiles --json`. \
         User profiles: *.toml in {} (a file with a built-in's name replaces it). \
         — = no sourced figure.",
        capbench::profiles::user_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| format!("${}", capbench::profiles::DIR_ENV))
    ));
    t
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
        mem_caps: p.mem_cap,
        device_mem_caps: p.device_mem_cap,
        cpus: p.cpus,
        wgpu_limits: p.wgpu_limits,
        profiles: p.profile,
        power_limit_w: p.power_limit,
        lock_clocks: p.lock_clocks,
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
            request: Box::new(plan_request(a.plan, a.inject_slowdown)),
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
    let runs = load_all(std::slice::from_ref(&a.path))?;
    if let [one] = runs.as_slice() {
        if a.json {
            println!("{}", json(&one.run));
        } else {
            print!("{}", table::summary(&one.run));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A merged folder: every run, each with its source.
    if a.json {
        let all: Vec<_> = runs.iter().map(|r| &r.run).collect();
        println!("{}", json(&all));
    } else {
        for r in &runs {
            println!("== {} ==", r.source);
            print!("{}", table::summary(&r.run));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `capbench probe`: the probe suite as a run, then its ceilings.
fn probe(a: ProbeArgs) -> Result<ExitCode, HarnessError> {
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
    Ok(if all_ok && !ceilings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `capbench check`: claims → verdicts (optionally running what is missing).
fn check(a: CheckArgs) -> Result<ExitCode, HarnessError> {
    let set = capbench::claims::load(&a.claims)?;
    if a.results.is_empty() && !a.run {
        return Err(HarnessError::usage(
            "check needs evidence: --results DIR… (run or merged folders), or --run to measure what the claims need",
        ));
    }
    let mut runs = load_all(&a.results)?;
    if a.run {
        let (todo, skipped) = capbench::claims::missing::workloads(&set, &runs);
        for s in &skipped {
            eprintln!("not run: {s}");
        }
        if !todo.is_empty() {
            eprintln!("running what the claims need: {}", todo.join(", "));
            let dir = runner::plan::create_run_dir(a.out)?;
            let suite = dir.join("claims-suite.toml");
            std::fs::write(&suite, capbench::claims::missing::suite_toml(&todo))
                .map_err(HarnessError::io("write", &suite))?;
            let request = runner::PlanRequest {
                suite: Some(suite.display().to_string()),
                backends: a.backend,
                ..Default::default()
            };
            let outcome = runner::run(
                RunTarget::Fresh {
                    request: Box::new(request),
                    out: Some(dir),
                },
                true,
            )?;
            eprintln!("results: {}", outcome.dir.display());
            runs.push(capbench::results::merge::SourcedRun {
                source: outcome.dir.display().to_string(),
                run: outcome.run,
            });
        } else {
            eprintln!("nothing to run: the results hold every workload the claims name");
        }
    }
    let opts = capbench::analysis::verdict::CheckOptions {
        projection_uncertainty_rel: a.projection_uncertainty,
    };
    let r = capbench::analysis::verdict::check(&set, &runs, &opts);
    let text = match a.format {
        CheckFormat::Text => report_mod::claims::text(&r),
        CheckFormat::Md => report_mod::claims::markdown(&r),
        CheckFormat::Json => report_mod::claims::json(&r),
    };
    println!("{text}");
    Ok(if r.all_supported() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn merge(a: &MergeArgs) -> Result<ExitCode, HarnessError> {
    let idx = capbench::results::merge::merge(&a.runs, &a.out)?;
    let rows = idx
        .runs
        .iter()
        .map(|r| {
            vec![
                r.machine_id.clone(),
                r.hostname.clone(),
                r.run_id.clone(),
                r.cases.to_string(),
                r.merged_from.clone(),
            ]
        })
        .collect();
    eprintln!(
        "{}",
        table::rows(&["machine", "host", "run", "cases", "from"], rows)
    );
    for d in &idx.differences {
        eprintln!("  differs (kept, same schema): {d}");
    }
    for d in &idx.duplicates {
        eprintln!("  left out (duplicate): {d}");
    }
    eprintln!(
        "merged {} run(s) of {} machine(s)",
        idx.runs.len(),
        idx.machines.len()
    );
    println!("{}", a.out.display());
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
    let mut runs: Vec<_> = load_all(&a.runs)?;
    // A probe run's ceilings serve the other runs of its machine.
    let mut files: Vec<_> = runs.iter().map(|r| r.run.clone()).collect();
    capbench::analysis::ceilings::share_within_machines(&mut files);
    for (r, f) in runs.iter_mut().zip(files) {
        r.run = f;
    }
    let inputs: Vec<ReportInput> = runs
        .into_iter()
        .map(|r| ReportInput {
            source: r.source,
            run: r.run,
        })
        .collect();
    let out = match (&a.out, a.runs.as_slice()) {
        (Some(o), _) => o.clone(),
        // One folder (a run, or a merged folder): its report/ inside it.
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
                request: Box::new(request.clone()),
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
    use capbench_workloads::cost::work::memory_need_bytes;
    use capbench_workloads::models::shapes;
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
