//! A q8_0 matrix-vector kernel for the CPU, laid out as `q4`'s: each row in
//! groups of 16 interleaved blocks, so SIMD lane j accumulates block j and
//! the 16 scales convert in one instruction; the activations are `q4`'s
//! q8_0 rows in the same order. candle's q8_0 kernel (block at a time,
//! AVX2) held decode at 0.82–0.86 of llama.cpp on the 1.1B shape.
//!
//! The weights are ggml's q8_0 numbers (f16 scale + 32 i8, candle's and
//! ggml's rounding), stored as u8 = i8 + 128 so VNNI's u8×i8 dot product
//! takes them; the +128 comes out once per block as 128·Σx.

use half::f16;
use rayon::prelude::*;

use super::qact::{
    ActQ8, ActRows, BLOCK, GROUP, GROUP_ACT_BYTES, MATVEC_CHUNK, Q4Path, path, quantize_act,
};
use super::qgemm::{Kind, Packed, gemm_on};

/// A group in memory: 8 vectors of 64 biased bytes, then 16 f16 scales.
const GROUP_BYTES: usize = GROUP * BLOCK + GROUP * 2;
const SCALES_AT: usize = GROUP * BLOCK;

/// A (rows, cols) q8_0 matrix, row-major, rows padded with zero blocks to
/// whole groups; cols % 32 == 0.
#[derive(Debug)]
pub struct Q8Matrix {
    pub rows: usize,
    pub cols: usize,
    groups: usize,
    data: Vec<u8>,
}

/// ggml's (and candle's) q8_0 block: d = amax / 127, q = round(x / d).
fn quantize_block(x: &[f32]) -> (f16, [i8; BLOCK]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; BLOCK];
    for (q, v) in q.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    (f16::from_f32(d), q)
}

impl Q8Matrix {
    fn row_bytes(&self) -> usize {
        self.groups * GROUP_BYTES
    }

    /// Packs rows in parallel; `block(r, i)` gives block i of row r.
    fn pack(
        rows: usize,
        cols: usize,
        block: impl Fn(usize, usize) -> (f16, [i8; BLOCK]) + Sync,
    ) -> Q8Matrix {
        let nb = cols / BLOCK;
        let groups = nb.div_ceil(GROUP);
        // Padding blocks: scale 0, every byte 128 (value 0).
        let mut data = super::zeroed::filled(rows * groups * GROUP_BYTES, 128u8);
        data.par_chunks_mut(groups * GROUP_BYTES)
            .enumerate()
            .for_each(|(r, dst)| {
                for i in 0..groups * GROUP {
                    let (g, j) = (i / GROUP, i % GROUP);
                    let dst = &mut dst[g * GROUP_BYTES..(g + 1) * GROUP_BYTES];
                    let (d, q) = if i < nb {
                        block(r, i)
                    } else {
                        (f16::ZERO, [0; BLOCK])
                    };
                    for (e, v) in q.iter().enumerate() {
                        dst[64 * (e / 4) + 4 * j + e % 4] = (*v as u8) ^ 0x80;
                    }
                    dst[SCALES_AT + 2 * j..SCALES_AT + 2 * j + 2].copy_from_slice(&d.to_le_bytes());
                }
            });
        Q8Matrix {
            rows,
            cols,
            groups,
            data,
        }
    }

    /// Quantizes a row-major (rows, cols) f32 matrix; `None` unless cols is
    /// a multiple of 32.
    pub fn quantize(data: &[f32], rows: usize, cols: usize) -> Option<Q8Matrix> {
        if !cols.is_multiple_of(BLOCK) || data.len() != rows * cols {
            return None;
        }
        Some(Self::pack(rows, cols, |r, i| {
            quantize_block(&data[r * cols + i * BLOCK..][..BLOCK])
        }))
    }

    /// Reads ggml's q8_0 tensor bytes: 34 bytes a block, a little-endian
    /// f16 scale then 32 i8. `None` when the size is wrong.
    pub fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Q8Matrix> {
        if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * cols / BLOCK * 34 {
            return None;
        }
        let nb = cols / BLOCK;
        Some(Self::pack(rows, cols, |r, i| {
            let b = &bytes[(r * nb + i) * 34..][..34];
            let mut q = [0i8; BLOCK];
            for (q, v) in q.iter_mut().zip(&b[2..]) {
                *q = *v as i8;
            }
            (f16::from_le_bytes([b[0], b[1]]), q)
        }))
    }

    /// y = W·x for one activation row, into `y` (rows long).
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        let acts = quantize_act(x);
        let a = acts.row(0);
        y.par_chunks_mut(MATVEC_CHUNK)
            .enumerate()
            .for_each(|(i, ys)| self.rows_into(a, i * MATVEC_CHUNK, ys));
    }

    /// ys[k] = W[r0 + k]·a for the rows ys covers, on this thread: one task
    /// of `matvec`, and of a caller running several matrices at once.
    pub(crate) fn rows_into(&self, a: ActQ8, r0: usize, ys: &mut [f32]) {
        let row_bytes = self.row_bytes();
        let w = &self.data[r0 * row_bytes..][..ys.len() * row_bytes];
        for (y, row) in ys.iter_mut().zip(w.chunks_exact(row_bytes)) {
            *y = dot(row, a);
        }
    }

    /// The matrix for `qgemm`.
    pub(super) fn packed(&self) -> Packed<'_> {
        Packed {
            kind: Kind::Q8,
            data: &self.data,
            rows: self.rows,
            dot: dot_on,
        }
    }

    /// out[i·ldo + r] = W[r]·a[i] for every activation row of `a`
    /// (quantized from rows of `cols`): prefill's form.
    pub fn matmul_into(&self, a: &ActRows, out: &mut [f32], ldo: usize) {
        gemm_on(path(), self.packed(), a, out, ldo)
    }

    /// y = W·x for each row of `xs` ((m, cols) row-major) → (m, rows).
    pub fn matmul(&self, xs: &[f32], m: usize) -> Vec<f32> {
        let mut a = ActRows::default();
        a.quantize(&xs[..m * self.cols], self.cols);
        let mut out = vec![0.0f32; m * self.rows];
        self.matmul_into(&a, &mut out, self.rows);
        out
    }
}

fn dot(row: &[u8], a: ActQ8) -> f32 {
    dot_on(path(), row, a)
}

fn dot_on(p: Q4Path, row: &[u8], a: ActQ8) -> f32 {
    match p {
        // SAFETY: `path` only returns a SIMD path whose features it detected.
        #[cfg(target_arch = "x86_64")]
        Q4Path::Avx512Vnni => unsafe { dot_avx512(row, a) },
        #[cfg(target_arch = "x86_64")]
        Q4Path::Avx2 => unsafe { dot_avx2(row, a) },
        _ => dot_scalar(row, a),
    }
}

fn dot_scalar(row: &[u8], a: ActQ8) -> f32 {
    let mut total = 0.0f32;
    for (g, (w, x)) in row
        .chunks_exact(GROUP_BYTES)
        .zip(a.qs.chunks_exact(GROUP_ACT_BYTES))
        .enumerate()
    {
        for j in 0..GROUP {
            let mut s = 0i32;
            for e in 0..BLOCK {
                let at = 64 * (e / 4) + 4 * j + e % 4;
                s += ((w[at] ^ 0x80) as i8 as i32) * x[at] as i32;
            }
            let dw = f16::from_le_bytes([w[SCALES_AT + 2 * j], w[SCALES_AT + 2 * j + 1]]);
            let i = g * GROUP + j;
            total += s as f32 * (dw.to_f32() * a.d[i]);
        }
    }
    total
}

/// Eight u8×i8 dot products per group (two chains), minus 128·Σx per
/// block (`sum8` is 8·Σx), one scale step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_avx512(row: &[u8], a: ActQ8) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_ps();
    for (g, (w, x)) in row
        .chunks_exact(GROUP_BYTES)
        .zip(a.qs.chunks_exact(GROUP_ACT_BYTES))
        .enumerate()
    {
        let (w, x) = (w.as_ptr(), x.as_ptr());
        let (mut d0, mut d1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        for v in 0..4 {
            // SAFETY: w holds GROUP_BYTES and x GROUP_ACT_BYTES bytes.
            unsafe {
                let w0 = _mm512_loadu_si512(w.add(128 * v) as *const __m512i);
                let w1 = _mm512_loadu_si512(w.add(128 * v + 64) as *const __m512i);
                let x0 = _mm512_loadu_si512(x.add(128 * v) as *const __m512i);
                let x1 = _mm512_loadu_si512(x.add(128 * v + 64) as *const __m512i);
                d0 = _mm512_dpbusd_epi32(d0, w0, x0);
                d1 = _mm512_dpbusd_epi32(d1, w1, x1);
            }
        }
        let i = g * GROUP;
        // SAFETY: blocks i..i+16 exist in d, sum8 and the group's scales.
        unsafe {
            let s8 = _mm512_loadu_si512(a.sum8.as_ptr().add(i) as *const __m512i);
            let dot = _mm512_sub_epi32(_mm512_add_epi32(d0, d1), _mm512_slli_epi32(s8, 4));
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(SCALES_AT) as *const __m256i));
            let scale = _mm512_mul_ps(dw, _mm512_loadu_ps(a.d.as_ptr().add(i)));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
        }
    }
    _mm512_reduce_add_ps(acc)
}

/// Two 8-block halves; i8×i8 through maddubs with the sign moved onto the
/// activations (|w| ≤ 128, so a pair of products stays below 2^15).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(row: &[u8], a: ActQ8) -> f32 {
    use std::arch::x86_64::*;
    let bias = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (g, (w, x)) in row
        .chunks_exact(GROUP_BYTES)
        .zip(a.qs.chunks_exact(GROUP_ACT_BYTES))
        .enumerate()
    {
        let (w, x) = (w.as_ptr(), x.as_ptr());
        for h in 0..2 {
            let mut s32 = _mm256_setzero_si256();
            for k in 0..8 {
                // SAFETY: w holds GROUP_BYTES and x GROUP_ACT_BYTES bytes.
                unsafe {
                    let wb = _mm256_loadu_si256(w.add(64 * k + 32 * h) as *const __m256i);
                    let wi = _mm256_xor_si256(wb, bias);
                    let xv = _mm256_loadu_si256(x.add(64 * k + 32 * h) as *const __m256i);
                    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(wi), _mm256_sign_epi8(xv, wi));
                    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(p, ones));
                }
            }
            let i = g * GROUP + 8 * h;
            // SAFETY: blocks i..i+8 exist in d and the group's scales.
            unsafe {
                let dw =
                    _mm256_cvtph_ps(_mm_loadu_si128(w.add(SCALES_AT + 16 * h) as *const __m128i));
                let scale = _mm256_mul_ps(dw, _mm256_loadu_ps(a.d.as_ptr().add(i)));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), scale, acc);
            }
        }
    }
    let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i * 2654435761 + salt) % 2001) as f32 / 1000.0 - 1.0)
                    * if i % 7 == 0 { 3.0 } else { 1.0 }
            })
            .collect()
    }

    fn row(q: &Q8Matrix, r: usize) -> &[u8] {
        &q.data[r * q.row_bytes()..(r + 1) * q.row_bytes()]
    }

    /// Our blocks are candle's (its bytes read back give the same matrix),
    /// every SIMD path this CPU has agrees with the scalar one, and all
    /// track the f32 product. Shapes: one padded group, and two full groups
    /// plus a padded one.
    #[test]
    fn simd_scalar_candle_and_f32_agree() {
        for (rows, cols) in [(70, 288), (5, 1056)] {
            let w = data(rows * cols, 1);
            let x = data(cols, 2);
            let q = Q8Matrix::quantize(&w, rows, cols).unwrap();
            let t = Tensor::from_vec(w.clone(), (rows, cols), &Device::Cpu).unwrap();
            let qt = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
            let bytes = qt.data().unwrap();
            let from_candle = Q8Matrix::from_ggml_bytes(&bytes, rows, cols).unwrap();
            assert_eq!(q.data, from_candle.data);
            let mut y = vec![0.0; rows];
            q.matvec(&x, &mut y);
            assert_eq!(
                q.matmul(&[x.clone(), x.clone()].concat(), 2),
                [y.clone(), y.clone()].concat()
            );
            let xq = quantize_act(&x);
            let xq = xq.row(0);
            for (r, got) in y.iter().enumerate() {
                let s = dot_scalar(row(&q, r), xq);
                assert!((s - got).abs() <= 1e-4 * s.abs().max(1.0), "{s} vs {got}");
                let exact: f32 = (0..cols).map(|c| w[r * cols + c] * x[c]).sum();
                let mag: f32 = (0..cols).map(|c| (w[r * cols + c] * x[c]).abs()).sum();
                assert!((s - exact).abs() < 0.02 * mag, "{s} vs exact {exact}");
                #[cfg(target_arch = "x86_64")]
                {
                    use std::arch::is_x86_feature_detected as has;
                    if has!("avx2") && has!("fma") && has!("f16c") {
                        let v = unsafe { dot_avx2(row(&q, r), xq) };
                        assert!((v - s).abs() <= 1e-4 * s.abs().max(1.0), "avx2 {v} vs {s}");
                    }
                    if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                        let v = unsafe { dot_avx512(row(&q, r), xq) };
                        assert!(
                            (v - s).abs() <= 1e-4 * s.abs().max(1.0),
                            "avx512 {v} vs {s}"
                        );
                    }
                }
            }
        }
        assert!(Q8Matrix::quantize(&data(10, 0), 1, 10).is_none());
        assert!(Q8Matrix::from_ggml_bytes(&[0; 33], 1, 32).is_none());
    }

    /// The extremes: −128 (which only a file can hold) and ±127 against
    /// ±127 activations, where a 16-bit pair sum would saturate if the
    /// AVX2 path kept the bias.
    #[test]
    fn extreme_values_do_not_saturate() {
        let mut bytes = vec![0u8; 34];
        bytes[..2].copy_from_slice(&f16::ONE.to_le_bytes());
        for (i, b) in bytes[2..].iter_mut().enumerate() {
            *b = if i % 2 == 0 { 0x80 } else { 0x7F }; // −128, 127
        }
        let q = Q8Matrix::from_ggml_bytes(&bytes, 1, 32).unwrap();
        let x: Vec<f32> = (0..32)
            .map(|i| if i % 2 == 0 { -1.0 } else { 1.0 })
            .collect();
        // Activations quantize to ±127 with d = 1/127: Σ = 16·(128 + 127)·127/127.
        let xq = quantize_act(&x);
        let xq = xq.row(0);
        let s = dot_scalar(row(&q, 0), xq);
        let want = 16.0 * 255.0 * xq.d[0] * 127.0;
        assert!((s - want).abs() < 1e-3 * want, "{s} vs {want}");
        let mut y = [0.0];
        q.matvec(&x, &mut y);
        assert!((y[0] - s).abs() < 1e-3 * want, "{} vs {s}", y[0]);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let v = unsafe { dot_avx2(row(&q, 0), xq) };
            assert!((v - s).abs() < 1e-3 * want, "avx2 {v} vs {s}");
        }
    }
}
