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

/// Predicted bytes a run of this workload holds at its peak: weights in
/// their format, KV cache, activations; training adds f32 gradients and two
/// AdamW moments. Used to list shapes that cannot run here and by caps.
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
            // Per token and layer, the autograd graph keeps roughly the
            // residual stream, attention/FFN inputs and outputs: ~16·d plus
            // the (H × T) attention probabilities.
            let per_token_layer = 16.0 * cfg.d_model as f64 + 2.0 * (cfg.n_heads * seq) as f64;
            let acts = (*batch * *seq) as f64 * cfg.n_layers as f64 * per_token_layer * act;
            let logits = (*batch * *seq * cfg.vocab) as f64 * 4.0 * 3.0;
            Some(p * 4.0 * 4.0 + acts + logits)
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
            let weights = (cfg.param_count() - cfg.vocab * cfg.d_model) as f64
                * format.bytes_per_weight()
                + (cfg.vocab * cfg.d_model) as f64 * 4.0;
            let ctx = (depth + prompt + gen_tokens) as f64;
            let kv = *batch as f64 * ctx * cfg.kv_elems_per_token() as f64 * act_bytes(*format);
            let logits = (*batch * *prompt * cfg.vocab) as f64 * 4.0;
            Some(weights + kv + logits)
        }
        _ => None,
    }
}
