//! The versioned result schema (documented in results/README.md), the
//! environment fingerprint, and reading/writing run folders.

mod ceiling;
pub mod env;
pub mod history;
mod identity;
pub mod invariants;
pub mod io;
pub mod merge;

use std::collections::BTreeMap;

pub use ceiling::{Ceiling, CeilingKind, mid_time_s};
pub use identity::case_id;

use capbench_workloads::backend::{DeviceMemoryRecord, DeviceRecord};
use capbench_workloads::spec::WorkloadSpec;
use capbench_workloads::{Verification, WorkPerIter};
use serde::{Deserialize, Serialize};

use crate::meter::ProcessUsage;
use crate::meter::energy::analytic::AnalyticEnergy;
use crate::meter::energy::model::CpuModelInputs;
use crate::meter::energy::{EnergySource, SourceAttempt, WorkerEnergy};
use crate::stats::Summary;
use crate::suite::Sampling;

pub use env::Env;

/// Bumped on any incompatible change of the files below.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The output did not match the CPU reference; nothing was timed.
    FailedVerification,
    /// Panicked, aborted, killed by a signal, or exited without a result.
    Crashed,
    /// An allocation failed (requested bytes recorded).
    Oom,
    /// Ran past `--case-timeout` and was killed.
    Timeout,
    /// The workload reported an error (device lost, backend unavailable, …).
    Error,
    /// The workload does not run on this backend.
    Unsupported,
    /// The backend is built in, but this machine lacks its driver or device
    /// (e.g. "no CUDA driver found"); nothing ran.
    Unavailable,
    /// capbench itself failed, not the workload: a worker that could not be
    /// started, a job or result file that could not be written or read
    /// (disk full, I/O error). `run --resume` runs such a case again.
    HarnessError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::FailedVerification => "failed_verification",
            Status::Crashed => "crashed",
            Status::Oom => "oom",
            Status::Timeout => "timeout",
            Status::Error => "error",
            Status::Unsupported => "unsupported",
            Status::Unavailable => "unavailable",
            Status::HarnessError => "harness_error",
        }
    }
}

/// What the worker process writes about itself (one per process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerOutput {
    pub status: Status,
    pub status_detail: String,
    pub device: Option<DeviceRecord>,
    pub verification: Option<Verification>,
    /// How each sample was clocked, e.g. `wall_clock_after_device_sync`.
    pub timer: String,
    /// Threads candle/rayon reported inside the worker.
    pub threads_used: usize,
    pub work_per_iter: Option<WorkPerIterRecord>,
    pub prepare_s: f64,
    pub verify_s: f64,
    pub warmup_iters: usize,
    /// Raw per-iteration times, seconds, in the order measured: the whole
    /// iteration, or the phase the headline is about (decode: generation).
    pub samples_wall_s: Vec<f64>,
    /// Other raw per-iteration figures by name (ttft_s, itl_s, loss, …).
    #[serde(default)]
    pub extra_samples: BTreeMap<String, Vec<f64>>,
    /// `ci_target`, `time_budget` or `max_samples`.
    pub stop_reason: String,
    /// Half-width of the distribution-free 95% CI of the median divided by
    /// the median, when sampling stopped (compare with sampling.target_ci_rel).
    pub ci_half_width_rel: Option<f64>,
    /// Extra work injected per iteration (gate trials only; absent normally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_extra_work: Option<f64>,
    /// Statistics of `samples_wall_s` (within this process only).
    pub within_wall_s: Option<Summary>,
    pub usage: ProcessUsage,
    /// Energy of the timed loop and the sources tried (absent in files
    /// written before energy was recorded).
    #[serde(default)]
    pub energy: Option<WorkerEnergy>,
    /// Memory high-water marks (absent in files written before caps).
    #[serde(default)]
    pub memory: Option<MemoryRecord>,
    /// Caps applied and what was observed (absent in files written before caps).
    #[serde(default)]
    pub caps_applied: Option<AppliedCaps>,
    /// A device allocation refused by `--device-mem-cap` (status `oom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom: Option<OomRecord>,
    /// GPU cases of candle (cuda, metal): device memory at open, the cap
    /// and how it was enforced, the peak and how it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_memory: Option<DeviceMemoryRecord>,
    /// The weights the process built its model from, hashed (synthetic
    /// models through the model cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<capbench_workloads::WeightsRecord>,
    /// Set when this process did not verify: the process of the case whose
    /// passed verification covers it (same `weights.sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by_process: Option<usize>,
}

/// The numbers of an allocation refused under a cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomRecord {
    pub requested_bytes: u64,
    pub in_use_bytes: u64,
    pub cap_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkPerIterRecord {
    pub flops: f64,
    pub bytes: f64,
    /// Headline metric name and its units per iteration.
    pub headline_metric: String,
    pub headline_per_iter: f64,
    /// Tokens processed per iteration (decode, training): enables
    /// `energy_j_per_token` and `tokens_per_j`. `None` for kernels.
    #[serde(default)]
    pub tokens: Option<f64>,
    /// Optimiser steps per iteration (training): enables `energy_j_per_step`.
    #[serde(default)]
    pub steps: Option<f64>,
}

impl From<WorkPerIter> for WorkPerIterRecord {
    fn from(w: WorkPerIter) -> Self {
        WorkPerIterRecord {
            flops: w.flops,
            bytes: w.bytes,
            headline_metric: w.headline_metric.to_string(),
            headline_per_iter: w.headline_per_iter,
            tokens: w.tokens,
            steps: w.steps,
        }
    }
}

/// How a worker process ended, as the parent saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub signal_name: Option<String>,
    pub elapsed_s: f64,
    /// Last lines the worker wrote to stderr (panic message, abort reason).
    pub stderr_tail: Vec<String>,
}

/// One worker process of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub index: usize,
    pub status: Status,
    pub status_detail: String,
    pub exit: ExitInfo,
    /// Bytes of the allocation that failed, for status `oom`.
    pub oom_requested_bytes: Option<u64>,
    /// For `oom` under a memory cap: bytes in use when the allocation was
    /// refused (or the resident set that passed the cap), and the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_in_use_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_cap_bytes: Option<u64>,
    /// Heap peak up to the refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_peak_bytes: Option<u64>,
    pub worker: Option<WorkerOutput>,
}

/// The headline figure of a case, with its 95% CI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub metric: String,
    pub value: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub higher_is_better: bool,
}

/// Statistics across the case's processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseStats {
    /// How the headline CI was computed: between processes (hierarchical
    /// bootstrap) when ≥ 2 processes succeeded, else within one process.
    pub ci_method: String,
    pub ci_basis: String,
    pub processes_ok: usize,
    /// Point estimate and CI of the per-iteration wall time, seconds.
    pub wall_s_median: f64,
    pub wall_s_ci95_low: f64,
    pub wall_s_ci95_high: f64,
    /// Median of each successful process, seconds: the between-process spread.
    pub process_medians_wall_s: Vec<f64>,
    /// (max − min) / median of the process medians.
    pub between_process_spread_rel: f64,
    /// All successful samples pooled (percentiles, outliers).
    pub pooled_wall_s: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub name: String,
    pub version: u32,
    pub spec: WorkloadSpec,
}

/// Caps the case was planned with (absent fields: not capped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapsRecord {
    /// CPU threads for candle/rayon (`--threads`, or the profile's cores).
    pub threads: Option<usize>,
    /// Host memory cap: the worker's counting allocator refuses past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_cap_bytes: Option<u64>,
    /// Device memory cap, counted over our wgpu engine's buffers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_mem_cap_bytes: Option<u64>,
    /// CPU affinity, a Linux CPU list (`0-1,4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// wgpu limit tier the device is requested with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wgpu_limits: Option<capbench_workloads::backend::device_caps::WgpuLimitsTier>,
    /// Hardware profile these caps stand in for (`capbench list profiles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// NVIDIA board power limit to set through NVML (`--power-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f64>,
    /// NVIDIA GPU clock lock [min, max] MHz through NVML (`--lock-clocks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_clocks_mhz: Option<[u32; 2]>,
}

/// Memory a worker process used: the counting allocator's high-water marks
/// (heap bytes, exact) and the resident set (everything the OS maps in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Heap peak over the whole process (prepare, verify and timing).
    pub alloc_peak_bytes: u64,
    /// Heap peak while preparing (weights built, data generated, uploads).
    pub alloc_peak_prepare_bytes: u64,
    /// Heap peak while verifying against the CPU reference.
    pub alloc_peak_verify_bytes: u64,
    /// Heap peak during warm-up and timed iterations.
    pub alloc_peak_run_bytes: u64,
    /// Maximum resident set size (getrusage).
    pub peak_rss_bytes: Option<u64>,
    /// Device bytes our wgpu engine held at its peak (wgpu cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_peak_bytes: Option<u64>,
}

/// Caps as the worker applied and observed them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedCaps {
    pub mem_cap_bytes: Option<u64>,
    /// Whether the resident-set watch ran (Linux) beside the allocator cap:
    /// it ends the case when the resident set grows by more than the cap
    /// over `rss_baseline_bytes` (resident before the workload: binary,
    /// libraries, runtime).
    pub rss_watch: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_baseline_bytes: Option<u64>,
    pub device_mem_cap_bytes: Option<u64>,
    /// How the device cap is enforced on this backend, or why it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_mem_cap_mechanism: Option<String>,
    pub threads_requested: Option<usize>,
    /// Threads candle's kernels and rayon's pool were sized to.
    pub threads_pool: usize,
    /// OS threads of the worker at the end of timing.
    pub os_threads: Option<usize>,
    /// CPU time ÷ wall time over the timed loop (lower than the threads
    /// used when other processes compete for the CPUs).
    pub cpu_parallelism: Option<f64>,
    /// Threads that did at least a tenth of the busiest thread's CPU work
    /// during the timed loop (Linux, per-thread CPU time): threads used.
    #[serde(default)]
    pub threads_busy: Option<usize>,
    pub cpus_requested: Option<String>,
    /// The affinity the kernel reports after applying `--cpus`.
    pub cpus_observed: Option<String>,
    pub wgpu_limits: Option<String>,
    /// Caps asked for but not applied, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applied: Vec<String>,
    /// NVML power limit and clock lock: requested, applied or `not
    /// applied: <reason>`, observed, and whether they were restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_compute: Option<crate::caps::gpu_compute::GpuComputeRecord>,
    /// External backends: how each cap was enforced on a program capbench
    /// does not run inside (docs/worker-protocol.md#caps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enforced_by: Vec<String>,
}

/// One finished case: one line of cases.jsonl, one entry of run.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub schema_version: u32,
    pub id: String,
    pub kind: String,
    pub workload: WorkloadRecord,
    pub backend: String,
    pub caps: CapsRecord,
    pub status: Status,
    pub status_detail: String,
    pub device: Option<DeviceRecord>,
    pub verification: Option<Verification>,
    pub headline: Option<Headline>,
    /// Unit-suffixed figures: `gflops_per_s`, `wall_s_median`, …
    pub metrics: BTreeMap<String, f64>,
    pub stats: Option<CaseStats>,
    /// String-valued facts about the case that are not numbers, e.g.
    /// `energy_source` (`measured`/`polled`/`modelled`/`analytic`),
    /// `throughput_source` (`measured`/`projected`), `quant`. Absent when
    /// empty; results/README.md lists the keys reports read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Named curves as (x, y) points, e.g. `loss_curve` = (step, loss in
    /// nats). Absent when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series: BTreeMap<String, Vec<[f64; 2]>>,
    pub processes: Vec<ProcessRecord>,
    pub started_at: String,
    pub elapsed_s: f64,
    /// Energy of the case with its source label (absent in older files).
    #[serde(default)]
    pub energy: Option<CaseEnergy>,
}

/// A case's energy: the figure from the best source the workers could use,
/// and the analytic projection kept apart from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseEnergy {
    /// `None` when no process recorded energy; `failure` says why.
    pub figure: Option<EnergyFigure>,
    pub failure: Option<String>,
    /// Sources the first worker considered, in order, with why each was or
    /// was not used.
    pub sources_tried: Vec<SourceAttempt>,
    /// FLOPs and bytes × Horowitz 2014 energies: a projection, never a measurement.
    pub analytic: Option<AnalyticEnergy>,
}

/// Energy over the timed loops of a case's successful processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyFigure {
    /// `measured`, `polled` or `modelled`: read every figure below with it.
    pub source: EnergySource,
    /// `rapl`, `nvml` or `cpu_time_model`.
    pub meter: String,
    pub domains: Vec<String>,
    pub resolution_j: Option<f64>,
    /// Power polling interval, for `polled`.
    pub sample_interval_s: Option<f64>,
    pub processes: usize,
    /// Counter or power reads, all processes.
    pub readings: u64,
    /// Σ over processes of the timed loop's energy (idle included).
    pub energy_j: f64,
    pub wall_s: f64,
    pub iters: usize,
    pub energy_j_per_iter: f64,
    pub energy_j_per_token: Option<f64>,
    pub tokens_per_j: Option<f64>,
    pub energy_j_per_step: Option<f64>,
    pub steps_per_j: Option<f64>,
    pub avg_power_w: f64,
    /// Analytic FLOPs per joule of this figure, 10⁹.
    pub gflops_per_j: Option<f64>,
    /// Measured/polled only: mean power over the idle baselines.
    pub idle_baseline_power_w: Option<f64>,
    /// Measured/polled only: energy minus baseline power × wall time.
    pub energy_above_idle_j: Option<f64>,
    pub energy_above_idle_j_per_iter: Option<f64>,
    /// Modelled only: the first process's inputs (each process's are in
    /// `processes[].worker.energy`).
    pub model_inputs: Option<CpuModelInputs>,
}

/// A case as planned, before it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCase {
    pub id: String,
    pub workload: String,
    pub backend: String,
    pub caps: CapsRecord,
    /// This case's sampling when a suite override differs from
    /// `options.sampling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
}

/// A workload × backend combination the plan left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotPlanned {
    pub workload: String,
    pub backend: String,
    pub reason: String,
}

/// The options a run was started with (kept for `--resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    pub suite: String,
    pub suite_source: String,
    pub backends: Vec<String>,
    pub workload_filter: Vec<String>,
    pub threads: Option<usize>,
    pub case_timeout_s: f64,
    pub sampling: Sampling,
    /// Gate trials only: the injected slowdown (absent in normal runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_slowdown: Option<f64>,
    /// `--corpus`: the user text train-quality workloads trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusRecord>,
    /// `--model`: the GGUF file `decode/gguf/…` ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelFileRecord>,
    /// `--mem-cap` list: one case per cap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mem_caps_bytes: Vec<u64>,
    /// `--device-mem-cap` list: one case per cap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_mem_caps_bytes: Vec<u64>,
    /// `--cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// `--wgpu-limits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wgpu_limits: Option<capbench_workloads::backend::device_caps::WgpuLimitsTier>,
    /// `--profile`: the profiles run under, whole (spec sheet with sources),
    /// so a run folder is read without this binary's profile files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<crate::profiles::Profile>,
    /// The external backends this run's cases use, as defined when it was
    /// planned (the command run), so `--resume` runs the same program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_backends: Vec<crate::suite::ExternalBackend>,
    /// `kernel/<stream|read>-llc` as this machine sized them: the resolved
    /// workload name → the LLC, array bytes and the rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub array_sizing: BTreeMap<String, capbench_workloads::cost::llc::ArraySizing>,
}

/// Identifies a user's model file: results on different files are not
/// comparable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFileRecord {
    pub path: String,
    pub bytes: u64,
    /// FNV-1a 64 of the whole file, hex.
    pub fnv1a: String,
    /// The format most linear weights are stored in (the workload names it).
    pub format: String,
    /// Tensor counts per stored type, e.g. {"f32": 45, "q4_0": 155}.
    pub tensor_types: std::collections::BTreeMap<String, usize>,
    pub layers: usize,
    pub d_model: usize,
    pub vocab: usize,
}

/// Identifies a user corpus: results on different text are not comparable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusRecord {
    pub path: String,
    pub bytes: u64,
    /// FNV-1a 64 of the contents, hex.
    pub fnv1a: String,
}

/// `plan.json`: written first, read by `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub schema_version: u32,
    pub run_id: String,
    pub started_at: String,
    pub options: RunOptions,
    pub cases: Vec<PlannedCase>,
    pub not_planned: Vec<NotPlanned>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTotals {
    pub cases: usize,
    pub by_status: BTreeMap<String, usize>,
}

/// `run.json`: the whole run, written at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub schema_version: u32,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub env: Env,
    pub options: RunOptions,
    pub not_planned: Vec<NotPlanned>,
    pub totals: RunTotals,
    pub cases: Vec<CaseResult>,
    /// The run's measured ceilings: best GEMM GFLOP/s per dtype and STREAM
    /// GB/s per backend × caps (absent in older files and in runs without
    /// such cases; `capbench probe` measures them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ceilings: Vec<Ceiling>,
    /// The ceiling cases measured again after the run's other cases (the
    /// bracket's second end), raw samples and all; not cases of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ceiling_brackets: Vec<CaseResult>,
}

/// RFC 3339 UTC timestamp of now, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
