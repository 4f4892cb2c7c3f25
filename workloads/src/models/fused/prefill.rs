//! The prompt of one sequence through the fused path, a block of tokens at
//! a time: the step's math over (tokens, width) rows in preallocated
//! buffers, the weight matrices as GEMMs (`qgemm` over q8_0 activations
//! quantized once per layer input, `fgemm` for float weights), attention
//! over the block and the cache as two `gemm` products per head, heads on
//! rayon. candle's prefill ran the same per-layer glue as dozens of small
//! tensor ops, each allocating, with rayon's workers idle about two thirds
//! of the time (per-op timers, tinyllama-1.1b p128, two threads).

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

use super::{FusedDecoder, FusedState, rms_norm, rope, silu_mul, with_weights};
use crate::models::fgemm;
use crate::models::gemm::{View, matmul};
use crate::models::matvec::Weights;
use crate::models::model::{Attn, Ffn};
use crate::models::ops::Lin;
use crate::models::q4::{ActRows, BLOCK};

/// Prompt tokens per block: bounds the scratch (attention scores are one
/// block × context per head in flight) without shrinking the GEMMs.
pub const BLOCK_TOKENS: usize = 256;

/// The buffers of one block, grown on first use and kept in the state.
#[derive(Default)]
pub(super) struct BlockScratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// Attention output per head, (heads, tokens, head_dim).
    heads: Vec<f32>,
    /// (cos, sin) per token and frequency.
    rope: Vec<(f32, f32)>,
    acts: ActRows,
}

/// A linear layer's input rows; quantized to q8_0 once, on the first
/// q4_0/q8_0 matrix that reads them.
struct Input<'a> {
    x: &'a [f32],
    cols: usize,
    acts: &'a mut ActRows,
    quantized: bool,
}

impl<'a> Input<'a> {
    fn new(x: &'a [f32], cols: usize, acts: &'a mut ActRows) -> Input<'a> {
        Input {
            x,
            cols,
            acts,
            quantized: false,
        }
    }

    fn acts(&mut self) -> &ActRows {
        if !self.quantized {
            self.acts.quantize(self.x, self.cols);
            self.quantized = true;
        }
        self.acts
    }
}

/// out (m, rows) = x (m, cols) · Wᵀ for a linear layer of any storage.
fn lin_block(lin: &Lin, inp: &mut Input, out: &mut [f32]) -> Result<()> {
    let rows = out.len() / (inp.x.len() / inp.cols);
    match lin {
        Lin::Q4(q) if inp.cols.is_multiple_of(BLOCK) => q.matmul_into(inp.acts(), out, rows),
        Lin::Q8(q) if inp.cols.is_multiple_of(BLOCK) => q.matmul_into(inp.acts(), out, rows),
        Lin::Dense(w) => with_weights(w, |w| fgemm::matmul_into(w, inp.cols, inp.x, out, rows))?,
        _ => {
            let m = inp.x.len() / inp.cols;
            let xt = Tensor::from_slice(inp.x, (m, inp.cols), &Device::Cpu)?;
            let y: Vec<f32> = lin.forward(&xt)?.flatten_all()?.to_vec1()?;
            out.copy_from_slice(&y);
        }
    }
    Ok(())
}

/// Rows of `c` at a time: a row's glue is microseconds, so tasks take
/// several.
fn rows_mut(x: &mut [f32], c: usize) -> rayon::iter::MinLen<rayon::slice::ChunksMut<'_, f32>> {
    x.par_chunks_mut(c).with_min_len(8)
}

impl FusedDecoder {
    /// Runs the prompt `tokens` at positions `st.len..` and leaves the last
    /// one's logits in `st.logits`, as that many `step`s would.
    pub fn prefill(&self, st: &mut FusedState, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() || st.len + tokens.len() > st.cap {
            return Err(candle_core::Error::Msg(format!(
                "fused prefill: {} tokens after {} in a cache of {}",
                tokens.len(),
                st.len,
                st.cap
            )));
        }
        let c = self.model.cfg.d_model;
        let n = self.block_tokens;
        for block in tokens.chunks(n) {
            self.block(st, block)?;
        }
        let t = tokens.len() - (tokens.len() - 1) / n * n;
        st.x.copy_from_slice(&st.block.x[(t - 1) * c..t * c]);
        self.logits(st)
    }

    fn block(&self, st: &mut FusedState, tokens: &[u32]) -> Result<()> {
        let cfg = &self.model.cfg;
        let (c, hd, t, pos0) = (cfg.d_model, cfg.head_dim, tokens.len(), st.len);
        let cap = st.cap;
        let max_h = self.layers.iter().map(|l| l.n_heads).max().unwrap_or(0);
        let max_kv = self.layers.iter().map(|l| l.n_kv).max().unwrap_or(0);
        let max_ffn = (0..cfg.n_layers)
            .map(|l| cfg.layer(l).ffn)
            .max()
            .unwrap_or(0);
        let b = &mut st.block;
        for (buf, n) in [
            (&mut b.x, t * c),
            (&mut b.h, t * c),
            (&mut b.q, t * max_h * hd),
            (&mut b.k, t * max_kv * hd),
            (&mut b.v, t * max_kv * hd),
            (&mut b.att, t * max_h * hd),
            (&mut b.gate, t * max_ffn),
            (&mut b.up, t * max_ffn),
            (&mut b.heads, t * max_h * hd),
        ] {
            buf.resize(n, 0.0);
        }
        with_weights(&self.model.embed, |w| {
            for (x, &tok) in b.x.chunks_exact_mut(c).zip(tokens) {
                let r = tok as usize * c;
                match w {
                    Weights::F16(e) => x
                        .iter_mut()
                        .zip(&e[r..r + c])
                        .for_each(|(x, v)| *x = v.to_f32()),
                    Weights::Bf16(e) => x
                        .iter_mut()
                        .zip(&e[r..r + c])
                        .for_each(|(x, v)| *x = v.to_f32()),
                    Weights::F32(e) => x.copy_from_slice(&e[r..r + c]),
                }
            }
        })?;
        // The step's tables, one row per position.
        b.rope.clear();
        for p in pos0..pos0 + t {
            b.rope.extend((0..hd / 2).map(|i| {
                let a = p as f64 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64);
                (a.cos() as f32, a.sin() as f32)
            }));
        }
        let (eps, il) = (cfg.norm_eps, cfg.rope_interleaved);
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        let s = pos0 + t;
        for (l, (layer, plan)) in self.model.layers.iter().zip(&self.layers).enumerate() {
            let (Attn::Gqa { wq, wk, wv, wo, .. }, Ffn::Dense(e)) = (&layer.attn, &layer.ffn)
            else {
                unreachable!("checked in new")
            };
            let (nh, nkv, f) = (plan.n_heads, plan.n_kv, cfg.layer(l).ffn);
            let (q, k, v) = (
                &mut b.q[..t * nh * hd],
                &mut b.k[..t * nkv * hd],
                &mut b.v[..t * nkv * hd],
            );
            rows_mut(&mut b.h, c)
                .zip(b.x.par_chunks(c))
                .for_each(|(h, x)| rms_norm(x, &plan.attn_norm, eps, h));
            let mut inp = Input::new(&b.h, c, &mut b.acts);
            lin_block(wq, &mut inp, q)?;
            lin_block(wk, &mut inp, k)?;
            lin_block(wv, &mut inp, v)?;
            let rope_rows = |x: &mut [f32], w: usize| {
                rows_mut(x, w)
                    .zip(b.rope.par_chunks(hd / 2))
                    .for_each(|(row, cs)| {
                        row.chunks_exact_mut(hd).for_each(|h| rope(h, cs, il));
                    })
            };
            rope_rows(q, nh * hd);
            rope_rows(k, nkv * hd);
            let (kc, vc) = (&mut st.k[l], &mut st.v[l]);
            for i in 0..t {
                for h in 0..nkv {
                    let at = (h * cap + pos0 + i) * hd;
                    kc[at..at + hd].copy_from_slice(&k[(i * nkv + h) * hd..][..hd]);
                    vc[at..at + hd].copy_from_slice(&v[(i * nkv + h) * hd..][..hd]);
                }
            }
            // Per query head: scores (t, s) = q·kᵀ, the causal softmax in
            // place, then (t, hd) = P·v. GQA: head h reads KV head h / rep.
            let (kc, vc, q) = (&st.k[l], &st.v[l], &b.q[..t * nh * hd]);
            let rep = nh / nkv;
            b.heads[..nh * t * hd]
                .par_chunks_mut(t * hd)
                .enumerate()
                .for_each_init(Vec::new, |sc: &mut Vec<f32>, (h, out)| {
                    sc.resize(t * s, 0.0);
                    let kvh = h / rep;
                    let (kh, vh) = (
                        &kc[kvh * cap * hd..][..s * hd],
                        &vc[kvh * cap * hd..][..s * hd],
                    );
                    let qh = View {
                        data: q,
                        off: h * hd,
                        rs: nh * hd,
                        cs: 1,
                    };
                    matmul(
                        (t, s, hd),
                        qh,
                        View::rows(kh, hd).t(),
                        sc,
                        0,
                        s,
                        false,
                        false,
                    );
                    for (i, row) in sc.chunks_exact_mut(s).enumerate() {
                        let (seen, future) = row.split_at_mut(pos0 + i + 1);
                        let mut max = f32::NEG_INFINITY;
                        for x in seen.iter_mut() {
                            *x *= scale;
                            max = max.max(*x);
                        }
                        let mut sum = 0.0;
                        for x in seen.iter_mut() {
                            *x = (*x - max).exp();
                            sum += *x;
                        }
                        seen.iter_mut().for_each(|x| *x /= sum);
                        future.fill(0.0);
                    }
                    matmul(
                        (t, hd, s),
                        View::rows(sc, s),
                        View::rows(vh, hd),
                        out,
                        0,
                        hd,
                        false,
                        false,
                    );
                });
            let att = &mut b.att[..t * nh * hd];
            let heads = &b.heads;
            rows_mut(att, nh * hd).enumerate().for_each(|(i, row)| {
                for (h, o) in row.chunks_exact_mut(hd).enumerate() {
                    o.copy_from_slice(&heads[(h * t + i) * hd..][..hd]);
                }
            });
            lin_block(wo, &mut Input::new(att, nh * hd, &mut b.acts), &mut b.h)?;
            let add = |x: &mut [f32], h: &[f32]| {
                rows_mut(x, c)
                    .zip(h.par_chunks(c))
                    .for_each(|(x, h)| x.iter_mut().zip(h).for_each(|(x, o)| *x += o));
            };
            add(&mut b.x, &b.h);
            rows_mut(&mut b.h, c)
                .zip(b.x.par_chunks(c))
                .for_each(|(h, x)| rms_norm(x, &plan.ffn_norm, eps, h));
            let (gate, up) = (&mut b.gate[..t * f], &mut b.up[..t * f]);
            let mut inp = Input::new(&b.h, c, &mut b.acts);
            lin_block(&e.gate, &mut inp, gate)?;
            lin_block(&e.up, &mut inp, up)?;
            rows_mut(gate, f)
                .zip(up.par_chunks(f))
                .for_each(|(g, u)| silu_mul(g, u));
            lin_block(&e.down, &mut Input::new(gate, f, &mut b.acts), &mut b.h)?;
            add(&mut b.x, &b.h);
        }
        st.len += t;
        Ok(())
    }
}
