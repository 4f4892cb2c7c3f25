//! Causal grouped-query attention of the CPU executor, forward and
//! backward, one (sequence, head) per rayon task with single-threaded
//! `gemm` products inside. The forward keeps the probabilities P for the
//! backward pass (B·H·T² floats: small at training lengths).

use rayon::prelude::*;

use super::{View, matmul};

/// Shapes of one attention call: batch, tokens per sequence, query heads,
/// key/value heads, head dim. Rows are (B·T, heads·hd), head h at column
/// h·hd.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub b: usize,
    pub t: usize,
    pub h: usize,
    pub hkv: usize,
    pub hd: usize,
}

impl Shape {
    fn rep(&self) -> usize {
        self.h / self.hkv
    }

    /// View of head `h` of sequence `b` in rows of `heads` heads.
    fn head<'a>(&self, x: &'a [f32], heads: usize, b: usize, h: usize) -> View<'a> {
        View {
            data: x,
            off: b * self.t * heads * self.hd + h * self.hd,
            rs: heads * self.hd,
            cs: 1,
        }
    }
}

/// Moves per-head blocks (B, heads, T, hd) into rows (B·T, heads·hd);
/// `acc` adds instead of overwriting.
pub fn heads_to_rows(src: &[f32], dst: &mut [f32], s: Shape, heads: usize, acc: bool) {
    let (t, hd) = (s.t, s.hd);
    dst.par_chunks_mut(t * heads * hd)
        .zip(src.par_chunks(heads * t * hd))
        .for_each(|(dst, src)| {
            for (h, block) in src.chunks(t * hd).enumerate() {
                for (i, row) in block.chunks(hd).enumerate() {
                    let d = &mut dst[i * heads * hd + h * hd..][..hd];
                    if acc {
                        d.iter_mut().zip(row).for_each(|(d, x)| *d += x);
                    } else {
                        d.copy_from_slice(row);
                    }
                }
            }
        });
}

/// o (B·T, H·hd) = softmax(mask(q·kᵀ·scale))·v per head; `p` (B, H, T, T)
/// receives the probabilities (zero above the diagonal), `o_heads` (B, H,
/// T, hd) is scratch.
pub fn forward(
    s: Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &mut [f32],
    o_heads: &mut [f32],
    o: &mut [f32],
) {
    let (t, hd) = (s.t, s.hd);
    let scale = 1.0 / (hd as f32).sqrt();
    p.par_chunks_mut(t * t)
        .zip(o_heads.par_chunks_mut(t * hd))
        .enumerate()
        .for_each(|(idx, (p, oh))| {
            let (b, h) = (idx / s.h, idx % s.h);
            let kh = h / s.rep();
            let qv = s.head(q, s.h, b, h);
            let kv = s.head(k, s.hkv, b, kh).t();
            matmul((t, t, hd), qv, kv, p, 0, t, false, false);
            for (i, row) in p.chunks_mut(t).enumerate() {
                let (vis, hidden) = row.split_at_mut(i + 1);
                let max = vis.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x)) * scale;
                vis.iter_mut()
                    .for_each(|x| *x = super::kernels::exp(*x * scale - max));
                let inv = 1.0 / vis.iter().sum::<f32>();
                vis.iter_mut().for_each(|x| *x *= inv);
                hidden.fill(0.0);
            }
            let vv = s.head(v, s.hkv, b, kh);
            matmul((t, hd, t), View::rows(p, t), vv, oh, 0, hd, false, false);
        });
    heads_to_rows(o_heads, o, s, s.h, false);
}

/// Scratch of the backward pass, sized for one shape.
pub struct BwdScratch {
    dq_heads: Vec<f32>,
    dk_heads: Vec<f32>,
    dv_heads: Vec<f32>,
    dp: Vec<f32>,
}

impl BwdScratch {
    pub fn new(s: Shape) -> BwdScratch {
        let (b, t, hd) = (s.b, s.t, s.hd);
        BwdScratch {
            dq_heads: vec![0.0; b * s.h * t * hd],
            dk_heads: vec![0.0; b * s.hkv * t * hd],
            dv_heads: vec![0.0; b * s.hkv * t * hd],
            dp: vec![0.0; b * s.hkv * t * t],
        }
    }
}

/// Gradients of `forward` for the output gradient `d_o` (B·T, H·hd): dq,
/// dk, dv in rows, overwritten. One task per (sequence, KV head) so the
/// query heads sharing a KV head add into its dk, dv without races.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &[f32],
    d_o: &[f32],
    sc: &mut BwdScratch,
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let (t, hd, rep) = (s.t, s.hd, s.rep());
    let scale = 1.0 / (hd as f32).sqrt();
    sc.dq_heads
        .par_chunks_mut(rep * t * hd)
        .zip(sc.dk_heads.par_chunks_mut(t * hd))
        .zip(sc.dv_heads.par_chunks_mut(t * hd))
        .zip(sc.dp.par_chunks_mut(t * t))
        .enumerate()
        .for_each(|(idx, (((dqh, dkh), dvh), dp))| {
            let (b, kh) = (idx / s.hkv, idx % s.hkv);
            let kv = s.head(k, s.hkv, b, kh);
            let vv = s.head(v, s.hkv, b, kh);
            for r in 0..rep {
                let h = kh * rep + r;
                let ph = View::rows(&p[(b * s.h + h) * t * t..][..t * t], t);
                let doh = s.head(d_o, s.h, b, h);
                // dV += Pᵀ·dO
                matmul((t, hd, t), ph.t(), doh, dvh, 0, hd, r > 0, false);
                // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale
                matmul((t, t, hd), doh, vv.t(), dp, 0, t, false, false);
                for (i, row) in dp.chunks_mut(t).enumerate() {
                    let prow = &ph.data[ph.off + i * t..][..t];
                    let dot: f32 = row[..=i].iter().zip(prow).map(|(d, p)| d * p).sum();
                    for j in 0..=i {
                        row[j] = prow[j] * (row[j] - dot) * scale;
                    }
                    row[i + 1..].fill(0.0);
                }
                let ds = View::rows(dp, t);
                // dQ = dS·K, dK += dSᵀ·Q
                matmul(
                    (t, hd, t),
                    ds,
                    kv,
                    &mut dqh[r * t * hd..],
                    0,
                    hd,
                    false,
                    false,
                );
                let qh = s.head(q, s.h, b, h);
                matmul((t, hd, t), ds.t(), qh, dkh, 0, hd, r > 0, false);
            }
        });
    heads_to_rows(&sc.dq_heads, dq, s, s.h, false);
    heads_to_rows(&sc.dk_heads, dk, s, s.hkv, false);
    heads_to_rows(&sc.dv_heads, dv, s, s.hkv, false);
}
