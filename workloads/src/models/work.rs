//! Analytic work of the model workloads: FLOPs and bytes per timed iteration
//! (the phase the headline measures), and the memory a run needs.

use super::config::ModelConfig;
use crate::spec::{DType, Params, WeightFmt, WorkloadSpec};
use crate::workload::WorkPerIter;

/// Bytes of weights one decode step reads: every active linear weight in the
/// stored format, plus the LM head (the f32 embedding when tied and
/// quantized, since embeddings are not quantized).
pub fn decode_weight_bytes(cfg: &ModelConfig, fmt: WeightFmt) -> f64 {
    let head = (cfg.vocab * cfg.d_model) as f64;
    let linear = cfg.active_param_count() as f64 - head;
    let head_bpw = if cfg.tied_embeddings && matches!(fmt, WeightFmt::Q8_0 | WeightFmt::Q4_0) {
        4.0
    } else {
        fmt.bytes_per_weight()
    };
    linear * fmt.bytes_per_weight() + head * head_bpw
}

/// Activation bytes per element in a format (quantized runs compute in f32).
pub fn act_bytes(fmt: WeightFmt) -> f64 {
    match fmt {
        WeightFmt::F16 | WeightFmt::Bf16 => 2.0,
        _ => 4.0,
    }
}

/// Work of the timed phase of a model workload.
pub fn of(spec: &WorkloadSpec) -> WorkPerIter {
    match &spec.params {
        Params::Train {
            model, batch, seq, ..
        } => {
            let cfg = super::shape(model).expect("validated model name");
            // Backward ≈ 2× forward (Kaplan et al. 2020 §2.1): 3× in all.
            let fwd: f64 = (1..=*seq).map(|ctx| cfg.forward_flops_per_token(ctx)).sum();
            let tokens = (*batch * *seq) as f64;
            WorkPerIter {
                flops: 3.0 * *batch as f64 * fwd,
                // f32 master weights: read in forward and backward, gradient
                // written, AdamW reads p, g, m, v and writes p, m, v.
                bytes: cfg.param_count() as f64 * 4.0 * 9.0,
                headline_metric: "tokens_per_s",
                headline_per_iter: tokens,
                tokens: Some(tokens),
                steps: Some(1.0),
            }
        }
        Params::Decode { model, format, .. } => match super::shape(model) {
            Some(cfg) => decode_work(spec, &cfg, decode_weight_bytes(&cfg, *format)),
            // A GGUF file's work is known once the file is read (the worker
            // reports it); from the name alone it is unknown.
            None => WorkPerIter {
                flops: 0.0,
                bytes: 0.0,
                headline_metric: "tokens_per_s",
                headline_per_iter: 0.0,
                tokens: None,
                steps: None,
            },
        },
        Params::TrainQuality {
            model,
            steps,
            batch,
            seq,
            dtype,
        } => {
            let step = of(&WorkloadSpec {
                params: Params::Train {
                    model: model.clone(),
                    dtype: *dtype,
                    batch: *batch,
                    seq: *seq,
                },
                ..spec.clone()
            });
            let s = *steps as f64;
            WorkPerIter {
                flops: step.flops * s,
                bytes: step.bytes * s,
                headline_metric: "tokens_per_s",
                headline_per_iter: step.headline_per_iter * s,
                tokens: step.tokens.map(|t| t * s),
                steps: Some(s),
            }
        }
        _ => unreachable!("models::work::of called for {}", spec.name),
    }
}

/// Work of a decode or prefill workload on model `cfg` whose weights read
/// per forward pass are `weight_bytes`.
pub fn decode_work(spec: &WorkloadSpec, cfg: &ModelConfig, weight_bytes: f64) -> WorkPerIter {
    let Params::Decode {
        format,
        prompt,
        gen_tokens,
        batch,
        depth,
        ..
    } = &spec.params
    else {
        unreachable!("models::work::decode_work called for {}", spec.name)
    };
    let b = *batch as f64;
    let kv_token_bytes = cfg.kv_elems_per_token() as f64 * act_bytes(*format);
    if *gen_tokens == 0 {
        // Prefill: the prompt in one pass over the weights.
        let flops: f64 = (1..=*prompt)
            .map(|i| cfg.forward_flops_per_token(depth + i))
            .sum();
        WorkPerIter {
            flops: b * flops,
            bytes: weight_bytes + b * kv_token_bytes * (*depth + *prompt) as f64,
            headline_metric: "prefill_tokens_per_s",
            headline_per_iter: b * *prompt as f64,
            tokens: Some(b * *prompt as f64),
            steps: None,
        }
    } else {
        // Generation: each step reads the weights once for the batch
        // and each sequence's whole KV cache.
        let ctx0 = depth + prompt;
        let flops: f64 = (1..=*gen_tokens)
            .map(|g| cfg.forward_flops_per_token(ctx0 + g))
            .sum();
        let kv: f64 = (1..=*gen_tokens)
            .map(|g| kv_token_bytes * (ctx0 + g) as f64)
            .sum();
        WorkPerIter {
            flops: b * flops,
            bytes: *gen_tokens as f64 * weight_bytes + b * kv,
            headline_metric: "tokens_per_s",
            headline_per_iter: b * *gen_tokens as f64,
            tokens: Some(b * *gen_tokens as f64),
            steps: None,
        }
    }
}

/// Activation floats the autograd graph holds per token in layer `l` at
/// T tokens of context: candle keeps every op's output, and the model's
/// norms, RoPE, softmax and SwiGLU are composites of several ops. Counted
/// per op output — ~25 d-sized tensors (two norms of 5 ops, projections,
/// RoPE of q and k, residuals), 6 of the (H × T) attention rows (scores,
/// scale, mask, max, exp, normalise) and 5 FFN-wide ones (gate, up, sigmoid,
/// SiLU, product) — then × `TRAIN_ACT_FACTOR` for the activation gradients
/// alive at the peak of backward.
/// Bytes per parameter a training step holds at its peak: f32 weights,
/// gradients and two AdamW moments (16), plus 3 for the update's
/// temporaries. This and `TRAIN_ACT_FACTOR` were fitted to the counting
/// allocator's peaks of train-step/dense-small/f32 at b1t32 (640 MB, weights
/// dominate) and b4t128 (1147 MB, activations ~40 %).
const TRAIN_BYTES_PER_PARAM: f64 = 19.0;
const TRAIN_ACT_FACTOR: f64 = 1.14;

fn train_act_floats_per_token_layer(cfg: &ModelConfig, l: usize, seq: usize) -> f64 {
    let ld = cfg.layer(l);
    let ffn = match (ld.moe, cfg.moe) {
        // Routed experts see top_k of the tokens, shared ones all of them.
        (true, Some(m)) => m.expert_ffn * (m.top_k + m.shared),
        _ => ld.ffn,
    };
    let per_op = 25.0 * cfg.d_model as f64 + 6.0 * (ld.n_heads * seq) as f64 + 5.0 * ffn as f64;
    TRAIN_ACT_FACTOR * per_op
}

/// Predicted bytes a run of this workload holds at its peak, the larger of
/// two phases:
/// - preparing: the weights built so far plus the f32 tensor being
///   converted (generated in f32, then cast or quantized; q4_0 also copies
///   it to host once more);
/// - running: weights in their format (embeddings f32 for quantized
///   formats, else in the activation dtype), the KV cache at the run's
///   context, the prompt's logits; training holds f32 weights, gradients,
///   two AdamW moments and the update's temporaries (19 bytes per
///   parameter), the graph's activations and the logits with their softmax
///   and gradient.
///
/// Checked against the counting allocator's peak (`peak_alloc_workload_bytes`)
/// in harness/tests/caps_cli.rs; used by `list workloads` and by `fits / does
/// not fit` under a memory cap.
pub fn memory_need_bytes(spec: &WorkloadSpec) -> Option<f64> {
    match &spec.params {
        Params::Train {
            model,
            dtype,
            batch,
            seq,
        }
        | Params::TrainQuality {
            model,
            dtype,
            batch,
            seq,
            ..
        } => {
            let cfg = super::shape(model)?;
            let p = cfg.param_count() as f64;
            let act = if *dtype == DType::Bf16 { 2.0 } else { 4.0 };
            let tokens = (*batch * *seq) as f64;
            let acts: f64 = (0..cfg.n_layers)
                .map(|l| train_act_floats_per_token_layer(&cfg, l, *seq))
                .sum::<f64>()
                * tokens
                * act;
            let logits = tokens * cfg.vocab as f64 * 4.0 * 3.0;
            Some(p * TRAIN_BYTES_PER_PARAM + acts + logits)
        }
        Params::Decode {
            model,
            format,
            prompt,
            gen_tokens,
            batch,
            depth,
        } => {
            let cfg = super::shape(model)?;
            let embed = (cfg.vocab * cfg.d_model) as f64;
            let embed_bytes = match format {
                WeightFmt::Q8_0 | WeightFmt::Q4_0 => 4.0,
                f => act_bytes(*f),
            };
            let weights = (cfg.param_count() as f64 - embed) * format.bytes_per_weight()
                + embed * embed_bytes;
            // The largest linear weight: the LM head (untied) or an FFN matrix.
            let largest = (0..cfg.n_layers)
                .map(|l| (cfg.layer(l).ffn * cfg.d_model) as f64)
                .fold(if cfg.tied_embeddings { 0.0 } else { embed }, f64::max);
            // f32 copies of it alive while it is converted: the generated
            // tensor, plus for q8_0 one row block's host copy at a time
            // (half of it at 2 threads) and for q4_0 a whole host copy.
            let copies = match format {
                WeightFmt::F32 => 0.0,
                WeightFmt::F16 | WeightFmt::Bf16 => 1.0,
                WeightFmt::Q8_0 => 1.5,
                WeightFmt::Q4_0 => 2.0,
            };
            let preparing = weights + largest * 4.0 * copies;
            let ctx = (depth + prompt + gen_tokens) as f64;
            let kv = *batch as f64 * ctx * cfg.kv_elems_per_token() as f64 * act_bytes(*format);
            let logits = (*batch * *prompt * cfg.vocab) as f64 * 4.0;
            Some(preparing.max(weights + kv + logits))
        }
        _ => None,
    }
}
