//! The interface the harness's worker drives: prepare once, verify against the
//! CPU reference, then time `run_iter` (which returns with the device idle).

use serde::{Deserialize, Serialize};

use crate::device::DeviceRecord;
use crate::error::{Result, WorkloadError};
use crate::verify::Verification;

/// Analytic work in one timed iteration.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WorkPerIter {
    pub flops: f64,
    pub bytes: f64,
    /// The headline metric, e.g. `gflops_per_s` or `tokens_per_s` …
    pub headline_metric: &'static str,
    /// … and its units per iteration: headline = per_iter / timed seconds.
    pub headline_per_iter: f64,
    /// Tokens processed per timed iteration (decode, prefill, training).
    pub tokens: Option<f64>,
    /// Optimiser steps per timed iteration (training).
    pub steps: Option<f64>,
}

impl WorkPerIter {
    /// Kernels: GFLOP/s from the analytic FLOP count.
    pub fn gflops(flops: f64, bytes: f64) -> WorkPerIter {
        WorkPerIter {
            flops,
            bytes,
            headline_metric: "gflops_per_s",
            headline_per_iter: flops / 1e9,
            tokens: None,
            steps: None,
        }
    }

    /// Bandwidth kernels (STREAM triad): GB/s from the bytes moved.
    pub fn gbytes(flops: f64, bytes: f64) -> WorkPerIter {
        WorkPerIter {
            headline_metric: "gbytes_per_s",
            headline_per_iter: bytes / 1e9,
            ..WorkPerIter::gflops(flops, bytes)
        }
    }
}

/// What one iteration reports besides its wall time.
#[derive(Debug, Clone, Default)]
pub struct IterReport {
    /// The seconds the headline is computed from, when the workload times a
    /// phase itself (decode: generation only); `None`: the whole iteration.
    pub timed_s: Option<f64>,
    /// Named per-iteration figures (ttft_s, itl_s, loss, …); a key may
    /// appear several times (one inter-token latency per token).
    pub extras: Vec<(&'static str, f64)>,
}

pub trait PreparedWorkload {
    /// Runs the computation once and compares it with the CPU f32 reference.
    fn verify(&mut self) -> Result<Verification>;
    /// One timed unit of work; returns only after the device finished it.
    fn run_iter(&mut self) -> Result<IterReport>;
    fn work(&self) -> WorkPerIter;
    fn device(&self) -> DeviceRecord;
    /// How `run_iter` is timed, e.g. `wall_clock_after_sync`.
    fn timer(&self) -> &'static str;
    /// Test-only knob for the regression gate's trials: make every iteration
    /// do `fraction` more work of the same kind (never used by normal runs;
    /// recorded in the result when used).
    /// The weights the workload runs, hashed (model workloads built through
    /// the model cache); `None` for workloads without weights to prove.
    fn weights(&self) -> Option<WeightsRecord> {
        None
    }
    fn inject_extra_work(&mut self, fraction: f64) -> Result<()> {
        Err(WorkloadError::Unsupported {
            workload: "this workload".into(),
            backend: self.device().backend,
            reason: format!("cannot inject {fraction} extra work"),
        })
    }
}

/// Which weights a worker process built its model from. The harness
/// verifies a case once and lets a later process of the case skip
/// verification only when its `sha256` equals the verified one's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsRecord {
    /// SHA-256 (hex) of the model cache manifest's tensor lines — each
    /// tensor's name, stored type, shape and the SHA-256 of the bytes the
    /// model was built from. `None`: the weights were not hashed.
    pub sha256: Option<String>,
    /// `hit` (loaded from the cache), `built` (drawn from the seed and
    /// cached), `rebuilt` (the entry was stale or damaged), `uncached`.
    pub cache: String,
    /// The cache file, and what was wrong with an entry that was rebuilt
    /// (or why the cache could not be used).
    pub detail: String,
}

impl WeightsRecord {
    pub fn hashed(sha256: String, cache: &str, detail: String) -> WeightsRecord {
        WeightsRecord {
            sha256: Some(sha256),
            cache: cache.into(),
            detail,
        }
    }

    /// A model built without the cache, and why the cache was not used.
    pub fn uncached(why: String) -> WeightsRecord {
        WeightsRecord {
            sha256: None,
            cache: "uncached".into(),
            detail: why,
        }
    }
}

/// Run-wide inputs a workload may use.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// A user's UTF-8 text for `train-quality` (byte-level tokens).
    pub corpus_text: Option<String>,
    /// `--model FILE.gguf` for `decode/gguf/…` and `prefill/gguf/…`.
    pub model_file: Option<std::path::PathBuf>,
    /// The folder synthetic models are cached in between the worker
    /// processes of a run (`models::cache`); `None`: built in memory.
    pub model_cache: Option<std::path::PathBuf>,
    /// `--device-mem-cap`: device bytes our wgpu engine may hold (CUDA/Metal
    /// device caps are not applied here).
    pub device_mem_cap_bytes: Option<u64>,
    /// `--wgpu-limits`: request the wgpu device with these limits instead of
    /// the adapter's own.
    pub wgpu_limits: Option<crate::device::caps::WgpuLimitsTier>,
    /// A counter the caller keeps to read the device peak afterwards; when
    /// absent the engine counts against `device_mem_cap_bytes` on its own.
    pub device_memory: Option<crate::device::caps::DeviceMemoryCounter>,
}

impl PrepareOptions {
    /// The counter every device buffer of this case is reserved against.
    pub fn device_counter(&self) -> crate::device::caps::DeviceMemoryCounter {
        self.device_memory.clone().unwrap_or_else(|| {
            crate::device::caps::DeviceMemoryCounter::new(self.device_mem_cap_bytes)
        })
    }
}
