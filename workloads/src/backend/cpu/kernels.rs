//! The element-wise and row-wise training kernels of the CPU executor,
//! forward and backward: RMSNorm, RoPE (rotate-half layout), SwiGLU, the
//! embedding, fused cross-entropy and a fused AdamW update. Rows run in
//! parallel on rayon's pool; each writes into buffers its caller owns.

use rayon::prelude::*;

/// Rows per rayon task for row-wise kernels: enough work per task that the
/// fork/join costs little next to it.
fn rows_per_task(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

/// y = x / sqrt(mean(x²) + eps) · w per row of width `c`; `rstd` keeps the
/// per-row 1/sqrt(…) for the backward pass.
pub fn rmsnorm_fwd(x: &[f32], w: &[f32], y: &mut [f32], rstd: &mut [f32], c: usize, eps: f32) {
    let rt = rows_per_task(c);
    y.par_chunks_mut(rt * c)
        .zip(rstd.par_chunks_mut(rt))
        .zip(x.par_chunks(rt * c))
        .for_each(|((y, rs), x)| {
            for ((y, r), x) in y.chunks_mut(c).zip(rs.iter_mut()).zip(x.chunks(c)) {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / c as f32;
                *r = 1.0 / (ms + eps).sqrt();
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * *r * w;
                }
            }
        });
}

/// Backward of `rmsnorm_fwd`: dx (+)= ∂/∂x, dw = Σ_rows dy·x·rstd.
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_bwd(
    x: &[f32],
    w: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    c: usize,
    acc: bool,
) {
    let rt = rows_per_task(c);
    let partial = dx
        .par_chunks_mut(rt * c)
        .zip(x.par_chunks(rt * c))
        .zip(dy.par_chunks(rt * c))
        .zip(rstd.par_chunks(rt))
        .map(|(((dx, x), dy), rs)| {
            let mut dw = vec![0f32; c];
            for (((dx, x), dy), r) in dx.chunks_mut(c).zip(x.chunks(c)).zip(dy.chunks(c)).zip(rs) {
                let dot: f32 = dy.iter().zip(w).zip(x).map(|((d, w), x)| d * w * x).sum();
                let k = r * r * r * dot / c as f32;
                for j in 0..c {
                    let g = r * dy[j] * w[j] - k * x[j];
                    dx[j] = if acc { dx[j] + g } else { g };
                    dw[j] += dy[j] * x[j] * r;
                }
            }
            dw
        })
        .reduce(
            || vec![0f32; c],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    dw.copy_from_slice(&partial);
}

/// cos/sin tables (t, dim/2) of RoPE for positions 0..t, computed in f64
/// as the candle reference does.
pub fn rope_tables(dim: usize, theta: f64, t: usize) -> (Vec<f32>, Vec<f32>) {
    let half = dim / 2;
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in 0..t {
        for i in 0..half {
            let a = p as f64 / theta.powf(2.0 * i as f64 / dim as f64);
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// RoPE in place on rows (n, heads·dim) of sequences of `t` tokens (row r
/// is at position r mod t), rotate-half layout: (x1, x2) →
/// (x1·cos − x2·sin, x2·cos + x1·sin). `inverse` rotates back (the
/// backward pass: the rotation's transpose).
pub fn rope(
    x: &mut [f32],
    tabs: (&[f32], &[f32]),
    t: usize,
    heads: usize,
    dim: usize,
    inverse: bool,
) {
    let (cos, sin) = tabs;
    let half = dim / 2;
    let w = heads * dim;
    let rt = rows_per_task(w);
    x.par_chunks_mut(rt * w).enumerate().for_each(|(ci, rows)| {
        for (ri, row) in rows.chunks_mut(w).enumerate() {
            let p = (ci * rt + ri) % t;
            let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
            for head in row.chunks_mut(dim) {
                let (x1, x2) = head.split_at_mut(half);
                for i in 0..half {
                    let s = if inverse { -s[i] } else { s[i] };
                    let (a, b) = (x1[i], x2[i]);
                    x1[i] = a * c[i] - b * s;
                    x2[i] = b * c[i] + a * s;
                }
            }
        }
    });
}

/// e^x to about 2 ulp (Cephes' expf: x = k·ln2 + r, |r| ≤ ln2/2, a degree-6
/// polynomial for e^r, 2^k put in the exponent bits). Unlike `f32::exp`
/// (a libm call) it is plain arithmetic, so loops over it vectorise — the
/// softmax, cross-entropy and SiLU loops spent most of their time in libm.
/// Inputs are clamped to [−87, 88], where e^x is a normal f32.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// a = silu(g) ⊙ u.
pub fn swiglu_fwd(g: &[f32], u: &[f32], a: &mut [f32]) {
    a.par_chunks_mut(16_384)
        .zip(g.par_chunks(16_384))
        .zip(u.par_chunks(16_384))
        .for_each(|((a, g), u)| {
            for ((a, g), u) in a.iter_mut().zip(g).zip(u) {
                *a = g * sigmoid(*g) * u;
            }
        });
}

/// Backward of `swiglu_fwd`, in place: g becomes dg and u becomes du (the
/// forward values are not needed after).
pub fn swiglu_bwd(g: &mut [f32], u: &mut [f32], da: &[f32]) {
    g.par_chunks_mut(16_384)
        .zip(u.par_chunks_mut(16_384))
        .zip(da.par_chunks(16_384))
        .for_each(|((g, u), da)| {
            for ((g, u), da) in g.iter_mut().zip(u.iter_mut()).zip(da) {
                let s = sigmoid(*g);
                let (gv, uv) = (*g, *u);
                *g = da * uv * s * (1.0 + gv * (1.0 - s));
                *u = da * gv * s;
            }
        });
}

/// x (n, c) = rows `tokens` of the embedding (vocab, c).
pub fn embed_fwd(tokens: &[u32], emb: &[f32], x: &mut [f32], c: usize) {
    for (row, &tok) in x.chunks_mut(c).zip(tokens) {
        row.copy_from_slice(&emb[tok as usize * c..][..c]);
    }
}

/// d_emb[token] += dx row, for every row (repeated tokens add up).
pub fn embed_bwd(tokens: &[u32], dx: &[f32], demb: &mut [f32], c: usize) {
    for (row, &tok) in dx.chunks(c).zip(tokens) {
        let d = &mut demb[tok as usize * c..][..c];
        d.iter_mut().zip(row).for_each(|(d, g)| *d += g);
    }
}

/// Mean cross-entropy (nats) of logits (n, v) against `targets`; the logits
/// are overwritten with the loss's gradient (softmax − onehot) / n.
pub fn cross_entropy(logits: &mut [f32], targets: &[u32], v: usize) -> f64 {
    let n = targets.len();
    let total: f64 = logits
        .par_chunks_mut(v)
        .zip(targets.par_iter())
        .map(|(row, &tgt)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
            let shifted_target = row[tgt as usize] - max;
            row.iter_mut().for_each(|x| *x = exp(*x - max));
            let sum: f32 = row.iter().sum();
            let inv = 1.0 / sum;
            for x in row.iter_mut() {
                *x *= inv / n as f32;
            }
            row[tgt as usize] -= 1.0 / n as f32;
            // −log softmax[target] = log Σ − (x_t − max)
            (sum.ln() - shifted_target) as f64
        })
        .sum();
    total / n as f64
}

/// AdamW hyper-parameters for one update.
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based step.
    pub t: i32,
}

/// One fused AdamW update (decoupled weight decay, bias-corrected moments):
/// p ← p − lr·(m̂ / (sqrt(v̂) + eps) + wd·p).
pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: AdamW) {
    let c1 = 1.0 - h.beta1.powi(h.t);
    let c2 = 1.0 - h.beta2.powi(h.t);
    p.par_chunks_mut(16_384)
        .zip(g.par_chunks(16_384))
        .zip(m.par_chunks_mut(16_384))
        .zip(v.par_chunks_mut(16_384))
        .for_each(|(((p, g), m), v)| {
            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = h.beta1 * *m + (1.0 - h.beta1) * g;
                *v = h.beta2 * *v + (1.0 - h.beta2) * g * g;
                let update = (*m / c1) / ((*v / c2).sqrt() + h.eps);
                *p -= h.lr * (update + h.weight_decay * *p);
            }
        });
}
