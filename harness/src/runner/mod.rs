//! `capbench run`: plans cases, runs each in its own worker process (with a
//! timeout), appends every finished case to `cases.jsonl` before the next one
//! starts, writes `run.json` at the end, and resumes interrupted runs.

pub mod external;
pub mod plan;
pub mod spawn;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use capbench_workloads::WorkloadSpec;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{HarnessError, Result};
use crate::results::env::{Env, load_avg};
use crate::results::io::{Journal, RUN_FILE, read_journal, read_plan, write_json_atomic};
use crate::results::{Plan, PlannedCase, RunFile, RunTotals, SCHEMA_VERSION, now_rfc3339};
use crate::worker::WorkerJob;

pub use plan::PlanRequest;

/// The ceiling cases measured again after the run's other cases.
pub const BRACKETS_FILE: &str = "brackets.json";

pub struct RunOutcome {
    pub dir: PathBuf,
    pub run: RunFile,
    /// Cases this invocation ran (the rest came from an earlier, resumed run).
    pub ran_now: usize,
}

/// Where the run goes and what it runs: a fresh plan, or `--resume DIR`.
pub enum RunTarget {
    Fresh {
        // Boxed: the request (with its cap flags) dwarfs the other variant.
        request: Box<PlanRequest>,
        out: Option<PathBuf>,
    },
    Resume(PathBuf),
}

pub fn run(target: RunTarget, show_progress: bool) -> Result<RunOutcome> {
    run_with(target, show_progress, None)
}

/// As `run`; `model_cache` is the folder synthetic models are cached in
/// (kept), else the run folder's `.work/models/` (deleted at the end).
pub fn run_with(
    target: RunTarget,
    show_progress: bool,
    model_cache: Option<PathBuf>,
) -> Result<RunOutcome> {
    let (dir, plan) = match target {
        RunTarget::Fresh { request, out } => {
            let plan = plan::make_plan(&request)?;
            let dir = plan::create_run_dir(out)?;
            write_json_atomic(&dir.join(crate::results::io::PLAN_FILE), &plan)?;
            (dir, plan)
        }
        RunTarget::Resume(dir) => {
            let plan = read_plan(&dir)?;
            (dir, plan)
        }
    };
    let env_start = Env::capture(plan.options.threads);
    let journal_now = drop_harness_errors(&dir, read_journal(&dir)?)?;
    let done: HashSet<String> = journal_now.cases.iter().map(|c| c.id.clone()).collect();
    let mut journal = Journal::open(&dir, journal_now.complete_len)?;
    let todo: Vec<_> = plan
        .cases
        .iter()
        .filter(|c| !done.contains(&c.id))
        .collect();

    let exe = std::env::current_exe().map_err(HarnessError::io("locate", Path::new("capbench")))?;
    let work_dir = dir.join(".work");
    std::fs::create_dir_all(&work_dir).map_err(HarnessError::io("create", &work_dir))?;
    let total: usize = todo.iter().map(|c| sampling_of(&plan, c).repeat).sum();
    let mut m = Measurer {
        plan: &plan,
        dir: &dir,
        exe,
        work_dir: work_dir.clone(),
        // Per backend: the executable its workers run, or why none can start.
        worker_exes: HashMap::new(),
        engine_inputs: None,
        model_cache: ModelCache::new(model_cache, &work_dir),
        pb: progress_bar(show_progress, total as u64),
    };
    for (n, case) in todo.iter().enumerate() {
        m.model_cache.keep_only(&todo[n..]);
        let result = m.measure(n, case)?;
        journal.append(&result)?;
    }
    bracket_after(&mut m)?;
    let pb = m.pb;
    pb.finish_and_clear();
    let _ = std::fs::remove_dir_all(work_dir.join(BUILTIN_WORKERS_DIR));
    let _ = std::fs::remove_dir_all(work_dir.join(INPUTS_DIR));
    let _ = std::fs::remove_dir_all(work_dir.join(MODELS_DIR));
    let _ = std::fs::remove_dir(&work_dir);

    let mut env = env_start;
    env.load_avg_after = Some(load_avg());
    let run = finish(&dir, &plan, env)?;
    Ok(RunOutcome {
        dir,
        run,
        ran_now: todo.len(),
    })
}

fn sampling_of(plan: &Plan, c: &PlannedCase) -> crate::suite::Sampling {
    c.sampling
        .clone()
        .unwrap_or_else(|| plan.options.sampling.clone())
}

/// What measuring a case needs: the plan, the worker executables, the
/// scratch folder and the progress bar.
struct Measurer<'a> {
    plan: &'a Plan,
    dir: &'a Path,
    exe: PathBuf,
    work_dir: PathBuf,
    worker_exes: HashMap<String, WorkerExe>,
    /// The inputs of the workload whose cases run now (a plan keeps a
    /// workload's cases together): written once, deleted when it changes.
    engine_inputs: Option<(String, PathBuf, external::Inputs)>,
    model_cache: ModelCache,
    pb: ProgressBar,
}

impl Measurer<'_> {
    /// Runs one planned case in its worker processes; `n` names its job files.
    fn measure(&mut self, n: usize, case: &PlannedCase) -> Result<crate::results::CaseResult> {
        let plan = self.plan;
        let pb = &self.pb;
        let spec = WorkloadSpec::parse(&case.workload).map_err(|e| {
            HarnessError::bad_input(
                &self.dir.join(crate::results::io::PLAN_FILE),
                format!("case {}", case.id),
                e.to_string(),
                "the plan was written by another capbench version; start a fresh run",
            )
        })?;
        pb.set_message(case.id.clone());
        let sampling = sampling_of(plan, case);
        let repeat = sampling.repeat;
        let started_at = now_rfc3339();
        let t = Instant::now();
        let mut processes = Vec::with_capacity(repeat);
        let external = plan
            .options
            .external_backends
            .iter()
            .find(|e| e.name == case.backend);
        let worker_exe = self
            .worker_exes
            .entry(case.backend.clone())
            .or_insert_with(|| match external {
                Some(e) => external_launch(e, &self.work_dir.join(BUILTIN_WORKERS_DIR)),
                None => worker_exe(&self.exe, &case.backend),
            })
            .clone();
        // Nothing to start (no CUDA driver, …): the case is recorded with
        // the reason, as one process that never ran.
        let (worker_exe, repeat) = match worker_exe {
            Ok(p) => (p, repeat),
            Err((status, detail)) => {
                processes.push(spawn::record(0, status, detail, Default::default()));
                pb.inc(repeat as u64);
                (vec![], 0)
            }
        };
        let tolerance = external::tolerance_of(&spec);
        // An external engine's inputs (weights, data, capbench's answer),
        // written once per workload; a failure to write them is the case's.
        let inputs = match external {
            Some(_) => {
                if self
                    .engine_inputs
                    .as_ref()
                    .is_none_or(|(w, _, _)| *w != case.workload)
                {
                    if let Some((_, old, _)) = self.engine_inputs.take() {
                        let _ = std::fs::remove_dir_all(old);
                    }
                    let d = self.work_dir.join(INPUTS_DIR).join(format!("case{n}"));
                    let written = external::write_inputs(&spec, &d);
                    self.engine_inputs = Some((case.workload.clone(), d, written));
                }
                self.engine_inputs.as_ref().expect("just set").2.clone()
            }
            None => Ok(Default::default()),
        };
        let (inputs, repeat) = match inputs {
            Ok(i) => (i, repeat),
            Err((status, detail)) if repeat > 0 => {
                processes.push(spawn::record(0, status, detail, Default::default()));
                pb.inc(repeat as u64);
                (Default::default(), 0)
            }
            Err(_) => (Default::default(), 0),
        };
        // The first process that passes verification vouches for the
        // weights it ran; later ones with the same weights hash skip it.
        let mut verified: Option<crate::worker::VerifiedWeights> = None;
        for k in 0..repeat {
            let job = WorkerJob {
                case_id: case.id.clone(),
                workload: case.workload.clone(),
                workload_version: spec.version,
                backend: case.backend.clone(),
                sampling: sampling.clone(),
                process_index: k,
                parent_pid: std::process::id(),
                inject_slowdown: plan.options.inject_slowdown,
                corpus: plan.options.corpus.as_ref().map(|c| c.path.clone().into()),
                model: plan.options.model.as_ref().map(|m| m.path.clone().into()),
                caps: case.caps.clone(),
                protocol_version: external::PROTOCOL_VERSION,
                tolerance: external.map(|_| tolerance.0),
                tolerance_on: external.map(|_| {
                    match tolerance.1 {
                        true => "mean_kl",
                        false => "scaled_max_diff",
                    }
                    .to_string()
                }),
                inputs: inputs.clone(),
                model_cache: external.is_none().then(|| self.model_cache.dir.clone()),
                verified_weights: verified.clone(),
            };
            let job_path = self.work_dir.join(format!("case{n}-p{k}.job.json"));
            let result_path = self.work_dir.join(format!("case{n}-p{k}.result.json"));
            write_json_atomic(&job_path, &job)?;
            let rec = spawn::run_process(&spawn::SpawnSpec {
                command: &worker_exe,
                job_path: job_path.clone(),
                result_path: result_path.clone(),
                threads: spawn::pool_threads(&case.caps),
                // read_plan bounds it; never a panic on a value it let by.
                timeout: Duration::try_from_secs_f64(plan.options.case_timeout_s)
                    .unwrap_or(Duration::from_secs(600)),
                index: k,
                external: external.map(|_| spawn::ExternalSpawn {
                    spec: &spec,
                    caps: &case.caps,
                    tolerance,
                }),
            });
            let _ = std::fs::remove_file(&job_path);
            let _ = std::fs::remove_file(&result_path);
            pb.inc(1);
            let failed = rec.status != crate::results::Status::Ok;
            if verified.is_none() && !failed {
                verified = verified_weights(&rec);
            }
            processes.push(rec);
            // A case that fails deterministically fails again; don't pay
            // its timeout `repeat` times.
            if failed {
                pb.inc((repeat - k - 1) as u64);
                break;
            }
        }
        let mut result = crate::analysis::aggregate::case_result(
            case,
            &spec,
            processes,
            started_at,
            t.elapsed().as_secs_f64(),
        );
        // What the caps cannot make of this machine, stated in the case.
        if let Some(name) = &case.caps.profile
            && let Some(p) = plan.options.profiles.iter().find(|p| &p.name == name)
        {
            result
                .tags
                .insert("not_emulated".into(), p.not_emulated().join("; "));
        }
        if result.status != crate::results::Status::Ok {
            pb.println(format!(
                "{}: {} — {}",
                result.id,
                result.status.as_str(),
                result.status_detail
            ));
        }
        Ok(result)
    }
}

/// The weights a process verified, when it hashed them and passed.
fn verified_weights(rec: &crate::results::ProcessRecord) -> Option<crate::worker::VerifiedWeights> {
    let w = rec.worker.as_ref()?;
    w.verification.as_ref().filter(|v| v.passed)?;
    Some(crate::worker::VerifiedWeights {
        process: rec.index,
        sha256: w.weights.as_ref()?.sha256.clone()?,
    })
}

/// Where the workers cache synthetic models: a folder the user named (kept
/// whole), or the run's own scratch folder, which holds only the models
/// the cases still to run need (a 7B model is gigabytes).
struct ModelCache {
    dir: PathBuf,
    owned: bool,
}

impl ModelCache {
    fn new(named: Option<PathBuf>, work_dir: &Path) -> ModelCache {
        match named {
            Some(dir) => ModelCache { dir, owned: false },
            None => ModelCache {
                dir: work_dir.join(MODELS_DIR),
                owned: true,
            },
        }
    }

    /// Deletes the run's own entries that none of `cases` will load.
    fn keep_only(&self, cases: &[&PlannedCase]) {
        if !self.owned {
            return;
        }
        let needed: HashSet<String> = cases
            .iter()
            .filter_map(|c| WorkloadSpec::parse(&c.workload).ok())
            .filter_map(|s| capbench_workloads::kinds::decode::cache_key(&s))
            .map(|k| k.stem())
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !needed
                .iter()
                .any(|stem| name.starts_with(&format!("{stem}.")))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The bracket's second end: the cases that set this run's ceilings run
/// again once every other case is done (kept apart in `brackets.json`, so
/// a resumed run measures only those still owed), and each case then takes
/// the ceiling measured nearest to it in time.
fn bracket_after(m: &mut Measurer) -> Result<()> {
    if m.plan.options.inject_slowdown.is_some() {
        return Ok(());
    }
    let path = m.dir.join(BRACKETS_FILE);
    let mut done = read_brackets(m.dir)?;
    let cases = read_journal(m.dir)?.cases;
    let owed: Vec<&PlannedCase> = crate::analysis::ceilings::bracket_cases(&cases)
        .into_iter()
        .filter(|id| !done.iter().any(|d| &d.id == id))
        .filter_map(|id| m.plan.cases.iter().find(|c| c.id == id))
        .collect();
    let more: usize = owed.iter().map(|c| sampling_of(m.plan, c).repeat).sum();
    m.pb.inc_length(more as u64);
    for (k, case) in owed.into_iter().enumerate() {
        let mut r = m.measure(m.plan.cases.len() + k, case)?;
        r.tags.insert("ceiling_bracket".into(), "after".into());
        done.push(r);
        write_json_atomic(&path, &done)?;
    }
    Ok(())
}

/// The bracket cases measured so far (none before the file exists).
fn read_brackets(dir: &Path) -> Result<Vec<crate::results::CaseResult>> {
    let path = dir.join(BRACKETS_FILE);
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(HarnessError::io("read", &path)(e)),
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            HarnessError::bad_input(
                &path,
                format!("line {}, column {}", e.line(), e.column()),
                e.to_string(),
                "delete brackets.json; a resumed run measures the bracket again",
            )
        }),
    }
}

/// Cases recorded `harness_error` (capbench's own failure: disk full, a
/// worker that could not start) are measurements still owed: they leave the
/// journal (rewritten whole, atomically) so this run measures them again,
/// and each case stays on one line.
fn drop_harness_errors(
    dir: &Path,
    journal: crate::results::io::JournalContents,
) -> Result<crate::results::io::JournalContents> {
    use crate::results::Status;
    if !journal
        .cases
        .iter()
        .any(|c| c.status == Status::HarnessError)
    {
        return Ok(journal);
    }
    let kept: Vec<_> = journal
        .cases
        .into_iter()
        .filter(|c| c.status != Status::HarnessError)
        .collect();
    let mut text = String::new();
    for c in &kept {
        text.push_str(&serde_json::to_string(c).expect("result types serialise"));
        text.push('\n');
    }
    crate::results::io::write_atomic(&dir.join(crate::results::io::CASES_FILE), text.as_bytes())?;
    Ok(crate::results::io::JournalContents {
        cases: kept,
        complete_len: text.len() as u64,
        torn_tail_bytes: 0,
    })
}

/// The program line for a case's workers (`--job J --result R` follow), or
/// the status and reason it has without one.
type WorkerExe = std::result::Result<Vec<std::ffi::OsString>, (crate::results::Status, String)>;

/// Where a run writes the worker scripts capbench ships (`{builtin}`).
const BUILTIN_WORKERS_DIR: &str = "workers";
/// Where a run writes external engines' inputs, one workload at a time.
const INPUTS_DIR: &str = "inputs";
/// Where a run caches synthetic models when the user named no folder.
const MODELS_DIR: &str = "models";

/// An external backend's program line, once `--probe` said it can run here.
fn external_launch(e: &crate::suite::ExternalBackend, builtin: &Path) -> WorkerExe {
    use crate::results::Status;
    let cmd = external::command_line(e, builtin)
        .map_err(|err| (Status::HarnessError, err.to_string()))?;
    external::probe(e, &cmd)?;
    Ok(cmd)
}

/// This binary for every backend but those that link CUDA; for `cuda` and
/// `llamacpp:cuda`, the CUDA worker, once the driver has answered (see
/// `gpu`): without a driver the case is `unavailable`, never a worker that
/// fails to load.
fn worker_exe(this: &Path, backend: &str) -> WorkerExe {
    use crate::gpu::{CudaUnready, cuda_ready, llamacpp_cuda_ready};
    use crate::results::Status;
    use capbench_workloads::{Backend, LlamaOffload};
    let ready = match Backend::parse(backend) {
        Ok(Backend::Cuda { ordinal }) => cuda_ready(ordinal),
        Ok(Backend::LlamaCpp(LlamaOffload::Cuda)) => llamacpp_cuda_ready(),
        // The worker reports an unknown name in the case's record.
        _ => return Ok(vec![this.into(), "worker".into()]),
    };
    match ready {
        Ok(w) => Ok(vec![w.exe(this).into(), "worker".into()]),
        Err(CudaUnready::Unavailable(m)) => Err((Status::Unavailable, m)),
        Err(CudaUnready::NotCompiled(m)) => Err((Status::Error, m)),
    }
}

/// Builds `run.json` from the plan and the journal (in plan order), with
/// the ceilings measured in it and utilisation against them.
fn finish(dir: &Path, plan: &Plan, env: Env) -> Result<RunFile> {
    let journal = read_journal(dir)?;
    let mut cases = Vec::with_capacity(plan.cases.len());
    for planned in &plan.cases {
        if let Some(c) = journal.cases.iter().find(|c| c.id == planned.id) {
            cases.push(c.clone());
        }
    }
    // The run's own ceilings (its best GEMM per dtype and STREAM per backend
    // and caps); MFU, MBU and the roofline bound of every case against them.
    let after = read_brackets(dir)?;
    let ceilings = crate::analysis::ceilings::from_run(
        &cases,
        &after,
        &plan.run_id,
        &plan.options.array_sizing,
    );
    crate::analysis::ceilings::apply(&mut cases, &ceilings);
    // Under a profile: the same rates against its spec sheet.
    crate::analysis::spec_sheet::apply(&mut cases, &plan.options.profiles);
    let mut totals = RunTotals {
        cases: cases.len(),
        ..Default::default()
    };
    for c in &cases {
        *totals
            .by_status
            .entry(c.status.as_str().to_string())
            .or_default() += 1;
    }
    let run = RunFile {
        schema_version: SCHEMA_VERSION,
        run_id: plan.run_id.clone(),
        started_at: plan.started_at.clone(),
        finished_at: now_rfc3339(),
        env,
        options: plan.options.clone(),
        not_planned: plan.not_planned.clone(),
        totals,
        cases,
        ceilings,
        ceiling_brackets: after,
    };
    write_json_atomic(&dir.join(RUN_FILE), &run)?;
    Ok(run)
}

fn progress_bar(show: bool, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} worker processes, ETA {eta}  {msg}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(workload: &str) -> PlannedCase {
        PlannedCase {
            id: format!("{workload}@cpu"),
            workload: workload.into(),
            backend: "cpu".into(),
            caps: Default::default(),
            sampling: None,
        }
    }

    /// The run's own cache keeps the entries the remaining cases load;
    /// a folder the user named is never pruned.
    #[test]
    fn the_runs_own_cache_keeps_only_what_is_still_needed() {
        let tmp = tempfile::tempdir().unwrap();
        let own = ModelCache::new(None, tmp.path());
        std::fs::create_dir_all(&own.dir).unwrap();
        let stem = |w: &str| {
            let spec = WorkloadSpec::parse(w).unwrap();
            capbench_workloads::kinds::decode::cache_key(&spec)
                .unwrap()
                .stem()
        };
        let (a, b) = (
            stem("decode/dense-tiny/q4_0"),
            stem("decode/dense-tiny/f32"),
        );
        for f in [
            format!("{a}.gguf"),
            format!("{a}.sha256"),
            format!("{b}.gguf"),
        ] {
            std::fs::write(own.dir.join(f), "x").unwrap();
        }
        // prefill/… of the same model loads the same entry.
        let rest = [case("prefill/dense-tiny/q4_0"), case("kernel/gemm-f32-8")];
        own.keep_only(&rest.iter().collect::<Vec<_>>());
        let mut left: Vec<String> = std::fs::read_dir(&own.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [format!("{a}.gguf"), format!("{a}.sha256")]);
        let named = ModelCache::new(Some(own.dir.clone()), tmp.path());
        named.keep_only(&[]);
        assert_eq!(std::fs::read_dir(&own.dir).unwrap().count(), 2);
    }
}
