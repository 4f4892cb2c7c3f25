//! Analytic work of the model workloads: FLOPs and bytes per timed iteration
//! (the phase the headline measures), and the memory a run needs.

use crate::api::WorkPerIter;
use crate::models::config::{ModelConfig, MoeDims, shape};
use crate::spec::{DType, Params, WeightFmt, WorkloadSpec};

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
            let cfg = shape(model).expect("validated model name");
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
        Params::Decode { model, format, .. } => match shape(model) {
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
        _ => unreachable!("cost::work::of called for {}", spec.name),
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
        unreachable!("cost::work::decode_work called for {}", spec.name)
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

/// Bytes per parameter a training step holds: f32 weights, gradients and
/// two AdamW moments (16), plus 3 for the update's temporaries (m, v and
/// the update of one tensor at a time, gradient-sized on the largest).
const TRAIN_BYTES_PER_PARAM: f64 = 19.0;
/// Per token and layer the autograd graph keeps every op's output: ~25
/// d-sized tensors (two norms of 5 ops, projections, RoPE of q and k,
/// residuals) and 5 FFN-wide ones (gate, up, sigmoid, SiLU, product); at
/// the peak of backward their gradients add a quarter again.
const TRAIN_D_TENSORS: f64 = 34.0;
const TRAIN_FFN_TENSORS: f64 = 3.0;
/// A MoE layer adds d-wide tensors per token to the graph: the zeroed
/// output and one `index_add` result per expert (routed and shared), the
/// gate-weighted output of each of the token's top-k experts, the rows
/// gathered for its top-k experts, and each expert's output before
/// weighting (top-k routed and the shared ones).
fn moe_extra_d_tensors(m: &MoeDims) -> f64 {
    (m.routed + m.shared + 1 + m.top_k) as f64 + (2 * m.top_k + m.shared) as f64
}
/// Per (head, query, key) of each layer: 6 forward tensors (scores, scale,
/// mask, shifted, exp, normalised) and ~5.5 of their gradients.
const TRAIN_SCORE_TENSORS: f64 = 11.5;
/// Per token, vocab-wide f32 tensors of the loss: logits, log-softmax's
/// shifted, exp and output, and the gradients of three of them.
const TRAIN_VOCAB_TENSORS: f64 = 6.0;
/// The forward alone (the quality run's held-out evaluation keeps its graph
/// until the logits are detached) holds the forward share of the above.
const FORWARD_SHARE: f64 = 0.63;
/// Inference: at a layer's softmax, three (B, H, T, S) score tensors are
/// alive (the masked scores, exp, normalised), with the residual, the
/// normed input, q and the attention output (4 d-sized per token).
const INFER_SCORE_TENSORS: f64 = 3.0;
const INFER_D_TENSORS: f64 = 4.0;
const INFER_FFN_TENSORS: f64 = 4.0;

/// The MoE dispatch tensors of `graph_activation_bytes` alone: all of them
/// are forward outputs, so a forward-only graph keeps them whole.
fn moe_dispatch_bytes(cfg: &ModelConfig, batch: usize, seq: usize, act: f64) -> f64 {
    let tokens = (batch * seq) as f64;
    (0..cfg.n_layers)
        .filter_map(|l| match (cfg.layer(l).moe, cfg.moe) {
            (true, Some(m)) => Some(tokens * moe_extra_d_tensors(&m) * cfg.d_model as f64 * act),
            _ => None,
        })
        .sum()
}

/// Bytes of the CPU training executor's buffers (backend/cpu/train.rs):
/// every activation it keeps, the backward's scratch and the logits.
fn executor_buffer_bytes(cfg: &ModelConfig, b: usize, t: usize) -> f64 {
    let (c, n, hd) = (cfg.d_model, b * t, cfg.head_dim);
    let layers: usize = (0..cfg.n_layers)
        .map(|l| {
            let ld = cfg.layer(l);
            let (q, kv) = (ld.n_heads * hd, ld.n_kv_heads * hd);
            let acts = n * (4 * c + 2 * q + 2 * kv + 3 * ld.ffn + 2) + b * ld.n_heads * t * t;
            let scratch = b * t * (q + 2 * kv) + b * ld.n_kv_heads * t * t;
            acts + scratch
        })
        .sum();
    let max = |f: &dyn Fn(usize) -> usize| (0..cfg.n_layers).map(f).max().unwrap_or(0);
    let heads = max(&|l| cfg.layer(l).n_heads);
    let kv = max(&|l| cfg.layer(l).n_kv_heads);
    let ffn = max(&|l| cfg.layer(l).ffn);
    let shared = (cfg.n_layers + 1) * n * c // the residual stream per layer
        + n * (c + 1) + n * cfg.vocab // final norm, logits
        + b * heads * t * hd // attention output per head
        + n * (2 * c + ffn + 2 * heads * hd + 2 * kv * hd) // backward buffers
        + t * hd; // RoPE tables
    4.0 * (layers + shared) as f64
}

/// The bf16 products' operand scratch (`models::bgemm`) over a step of
/// `n` tokens: the largest a and the largest b of its weight products,
/// each forward, backward-to-input and backward-to-weight.
fn bf16_scratch_bytes(cfg: &ModelConfig, n: usize) -> f64 {
    let (c, hd) = (cfg.d_model, cfg.head_dim);
    let mut linears = vec![(c, cfg.vocab)];
    for l in 0..cfg.n_layers {
        let ld = cfg.layer(l);
        let (q, kv) = (ld.n_heads * hd, ld.n_kv_heads * hd);
        linears.extend([(c, q), (c, kv), (q, c), (c, ld.ffn), (ld.ffn, c)]);
    }
    let (mut a, mut b) = (0, 0);
    for (inp, out) in linears {
        for (m, nn, k) in [(n, out, inp), (n, inp, out), (out, inp, n)] {
            let (sa, sb) = crate::models::bgemm::scratch_bytes(m, nn, k);
            (a, b) = (a.max(sa), b.max(sb));
        }
    }
    (a + b) as f64
}

/// Token-proportional activation bytes the graph keeps for `tokens` tokens
/// of `seq` (B·T) in dtype bytes `act`, plus the score tensors.
fn graph_activation_bytes(cfg: &ModelConfig, batch: usize, seq: usize, act: f64) -> f64 {
    let tokens = (batch * seq) as f64;
    (0..cfg.n_layers)
        .map(|l| {
            let ld = cfg.layer(l);
            let ffn = match (ld.moe, cfg.moe) {
                // Routed experts see top_k of the tokens, shared ones all of them.
                (true, Some(m)) => m.expert_ffn * (m.top_k + m.shared),
                _ => ld.ffn,
            };
            let moe = match (ld.moe, cfg.moe) {
                (true, Some(m)) => moe_extra_d_tensors(&m),
                _ => 0.0,
            };
            let per_token =
                (TRAIN_D_TENSORS + moe) * cfg.d_model as f64 + TRAIN_FFN_TENSORS * ffn as f64;
            let scores = TRAIN_SCORE_TENSORS * (batch * ld.n_heads * seq * seq) as f64;
            (tokens * per_token + scores) * act
        })
        .sum::<f64>()
        + tokens * cfg.vocab as f64 * 4.0 * TRAIN_VOCAB_TENSORS
}

/// Bytes of the q4_0 linear weights as capbench's CPU kernel stores them:
/// each row padded to groups of 16 blocks of 32 (288 bytes a group: 16·16
/// nibble bytes + 16 f16 scales), so a 64-wide row takes a whole group.
/// MLA and MoE layers are counted by the same rule over their matrices.
/// q8_0 (`models::q8`) pads the same way, 544 bytes a group (16·32 + 32).
fn q4_weight_bytes(cfg: &ModelConfig, group_bytes: f64) -> f64 {
    let row = |cols: usize| cols.div_ceil(512) as f64 * group_bytes;
    let lin = |cols: usize, rows: usize| rows as f64 * row(cols);
    let d = cfg.d_model;
    let layers: f64 = (0..cfg.n_layers)
        .map(|l| {
            let ld = cfg.layer(l);
            let attn = match cfg.mla {
                Some(m) => {
                    let h = ld.n_heads;
                    lin(d, h * (m.nope_dim + m.rope_dim))
                        + lin(d, m.kv_lora_rank)
                        + lin(d, m.rope_dim)
                        + lin(m.kv_lora_rank, h * (m.nope_dim + m.v_dim))
                        + lin(h * m.v_dim, d)
                        + m.kv_lora_rank as f64 * 4.0
                }
                None => {
                    let hd = cfg.head_dim;
                    lin(d, (ld.n_heads + 2 * ld.n_kv_heads) * hd) + lin(ld.n_heads * hd, d)
                }
            };
            let ffn = match (ld.moe, cfg.moe) {
                (true, Some(m)) => {
                    (m.routed + m.shared) as f64 * (lin(d, 2 * m.expert_ffn) + lin(m.expert_ffn, d))
                        + lin(d, m.routed)
                }
                _ => lin(d, 2 * ld.ffn) + lin(ld.ffn, d),
            };
            attn + ffn + 2.0 * d as f64 * 4.0
        })
        .sum();
    let head = if cfg.tied_embeddings {
        0.0
    } else {
        lin(d, cfg.vocab)
    };
    layers + head + d as f64 * 4.0
}

/// The largest linear layer's (in, out): the LM head or an FFN matrix.
fn largest_linear(cfg: &ModelConfig) -> (usize, usize) {
    let ffn = (0..cfg.n_layers)
        .map(|l| cfg.layer(l).ffn)
        .max()
        .unwrap_or(0);
    (cfg.d_model, cfg.vocab.max(ffn))
}

/// GEMM slabs of a training step over `tokens`: small products run on the
/// calling thread; the pool joins once the forward (N·d·out), the input
/// gradient (N·out·d) or the weight gradient (out·N·d) is large enough.
fn train_slabs(cfg: &ModelConfig, tokens: usize) -> f64 {
    use super::memory::{gemm_parallel, gemm_slabs};
    let (d, out) = largest_linear(cfg);
    let pool = gemm_parallel(tokens, out, d)
        || gemm_parallel(tokens, d, out)
        || gemm_parallel(out, d, tokens);
    gemm_slabs(true, pool)
}

/// A training step's bytes (weights, gradients, moments and the graph's
/// activations) with what they come from: (config, parameters, bytes per
/// activation, step bytes). Train and TrainQuality both need them.
fn train_step_bytes(
    model: &str,
    dtype: DType,
    batch: usize,
    seq: usize,
) -> Option<(ModelConfig, f64, f64, f64)> {
    let cfg = shape(model)?;
    let p = cfg.param_count() as f64;
    let act = if dtype == DType::Bf16 { 2.0 } else { 4.0 };
    let step = p * TRAIN_BYTES_PER_PARAM + graph_activation_bytes(&cfg, batch, seq, act);
    Some((cfg, p, act, step))
}

/// Predicted bytes a run of this workload holds at its peak (the counting
/// allocator's `peak_alloc_workload_bytes`), the larger of its phases:
/// - training: f32 weights, gradients, two AdamW moments and the update's
///   temporaries (19 bytes a parameter); the graph's activations (per token
///   and layer, per attention score, per vocab entry: counted per op in the
///   constants above); the GEMM packing slabs; for a quality run, the
///   verification step's weights and moments kept beside a fresh model's,
///   and the held-out evaluation's forward graph (16 sequences);
/// - preparing a decode: the weights built so far plus the f32 tensor being
///   converted (generated in f32, then cast or quantized; q4_0 also copies
///   it to host once more);
/// - running a decode: weights in their format (embeddings f32 for quantized
///   formats, else in the activation dtype), the KV cache at the run's
///   context twice (the cache and its concatenated successor), the GEMM
///   slab of the calling thread (and the pool's for a large prompt), and
///   the larger of the attention moment (mask, three score tensors, four
///   d-wide tensors per token) and the logits moment of the prompt; for
///   one sequence of a dense GQA model, the fused path's buffers instead
///   (`fused_decode_bytes`).
///
/// Checked against the counting allocator's peak in
/// harness/tests/caps_cli.rs; used by `list workloads` and by `fits / does
/// not fit` under a memory cap.
pub fn memory_need_bytes(spec: &WorkloadSpec) -> Option<f64> {
    use super::memory::{gemm_parallel, gemm_slabs};
    match &spec.params {
        Params::Train {
            model,
            dtype,
            batch,
            seq,
        } => {
            let (cfg, p, _, step) = train_step_bytes(model, *dtype, *batch, *seq)?;
            let slabs = train_slabs(&cfg, batch * seq);
            if cfg.mla.is_none() && cfg.moe.is_none() {
                // capbench's CPU executor (backend/cpu): f32 weights,
                // gradients and two moments (16 B/param) and its buffers;
                // while preparing, candle's initial weights (4 B/param)
                // are alive beside them, while stepping the GEMM slabs —
                // for bf16 the bf16 products' operand scratch as well.
                let mut bufs = executor_buffer_bytes(&cfg, *batch, *seq);
                if *dtype == DType::Bf16 {
                    bufs += bf16_scratch_bytes(&cfg, batch * seq);
                }
                return Some((p * 20.0).max(p * 16.0 + slabs) + bufs);
            }
            Some(step + slabs)
        }
        Params::TrainQuality {
            model,
            dtype,
            batch,
            seq,
            ..
        } => {
            let (cfg, p, act, step) = train_step_bytes(model, *dtype, *batch, *seq)?;
            let eval = crate::spec::EVAL_SEQUENCES;
            // The verification step's weights and moments (12 B/param) stay
            // alive beside each run's fresh model.
            let check = p * 12.0;
            let evaluation = p * 12.0
                + FORWARD_SHARE * graph_activation_bytes(&cfg, eval, *seq, act)
                + (1.0 - FORWARD_SHARE) * moe_dispatch_bytes(&cfg, eval, *seq, act);
            let slabs = train_slabs(&cfg, batch * seq).max(train_slabs(&cfg, eval * seq));
            Some(check + step.max(evaluation) + slabs)
        }
        Params::Decode {
            model,
            format,
            prompt,
            gen_tokens,
            batch,
            depth,
        } => {
            let cfg = shape(model)?;
            let embed = (cfg.vocab * cfg.d_model) as f64;
            let embed_bytes = match format {
                WeightFmt::Q8_0 | WeightFmt::Q4_0 => 4.0,
                f => act_bytes(*f),
            };
            let weights = match format {
                WeightFmt::Q4_0 => q4_weight_bytes(&cfg, 288.0),
                WeightFmt::Q8_0 => q4_weight_bytes(&cfg, 544.0),
                _ => (cfg.param_count() as f64 - embed) * format.bytes_per_weight(),
            } + embed * embed_bytes;
            // The largest linear weight: the LM head (untied) or an FFN matrix.
            let largest = (0..cfg.n_layers)
                .map(|l| (cfg.layer(l).ffn * cfg.d_model) as f64)
                .fold(if cfg.tied_embeddings { 0.0 } else { embed }, f64::max);
            // f32 copies of it alive while it is converted: the generated
            // tensor, plus for q8_0 and q4_0 a whole host copy.
            let copies = match format {
                WeightFmt::F32 => 0.0,
                WeightFmt::F16 | WeightFmt::Bf16 => 1.0,
                WeightFmt::Q8_0 | WeightFmt::Q4_0 => 2.0,
            };
            let preparing = weights + largest * 4.0 * copies;
            // q8_0 on the CPU runs on `models::q8`, not candle's QMatMul:
            // no repacked second copy.
            let repack = 0.0;
            let a = act_bytes(*format);
            let widest_ffn = (0..cfg.n_layers)
                .map(|l| {
                    let ld = cfg.layer(l);
                    match (ld.moe, cfg.moe) {
                        (true, Some(m)) => m.expert_ffn * (m.top_k + m.shared),
                        _ => ld.ffn,
                    }
                })
                .max()?;
            let b = *batch;
            let heads = (0..cfg.n_layers).map(|l| cfg.layer(l).n_heads).max()?;
            let kv_tok = cfg.kv_elems_per_token() as f64 * a;
            // A forward of T new tokens after `past` cached ones.
            let moment = |t: usize, past: usize| -> f64 {
                let (tf, s) = (t as f64, (past + t) as f64);
                let attention = tf * s * a
                    + INFER_SCORE_TENSORS * (b * heads) as f64 * tf * s * a
                    + INFER_D_TENSORS * (b * t * cfg.d_model) as f64 * a;
                let ffn = (b * t) as f64
                    * (2.0 * cfg.d_model as f64 + INFER_FFN_TENSORS * widest_ffn as f64)
                    * a;
                let logits = (b * t * cfg.vocab) as f64 * 4.0 + (b * t * cfg.d_model) as f64 * a;
                let (d, out) = largest_linear(&cfg);
                let slabs = gemm_slabs(true, gemm_parallel(b * t, out, d));
                // Half-precision products on the CPU (cost::memory's GEMM
                // rule): f16 widens the weight (the right-hand side) to f32
                // for the largest product; bf16 also converts the input and
                // the result.
                let m = (b * t) as f64;
                let half = match format {
                    WeightFmt::F16 => (d * out) as f64 * 4.0,
                    WeightFmt::Bf16 => ((d * out) as f64 + m * (d + out) as f64) * 4.0,
                    _ => 0.0,
                };
                // The cache before this forward and its extension.
                let kv = b as f64 * kv_tok * (past as f64 + s);
                attention.max(logits).max(ffn) + slabs + half + kv
            };
            let ctx0 = depth + prompt;
            let prepare = if *depth > 0 {
                preparing.max(weights + repack + moment(*depth, 0))
            } else {
                preparing
            };
            // The depth cache (cloned per iteration) stays beside the run's.
            let depth_cache = b as f64 * kv_tok * *depth as f64;
            let prefill = moment(*prompt, *depth);
            let last_step = if *gen_tokens > 0 {
                moment(1, ctx0 + gen_tokens - 1)
            } else {
                0.0
            };
            // One sequence of a dense GQA model runs the fused path
            // (`models::fused`) instead of candle's forward.
            let fused =
                *batch == 1 && cfg.mla.is_none() && (0..cfg.n_layers).all(|l| !cfg.layer(l).moe);
            let run = if fused {
                fused_decode_bytes(&cfg, *prompt, ctx0 + gen_tokens)
            } else {
                prefill.max(last_step)
            };
            Some(prepare.max(weights + repack + depth_cache + run))
        }
        _ => None,
    }
}

/// What the fused path (`models::fused`, one sequence) holds beside the
/// weights while it runs `prompt` tokens and steps up to `cap` positions:
/// its f32 KV cache of `cap` positions, the step's vectors, the prefill
/// block's rows (up to `BLOCK_TOKENS` tokens) with their q8_0 copy, one
/// attention-score block per pool thread, and GEMM slabs on the calling
/// thread (float weights) and on every pool thread (attention per head).
fn fused_decode_bytes(cfg: &ModelConfig, prompt: usize, cap: usize) -> f64 {
    use super::memory::{gemm_pool_threads, gemm_slabs};
    let (c, hd) = (cfg.d_model as f64, cfg.head_dim as f64);
    let max = |f: fn(&crate::models::config::LayerDims) -> usize| {
        (0..cfg.n_layers)
            .map(|l| f(&cfg.layer(l)))
            .max()
            .unwrap_or(0) as f64
    };
    let (heads, kv, ffn) = (max(|d| d.n_heads), max(|d| d.n_kv_heads), max(|d| d.ffn));
    let capf = cap as f64;
    let cache = cfg.kv_elems_per_token() as f64 * capf * 4.0;
    let step = (2.0 * c + 2.0 * heads * hd + 2.0 * kv * hd + 2.0 * ffn + heads * capf) * 4.0
        + cfg.vocab as f64 * 4.0
        + hd / 2.0 * 8.0;
    let t = prompt.min(crate::models::fused::BLOCK_TOKENS) as f64;
    let block = t * (2.0 * c + 3.0 * heads * hd + 2.0 * kv * hd + 2.0 * ffn) * 4.0
        + t * hd / 2.0 * 8.0
        + t * c.max(ffn).max(heads * hd) * 34.0 / 32.0;
    let scores = gemm_pool_threads() * t * capf * 4.0;
    cache + step + block + scores + gemm_slabs(true, true)
}
