//! A q4_0 matrix-vector kernel for the CPU. candle's q4_0 dot product is
//! compute-bound on this class of machine (llama-3.2-1b, one thread: 12.5
//! GB/s of weights against 28.6 GB/s for q8_0, which equals STREAM), and so
//! was a block-at-a-time SIMD kernel (llama-2-7b at 0.36 of STREAM): per
//! block it spent ~15 instructions on unpacking, f16 scale conversion and a
//! horizontal split of two blocks per register.
//!
//! This kernel keeps ggml's q4_0 numbers (f16 scale + 32 nibbles, value =
//! nibble − 8, 18 bytes a block) but stores each row **interleaved in groups
//! of 16 blocks** so that SIMD lane j accumulates block j's dot product: one
//! 64-byte load brings 4 bytes of each of 16 blocks, eight u8×i8 dot-product
//! instructions finish 16 blocks, and the 16 scales convert in one
//! instruction. The activations are quantized to q8_0 per call in the
//! matching order. Rows are padded with zero blocks to a multiple of 16
//! (llama-2-7b's 11008-wide down projection: 344 → 352 blocks, +2.3%), so
//! there is no tail loop.

use half::f16;
use rayon::prelude::*;

pub(super) use super::qact::{ActQ8, GROUP_ACT_BYTES, MATVEC_CHUNK, quantize_act};
pub use super::qact::{ActRows, BLOCK, GROUP, Q4Path, path};
use super::qgemm::{Kind, Packed, gemm_on};

/// Packed nibbles of a group: 4 vectors of 64 bytes.
const GROUP_NIBBLE_BYTES: usize = GROUP * BLOCK / 2;
/// A group in memory: its nibbles, then its 16 f16 scales.
const GROUP_BYTES: usize = GROUP_NIBBLE_BYTES + GROUP * 2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ4 {
    pub d: f16,
    /// Low nibbles: elements 0..16, high nibbles: elements 16..32.
    pub qs: [u8; 16],
}

/// The zero block that pads a row: scale 0, every nibble 8 (value 0).
const PAD: BlockQ4 = BlockQ4 {
    d: f16::ZERO,
    qs: [0x88; 16],
};

/// A (rows, cols) matrix of q4_0 blocks, row-major, each row stored as
/// `groups` interleaved groups (see `pack_group`); cols % 32 == 0.
#[derive(Debug)]
pub struct Q4Matrix {
    pub rows: usize,
    pub cols: usize,
    groups: usize,
    data: Vec<u8>,
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

/// Lays 16 blocks out so that vector v (64 bytes) holds, in lane j, packed
/// bytes 4v..4v+4 of block j: their low nibbles are elements 4v..4v+4 and
/// their high nibbles elements 16+4v..16+4v+4.
fn pack_group(blocks: &[BlockQ4], dst: &mut [u8]) {
    for (j, b) in blocks.iter().enumerate() {
        for v in 0..4 {
            dst[64 * v + 4 * j..64 * v + 4 * j + 4].copy_from_slice(&b.qs[4 * v..4 * v + 4]);
        }
        dst[GROUP_NIBBLE_BYTES + 2 * j..GROUP_NIBBLE_BYTES + 2 * j + 2]
            .copy_from_slice(&b.d.to_le_bytes());
    }
}

impl Q4Matrix {
    fn row_bytes(&self) -> usize {
        self.groups * GROUP_BYTES
    }

    /// Packs rows given as block iterators (cols / 32 blocks each).
    fn pack(rows: usize, cols: usize, mut blocks: impl Iterator<Item = BlockQ4>) -> Q4Matrix {
        let nb = cols / BLOCK;
        let groups = nb.div_ceil(GROUP);
        let mut data = super::zeroed::filled(rows * groups * GROUP_BYTES, 0u8);
        let mut row = Vec::with_capacity(groups * GROUP);
        for dst in data.chunks_exact_mut(groups * GROUP_BYTES) {
            row.clear();
            row.extend(blocks.by_ref().take(nb));
            row.resize(groups * GROUP, PAD);
            for (g, d) in row
                .chunks_exact(GROUP)
                .zip(dst.chunks_exact_mut(GROUP_BYTES))
            {
                pack_group(g, d);
            }
        }
        Q4Matrix {
            rows,
            cols,
            groups,
            data,
        }
    }

    /// Quantizes a row-major (rows, cols) f32 matrix; `None` unless cols is a
    /// multiple of 32.
    pub fn quantize(data: &[f32], rows: usize, cols: usize) -> Option<Q4Matrix> {
        if !cols.is_multiple_of(BLOCK) || data.len() != rows * cols {
            return None;
        }
        Some(Self::pack(
            rows,
            cols,
            data.chunks_exact(BLOCK).map(quantize_block_q4),
        ))
    }

    /// Reads ggml's q4_0 tensor bytes: 18 bytes a block, a little-endian
    /// f16 scale then 16 bytes of nibbles. `None` when the size is wrong.
    pub fn from_ggml_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Q4Matrix> {
        if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * cols / BLOCK * 18 {
            return None;
        }
        let blocks = bytes.chunks_exact(18).map(|b| {
            let mut qs = [0u8; 16];
            qs.copy_from_slice(&b[2..18]);
            BlockQ4 {
                d: f16::from_le_bytes([b[0], b[1]]),
                qs,
            }
        });
        Some(Self::pack(rows, cols, blocks))
    }

    /// Block `i` of row `r`, read back from the interleaved layout.
    pub fn block(&self, r: usize, i: usize) -> BlockQ4 {
        let (g, j) = (i / GROUP, i % GROUP);
        let src = &self.data[r * self.row_bytes() + g * GROUP_BYTES..][..GROUP_BYTES];
        let mut qs = [0u8; 16];
        for v in 0..4 {
            qs[4 * v..4 * v + 4].copy_from_slice(&src[64 * v + 4 * j..64 * v + 4 * j + 4]);
        }
        let o = GROUP_NIBBLE_BYTES + 2 * j;
        BlockQ4 {
            d: f16::from_le_bytes([src[o], src[o + 1]]),
            qs,
        }
    }

    /// y = W·x for one activation row, into `y` (rows long): the decode
    /// step's form, with no output allocation.
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
            kind: Kind::Q4,
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

/// One packed weight row against one activation row.
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
            for v in 0..4 {
                for t in 0..4 {
                    let (byte, at) = (w[64 * v + 4 * j + t] as i32, 64 * v + 4 * j + t);
                    s += (byte & 0x0F) * x[at] as i32 + (byte >> 4) * x[at + 256] as i32;
                }
            }
            let i = g * GROUP + j;
            let o = GROUP_NIBBLE_BYTES + 2 * j;
            let dw = f16::from_le_bytes([w[o], w[o + 1]]).to_f32();
            total += (s - a.sum8[i]) as f32 * (dw * a.d[i]);
        }
    }
    total
}

/// The 16-block step in two 8-block halves: u8 nibbles × i8 activations
/// summed in 16 bits (8 products of ≤ 2·15·128 stay below 2^15), then
/// widened once per half.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(row: &[u8], a: ActQ8) -> f32 {
    use std::arch::x86_64::*;
    let mask = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (g, (w, x)) in row
        .chunks_exact(GROUP_BYTES)
        .zip(a.qs.chunks_exact(GROUP_ACT_BYTES))
        .enumerate()
    {
        let (w, x) = (w.as_ptr(), x.as_ptr());
        for h in 0..2 {
            let mut s16 = _mm256_setzero_si256();
            for v in 0..4 {
                // SAFETY: w holds GROUP_BYTES and x GROUP_ACT_BYTES bytes;
                // every offset below stays inside them.
                unsafe {
                    let packed = _mm256_loadu_si256(w.add(64 * v + 32 * h) as *const __m256i);
                    let lo = _mm256_and_si256(packed, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask);
                    let xlo = _mm256_loadu_si256(x.add(64 * v + 32 * h) as *const __m256i);
                    let xhi = _mm256_loadu_si256(x.add(64 * (4 + v) + 32 * h) as *const __m256i);
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, xlo));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, xhi));
                }
            }
            let i = g * GROUP + 8 * h;
            // SAFETY: blocks i..i+8 exist in d, sum8 and the group's scales.
            unsafe {
                let s8 = _mm256_loadu_si256(a.sum8.as_ptr().add(i) as *const __m256i);
                let dot = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones), s8);
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(
                    w.add(GROUP_NIBBLE_BYTES + 16 * h) as *const __m128i
                ));
                let scale = _mm256_mul_ps(dw, _mm256_loadu_ps(a.d.as_ptr().add(i)));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc);
            }
        }
    }
    let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55)))
}

/// The 16-block step in 512-bit registers with VNNI: eight u8×i8 dot
/// products (two accumulators, so the chains overlap), one scale step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_avx512(row: &[u8], a: ActQ8) -> f32 {
    use std::arch::x86_64::*;
    let mask = _mm512_set1_epi8(0x0F);
    let mut acc = _mm512_setzero_ps();
    for (g, (w, x)) in row
        .chunks_exact(GROUP_BYTES)
        .zip(a.qs.chunks_exact(GROUP_ACT_BYTES))
        .enumerate()
    {
        let (w, x) = (w.as_ptr(), x.as_ptr());
        let (mut d0, mut d1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        for v in 0..4 {
            // SAFETY: w holds GROUP_BYTES and x GROUP_ACT_BYTES bytes;
            // every offset below stays inside them.
            unsafe {
                let packed = _mm512_loadu_si512(w.add(64 * v) as *const __m512i);
                let lo = _mm512_and_si512(packed, mask);
                let hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), mask);
                let xlo = _mm512_loadu_si512(x.add(64 * v) as *const __m512i);
                let xhi = _mm512_loadu_si512(x.add(64 * (4 + v)) as *const __m512i);
                d0 = _mm512_dpbusd_epi32(d0, lo, xlo);
                d1 = _mm512_dpbusd_epi32(d1, hi, xhi);
            }
        }
        let i = g * GROUP;
        // SAFETY: blocks i..i+16 exist in d, sum8 and the group's scales.
        unsafe {
            let s8 = _mm512_loadu_si512(a.sum8.as_ptr().add(i) as *const __m512i);
            let dot = _mm512_sub_epi32(_mm512_add_epi32(d0, d1), s8);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(
                w.add(GROUP_NIBBLE_BYTES) as *const __m256i
            ));
            let scale = _mm512_mul_ps(dw, _mm512_loadu_ps(a.d.as_ptr().add(i)));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
        }
    }
    _mm512_reduce_add_ps(acc)
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

    fn row(q: &Q4Matrix, r: usize) -> &[u8] {
        &q.data[r * q.row_bytes()..(r + 1) * q.row_bytes()]
    }

    #[test]
    fn simd_and_scalar_agree_and_track_f32() {
        // 9 blocks (one padded group) and 33 blocks (two full groups and a
        // padded one): the padding and the group boundaries.
        for (rows, cols, m) in [(70, 288, 3), (5, 1056, 2), (9, 544, 6)] {
            let w = data(rows * cols, 1);
            let x = data(m * cols, 2);
            let q = Q4Matrix::quantize(&w, rows, cols).unwrap();
            let y = q.matmul(&x, m);
            for i in 0..m {
                let xq = quantize_act(&x[i * cols..(i + 1) * cols]);
                let xq = xq.row(0);
                for r in 0..rows {
                    let s = dot_scalar(row(&q, r), xq);
                    let got = y[i * q.rows + r];
                    assert!((s - got).abs() <= 1e-3 * s.abs().max(1.0), "{s} vs {got}");
                    let exact: f32 = (0..cols).map(|c| w[r * cols + c] * x[i * cols + c]).sum();
                    // q4 keeps ~3 bits: within a few % of the row's magnitude.
                    let mag: f32 = (0..cols)
                        .map(|c| (w[r * cols + c] * x[i * cols + c]).abs())
                        .sum();
                    assert!((s - exact).abs() < 0.1 * mag, "{s} vs exact {exact}");
                    // Every SIMD path this CPU has, against the scalar one.
                    #[cfg(target_arch = "x86_64")]
                    {
                        use std::arch::is_x86_feature_detected as has;
                        if has!("avx2") && has!("fma") && has!("f16c") {
                            let v = unsafe { dot_avx2(row(&q, r), xq) };
                            assert!((v - s).abs() <= 1e-3 * s.abs().max(1.0), "avx2 {v} vs {s}");
                        }
                        if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                            let v = unsafe { dot_avx512(row(&q, r), xq) };
                            assert!(
                                (v - s).abs() <= 1e-3 * s.abs().max(1.0),
                                "avx512 {v} vs {s}"
                            );
                        }
                    }
                }
            }
            // A batch gives each row's answer alone, and so does matvec.
            let one = q.matmul(&x[cols..2 * cols], 1);
            assert_eq!(one, y[q.rows..2 * q.rows]);
            let mut mv = vec![0.0; q.rows];
            q.matvec(&x[cols..2 * cols], &mut mv);
            assert_eq!(mv, one);
        }
        assert!(Q4Matrix::quantize(&data(10, 0), 1, 10).is_none());
    }

    #[test]
    fn interleaving_keeps_every_block() {
        let (rows, cols) = (3, 1056);
        let w = data(rows * cols, 5);
        let q = Q4Matrix::quantize(&w, rows, cols).unwrap();
        for r in 0..rows {
            for (i, blk) in w[r * cols..(r + 1) * cols].chunks_exact(BLOCK).enumerate() {
                assert_eq!(q.block(r, i), quantize_block_q4(blk), "row {r} block {i}");
            }
            // Padding blocks are zero.
            assert_eq!(q.block(r, 33), PAD);
        }
    }

    #[test]
    fn ggml_bytes_round_trip() {
        let (rows, cols) = (4, 64);
        let w = data(rows * cols, 3);
        let q = Q4Matrix::quantize(&w, rows, cols).unwrap();
        let bytes: Vec<u8> = (0..rows)
            .flat_map(|r| (0..cols / BLOCK).map(move |i| (r, i)))
            .flat_map(|(r, i)| {
                let b = q.block(r, i);
                b.d.to_le_bytes().into_iter().chain(b.qs)
            })
            .collect();
        let back = Q4Matrix::from_ggml_bytes(&bytes, rows, cols).unwrap();
        let x = data(cols, 4);
        assert_eq!(q.matmul(&x, 1), back.matmul(&x, 1));
        assert!(Q4Matrix::from_ggml_bytes(&bytes[1..], rows, cols).is_none());
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
