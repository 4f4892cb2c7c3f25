//! The one registry: which workload runs where (`supports`), the spec → prepared
//! workload dispatch, and the catalog `capbench list workloads` prints.

use serde::Serialize;

use crate::api::{PrepareOptions, PreparedWorkload};
use crate::backend::{Backend, WgpuSelector};
use crate::error::{Result, WorkloadError};
use crate::kinds::{decode, kernels, quality, train};
use crate::spec::{DType, Params, Typed, WorkloadSpec};

/// Checks, without touching a device, whether this workload runs on this
/// backend. `Err` carries the reason shown in the plan.
pub fn supports(spec: &WorkloadSpec, backend: &Backend) -> std::result::Result<(), String> {
    if let Backend::LlamaCpp(_) = backend {
        return match spec.params.typed() {
            #[cfg(feature = "llamacpp")]
            Typed::Decode(p) => decode::llamacpp::supports(&p),
            // Without the feature `prepare_with` refuses the backend first.
            #[cfg(not(feature = "llamacpp"))]
            Typed::Decode(_) => Ok(()),
            _ => Err(
                "llama.cpp runs decode/… and prefill/… (it has no training or kernels here)".into(),
            ),
        };
    }
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
        (Params::Read { .. }, b) if *b != Backend::Cpu => {
            Err("kernel/read runs on the cpu (host memory) only".into())
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
    if let Backend::Wgpu(selector) = *backend {
        return prepare_wgpu(spec, selector, opts);
    }
    if let Some(cap) = opts.device_mem_cap_bytes {
        crate::backend::apply_device_mem_cap(backend, cap)?;
    }
    #[cfg(feature = "llamacpp")]
    if let (Backend::LlamaCpp(offload), Typed::Decode(p)) = (*backend, spec.params.typed()) {
        return decode::llamacpp::prepare(
            spec,
            &p,
            offload,
            opts.model_file.as_deref(),
            opts.model_cache.as_deref(),
        );
    }
    // The one match on the kinds: each gets its own parameters.
    match spec.params.typed() {
        Typed::Gemm(p) => kernels::gemm::prepare(spec, &p, backend),
        Typed::Fault(fault) => kernels::fault::prepare(spec, fault),
        Typed::Stream(elems) => kernels::stream::prepare(spec, elems),
        Typed::Read(bytes) => kernels::read::prepare(spec, bytes),
        Typed::Attention(seq) => kernels::attention::prepare(spec, seq, backend),
        Typed::Train(p) => train::prepare(spec, &p, backend),
        Typed::Decode(p) => decode::prepare(spec, &p, backend, opts),
        Typed::Quality(p) => quality::prepare(spec, &p, backend, opts.corpus_text.as_deref()),
    }
}

/// The workloads our wgpu engine runs (`supports` has already ruled out the
/// others).
#[cfg(feature = "wgpu")]
fn prepare_wgpu(
    spec: &WorkloadSpec,
    selector: WgpuSelector,
    opts: &PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    match spec.params.typed() {
        Typed::Gemm(p) => kernels::wgpu::gemm::prepare_gemm(spec, &p, selector, opts),
        Typed::Stream(elems) => kernels::wgpu::prepare_stream(spec, elems, selector, opts),
        Typed::Attention(seq) => kernels::wgpu::prepare_attention(spec, seq, selector, opts),
        Typed::Train(p) => train::wgpu::prepare(spec, &p, selector, opts),
        Typed::Decode(p) => decode::wgpu::prepare(spec, &p, selector, opts),
        Typed::Fault(_) | Typed::Quality(_) | Typed::Read(_) => Err(WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: Backend::Wgpu(selector).to_string(),
            reason: "not implemented on the wgpu engine".into(),
        }),
    }
}

/// Without the wgpu feature `ensure_compiled` refuses a wgpu backend first.
#[cfg(not(feature = "wgpu"))]
fn prepare_wgpu(
    _spec: &WorkloadSpec,
    selector: WgpuSelector,
    _opts: &PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    Backend::Wgpu(selector).ensure_compiled()?;
    Err(WorkloadError::NotCompiled {
        backend: "wgpu".into(),
        feature: "wgpu".into(),
    })
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
            pattern: "kernel/read-<N[K|M|G]>",
            kind: "kernel",
            version: crate::spec::READ_VERSION,
            backends: "cpu (host memory)",
            description: "read-only bandwidth: a vectorised sum over N bytes of f32 (N a multiple of 64), verified exactly against a scalar sum; the roof decode's MBU is taken against (decode streams its weights read-only)",
            example: "kernel/read-128M",
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
            description: "forward, cross-entropy, backward, AdamW on a fixed batch of the synthetic Markov corpus; verified against CPU f64 (loss, every gradient); tokens/s, loss. bf16: weight products in bf16 with f32 sums on the CPU executor (version 2), all-bf16 graph on candle",
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
            backends: "cpu, cuda, metal, wgpu (wgpu: weights stored in the format, computed in f32); llamacpp: dense models",
            description: "P-token prompt after D cached tokens, then G greedy tokens with the KV cache, batch B; verified against the CPU f32 model (KL, top-1, max logit diff); tokens/s, TTFT, inter-token latency",
            example: "decode/dense-tiny/q8_0/p16g16",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "prefill/<model>/<format>[/p<P>b<B>d<D>]",
            kind: "prefill",
            version: crate::spec::DECODE_VERSION,
            backends: "cpu, cuda, metal, wgpu (wgpu: weights stored in the format, computed in f32); llamacpp: dense models",
            description: "the prompt phase alone: prefill tokens/s and time to first token",
            example: "prefill/llama-3.2-1b/q4_0/p128",
            harness_test: false,
        },
        CatalogEntry {
            pattern: "decode/gguf/<format as stored>[/p<P>g<G>b<B>d<D>] (and prefill/gguf/…)",
            kind: "decode",
            version: crate::spec::DECODE_VERSION,
            backends: "cpu, cuda, metal, llamacpp",
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
