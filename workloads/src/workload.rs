//! The interface the harness's worker drives: prepare once, verify against the
//! CPU reference, then time `run_iter` (which returns with the device idle).

use serde::Serialize;

use crate::backend::{Backend, DeviceRecord};
use crate::error::{Result, WorkloadError};
use crate::kernels;
use crate::spec::{DType, Params, WorkloadSpec};
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
    fn inject_extra_work(&mut self, fraction: f64) -> Result<()> {
        Err(WorkloadError::Unsupported {
            workload: "this workload".into(),
            backend: self.device().backend,
            reason: format!("cannot inject {fraction} extra work"),
        })
    }
}

/// Checks, without touching a device, whether this workload runs on this
/// backend. `Err` carries the reason shown in the plan.
pub fn supports(spec: &WorkloadSpec, backend: &Backend) -> std::result::Result<(), String> {
    match (&spec.params, backend) {
        (Params::Gemm { dtype, .. }, Backend::Wgpu(_)) if *dtype != DType::F32 => Err(format!(
            "{} GEMM on wgpu is not implemented yet (f32 only)",
            dtype.as_str()
        )),
        (
            Params::Gemm {
                variant: Some(v), ..
            },
            b,
        ) if b.is_candle() => Err(format!(
            "`-{}` names a rung of the wgpu GEMM ladder (naive, tiled, blocked); on {b} run the name without it (candle's matmul)",
            v.as_str()
        )),
        (Params::Fault { .. }, b) if *b != Backend::Cpu => {
            Err("fault workloads exist to test the harness and run on cpu only".into())
        }
        (Params::Stream { .. }, b) if b.is_candle() && *b != Backend::Cpu => {
            Err("kernel/stream runs on the cpu (host memory) and on wgpu (device memory)".into())
        }
        (Params::Train { dtype, .. }, Backend::Wgpu(_)) if *dtype != DType::F32 => Err(format!(
            "{} training on the wgpu engine is not implemented (f32 only)",
            dtype.as_str()
        )),
        (Params::Decode { model, .. }, Backend::Wgpu(_)) if model == crate::spec::GGUF_MODEL => {
            Err("GGUF files run on the candle backends (cpu, cuda, metal)".into())
        }
        (Params::TrainQuality { .. }, Backend::Wgpu(_)) => {
            Err("train-quality on wgpu is not implemented (train-step is)".into())
        }
        _ => Ok(()),
    }
}

/// Run-wide inputs a workload may use.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// A user's UTF-8 text for `train-quality` (byte-level tokens).
    pub corpus_text: Option<String>,
    /// `--model FILE.gguf` for `decode/gguf/…` and `prefill/gguf/…`.
    pub model_file: Option<std::path::PathBuf>,
    /// `--device-mem-cap`: device bytes our wgpu engine may hold (CUDA/Metal
    /// device caps are not applied here).
    pub device_mem_cap_bytes: Option<u64>,
    /// `--wgpu-limits`: request the wgpu device with these limits instead of
    /// the adapter's own.
    pub wgpu_limits: Option<crate::backend::device_caps::WgpuLimitsTier>,
    /// A counter the caller keeps to read the device peak afterwards; when
    /// absent the engine counts against `device_mem_cap_bytes` on its own.
    pub device_memory: Option<crate::backend::device_caps::DeviceMemoryCounter>,
}

impl PrepareOptions {
    /// The counter every device buffer of this case is reserved against.
    pub fn device_counter(&self) -> crate::backend::device_caps::DeviceMemoryCounter {
        self.device_memory.clone().unwrap_or_else(|| {
            crate::backend::device_caps::DeviceMemoryCounter::new(self.device_mem_cap_bytes)
        })
    }
}

/// Builds the workload on its backend: data generated, uploaded, kernels
/// compiled. Nothing is timed here.
pub fn prepare(spec: &WorkloadSpec, backend: &Backend) -> Result<Box<dyn PreparedWorkload>> {
    prepare_with(spec, backend, &PrepareOptions::default())
}

pub fn prepare_with(
    spec: &WorkloadSpec,
    backend: &Backend,
    opts: &PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    backend.ensure_compiled()?;
    supports(spec, backend).map_err(|reason| WorkloadError::Unsupported {
        workload: spec.name.clone(),
        backend: backend.to_string(),
        reason,
    })?;
    if let Backend::Wgpu(_) = backend {
        return crate::backend::wgpu::prepare(spec, backend, opts);
    }
    if let Some(cap) = opts.device_mem_cap_bytes {
        crate::backend::apply_device_mem_cap(backend, cap)?;
    }
    match &spec.params {
        Params::Gemm { .. } => kernels::gemm::prepare(spec, backend, opts),
        Params::Fault { fault } => kernels::fault::prepare(spec, *fault),
        Params::Stream { .. } => kernels::stream::prepare(spec, backend),
        Params::Attention { .. } => kernels::attention::prepare(spec, backend),
        Params::Train { .. } => crate::train::prepare(spec, backend),
        Params::Decode { .. } => crate::decode::prepare(spec, backend, opts.model_file.as_deref()),
        Params::TrainQuality { .. } => {
            crate::quality::prepare(spec, backend, opts.corpus_text.as_deref())
        }
    }
}

/// One line of `capbench list workloads`.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub pattern: &'static str,
    pub kind: &'static str,
    pub version: u32,
    pub backends: &'static str,
    pub description: &'static str,
    pub example: &'static str,
    /// Exists to test the harness itself, not to measure hardware.
    pub harness_test: bool,
}

pub fn catalog() -> Vec<CatalogEntry> {
    use crate::spec::{FAULT_VERSION, GEMM_VERSION};
    vec![
        CatalogEntry {
            pattern: "kernel/gemm-<f32|f16|bf16>-<N | MxNxK>[-<naive|tiled|blocked>]",
            kind: "kernel",
            version: GEMM_VERSION,
            backends: "cpu, cuda, metal: f32 f16 bf16; wgpu: f32 (the -naive/-tiled/-blocked rungs: wgpu only)",
            description: "C = A·B, row-major, seeded uniform inputs; GFLOP/s from 2·M·N·K. On wgpu a suffix picks a rung of the GEMM ladder (naive: a thread per output; tiled: 16×16 workgroup tiles; blocked: 64×64 tiles, 4×4 per thread, the default)",
            example: "kernel/gemm-f32-512",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "kernel/stream-<N[K|M|G]>",
            kind: "kernel",
            version: crate::spec::STREAM_VERSION,
            backends: "cpu (host memory), wgpu (device memory)",
            description: "STREAM triad a = b + s·c over N f32 per array: sustainable memory bandwidth (GB/s, 12 bytes per element)",
            example: "kernel/stream-4M",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "kernel/attention-<T>",
            kind: "kernel",
            version: crate::spec::ATTENTION_VERSION,
            backends: "cpu, cuda, metal, wgpu",
            description: "causal attention, 8 heads × 64 dims over T positions, with the models' own ops; verified against host f64",
            example: "kernel/attention-512",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "train-step/<model>/<f32|bf16>[/b<B>t<T>]",
            kind: "train",
            version: crate::spec::TRAIN_VERSION,
            backends: "cpu, cuda, metal; wgpu: f32",
            description: "forward, cross-entropy, backward, AdamW on a fixed batch of the synthetic Markov corpus; verified against CPU f64 (loss, every gradient); tokens/s, loss",
            example: "train-step/dense-tiny/f32",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "train-quality/<model>/<f32|bf16>[/s<STEPS>b<B>t<T>]",
            kind: "train-quality",
            version: crate::spec::QUALITY_VERSION,
            backends: "cpu, cuda, metal",
            description: "trains a fresh model S steps (default 300) on fresh batches; held-out loss, excess over the corpus's exact entropy floor, the loss curve; --corpus FILE trains on your text instead",
            example: "train-quality/dense-tiny/f32",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "decode/<model>/<f32|f16|bf16|q8_0|q4_0>[/p<P>g<G>b<B>d<D>]",
            kind: "decode",
            version: crate::spec::DECODE_VERSION,
            backends: "cpu, cuda, metal, wgpu (wgpu: weights stored in the format, computed in f32)",
            description: "P-token prompt after D cached tokens, then G greedy tokens with the KV cache, batch B; verified against the CPU f32 model (KL, top-1, max logit diff); tokens/s, TTFT, inter-token latency",
            example: "decode/dense-tiny/q8_0/p16g16",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "prefill/<model>/<format>[/p<P>b<B>d<D>]",
            kind: "prefill",
            version: crate::spec::DECODE_VERSION,
            backends: "cpu, cuda, metal, wgpu (wgpu: weights stored in the format, computed in f32)",
            description: "the prompt phase alone: prefill tokens/s and time to first token",
            example: "prefill/llama-3.2-1b/q4_0/p128",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "decode/gguf/<format as stored>[/p<P>g<G>b<B>d<D>] (and prefill/gguf/…)",
            kind: "decode",
            version: crate::spec::DECODE_VERSION,
            backends: "cpu, cuda, metal",
            description: "decode on your llama-family GGUF file (--model FILE.gguf; planned for you), quantized tensors as stored; verified against the file's weights dequantized to f32 on the CPU; same metrics as decode/<model>",
            example: "decode/gguf/q4_0",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "fault/<panic|abort|hang|oom|wrong|slow-<N>ms>",
            kind: "fault",
            version: FAULT_VERSION,
            backends: "cpu",
            description: "deliberate failures that test the harness's isolation and recording",
            example: "fault/abort",
            harness_test: true,
        },
    ]
}
