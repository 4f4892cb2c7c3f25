//! Inside the child process: prepare the workload, verify it against the CPU
//! reference, warm up, then take adaptive timed samples — and write one
//! `WorkerOutput`. Runs exactly one case-process; `runner` spawns it.

use std::path::Path;
use std::time::Instant;

use capbench_workloads::backend::device_caps::DeviceMemoryCounter;
use capbench_workloads::{
    Backend, PrepareOptions, PreparedWorkload, WorkloadError, WorkloadSpec, prepare_with,
};
use serde::{Deserialize, Serialize};

use crate::caps::{alloc, cpu, gpu_compute, rss};
use crate::error::{HarnessError, Result};
use crate::meter::energy::{self, EnergyMeter, Probe, Target, WorkerEnergy};
use crate::meter::process_usage;
use crate::results::io::write_json_atomic;
use crate::results::{AppliedCaps, MemoryRecord, OomRecord, Status, WorkerOutput};
use crate::stats;
use crate::suite::Sampling;

/// What the parent asks one worker process to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerJob {
    pub case_id: String,
    pub workload: String,
    pub workload_version: u32,
    pub backend: String,
    pub sampling: Sampling,
    pub process_index: usize,
    /// Parent's pid: the worker exits if the parent is gone (see below).
    pub parent_pid: u32,
    /// Gate trials only: extra work per iteration, as a fraction.
    #[serde(default)]
    pub inject_slowdown: Option<f64>,
    /// `--corpus` text file for train-quality workloads.
    #[serde(default)]
    pub corpus: Option<std::path::PathBuf>,
    /// `--model` GGUF file for decode/gguf/… workloads.
    #[serde(default)]
    pub model: Option<std::path::PathBuf>,
    /// Caps to apply before anything is prepared.
    #[serde(default)]
    pub caps: crate::results::CapsRecord,
    /// The worker protocol's version (docs/worker-protocol.md); 0 in jobs
    /// written before it was versioned.
    #[serde(default)]
    pub protocol_version: u32,
    /// External workers: the bound their verification must meet, and the
    /// figure it bounds (`scaled_max_diff` or `mean_kl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_on: Option<String>,
    /// External workers: files capbench wrote for them (weights, data,
    /// reference outputs), by role.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub inputs: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// capbench's own workers: the folder synthetic models are cached in
    /// (built once, loaded by every later process of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_cache: Option<std::path::PathBuf>,
    /// An earlier process of this case passed verification with these
    /// weights: a process that built its model from the same weights (same
    /// hash) is not verified again; other weights are an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_weights: Option<VerifiedWeights>,
}

/// The weights an earlier process of the case verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedWeights {
    pub process: usize,
    pub sha256: String,
}

/// The line a worker prints before it exits when capbench's own files fail
/// it (job unreadable, result unwritable: disk full, I/O error): the parent
/// records `harness_error`, which `--resume` runs again, never `crashed`.
pub const HARNESS_ERROR_MARK: &str = "capbench worker: harness error:";
/// The worker's exit code after `HARNESS_ERROR_MARK`.
pub const HARNESS_ERROR_EXIT: i32 = 4;

/// Entry point of `capbench worker`.
pub fn run(job_path: &Path, result_path: &Path) -> Result<()> {
    let harness_failure = |e: HarnessError| -> ! {
        eprintln!("{HARNESS_ERROR_MARK} {e}");
        std::process::exit(HARNESS_ERROR_EXIT)
    };
    let text = std::fs::read_to_string(job_path)
        .map_err(HarnessError::io("read", job_path))
        .unwrap_or_else(|e| harness_failure(e));
    let job: WorkerJob = serde_json::from_str(&text).map_err(|e| {
        HarnessError::bad_input(
            job_path,
            format!("line {}, column {}", e.line(), e.column()),
            e.to_string(),
            "worker jobs are written by `capbench run`; do not call `capbench worker` by hand",
        )
    })?;
    die_with_parent(job.parent_pid);
    let mut applied = apply_caps(&job);
    let (mut gpu_guard, gpu) = apply_gpu_compute_caps(&job);
    if let Some(g) = &gpu {
        for (what, status) in [
            ("--power-limit", &g.power_limit_status),
            ("--lock-clocks", &g.lock_clocks_status),
        ] {
            if let Some(s) = status.as_deref().filter(|s| s.starts_with("not applied")) {
                applied.not_applied.push(format!("{what}: {s}"));
            }
        }
    }
    applied.gpu_compute = gpu;
    let mut out = measure(&job);
    // The GPU's own settings go back before the case is written, so the
    // record says whether they did.
    let restored = gpu_guard.restore();
    if let Some(g) = applied.gpu_compute.as_mut() {
        g.restore = restored;
    }
    out.caps_applied = Some(merge_observed(applied, out.caps_applied.take()));
    // Writing the result must not be refused: the case is over.
    alloc::set_cap(None);
    write_json_atomic(result_path, &out).unwrap_or_else(|e| harness_failure(e));
    Ok(())
}

/// Applies the job's host caps to this process, before any thread pool or
/// workload exists: CPU affinity first (threads started later inherit it),
/// then the allocator cap and the resident-set watch.
fn apply_caps(job: &WorkerJob) -> AppliedCaps {
    let caps = &job.caps;
    let mut a = AppliedCaps {
        threads_requested: caps.threads,
        threads_pool: capbench_workloads::backend::candle::default_threads(),
        cpus_requested: caps.cpus.clone(),
        mem_cap_bytes: caps.mem_cap_bytes,
        device_mem_cap_bytes: caps.device_mem_cap_bytes,
        wgpu_limits: caps.wgpu_limits.as_ref().map(|w| w.as_str().to_string()),
        ..Default::default()
    };
    if let Some(list) = &caps.cpus {
        match cpu::parse_cpu_list(list).and_then(|c| cpu::set_affinity(&c)) {
            Ok(()) => {}
            Err(e) => a.not_applied.push(format!("--cpus {list}: {e}")),
        }
    }
    a.cpus_observed = cpu::affinity().map(|c| cpu::format_cpu_list(&c));
    if let Some(cap) = caps.mem_cap_bytes {
        if alloc::installed() {
            alloc::set_cap(Some(cap));
            // Memory the allocator cannot see: checked every 20 ms.
            a.rss_baseline_bytes = rss::watch(cap, std::time::Duration::from_millis(20));
            a.rss_watch = a.rss_baseline_bytes.is_some();
        } else {
            a.mem_cap_bytes = None;
            a.not_applied.push(
                "host memory cap: this process does not run capbench's counting allocator".into(),
            );
        }
    }
    let is_wgpu = job.backend.starts_with("wgpu");
    if let Some(cap) = caps.device_mem_cap_bytes {
        a.device_mem_cap_mechanism = Some(if is_wgpu {
            "counted: every buffer capbench's wgpu engine creates is reserved against the cap before it is created".into()
        } else {
            a.device_mem_cap_bytes = None;
            let why = if job.backend == "cpu" {
                "the cpu backend has no device memory".to_string()
            } else {
                format!(
                    "device memory caps on {} are not implemented in this build",
                    job.backend
                )
            };
            a.not_applied.push(format!("--device-mem-cap {cap}: {why}"));
            format!("not applied: {why}")
        });
    }
    if let Some(w) = &caps.wgpu_limits
        && !is_wgpu
    {
        a.wgpu_limits = None;
        a.not_applied.push(format!(
            "--wgpu-limits {}: {} is not a wgpu backend",
            w.as_str(),
            job.backend
        ));
    }
    a
}

/// NVML compute caps (power limit, locked clocks) on a CUDA backend, set
/// before anything is prepared; elsewhere each requested one is recorded
/// `not applied: <reason>`. `None` when none was requested.
fn apply_gpu_compute_caps(
    job: &WorkerJob,
) -> (
    gpu_compute::ComputeCapsGuard,
    Option<gpu_compute::GpuComputeRecord>,
) {
    let req = gpu_compute::ComputeCapsRequest {
        power_limit_w: job.caps.power_limit_w,
        lock_clocks_mhz: job.caps.lock_clocks_mhz.map(|[a, b]| (a, b)),
    };
    if req.is_empty() {
        return (gpu_compute::ComputeCapsGuard::none(), None);
    }
    let none = |why: String| {
        (
            gpu_compute::ComputeCapsGuard::none(),
            Some(gpu_compute::none_applied(&req, &why)),
        )
    };
    let backend = match Backend::parse(&job.backend) {
        Ok(b @ Backend::Cuda { .. }) => b,
        _ => return none(format!("{} is not a CUDA backend", job.backend)),
    };
    #[cfg(feature = "nvml")]
    {
        let rec = capbench_workloads::backend::candle::record(&backend);
        match rec.details.iter().find_map(|d| d.strip_prefix("uuid=")) {
            Some(uuid) => {
                let (g, r) = gpu_compute::apply_nvml(uuid, &req);
                (g, Some(r))
            }
            None => none("the CUDA driver gave no GPU UUID for NVML".into()),
        }
    }
    #[cfg(not(feature = "nvml"))]
    {
        let _ = backend;
        none("built without the nvml feature (rebuild with --features nvml)".into())
    }
}

/// The caps applied at start with what `measure` observed while timing.
fn merge_observed(mut applied: AppliedCaps, observed: Option<AppliedCaps>) -> AppliedCaps {
    if let Some(o) = observed {
        applied.os_threads = o.os_threads;
        applied.cpu_parallelism = o.cpu_parallelism;
        applied.threads_busy = o.threads_busy;
    }
    applied
}

/// On Linux, ask the kernel to SIGKILL this worker when the parent dies, so a
/// killed `capbench run` leaves no orphan measuring in the background.
fn die_with_parent(parent_pid: u32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        }
        // The parent may have died before the prctl took effect.
        if std::os::unix::process::parent_id() != parent_pid {
            std::process::exit(3);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent_pid;
}

fn blank(status: Status, detail: String) -> WorkerOutput {
    WorkerOutput {
        status,
        status_detail: detail,
        device: None,
        verification: None,
        timer: String::new(),
        threads_used: capbench_workloads::backend::candle::default_threads(),
        work_per_iter: None,
        prepare_s: 0.0,
        verify_s: 0.0,
        warmup_iters: 0,
        samples_wall_s: vec![],
        extra_samples: Default::default(),
        stop_reason: String::new(),
        ci_half_width_rel: None,
        injected_extra_work: None,
        within_wall_s: None,
        usage: process_usage(),
        energy: None,
        memory: memory_record(),
        caps_applied: None,
        oom: None,
        device_memory: None,
        weights: None,
        verified_by_process: None,
    }
}

/// Peak memory so far, with the phase peaks `measure` filled in.
fn memory_record() -> Option<MemoryRecord> {
    alloc::installed().then(|| MemoryRecord {
        alloc_peak_bytes: alloc::peak_total_bytes(),
        peak_rss_bytes: process_usage().peak_rss_bytes,
        ..Default::default()
    })
}

/// Ends a phase: its heap peak, and a fresh peak for the next one.
fn phase_peak() -> u64 {
    let p = alloc::peak_bytes();
    alloc::reset_peak();
    p
}

fn status_of(e: &WorkloadError) -> Status {
    match e {
        WorkloadError::Unsupported { .. } => Status::Unsupported,
        WorkloadError::DeviceOutOfMemory { .. } => Status::Oom,
        WorkloadError::Unavailable { .. } => Status::Unavailable,
        e if e.is_device_oom() => Status::Oom,
        _ => Status::Error,
    }
}

/// Prepare → verify → warm up → sample. Never panics on workload errors:
/// they become the output's status. GPU cases also record their device
/// memory (peak, cap), however they ended.
pub fn measure(job: &WorkerJob) -> WorkerOutput {
    let mut out = measure_case(job);
    let Ok(backend) = Backend::parse(&job.backend) else {
        return out;
    };
    out.device_memory = capbench_workloads::backend::device_memory(&backend);
    // A cap that can only be checked afterwards (metal) still decides `oom`.
    if let Some((peak_bytes, cap_bytes)) = out
        .device_memory
        .as_ref()
        .and_then(|m| m.over_checked_cap())
        && out.status == Status::Ok
    {
        let e = WorkloadError::DeviceMemCap {
            backend: job.backend.clone(),
            peak_bytes,
            cap_bytes,
        };
        out.status = status_of(&e);
        out.status_detail = e.to_string();
    }
    out
}

fn measure_case(job: &WorkerJob) -> WorkerOutput {
    let spec = match WorkloadSpec::parse(&job.workload) {
        Ok(s) if s.version == job.workload_version => s,
        Ok(s) => {
            return blank(
                Status::Error,
                format!(
                    "planned {} v{}, but this binary has v{}",
                    job.workload, job.workload_version, s.version
                ),
            );
        }
        Err(e) => return blank(Status::Error, e.to_string()),
    };
    let backend = match Backend::parse(&job.backend) {
        Ok(b) => b,
        Err(e) => return blank(Status::Error, e.to_string()),
    };
    let device_memory = DeviceMemoryCounter::new(job.caps.device_mem_cap_bytes);
    let backend_is_wgpu = matches!(backend, Backend::Wgpu(_));
    alloc::reset_peak();
    let opts = PrepareOptions {
        corpus_text: match &job.corpus {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) => Some(t),
                Err(e) => {
                    return blank(
                        Status::Error,
                        format!("cannot read corpus {}: {e}", p.display()),
                    );
                }
            },
            None => None,
        },
        model_file: job.model.clone(),
        model_cache: job.model_cache.clone(),
        device_mem_cap_bytes: job.caps.device_mem_cap_bytes,
        wgpu_limits: job.caps.wgpu_limits.clone(),
        device_memory: Some(device_memory.clone()),
    };
    let t = Instant::now();
    let mut w = match prepare_with(&spec, &backend, &opts) {
        Ok(w) => w,
        Err(e) => return failed(&e, &device_memory),
    };
    if let Some(f) = job.inject_slowdown
        && let Err(e) = w.inject_extra_work(f)
    {
        return failed(&e, &device_memory);
    }
    let prepare_s = t.elapsed().as_secs_f64();
    let prepare_peak = phase_peak();
    let mut out = blank(Status::Ok, String::new());
    out.injected_extra_work = job.inject_slowdown;
    out.prepare_s = prepare_s;
    out.device = Some(w.device());
    if let Some(d) = out.device.as_mut() {
        crate::meter::nvml_device::enrich(d);
    }
    out.timer = w.timer().to_string();
    out.work_per_iter = Some(w.work().into());
    out.weights = w.weights();
    let sha = out.weights.as_ref().and_then(|w| w.sha256.as_deref());
    match (&job.verified_weights, sha) {
        (Some(v), Some(sha)) if v.sha256 == sha => {
            // Process `v.process` verified these very weights: same bytes,
            // same code, same answer; the time goes to measuring instead.
            out.verified_by_process = Some(v.process);
        }
        (Some(v), Some(sha)) => {
            out.status = Status::Error;
            out.status_detail = format!(
                "weights sha256 {sha} differ from {}, the weights process {} verified; not timed",
                v.sha256, v.process
            );
            return out;
        }
        // Weights that could not be hashed are verified here.
        _ => {}
    }

    // Verification is capbench's own bookkeeping (an f32 reference the
    // target would never hold), so the memory cap is lifted while it runs:
    // the cap governs what the workload needs — prepare, warm-up, timing.
    let cap = alloc::cap_bytes();
    let verification = match out.verified_by_process {
        Some(_) => None,
        None => {
            alloc::set_cap(None);
            rss::pause(true);
            let t = Instant::now();
            let v = w.verify();
            out.verify_s = t.elapsed().as_secs_f64();
            Some(v)
        }
    };
    let verify_peak = match verification {
        Some(_) => {
            let p = phase_peak();
            rss::release_freed_memory();
            alloc::set_cap(cap);
            rss::pause(false);
            p
        }
        None => 0,
    };
    let finish = |out: &mut WorkerOutput, run_peak: u64| {
        out.usage = process_usage();
        out.memory = memory_record().map(|m| MemoryRecord {
            alloc_peak_prepare_bytes: prepare_peak,
            alloc_peak_verify_bytes: verify_peak,
            alloc_peak_run_bytes: run_peak,
            device_peak_bytes: backend_is_wgpu.then(|| device_memory.peak_bytes()),
            ..m
        });
    };
    match verification {
        None => {}
        Some(Err(e)) => {
            out.status = status_of(&e);
            out.status_detail = format!("verification could not run: {e}");
            out.oom = oom_of(&e);
            finish(&mut out, 0);
            return out;
        }
        Some(Ok(v)) if !v.passed => {
            out.status = Status::FailedVerification;
            out.status_detail = format!(
                "output differs from the reference: scaled max diff {:.3e} > tolerance {:.1e} (max abs {:.3e}, {} non-finite)",
                v.scaled_max_diff, v.tolerance, v.max_abs_diff, v.nan_or_inf
            );
            out.verification = Some(v);
            finish(&mut out, 0);
            return out;
        }
        Some(Ok(v)) => out.verification = Some(v),
    }

    // Chosen after prepare: the device decides which sources apply (wgpu on
    // lavapipe is a CPU; wgpu on hardware is a GPU).
    let target = Target::of(
        &job.backend,
        out.device.as_ref().map(|d| d.device_type.as_str()),
    );
    let (meter, sources_tried) = Probe::system(out.threads_used).choose(&target);
    let mut energy = WorkerEnergy {
        sources_tried,
        failure: meter
            .is_none()
            .then(|| "no energy source could be used (see sources_tried)".to_string()),
        ..Default::default()
    };
    let sampled = sample(w.as_mut(), &job.sampling, &mut out, meter, &mut energy);
    out.energy = Some(energy);
    if let Err(e) = sampled {
        out.status = status_of(&e);
        out.status_detail = format!("while timing: {e}");
        out.oom = oom_of(&e);
    }
    if !out.samples_wall_s.is_empty() {
        out.within_wall_s = Some(stats::summarize(&out.samples_wall_s));
    }
    let run_peak = phase_peak();
    finish(&mut out, run_peak);
    out
}

/// A workload error before anything was timed, as the worker's output.
fn failed(e: &WorkloadError, device_memory: &DeviceMemoryCounter) -> WorkerOutput {
    let mut out = blank(status_of(e), e.to_string());
    out.oom = oom_of(e);
    if let Some(m) = out.memory.as_mut()
        && device_memory.peak_bytes() > 0
    {
        m.device_peak_bytes = Some(device_memory.peak_bytes());
    }
    out
}

/// The numbers of a refused device allocation.
fn oom_of(e: &WorkloadError) -> Option<OomRecord> {
    match e {
        WorkloadError::DeviceOutOfMemory {
            requested_bytes,
            in_use_bytes,
            cap_bytes,
            ..
        } => Some(OomRecord {
            requested_bytes: *requested_bytes,
            in_use_bytes: *in_use_bytes,
            cap_bytes: *cap_bytes,
        }),
        _ => None,
    }
}

/// Warm-up, then timed samples until the CI target, the time budget (after
/// `min_samples`) or `max_samples`. `run_iter` returns with the device idle,
/// so each clock read brackets finished work. The energy meter (idle
/// baseline first, for measured sources) brackets the whole timed loop.
fn sample(
    w: &mut dyn PreparedWorkload,
    cfg: &Sampling,
    out: &mut WorkerOutput,
    mut meter: Option<Box<dyn EnergyMeter>>,
    energy: &mut WorkerEnergy,
) -> capbench_workloads::error::Result<()> {
    for _ in 0..cfg.warmup_iters {
        w.run_iter()?;
    }
    out.warmup_iters = cfg.warmup_iters;
    let baseline = match meter.as_mut().map(|m| energy::begin(m.as_mut())) {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            // A failed read is recorded, never turned into 0 J.
            energy.failure = Some(format!("starting the energy meter: {e}"));
            meter = None;
            None
        }
        None => None,
    };
    let start = Instant::now();
    let cpu_start = process_usage();
    let ticks_start = cpu::thread_cpu_ticks();
    // Kept sorted as samples arrive (binary insertion): re-sorting a copy
    // after every sample cost O(n² log n) between timed iterations.
    let mut sorted: Vec<f64> = Vec::new();
    let stop_reason = loop {
        let t = Instant::now();
        let report = w.run_iter()?;
        let wall = t.elapsed().as_secs_f64();
        let sample = report.timed_s.unwrap_or(wall);
        out.samples_wall_s.push(sample);
        sorted.insert(sorted.partition_point(|x| *x < sample), sample);
        for (k, v) in report.extras {
            out.extra_samples.entry(k.to_string()).or_default().push(v);
        }
        let n = out.samples_wall_s.len();
        if n >= cfg.max_samples {
            break "max_samples";
        }
        if n < cfg.min_samples {
            continue;
        }
        if let Some((lo, hi)) = stats::order_statistic_median_ci(&sorted) {
            let med = stats::median(&sorted);
            let rel = (hi - lo) / 2.0 / med;
            out.ci_half_width_rel = med.is_normal().then_some(rel);
            if med > 0.0 && rel <= cfg.target_ci_rel {
                break "ci_target";
            }
        }
        if start.elapsed().as_secs_f64() >= cfg.max_time_s {
            break "time_budget";
        }
    };
    out.stop_reason = stop_reason.into();
    // Threads actually busy: CPU time over wall time of the timed loop.
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = |u: &crate::meter::ProcessUsage| Some(u.cpu_user_s? + u.cpu_sys_s?);
    out.caps_applied = Some(AppliedCaps {
        os_threads: cpu::os_threads(),
        cpu_parallelism: match (cpu_s(&cpu_start), cpu_s(&process_usage())) {
            (Some(a), Some(b)) if wall_s > 0.0 => Some((b - a) / wall_s),
            _ => None,
        },
        threads_busy: match (&ticks_start, cpu::thread_cpu_ticks()) {
            (Some(a), Some(b)) => cpu::busy_threads(a, &b),
            _ => None,
        },
        ..Default::default()
    });
    if let Some(m) = meter.as_mut() {
        match energy::finish(m.as_mut(), baseline, out.samples_wall_s.len()) {
            Ok(e) => energy.measurement = Some(e),
            Err(e) => energy.failure = Some(format!("stopping the energy meter: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
