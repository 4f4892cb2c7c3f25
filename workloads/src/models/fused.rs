//! The decode step of one sequence on the CPU, written out op by op over
//! preallocated f32 buffers: RMSNorm, the weight matrices through our own
//! matrix-vector kernels (`matvec`, `q4`), RoPE, attention over a KV cache
//! of fixed capacity, SwiGLU. candle's path spent ~37 of 84 ms of a q4_0
//! token on the 1.1B shape outside the weight matrices: dozens of small
//! tensor ops per layer, each allocating its output.
//!
//! The math is the model's (`model.rs`), with activations held in f32 —
//! for f16/bf16 weights candle's path rounds every activation to the weight
//! type, so the numbers move toward the f32 reference. Only the dense GQA
//! families run here (dense, openelm); MLA and MoE keep candle's path.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

mod lin;
mod prefill;
use lin::{lin_matvec, lin_matvec_many, with_weights};
pub use prefill::BLOCK_TOKENS;

use super::matvec::{Weights, dot, matvec};
use super::model::{Attn, Cache, Ffn, LayerCache, Model};

/// One layer's dimensions and its norms widened to f32 once.
struct LayerPlan {
    n_heads: usize,
    n_kv: usize,
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
}

/// A model prepared for fused decoding (a cheap clone of its tensors).
pub struct FusedDecoder {
    model: Model,
    /// Attention runs its heads on threads from this many multiply-adds
    /// (context × heads × head_dim) up; below, rayon's cost exceeds the work.
    par_attention_from: usize,
    /// Prompt tokens per prefill block (`prefill::BLOCK_TOKENS`; tests
    /// shrink it to cross block boundaries).
    block_tokens: usize,
    layers: Vec<LayerPlan>,
    final_norm: Vec<f32>,
}

/// The sequence's KV cache (per layer (n_kv, cap, head_dim) keys and
/// values) and every scratch buffer one step needs.
pub struct FusedState {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pub len: usize,
    cap: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    kn: Vec<f32>,
    vn: Vec<f32>,
    att: Vec<f32>,
    scores: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    rope: Vec<(f32, f32)>,
    pub logits: Vec<f32>,
    /// The prompt's buffers (`prefill`), empty until it runs.
    block: prefill::BlockScratch,
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// RMSNorm in f32: x / sqrt(mean(x²) + eps) · w.
fn rms_norm(x: &[f32], w: &[f32], eps: f64, out: &mut [f32]) {
    let ms = dot(x, x) / x.len() as f32;
    let inv = 1.0 / (ms + eps as f32).sqrt();
    for ((o, v), g) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

/// RoPE of one head vector in place, with (cos, sin) per frequency.
fn rope(x: &mut [f32], cs: &[(f32, f32)], interleaved: bool) {
    let half = x.len() / 2;
    for (i, (c, s)) in cs.iter().enumerate().take(half) {
        let (a, b) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + half)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

/// One query head over `len` cached positions of its KV head.
fn attend_head(q: &[f32], k: &[f32], v: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    let mut max = f32::NEG_INFINITY;
    for (s, kr) in scores.iter_mut().zip(k.chunks_exact(hd)) {
        *s = dot(q, kr) * scale;
        max = max.max(*s);
    }
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    out.fill(0.0);
    for (p, vr) in scores.iter().zip(v.chunks_exact(hd)) {
        let p = p / sum;
        for (o, x) in out.iter_mut().zip(vr) {
            *o += p * x;
        }
    }
}

fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

impl FusedDecoder {
    /// `None` unless the model runs on the CPU in f32/f16/bf16 activations
    /// with GQA attention and dense FFNs in every layer.
    pub fn new(model: &Model) -> Result<Option<FusedDecoder>> {
        let ok_dtype = matches!(model.dtype, DType::F32 | DType::F16 | DType::BF16);
        let dense = model
            .layers
            .iter()
            .all(|l| matches!(l.attn, Attn::Gqa { .. }) && matches!(l.ffn, Ffn::Dense(_)));
        if !model.device.is_cpu() || !ok_dtype || !dense {
            return Ok(None);
        }
        let layers = model
            .layers
            .iter()
            .map(|l| {
                let (n_heads, n_kv) = match &l.attn {
                    Attn::Gqa { n_heads, n_kv, .. } => (*n_heads, *n_kv),
                    Attn::Mla { .. } => unreachable!("checked above"),
                };
                Ok(LayerPlan {
                    n_heads,
                    n_kv,
                    attn_norm: host_f32(&l.attn_norm)?,
                    ffn_norm: host_f32(&l.ffn_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(FusedDecoder {
            model: model.clone(),
            par_attention_from: 1 << 17,
            block_tokens: prefill::BLOCK_TOKENS,
            layers,
            final_norm: host_f32(&model.final_norm)?,
        }))
    }

    /// A state holding `cache` (one sequence, from candle's path: the
    /// prompt) with room for `cap` positions in all.
    pub fn start(&self, cache: &Cache, cap: usize) -> Result<FusedState> {
        let cfg = &self.model.cfg;
        let hd = cfg.head_dim;
        let max_h = self.layers.iter().map(|l| l.n_heads).max().unwrap_or(0);
        let max_kv = self.layers.iter().map(|l| l.n_kv).max().unwrap_or(0);
        let max_ffn = (0..cfg.n_layers)
            .map(|l| cfg.layer(l).ffn)
            .max()
            .unwrap_or(0);
        let cap = cap.max(cache.len);
        let mut st = FusedState {
            k: Vec::with_capacity(self.layers.len()),
            v: Vec::with_capacity(self.layers.len()),
            len: cache.len,
            cap,
            x: vec![0.0; cfg.d_model],
            h: vec![0.0; cfg.d_model],
            q: vec![0.0; max_h * hd],
            kn: vec![0.0; max_kv * hd],
            vn: vec![0.0; max_kv * hd],
            att: vec![0.0; max_h * hd],
            scores: vec![0.0; max_h * cap],
            gate: vec![0.0; max_ffn],
            up: vec![0.0; max_ffn],
            rope: vec![(1.0, 0.0); hd / 2],
            logits: vec![0.0; cfg.vocab],
            block: Default::default(),
        };
        for (plan, lc) in self.layers.iter().zip(&cache.layers) {
            let mut k = vec![0.0; plan.n_kv * cap * hd];
            let mut v = vec![0.0; plan.n_kv * cap * hd];
            match lc {
                LayerCache::Kv { k: ck, v: cv } => {
                    // (1, n_kv, S, hd) → head-major rows of `cap` positions.
                    let s = ck.dim(2)?;
                    let (hk, hv) = (host_f32(ck)?, host_f32(cv)?);
                    let n = s * hd;
                    for h in 0..plan.n_kv {
                        k[h * cap * hd..][..n].copy_from_slice(&hk[h * n..][..n]);
                        v[h * cap * hd..][..n].copy_from_slice(&hv[h * n..][..n]);
                    }
                }
                LayerCache::Empty => {}
                LayerCache::Latent { .. } => {
                    return Err(candle_core::Error::Msg(
                        "fused decode: a latent cache on a GQA model".into(),
                    ));
                }
            }
            st.k.push(k);
            st.v.push(v);
        }
        Ok(st)
    }

    /// Runs `token` at position `st.len` and leaves its logits in
    /// `st.logits`.
    pub fn step(&self, st: &mut FusedState, token: u32) -> Result<()> {
        let cfg = &self.model.cfg;
        if st.len >= st.cap {
            return Err(candle_core::Error::Msg(format!(
                "fused decode: cache of {} positions is full",
                st.cap
            )));
        }
        let (c, hd, pos) = (cfg.d_model, cfg.head_dim, st.len);
        with_weights(&self.model.embed, |w| {
            let r = token as usize * c;
            match w {
                Weights::F16(e) => {
                    st.x.iter_mut()
                        .zip(&e[r..r + c])
                        .for_each(|(x, v)| *x = v.to_f32())
                }
                Weights::Bf16(e) => {
                    st.x.iter_mut()
                        .zip(&e[r..r + c])
                        .for_each(|(x, v)| *x = v.to_f32())
                }
                Weights::F32(e) => st.x.copy_from_slice(&e[r..r + c]),
            }
        })?;
        // The tables of `rope_tables`: angles in f64, rounded to f32.
        for (i, cs) in st.rope.iter_mut().enumerate() {
            let a = pos as f64 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64);
            *cs = (a.cos() as f32, a.sin() as f32);
        }
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        let s = pos + 1;
        for (l, (layer, plan)) in self.model.layers.iter().zip(&self.layers).enumerate() {
            let (Attn::Gqa { wq, wk, wv, wo, .. }, Ffn::Dense(e)) = (&layer.attn, &layer.ffn)
            else {
                unreachable!("checked in new")
            };
            let (nh, nkv) = (plan.n_heads, plan.n_kv);
            let (q, kn, vn) = (
                &mut st.q[..nh * hd],
                &mut st.kn[..nkv * hd],
                &mut st.vn[..nkv * hd],
            );
            rms_norm(&st.x, &plan.attn_norm, cfg.norm_eps, &mut st.h);
            lin_matvec_many(&[wq, wk, wv], &st.h, &mut [&mut *q, &mut *kn, &mut *vn])?;
            for head in q.chunks_exact_mut(hd) {
                rope(head, &st.rope, cfg.rope_interleaved);
            }
            let (kc, vc) = (&mut st.k[l], &mut st.v[l]);
            for (h, (kh, vh)) in kn.chunks_exact_mut(hd).zip(vn.chunks_exact(hd)).enumerate() {
                rope(kh, &st.rope, cfg.rope_interleaved);
                kc[(h * st.cap + pos) * hd..][..hd].copy_from_slice(kh);
                vc[(h * st.cap + pos) * hd..][..hd].copy_from_slice(vh);
            }
            // GQA: query head h reads KV head h / (nh / nkv).
            let (rep, cap) = (nh / nkv, st.cap);
            let (kc, vc, q) = (&st.k[l], &st.v[l], &st.q[..nh * hd]);
            let head = |(h, (out, sc)): (usize, (&mut [f32], &mut [f32]))| {
                let kvh = h / rep;
                let (k, v) = (
                    &kc[kvh * cap * hd..][..s * hd],
                    &vc[kvh * cap * hd..][..s * hd],
                );
                attend_head(&q[h * hd..][..hd], k, v, scale, &mut sc[..s], out);
            };
            let att = &mut st.att[..nh * hd];
            if s * nh * hd >= self.par_attention_from {
                att.par_chunks_mut(hd)
                    .zip(st.scores.par_chunks_mut(cap))
                    .enumerate()
                    .for_each(head);
            } else {
                att.chunks_exact_mut(hd)
                    .zip(st.scores.chunks_exact_mut(cap))
                    .enumerate()
                    .for_each(head);
            }
            lin_matvec(wo, &st.att[..nh * hd], &mut st.h)?;
            st.x.iter_mut().zip(&st.h).for_each(|(x, o)| *x += o);
            rms_norm(&st.x, &plan.ffn_norm, cfg.norm_eps, &mut st.h);
            let f = cfg.layer(l).ffn;
            let gate_up: &mut [&mut [f32]] = &mut [&mut st.gate[..f], &mut st.up[..f]];
            lin_matvec_many(&[&e.gate, &e.up], &st.h, gate_up)?;
            silu_mul(&mut st.gate[..f], &st.up[..f]);
            lin_matvec(&e.down, &st.gate[..f], &mut st.h)?;
            st.x.iter_mut().zip(&st.h).for_each(|(x, o)| *x += o);
        }
        st.len += 1;
        self.logits(st)
    }

    /// The final norm and the LM head of the residual `st.x`.
    fn logits(&self, st: &mut FusedState) -> Result<()> {
        let (cfg, c) = (&self.model.cfg, self.model.cfg.d_model);
        rms_norm(&st.x, &self.final_norm, cfg.norm_eps, &mut st.h);
        match &self.model.lm_head {
            Some(head) => lin_matvec(head, &st.h, &mut st.logits),
            None => with_weights(&self.model.embed, |w| matvec(w, c, &st.h, &mut st.logits)),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::models::{WeightFormat, shape};

    fn tokens(n: usize, vocab: usize) -> Vec<u32> {
        (0..n).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
    }

    /// candle's cached steps after a prompt, and the fused steps after the
    /// same prompt: the logits of each step, and `n` steps of each.
    fn both(m: &Model, par: bool, n: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let dev = Device::Cpu;
        let toks = tokens(5 + n, m.cfg.vocab);
        let mut cache = Cache::new(m.cfg.n_layers);
        let prompt = Tensor::new(&toks[..5], &dev).unwrap().unsqueeze(0).unwrap();
        m.forward(&prompt, Some(&mut cache)).unwrap();
        let mut f = FusedDecoder::new(m).unwrap().expect("a dense GQA model");
        if par {
            f.par_attention_from = 0;
        }
        // Room for exactly the n steps: a full cache is refused after.
        let mut st = f.start(&cache, cache.len + n).unwrap();
        let (mut want, mut got) = (vec![], vec![]);
        for &t in &toks[5..] {
            let x = Tensor::new(&[t], &dev).unwrap().unsqueeze(0).unwrap();
            let l = m.forward(&x, Some(&mut cache)).unwrap();
            want.push(
                l.flatten_all()
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            );
            f.step(&mut st, t).unwrap();
            got.push(st.logits.clone());
        }
        assert_eq!(st.len, cache.len);
        assert!(f.step(&mut st, 0).is_err(), "a full cache is refused");
        (want, got)
    }

    fn max_rel(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        let max = a.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = a.iter().flatten().zip(b.iter().flatten());
        d.map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / max
    }

    /// The fused step gives candle's logits: to f32 rounding where both
    /// hold activations in f32 (f32, q8_0, q4_0), within the half-precision
    /// activations of candle's path for f16/bf16. Both RoPE layouts, the
    /// per-layer head counts of openelm, serial and threaded attention.
    #[test]
    fn fused_steps_match_candle_steps() {
        let mut gguf_like = shape("dense-tiny").unwrap();
        gguf_like.rope_interleaved = true;
        gguf_like.tied_embeddings = false;
        for cfg in [
            shape("dense-tiny").unwrap(),
            shape("openelm-tiny").unwrap(),
            gguf_like,
        ] {
            for (format, tol) in [
                (WeightFormat::Float(DType::F32), 1e-5),
                (WeightFormat::Q8_0, 1e-4),
                (WeightFormat::Q4_0, 1e-4),
                (WeightFormat::Float(DType::F16), 2e-2),
                (WeightFormat::Float(DType::BF16), 1e-1),
            ] {
                let m = Model::generated(&cfg, 7, &Device::Cpu, format).unwrap();
                for par in [false, true] {
                    let (want, got) = both(&m, par, 3);
                    let d = max_rel(&want, &got);
                    assert!(d <= tol, "{} {format:?} par={par}: {d}", cfg.name);
                }
            }
        }
    }

    /// The fused prefill after a context from candle's cache gives
    /// candle's logits for the prompt's last position and leaves the cache
    /// that candle's steps continue from: one block, and blocks of three
    /// (a ragged last block); every format within the step test's bounds.
    #[test]
    fn fused_prefill_matches_candle() {
        let dev = Device::Cpu;
        let mut gguf_like = shape("dense-tiny").unwrap();
        gguf_like.rope_interleaved = true;
        gguf_like.tied_embeddings = false;
        let (depth, prompt, steps) = (3, 7, 2);
        for cfg in [
            shape("dense-tiny").unwrap(),
            shape("openelm-tiny").unwrap(),
            gguf_like,
        ] {
            for (format, tol) in [
                (WeightFormat::Float(DType::F32), 1e-5),
                (WeightFormat::Q8_0, 1e-4),
                (WeightFormat::Q4_0, 1e-4),
                (WeightFormat::Float(DType::F16), 2e-2),
                (WeightFormat::Float(DType::BF16), 1e-1),
            ] {
                let m = Model::generated(&cfg, 7, &dev, format).unwrap();
                let toks = tokens(depth + prompt + steps, m.cfg.vocab);
                let row = |t: &[u32]| Tensor::new(t, &dev).unwrap().unsqueeze(0).unwrap();
                let host = |l: Tensor| -> Vec<f32> {
                    let l = l.squeeze(0).unwrap().to_dtype(DType::F32).unwrap();
                    l.get(l.dim(0).unwrap() - 1).unwrap().to_vec1().unwrap()
                };
                let mut cache = Cache::new(m.cfg.n_layers);
                m.forward(&row(&toks[..depth]), Some(&mut cache)).unwrap();
                let context = cache.clone();
                let mut want = vec![host(
                    m.forward(&row(&toks[depth..depth + prompt]), Some(&mut cache))
                        .unwrap(),
                )];
                for i in depth + prompt..toks.len() {
                    want.push(host(
                        m.forward(&row(&toks[i..=i]), Some(&mut cache)).unwrap(),
                    ));
                }
                for block in [prefill::BLOCK_TOKENS, 3] {
                    let mut f = FusedDecoder::new(&m).unwrap().unwrap();
                    f.block_tokens = block;
                    let mut st = f.start(&context, toks.len()).unwrap();
                    assert!(f.prefill(&mut st, &[]).is_err(), "an empty prompt");
                    f.prefill(&mut st, &toks[depth..depth + prompt]).unwrap();
                    let mut got = vec![st.logits.clone()];
                    for &t in &toks[depth + prompt..] {
                        f.step(&mut st, t).unwrap();
                        got.push(st.logits.clone());
                    }
                    let d = max_rel(&want, &got);
                    assert!(d <= tol, "{} {format:?} block {block}: {d}", cfg.name);
                    let mut st = f.start(&context, depth + prompt - 1).unwrap();
                    let e = f.prefill(&mut st, &toks[depth..depth + prompt]);
                    assert!(e.is_err(), "a prompt past the cache is refused");
                }
            }
        }
    }

    #[test]
    fn refuses_models_it_does_not_run() {
        let cfg = shape("moe-mla-tiny").unwrap();
        let m = Model::generated(&cfg, 1, &Device::Cpu, WeightFormat::Q8_0).unwrap();
        assert!(FusedDecoder::new(&m).unwrap().is_none());
        let cfg = shape("dense-tiny").unwrap();
        let m = Model::generated(&cfg, 1, &Device::Cpu, WeightFormat::Float(DType::F64)).unwrap();
        assert!(FusedDecoder::new(&m).unwrap().is_none());
    }

    #[test]
    fn rope_matches_both_layouts() {
        let cs = [(0.6f32, 0.8f32), (0.0, 1.0)];
        let close = |a: [f32; 4], b: [f32; 4]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6);
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut x, &cs, false); // pairs (0, 2), (1, 3)
        assert!(close(x, [0.6 - 2.4, -4.0, 0.8 + 1.8, 2.0]), "{x:?}");
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut x, &cs, true); // pairs (0, 1), (2, 3)
        assert!(close(x, [0.6 - 1.6, 0.8 + 1.2, -4.0, 3.0]), "{x:?}");
    }
}
