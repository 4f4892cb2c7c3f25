//! The differentiable building blocks, written from candle's primitive ops
//! (not its fused `rms_norm`/`softmax_last_dim`/`rope`, which return no
//! gradient), so one definition serves training, inference and every backend.

use candle_core::quantized::QMatMul;
use candle_core::{D, DType, Module, Result, Tensor};

/// A linear layer's weight, (out, in), dense or quantized (q8_0/q4_0).
#[derive(Debug, Clone)]
pub enum Lin {
    Dense(Tensor),
    Quant(std::sync::Arc<QMatMul>),
    /// A quantized weight split into row blocks that run on rayon's pool in
    /// parallel, each single-threaded inside candle. On a shared 2-vCPU
    /// machine candle's own spin-barrier pool made quantized decode 2×
    /// slower with 2 threads than with 1 (measured: llama-3.2-1b q8_0, 12.1
    /// vs 5.6 tok/s); rows are independent, so the split is exact.
    QuantRows(Vec<std::sync::Arc<QMatMul>>),
    /// q4_0 on the CPU through capbench's own kernel (see `models::q4`).
    Q4(std::sync::Arc<super::q4::Q4Matrix>),
    /// q8_0 on the CPU through capbench's own kernel (see `models::q8`).
    Q8(std::sync::Arc<super::q8::Q8Matrix>),
}

/// x (…, cols) → (…, rows) through a host kernel of (m, cols) f32 rows.
fn host_matmul(
    x: &Tensor,
    rows: usize,
    cols: usize,
    f: impl FnOnce(&[f32], usize) -> Vec<f32>,
) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let m = x.elem_count() / cols;
    let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    *dims.last_mut().expect("x has a last dim") = rows;
    Tensor::from_vec(f(&xs, m), dims, x.device())
}

/// Weights below this many elements are not split: the fork/join would
/// cost more than it saves.
pub const SPLIT_MIN_ELEMS: usize = 1 << 18;

impl Lin {
    /// x (…, in) → (…, out)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Lin::Dense(w) => x.broadcast_matmul(&w.t()?),
            Lin::Quant(q) => q.forward(x),
            Lin::QuantRows(parts) => {
                use rayon::prelude::*;
                let outs = parts
                    .par_iter()
                    .map(|p| p.forward(x))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&outs, D::Minus1)
            }
            Lin::Q4(q) => host_matmul(x, q.rows, q.cols, |xs, m| q.matmul(xs, m)),
            Lin::Q8(q) => host_matmul(x, q.rows, q.cols, |xs, m| q.matmul(xs, m)),
        }
    }

    pub fn dense(&self) -> Option<&Tensor> {
        match self {
            Lin::Dense(w) => Some(w),
            Lin::Quant(_) | Lin::QuantRows(_) | Lin::Q4(_) | Lin::Q8(_) => None,
        }
    }
}

/// The dtype reductions run in: half types are widened to f32, f32 and f64
/// stay (so the f64 reference is f64 throughout).
fn reduce_dtype(dt: DType) -> DType {
    match dt {
        DType::F64 => DType::F64,
        _ => DType::F32,
    }
}

/// RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x²) + eps) · w, over the
/// last dim, reduced in at least f32 whatever the activation dtype.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = x.to_dtype(reduce_dtype(dt))?;
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(ms + eps)?.sqrt()?)?;
    normed.to_dtype(dt)?.broadcast_mul(&w.to_dtype(dt)?)
}

/// Softmax over the last dim; the max is detached (it only shifts).
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// log-softmax over the last dim, in at least f32.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(reduce_dtype(x.dtype()))?;
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Mean cross-entropy in nats. logits (N, V), targets (N) u32.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let lp = log_softmax(logits)?;
    let picked = lp.gather(&targets.unsqueeze(1)?, 1)?; // (N, 1)
    picked.mean_all()?.neg()
}

/// RoPE tables for positions [offset, offset + t): cos, sin of shape (t, dim),
/// in the "rotate half" layout of the Llama reference implementation.
pub fn rope_tables(
    dim: usize,
    theta: f64,
    offset: usize,
    t: usize,
    dtype: DType,
    dev: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let half = dim / 2;
    let mut cos = Vec::with_capacity(t * dim);
    let mut sin = Vec::with_capacity(t * dim);
    for p in offset..offset + t {
        // cos/sin repeat over both halves: cat(freqs, freqs).
        for _ in 0..2 {
            for i in 0..half {
                let freq = 1.0 / theta.powf(2.0 * i as f64 / dim as f64);
                let a = p as f64 * freq;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
    }
    let cos = Tensor::from_vec(cos, (t, dim), dev)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (t, dim), dev)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Applies RoPE to x (B, H, T, dim) with tables (T, dim).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dim = x.dim(D::Minus1)?;
    let half = dim / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)?.add(&rotated.broadcast_mul(sin)?)
}

/// RoPE in the interleaved layout of llama.cpp (GGUF): pairs (2i, 2i+1) are
/// rotated by the angle of frequency i. Takes the same (T, dim) tables as
/// `rope` and uses their first half. x (B, H, T, dim).
pub fn rope_interleaved(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, h, t, dim) = x.dims4()?;
    let half = dim / 2;
    let cos = cos.narrow(D::Minus1, 0, half)?.unsqueeze(D::Minus1)?; // (T, half, 1)
    let sin = sin.narrow(D::Minus1, 0, half)?.unsqueeze(D::Minus1)?;
    let pairs = x.reshape((b, h, t, half, 2))?;
    let x0 = pairs.narrow(D::Minus1, 0, 1)?;
    let x1 = pairs.narrow(D::Minus1, 1, 1)?;
    let r0 = x0.broadcast_mul(&cos)?.sub(&x1.broadcast_mul(&sin)?)?;
    let r1 = x0.broadcast_mul(&sin)?.add(&x1.broadcast_mul(&cos)?)?;
    Tensor::cat(&[&r0, &r1], D::Minus1)?.reshape((b, h, t, dim))
}

/// Additive causal mask (t, s) for queries at positions s−t … s−1 over keys
/// 0 … s−1: 0 where visible, −1e9 where in the future (finite, so rows never
/// become NaN in half precision after the max shift).
pub fn causal_mask(t: usize, s: usize, dtype: DType, dev: &candle_core::Device) -> Result<Tensor> {
    let offset = s - t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..s).map(move |j| if j > i + offset { -1e9 } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (t, s), dev)?.to_dtype(dtype)
}

/// SwiGLU FFN (Shazeer 2020): down(silu(gate(x)) ⊙ up(x)).
pub fn swiglu(x: &Tensor, gate: &Lin, up: &Lin, down: &Lin) -> Result<Tensor> {
    down.forward(&gate.forward(x)?.silu()?.mul(&up.forward(x)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn softmax_and_log_softmax_agree() {
        let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let p: Vec<Vec<f32>> = softmax(&x).unwrap().to_vec2().unwrap();
        let lp: Vec<Vec<f32>> = log_softmax(&x).unwrap().to_vec2().unwrap();
        for (pr, lr) in p.iter().zip(&lp) {
            assert!((pr.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            for (a, b) in pr.iter().zip(lr) {
                assert!((a.ln() - b).abs() < 1e-5);
            }
        }
        assert!((p[1][0] - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_v() {
        let logits = Tensor::zeros((4, 8), DType::F32, &Device::Cpu).unwrap();
        let t = Tensor::new(&[0u32, 1, 2, 7], &Device::Cpu).unwrap();
        let l: f32 = cross_entropy(&logits, &t).unwrap().to_scalar().unwrap();
        assert!((l - (8f32).ln()).abs() < 1e-6);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0], &dev)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let rotated = |pos: usize| -> Vec<f32> {
            let (c, s) = rope_tables(4, 10_000.0, pos, 1, DType::F32, &dev).unwrap();
            rope(&x, &c, &s)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(rotated(0), vec![1.0, 2.0, 3.0, 4.0]);
        let y = rotated(5);
        let n: f32 = y.iter().map(|v| v * v).sum();
        assert!((n - 30.0).abs() < 1e-4);
    }

    /// llama.cpp's converter permutes each head's rows so that the pair
    /// (i, i + d/2) becomes (2i, 2i+1): interleaved RoPE on permuted rows must
    /// equal rotate-half RoPE on the original rows, permuted.
    #[test]
    fn interleaved_rope_on_permuted_rows_equals_rotate_half() {
        let dev = Device::Cpu;
        let (h, t, d) = (2, 5, 8);
        let v: Vec<f32> = (0..h * t * d)
            .map(|i| ((i * 7 % 13) as f32) - 6.0)
            .collect();
        let x = Tensor::from_vec(v, (1, h, t, d), &dev).unwrap();
        // new index 2i + j holds old index j·d/2 + i
        let perm: Vec<u32> = (0..d).map(|n| ((n % 2) * d / 2 + n / 2) as u32).collect();
        let perm = Tensor::new(perm.as_slice(), &dev).unwrap();
        let (c, s) = rope_tables(d, 10_000.0, 3, t, DType::F32, &dev).unwrap();
        let want = rope(&x, &c, &s).unwrap().index_select(&perm, 3).unwrap();
        let got = rope_interleaved(&x.index_select(&perm, 3).unwrap(), &c, &s).unwrap();
        let diff: f32 = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn causal_mask_hides_the_future() {
        let m: Vec<Vec<f32>> = causal_mask(2, 3, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(m, vec![vec![0.0, 0.0, -1e9], vec![0.0, 0.0, 0.0]]);
    }
}
