//! A q4_0 matrix-vector kernel for the CPU. candle's q4_0 dot product is
//! compute-bound on this class of machine (llama-3.2-1b, one thread: 12.5
//! GB/s of weights against 28.6 GB/s for q8_0, which equals STREAM), so
//! decode in q4_0 could not approach memory bandwidth. This kernel keeps
//! ggml's q4_0 block layout (f16 scale + 32 nibbles, value = nibble − 8),
//! quantizes the activations to q8_0 blocks per call, and takes integer dot
//! products (AVX2 when present, scalar otherwise) over rows in parallel.

use half::f16;
use rayon::prelude::*;

pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy)]
pub struct BlockQ4 {
    pub d: f16,
    /// Low nibbles: elements 0..16, high nibbles: elements 16..32.
    pub qs: [u8; 16],
}

/// Activations quantized to q8_0, flat so two blocks load as 64 bytes.
struct ActQ8 {
    /// 32 signed values per block.
    qs: Vec<i8>,
    /// Per-block scale (rounded to f16 as ggml stores it).
    d: Vec<f32>,
    /// Per-block Σ qs, for the −8 offset of the q4 nibbles.
    sum: Vec<i32>,
}

/// A (rows, cols) matrix in q4_0 blocks, row-major; cols % 32 == 0.
#[derive(Debug)]
pub struct Q4Matrix {
    pub rows: usize,
    pub cols: usize,
    pub blocks: Vec<BlockQ4>,
}

/// ggml's reference q4_0 rounding: the largest-magnitude value maps to −8.
fn quantize_block_q4(x: &[f32]) -> BlockQ4 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = *v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let q0 = ((x[j] * id + 8.5) as i8).clamp(0, 15) as u8;
        let q1 = ((x[16 + j] * id + 8.5) as i8).clamp(0, 15) as u8;
        qs[j] = q0 | (q1 << 4);
    }
    BlockQ4 {
        d: f16::from_f32(d),
        qs,
    }
}

fn quantize_act(x: &[f32]) -> ActQ8 {
    let nb = x.len() / BLOCK;
    let mut a = ActQ8 {
        qs: Vec::with_capacity(nb * BLOCK),
        d: Vec::with_capacity(nb),
        sum: Vec::with_capacity(nb),
    };
    for blk in x.chunks_exact(BLOCK) {
        let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // ggml stores the q8_0 scale as f16; rounding it the same way keeps
        // our products identical to ggml's (and candle's) for the same weights.
        let d = f16::from_f32(amax / 127.0).to_f32();
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for v in blk {
            let q = (v * id).round() as i8;
            sum += q as i32;
            a.qs.push(q);
        }
        a.d.push(d);
        a.sum.push(sum);
    }
    a
}

/// One row's blocks against blocks `from..from + n` of the activations.
struct Span<'a> {
    qs: &'a [i8],
    d: &'a [f32],
    sum: &'a [i32],
}

impl ActQ8 {
    fn row(&self, from: usize, n: usize) -> Span<'_> {
        Span {
            qs: &self.qs[from * BLOCK..(from + n) * BLOCK],
            d: &self.d[from..from + n],
            sum: &self.sum[from..from + n],
        }
    }
}

impl Q4Matrix {
    /// Quantizes a row-major (rows, cols) f32 matrix; `None` unless cols is a
    /// multiple of 32.
    pub fn quantize(data: &[f32], rows: usize, cols: usize) -> Option<Q4Matrix> {
        if !cols.is_multiple_of(BLOCK) || data.len() != rows * cols {
            return None;
        }
        let blocks = data.chunks_exact(BLOCK).map(quantize_block_q4).collect();
        Some(Q4Matrix { rows, cols, blocks })
    }

    /// Reads ggml's q4_0 tensor bytes: 18 bytes a block, a little-endian
    /// f16 scale then 16 bytes of nibbles. `None` when the size is wrong.
    pub fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Q4Matrix> {
        if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * cols / BLOCK * 18 {
            return None;
        }
        let blocks = bytes
            .chunks_exact(18)
            .map(|b| {
                let mut qs = [0u8; 16];
                qs.copy_from_slice(&b[2..18]);
                BlockQ4 {
                    d: f16::from_le_bytes([b[0], b[1]]),
                    qs,
                }
            })
            .collect();
        Some(Q4Matrix { rows, cols, blocks })
    }

    /// y = W·x for each row of `xs` ((m, cols) row-major) → (m, rows).
    pub fn matmul(&self, xs: &[f32], m: usize) -> Vec<f32> {
        let nb = self.cols / BLOCK;
        let xq = quantize_act(xs);
        let mut out = vec![0.0f32; m * self.rows];
        // Rows in chunks big enough to amortise the fork, one output row of
        // every input row per weight row.
        let chunk = 64;
        out.par_chunks_mut(self.rows)
            .enumerate()
            .for_each(|(i, orow)| {
                let xrow = xq.row(i * nb, nb);
                orow.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
                    for (k, y) in o.iter_mut().enumerate() {
                        let r = c * chunk + k;
                        *y = dot(&self.blocks[r * nb..(r + 1) * nb], &xrow);
                    }
                });
            });
        out
    }
}

/// The dot-product path in use: the widest this CPU offers, unless
/// `CAPBENCH_Q4_KERNEL=avx2|scalar` asks for a narrower one (to compare
/// paths on one machine; recorded nowhere else, so only for development).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Q4Path {
    Avx512Vnni,
    Avx2,
    Scalar,
}

pub fn path() -> Q4Path {
    static PATH: std::sync::OnceLock<Q4Path> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let asked = std::env::var("CAPBENCH_Q4_KERNEL").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni");
            match asked.as_str() {
                "scalar" => Q4Path::Scalar,
                "avx2" if avx2 => Q4Path::Avx2,
                _ if avx512 => Q4Path::Avx512Vnni,
                _ if avx2 => Q4Path::Avx2,
                _ => Q4Path::Scalar,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = asked;
            Q4Path::Scalar
        }
    })
}

fn dot(w: &[BlockQ4], x: &Span<'_>) -> f32 {
    match path() {
        // SAFETY: `path` only returns a SIMD path whose features it detected.
        #[cfg(target_arch = "x86_64")]
        Q4Path::Avx512Vnni => unsafe { dot_avx512(w, x) },
        #[cfg(target_arch = "x86_64")]
        Q4Path::Avx2 => unsafe { dot_avx2(w, x) },
        _ => dot_scalar(w, x),
    }
}

fn dot_scalar(w: &[BlockQ4], x: &Span<'_>) -> f32 {
    let mut sum = 0.0f32;
    for (i, b) in w.iter().enumerate() {
        let q = &x.qs[i * BLOCK..(i + 1) * BLOCK];
        let mut s = 0i32;
        for j in 0..16 {
            s += ((b.qs[j] & 0x0F) as i32 - 8) * q[j] as i32;
            s += ((b.qs[j] >> 4) as i32 - 8) * q[16 + j] as i32;
        }
        sum += s as f32 * b.d.to_f32() * x.d[i];
    }
    sum
}

/// 32 weights of a block as bytes 0..15 (low nibbles, then high nibbles).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nibbles(b: &BlockQ4) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let packed = unsafe { _mm_loadu_si128(b.qs.as_ptr() as *const __m128i) };
    let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c")]
fn f16_to_f32(d: f16) -> f32 {
    use std::arch::x86_64::*;
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(d.to_bits() as i32)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(w: &[BlockQ4], x: &Span<'_>) -> f32 {
    use std::arch::x86_64::*;
    let eight = _mm256_set1_epi8(8);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (i, b) in w.iter().enumerate() {
        let wq = _mm256_sub_epi8(unsafe { nibbles(b) }, eight); // −8..7
        let xq = unsafe { _mm256_loadu_si256(x.qs.as_ptr().add(i * BLOCK) as *const __m256i) };
        // maddubs multiplies unsigned by signed: move w's sign onto x.
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));
        let dots = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
        acc = _mm256_fmadd_ps(dots, _mm256_set1_ps(f16_to_f32(b.d) * x.d[i]), acc);
    }
    let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55)))
}

/// Two blocks per step in 512-bit registers with VNNI: Σ nibble·x as u8×i8
/// dot products, then the −8 offset subtracted as 8·Σx per block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,f16c")]
unsafe fn dot_avx512(w: &[BlockQ4], x: &Span<'_>) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_ps();
    let mut offset = 0.0f32;
    let pairs = w.len() / 2;
    for p in 0..pairs {
        let (b0, b1) = (&w[2 * p], &w[2 * p + 1]);
        let wq = _mm512_inserti64x4(
            _mm512_castsi256_si512(unsafe { nibbles(b0) }),
            unsafe { nibbles(b1) },
            1,
        );
        let xq = unsafe { _mm512_loadu_si512(x.qs.as_ptr().add(2 * p * BLOCK) as *const __m512i) };
        let dots = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq));
        let (s0, s1) = (
            f16_to_f32(b0.d) * x.d[2 * p],
            f16_to_f32(b1.d) * x.d[2 * p + 1],
        );
        let scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
        acc = _mm512_fmadd_ps(dots, scale, acc);
        offset += s0 * x.sum[2 * p] as f32 + s1 * x.sum[2 * p + 1] as f32;
    }
    let mut total = _mm512_reduce_add_ps(acc) - 8.0 * offset;
    if !w.len().is_multiple_of(2) {
        let i = w.len() - 1;
        let tail = Span {
            qs: &x.qs[i * BLOCK..],
            d: &x.d[i..],
            sum: &x.sum[i..],
        };
        total += dot_scalar(&w[i..], &tail);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i * 2654435761 + salt) % 2001) as f32 / 1000.0 - 1.0)
                    * if i % 7 == 0 { 3.0 } else { 1.0 }
            })
            .collect()
    }

    #[test]
    fn simd_and_scalar_agree_and_track_f32() {
        // 9 blocks per row: the two-accumulator loop plus its odd tail.
        let (rows, cols, m) = (70, 288, 3);
        let w = data(rows * cols, 1);
        let x = data(m * cols, 2);
        let q = Q4Matrix::quantize(&w, rows, cols).unwrap();
        let y = q.matmul(&x, m);
        let nb = cols / BLOCK;
        let xq = quantize_act(&x);
        for i in 0..m {
            for r in 0..rows {
                let s = dot_scalar(&q.blocks[r * nb..(r + 1) * nb], &xq.row(i * nb, nb));
                assert!(
                    (s - y[i * rows + r]).abs() <= 1e-3 * s.abs().max(1.0),
                    "{s} vs {}",
                    y[i * rows + r]
                );
                let exact: f32 = (0..cols).map(|c| w[r * cols + c] * x[i * cols + c]).sum();
                // q4 keeps ~3 bits: within a few % of the row's magnitude.
                let mag: f32 = (0..cols)
                    .map(|c| (w[r * cols + c] * x[i * cols + c]).abs())
                    .sum();
                assert!((s - exact).abs() < 0.1 * mag, "{s} vs exact {exact}");
            }
        }
        assert!(Q4Matrix::quantize(&w[..10], 1, 10).is_none());
        // Every SIMD path this CPU has, against the scalar one.
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let (w0, x0) = (&q.blocks[..nb], xq.row(0, nb));
            let s = dot_scalar(w0, &x0);
            if has!("avx2") && has!("fma") && has!("f16c") {
                let v = unsafe { dot_avx2(w0, &x0) };
                assert!((v - s).abs() <= 1e-3 * s.abs().max(1.0), "avx2 {v} vs {s}");
            }
            if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") && has!("f16c") {
                let v = unsafe { dot_avx512(w0, &x0) };
                assert!(
                    (v - s).abs() <= 1e-3 * s.abs().max(1.0),
                    "avx512 {v} vs {s}"
                );
            }
        }
    }

    #[test]
    fn ggml_bytes_round_trip() {
        let w = data(4 * 64, 3);
        let q = Q4Matrix::quantize(&w, 4, 64).unwrap();
        let bytes: Vec<u8> = q
            .blocks
            .iter()
            .flat_map(|b| b.d.to_le_bytes().into_iter().chain(b.qs))
            .collect();
        let back = Q4Matrix::from_ggml_bytes(&bytes, 4, 64).unwrap();
        let x = data(64, 4);
        assert_eq!(q.matmul(&x, 1), back.matmul(&x, 1));
        assert!(Q4Matrix::from_ggml_bytes(&bytes[1..], 4, 64).is_none());
    }

    #[test]
    fn matches_ggml_block_rounding() {
        // Largest magnitude −2 → d = 0.25, −2 ↦ 0 and 1.75 ↦ 15.
        let mut x = vec![0.0f32; 32];
        x[0] = -2.0;
        x[16] = 1.75;
        let b = quantize_block_q4(&x);
        assert_eq!(b.d.to_f32(), 0.25);
        assert_eq!(b.qs[0] & 0x0F, 0);
        assert_eq!(b.qs[0] >> 4, 15);
        assert_eq!(b.qs[1] & 0x0F, 8);
    }
}
